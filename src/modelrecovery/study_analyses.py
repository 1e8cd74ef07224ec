"""Why models are misidentified: the analysis tables of one experiment and across them.

Thin compositions of :mod:`geometry`, :mod:`identifiability` and :mod:`analyse` over the
workflow's own tables; every function returns DataFrames ready to write.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from . import geometry, identifiability
from .oddoneout import similarity


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


def rsa_with_humans(features: np.ndarray, weights: np.ndarray, human: np.ndarray) -> float:
    """Spearman correlation between the aligned model's similarities and the human pair
    choice rates, over the pairs humans saw together."""
    sim = similarity(features, weights)
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
