"""The study's analysis tables, of one experiment and across them: geometry per model,
the identifiability tables and the metric table that sets the study's own metrics beside
external scores. Thin compositions of :mod:`.geometry`, :mod:`.identifiability` and
:mod:`.aggregate` over the workflow's own tables; every function returns DataFrames
ready to write.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..oddoneout import similarity
from . import geometry, identifiability


def model_geometry(features: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                   metric: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per model: geometry shift and participation ratio before/after its aligned W.

    features: name → (n, d); weights: name → (d, k). Returns (per-model table,
    model × model RSA of the aligned RDMs in long form, 2-D classical MDS of 1 − RSA).
    """
    rows = []
    aligned = {}
    for name, x in features.items():
        w = weights[name]
        pr_raw, pr_aligned = geometry.effective_dimensionality(x, w)
        rows.append({"model": name, "geometry_shift": geometry.geometry_shift(x, w, metric),
                     "pr_raw": pr_raw, "pr_aligned": pr_aligned, "dim": x.shape[1],
                     "metric": metric})
        aligned[name] = x @ w
    rsa = geometry.rsa_matrix(aligned, metric)
    names = list(rsa.index)
    coords = geometry.mds(1.0 - rsa.to_numpy(dtype=float), 2)
    mds = pd.DataFrame({"model": names, "mds1": coords[:, 0], "mds2": coords[:, 1]})
    long = rsa.reset_index().melt(id_vars="model", var_name="other", value_name="rsa")
    return pd.DataFrame(rows), long, mds


def misidentification(outcomes: pd.DataFrame, geometry_table: pd.DataFrame, n_boot: int,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Misidentification (1 − the generator's credit) on the generator's geometry shift and
    effective dimensionality after alignment, per experiment × training size.

    One row per generator × seed; predictors z-scored; bootstrap 95% intervals resample
    simulations (seeds) with replacement. Sizes where every generator was recovered (no
    variance to explain) are reported with NaN coefficients.
    """
    rows = outcomes.merge(geometry_table.rename(columns={"model": "generator"}),
                          on="generator", how="left")
    rows = rows.assign(misidentified=1.0 - rows["credit"])
    out = []
    for (exp, n), grp in rows.groupby(["experiment", "n_train"], sort=True):
        try:
            res = identifiability.misidentification_regression(
                grp, ["geometry_shift", "pr_aligned"], "misidentified", n_boot, rng,
                group="seed")
        except ValueError as exc:
            res = pd.DataFrame({"term": ["geometry_shift", "pr_aligned"],
                                "std_coef": np.nan, "note": str(exc)})
        out.append(res.assign(experiment=exp, n_train=n))
    return pd.concat(out, ignore_index=True)


def human_similarity(triplets: np.ndarray, n_objects: int) -> np.ndarray:
    """A model-free similarity from judgements: how often a pair was chosen as most similar
    when it appeared together, shape (n, n); NaN for pairs never shown together."""
    t = np.asarray(triplets, dtype=np.int64)
    shown = np.zeros((n_objects, n_objects))
    chosen = np.zeros((n_objects, n_objects))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        np.add.at(shown, (t[:, a], t[:, b]), 1.0)
    np.add.at(chosen, (t[:, 0], t[:, 1]), 1.0)
    shown, chosen = shown + shown.T, chosen + chosen.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(shown > 0, chosen / shown, np.nan)


def rsa_with_humans(features: np.ndarray, weights: np.ndarray, human: np.ndarray,
                    kind: str = "dot") -> float:
    """Spearman correlation between the aligned model's similarities (under its own
    similarity ``kind``) and the human pair choice rates, over the pairs humans saw
    together."""
    sim = similarity(features, weights, kind)
    iu = np.triu_indices_from(sim, k=1)
    h = human[iu]
    keep = np.isfinite(h)
    return float(spearmanr(sim[iu][keep], h[keep]).statistic)


def metric_table(alignment: pd.DataFrame, generator_curves: pd.DataFrame,
                 rsa_human: pd.DataFrame) -> pd.DataFrame:
    """Per model, one column per alignment metric: zero-shot and probed human accuracy and
    recovery as generator at the largest N (per experiment), RSA with human choices."""
    table = alignment.groupby("model")[["zero_shot_test_acc"]].first()
    for exp, grp in alignment.groupby("experiment"):
        table[f"probed_acc:{exp}"] = grp.set_index("model")["probed_test_acc"]
    for exp, grp in generator_curves.groupby("experiment"):
        last = grp[grp["n_train"] == grp["n_train"].max()].set_index("generator")
        table[f"recovery:{exp}"] = last["recovery"]
    for exp, grp in rsa_human.groupby("experiment"):
        table[f"rsa_human:{exp}"] = grp.set_index("model")["rsa_human"]
    return table.reset_index()


# The study's own metrics by kind: human-data accuracy and RSA are alignment scores in
# the sense of the benchmarks; recovery as generator says whether a score can be trusted
# to rank models, so it is compared with the others but aggregated only when asked.
STUDY_GROUPS = {"zero_shot_test_acc": "study:accuracy", "probed_acc": "study:accuracy",
                "rsa_human": "study:rsa", "recovery": "study:identifiability"}
DEFAULT_STUDY_AGGREGATE = ("study:accuracy", "study:rsa")


def study_metric_groups(metrics: list[str]) -> dict[str, str]:
    """The group of each of the study's metrics (:func:`metric_table`'s columns)."""
    return {m: STUDY_GROUPS[m.split(":")[0]] for m in metrics
            if m.split(":")[0] in STUDY_GROUPS}


def with_external(table: pd.DataFrame, external: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, dict[str, str]]:
    """:func:`metric_table` joined with external scores (long rows of
    ``io.EXTERNAL_SCORE_COLUMNS``; models they do not score get NaN) and every metric's
    group: the study's (:func:`study_metric_groups`) and the files'."""
    groups = study_metric_groups([c for c in table.columns if c != "model"])
    if external is None or not len(external):
        return table, groups
    wide = external.pivot(index="model", columns="metric", values="score")
    wide = wide[list(dict.fromkeys(external["metric"]))]
    out = table.merge(wide.reset_index(), on="model", how="left")
    groups.update(dict(zip(external["metric"], external["group"])))
    return out, groups


def metric_identifiability(alignment: pd.DataFrame, generator_curves: pd.DataFrame
                           ) -> pd.DataFrame:
    """Identifiability as a property of a metric: per experiment (alignment method) and
    model, its probed human test accuracy beside its recovery rate as a generator at the
    largest training size, with that rate's exact interval. A method whose accurate
    models are not recovered ranks models by a score that cannot tell them apart."""
    last = generator_curves[generator_curves["n_train"]
                            == generator_curves.groupby("experiment")["n_train"]
                            .transform("max")]
    rec = last.rename(columns={"generator": "model", "ci_low": "recovery_ci_low",
                               "ci_high": "recovery_ci_high"})[
        ["experiment", "model", "n_train", "datasets", "recovery", "recovery_ci_low",
         "recovery_ci_high"]]
    acc = alignment[["experiment", "model", "probed_test_acc", "zero_shot_test_acc"]]
    out = acc.merge(rec, on=["experiment", "model"], how="left")
    return out.sort_values(["experiment", "model"]).reset_index(drop=True)
