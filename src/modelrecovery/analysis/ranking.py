"""Ranking analyses of Avitan & Golan (2025): the area under each generator's recovery
curve, precision and recall at every k, and the false rank with its agreement with
external rankings.

The published code (github.com/brainsandmachines/oddoneout_model_recovery) defines them
in ``tools/db_analysis.py`` (``compute_precision_recall_at_k``,
``get_k_mean_precision_recall``, ``calculate_models_mean_rank_correct_and_incorrect``,
``spearman_correlation_wrong_rank``) and draws them in
``figures_scripts/create_Figures_1_and_3.py`` (Figure 1A, the recovery curve; Figure 3,
the correct and false ranks). Input is the ``scores`` table of
:func:`modelrecovery.recover.selection.candidate_scores` (one row per dataset ×
candidate, an optional ``design`` column) or the ``outcomes`` of
:func:`.aggregate.dataset_outcomes`.

Deviations from the published code, and why:

- **Ties.** Published: pandas ``rank(method="average")`` on exact accuracies, top-k ties
  broken alphabetically. Here scores within
  :data:`~modelrecovery.recover.selection.TIE_TOL` of the best of their group are tied
  (the project's rule for winners), share the average rank, and at a top-k boundary
  share the places left equally (the expected membership under a random tie break): so
  k = 1 is the project's winner with ties split (precision and recall at k = 1 are
  :func:`.identifiability.precision_recall_f1`'s), and no model gains from its name.
- **Undefined precision or recall** (never in the top k; never a generator): published
  0.0, here NaN as in :func:`.identifiability.precision_recall_f1`; the mean over k
  skips NaN.
- **Ranking score.** Published: test accuracy. The precision/recall table holds that
  ranking and the one by test NLL (``ranked_by``).
- **AUC.** The published code has no area under the recovery curve (its
  ``get_auc_of_model_recovery`` is a ROC AUC of one candidate's accuracies against the
  others', used by no figure, not reproduced). Figure 1A draws recovery over the sorted
  sizes at equal spacing, and its sizes double (50 to 3.3M), so its axis is log N. Here
  x = (log N − log N_min) / (log N_max − log N_min): that axis for doubling sizes, a log
  axis for any others; the area lies in [0, 1], chance is 1/K for K candidates.
- **Intervals.** Published: 99% BCa over simulations for the correct rank; the SD of
  the other generators' mean ranks over √(simulations) for the false rank. Here every
  interval is BCa (:func:`scipy.stats.bootstrap`) at ``level`` over seeds, resampled
  within each generator: the generators are the study's fixed set, the seeds its
  random draws.
- **Spearman.** Published: false rank against one external ranking (THINGS accuracy),
  no interval. Here one ranking per group of external scores (mean rank over the
  group's scores, 1 = best), with a percentile bootstrap over models
  (:func:`.metrics.agreement`).

Pure functions; the bootstraps draw from an explicit :class:`numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.integrate import trapezoid

from ..errors import InputError
from ..io.checks import shown
from ..recover.selection import DATASET, TIE_TOL
from . import metrics

#: The columns of a scores table these analyses read.
SCORE_COLUMNS: tuple[str, ...] = (*DATASET, "candidate", "test_acc", "test_nll")
#: The scores a dataset's candidates are ranked by (test accuracy: higher is better;
#: test NLL: lower is better).
RANKED_BY: tuple[str, ...] = ("test_acc", "test_nll")
#: The ``generator`` of the AUC row that pools every generator (not a valid model name).
POOLED = "(all)"


def _cells(frame: pd.DataFrame) -> list[str]:
    """The columns naming one study: ``experiment`` and, when present, ``design``."""
    return ["experiment", *(["design"] if "design" in frame.columns else [])]


def check_scores(frame: pd.DataFrame, source: object) -> None:
    """Refuse a scores table these analyses cannot read, in one line naming ``source``:
    a missing column, no rows, a ``test_acc`` outside [0, 1] or a ``test_nll`` that is
    not finite (naming the row), a candidate twice in one dataset, a dataset whose
    candidates differ from its study's or lack its generator, or a generator × seed
    missing one of its study's training sizes (its curve would have a hole)."""
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: scores table lacks column(s) {missing}; it has "
                         f"{list(frame.columns)}")
    if frame.empty:
        raise InputError(f"{source}: scores table has no rows")
    f = frame.reset_index(drop=True)
    for col, want in (("test_acc", "a fraction in [0, 1]"), ("test_nll", "finite")):
        if not pd.api.types.is_numeric_dtype(f[col]) or pd.api.types.is_bool_dtype(f[col]):
            raise InputError(f"{source}: column {col!r} must be numeric, found "
                             f"{f[col].dtype}")
        v = f[col].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~((v >= 0) & (v <= 1) if col == "test_acc" else np.isfinite(v)))
        if len(bad):
            raise InputError(f"{source}: row {int(bad[0])} has {col} = "
                             f"{shown(f[col].iloc[bad[0]])}, expected {want}")
    keys = [*_cells(f), *DATASET[1:]]
    dup = np.flatnonzero(f.duplicated([*keys, "candidate"]).to_numpy())
    if len(dup):
        raise InputError(f"{source}: row {int(dup[0])} repeats candidate "
                         f"{f['candidate'].iloc[dup[0]]!r} of its dataset")
    for cell, study in f.groupby(_cells(f), sort=True):
        everyone, sizes = set(study["candidate"]), set(study["n_train"])
        for key, ds in study.groupby(keys, sort=True):
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
            if set(ds["candidate"]) != everyone or ds["generator"].iloc[0] not in everyone:
                raise InputError(f"{source}: dataset {where} has candidates "
                                 f"{sorted(ds['candidate'])}; its study has "
                                 f"{sorted(everyone)}, the generator among them")
        for key, runs in study.groupby(["generator", "seed"], sort=True):
            lacking = sorted(sizes - set(runs["n_train"]))
            if lacking:
                raise InputError(f"{source}: generator {key[0]!r}, seed {key[1]} lacks "
                                 f"n_train {lacking}, which its experiment {cell[0]!r} "
                                 "has elsewhere")


def tie_positions(values: np.ndarray, tol: float = TIE_TOL
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Where each of K candidates stands: scores ``values`` (K,), higher is better.

    Scores within ``tol`` of the best of their group are tied: sorted best first, a
    group starts at the first score more than ``tol`` below the previous group's first.
    Returns ``ahead`` (K,), the candidates in better groups, and ``tied`` (K,), the size
    of the candidate's group (itself included): its average rank (1 = best) is
    ahead + (tied + 1) / 2 and its share of the top k is clip((k − ahead) / tied, 0, 1).
    """
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(-v, kind="stable")
    sorted_v = v[order]
    start = np.zeros(len(v), dtype=np.int64)
    for i in range(1, len(v)):
        first = start[i - 1]
        start[i] = i if sorted_v[i] < sorted_v[first] - tol else first
    sizes = np.bincount(start, minlength=len(v))
    ahead = np.empty(len(v))
    tied = np.empty(len(v))
    ahead[order] = start
    tied[order] = sizes[start]
    return ahead, tied


def ranked(scores: pd.DataFrame, by: str = "test_acc") -> pd.DataFrame:
    """``scores`` sorted by dataset and candidate, with each candidate's standing in its
    dataset under ``by`` (:data:`RANKED_BY`): ``ahead``, ``tied`` (see
    :func:`tie_positions`) and ``rank`` (average rank, 1 = best, float)."""
    if by not in RANKED_BY:
        raise ValueError(f"unknown ranking score {by!r}; expected one of {RANKED_BY}")
    keys = [*_cells(scores), *DATASET[1:]]
    s = scores.sort_values([*keys, "candidate"], kind="stable").reset_index(drop=True)
    v = s[by].to_numpy(dtype=np.float64) * (1.0 if by == "test_acc" else -1.0)
    codes = s.groupby(keys, sort=False).ngroup().to_numpy()
    ahead = np.empty(len(s))
    tied = np.empty(len(s))
    for idx in np.split(np.arange(len(s)), np.flatnonzero(np.diff(codes)) + 1):
        ahead[idx], tied[idx] = tie_positions(v[idx])
    return s.assign(ahead=ahead, tied=tied, rank=ahead + (tied + 1.0) / 2.0)


def _mean_of_means(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean([s.mean(axis=axis) for s in samples], axis=0)


def bca_interval(samples: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator,
                 level: float = 0.95) -> tuple[float, float]:
    """BCa interval (:func:`scipy.stats.bootstrap`, ``method="BCa"``) of the mean over
    ``samples`` of each sample's mean, every sample resampled on its own (a bootstrap
    stratified by sample; one sample: its mean). ``samples`` are 1-D arrays (the seeds
    of one generator each), ``n_boot`` the resamples, ``rng`` their source.

    Returns (low, high): NaN when a sample has fewer than two values (no spread to
    resample) or scipy finds the interval undefined; the point itself when every sample
    is constant (every resample gives it).
    """
    data = tuple(np.asarray(x, dtype=np.float64) for x in samples)
    if not data or any(len(x) < 2 for x in data):
        return np.nan, np.nan
    if all(np.ptp(x) == 0 for x in data):
        point = float(_mean_of_means(*data))
        return point, point
    res = stats.bootstrap(data, _mean_of_means, n_resamples=n_boot, vectorized=True,
                          confidence_level=level, method="BCa", rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def log_axis(sizes: np.ndarray) -> np.ndarray:
    """Training sizes (S,) (ascending, > 0) on the AUC's axis: (log N − log N_min) /
    (log N_max − log N_min), in [0, 1]; NaN for a single size."""
    logn = np.log(np.asarray(sizes, dtype=np.float64))
    span = logn[-1] - logn[0]
    return (logn - logn[0]) / span if span > 0 else np.full(len(logn), np.nan)


def recovery_auc(outcomes: pd.DataFrame, n_boot: int, rng: np.random.Generator,
                 level: float = 0.95) -> pd.DataFrame:
    """Area under each generator's recovery curve, on the normalised log-N axis.

    A generator's curve is its recovery (mean ``credit``: ties split the win) at each
    training size; its area is :func:`scipy.integrate.trapezoid` over
    :func:`log_axis`. The area is linear in the datasets, so it equals the mean over
    seeds of each seed's own area (seed s at every size is one nested dataset), and its
    interval is :func:`bca_interval` of those per-seed areas. The row ``generator`` =
    :data:`POOLED` is the mean of the generators' areas (the area of the curve pooled
    over generators with equal seeds), its interval resampling seeds within generators.

    Args:
        outcomes: :func:`.aggregate.dataset_outcomes` rows (``experiment``, optional
            ``design``, ``generator, n_train, seed, credit``), every generator × seed at
            every training size of its study.
        n_boot, rng, level: the bootstrap's resamples, source and coverage.

    Returns:
        One row per study × generator (then the pooled row): ``generator, sizes,
        n_min, n_max, seeds`` (seeds per generator), ``auc`` (in [0, 1]; NaN with one
        training size), ``ci_low, ci_high``.
    """
    cells = _cells(outcomes)
    cols = [*cells, "generator", "sizes", "n_min", "n_max", "seeds", "auc", "ci_low",
            "ci_high"]
    rows = []
    for key, cell in outcomes.groupby(cells, sort=True):
        head = dict(zip(cells, key))
        sizes = np.sort(cell["n_train"].unique())
        x = log_axis(sizes)
        per_gen: dict[str, np.ndarray] = {}
        for gen, g in cell.groupby("generator", sort=True):
            wide = g.pivot(index="seed", columns="n_train", values="credit")
            wide = wide.reindex(columns=sizes).sort_index()
            if wide.isna().to_numpy().any():
                raise ValueError(f"{head}: generator {gen!r} lacks a seed at some "
                                 "training size; the AUC needs every seed at every size")
            per_gen[gen] = trapezoid(wide.to_numpy(dtype=np.float64), x, axis=1)
        for gen, areas in [*per_gen.items(), (POOLED, None)]:
            samples = list(per_gen.values()) if areas is None else [areas]
            point = float(_mean_of_means(*samples)) if len(sizes) > 1 else np.nan
            lo, hi = (bca_interval(samples, n_boot, rng, level) if len(sizes) > 1
                      else (np.nan, np.nan))
            rows.append({**head, "generator": gen, "sizes": len(sizes),
                         "n_min": int(sizes[0]), "n_max": int(sizes[-1]),
                         "seeds": int(min(len(a) for a in samples)), "auc": point,
                         "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=cols)


def precision_recall_at_k(scores: pd.DataFrame,
                          ranked_by: Sequence[str] = RANKED_BY) -> pd.DataFrame:
    """Precision and recall at every k, per model, pooled over a training size's datasets.

    Per dataset the K candidates are ranked by each score of ``ranked_by``; a model is
    predicted for a dataset when it is in the top k (a tied group at the boundary
    shares the places left: :func:`tie_positions`), and the dataset is its own when the
    model generated it. Over the datasets of one study × training size (pooled as in
    the published ``compute_precision_recall_at_k``): ``in_top_k`` = Σ membership,
    ``true_positives`` = Σ membership over the model's own datasets, ``generated`` =
    its own datasets; ``precision`` = true_positives / in_top_k and ``recall`` =
    true_positives / generated, NaN when the denominator is 0. At k = 1 ranked by
    ``test_acc`` these are :func:`.identifiability.precision_recall_f1`'s.

    Returns:
        One row per study × ``n_train`` × ``ranked_by`` × ``k`` (1..K) × ``model``
        (every candidate): ``candidates`` (K), ``generated``, ``in_top_k``,
        ``true_positives``, ``precision``, ``recall``, and ``precision_mean_k``,
        ``recall_mean_k`` (the model's mean over k = 1..K, NaN skipped: the published
        precision@K and recall@K bars).
    """
    frames = []
    for by in ranked_by:
        r = ranked(scores, by)
        cells = _cells(r)
        for key, cell in r.groupby([*cells, "n_train"], sort=True):
            models = sorted(cell["candidate"].unique())
            cand = cell["candidate"].to_numpy()
            own = (cell["candidate"] == cell["generator"]).to_numpy(dtype=np.float64)
            ahead, tied = cell["ahead"].to_numpy(), cell["tied"].to_numpy()
            generated = (pd.Series(own).groupby(cand).sum().reindex(models)
                         .to_numpy().astype(np.int64))
            for k in range(1, len(models) + 1):
                member = np.clip((k - ahead) / tied, 0.0, 1.0)
                top = pd.Series(member).groupby(cand).sum().reindex(models).to_numpy()
                tp = pd.Series(member * own).groupby(cand).sum().reindex(models).to_numpy()
                with np.errstate(invalid="ignore", divide="ignore"):
                    precision = np.where(top > 0, tp / top, np.nan)
                    recall = np.where(generated > 0, tp / generated, np.nan)
                frames.append(pd.DataFrame({
                    **dict(zip([*cells, "n_train"], key)), "ranked_by": by, "k": k,
                    "candidates": len(models), "model": models, "generated": generated,
                    "in_top_k": top, "true_positives": tp, "precision": precision,
                    "recall": recall}))
    if not frames:
        raise ValueError("no scores to rank: the table is empty or ranked_by names none")
    out = pd.concat(frames, ignore_index=True)
    group = out.groupby([*_cells(out), "n_train", "ranked_by", "model"], sort=False)
    out["precision_mean_k"] = group["precision"].transform("mean")  # skips NaN
    out["recall_mean_k"] = group["recall"].transform("mean")
    return out


def false_rank(scores: pd.DataFrame, n_boot: int, rng: np.random.Generator,
               level: float = 0.95) -> pd.DataFrame:
    """Each model's rank on data it did not generate (false rank) and on its own
    (correct rank), the published Figure 3, per study × training size.

    Ranks are average ranks by test accuracy within each dataset (1 = best, K = worst;
    :func:`ranked`). For model m: ``false_rank`` = the mean over the other generators g
    of m's mean rank over g's datasets (the published
    ``calculate_models_mean_rank_correct_and_incorrect``); ``correct_rank`` = its mean
    rank over its own datasets (NaN when m generated none). A high false rank (near K)
    means m does not claim other models' data; chance is (K + 1) / 2. Intervals:
    :func:`bca_interval` over seeds (within each other generator for the false rank).

    Returns:
        One row per study × ``n_train`` × ``model`` (every candidate): ``candidates``
        (K), ``chance_rank``, ``other_generators``, ``false_rank, false_ci_low,
        false_ci_high, correct_rank, correct_ci_low, correct_ci_high``.
    """
    r = ranked(scores, "test_acc")
    cells = _cells(r)
    rows = []
    for key, cell in r.groupby([*cells, "n_train"], sort=True):
        models = sorted(cell["candidate"].unique())
        gens = sorted(cell["generator"].unique())
        for m in models:
            mine = cell[cell["candidate"] == m]
            by_gen = {g: mine.loc[mine["generator"] == g, "rank"].to_numpy() for g in gens}
            other = [v for g, v in by_gen.items() if g != m]
            own = by_gen.get(m, np.empty(0))
            f_lo, f_hi = bca_interval(other, n_boot, rng, level)
            c_lo, c_hi = bca_interval([own], n_boot, rng, level)
            rows.append({**dict(zip([*cells, "n_train"], key)), "model": m,
                         "candidates": len(models), "chance_rank": (len(models) + 1) / 2,
                         "other_generators": len(other),
                         "false_rank": float(_mean_of_means(*other)) if other else np.nan,
                         "false_ci_low": f_lo, "false_ci_high": f_hi,
                         "correct_rank": float(own.mean()) if len(own) else np.nan,
                         "correct_ci_low": c_lo, "correct_ci_high": c_hi})
    cols = ["experiment", "n_train", "model", "candidates", "chance_rank",
            "other_generators", "false_rank", "false_ci_low", "false_ci_high",
            "correct_rank", "correct_ci_low", "correct_ci_high"]
    return pd.DataFrame(rows, columns=[*cells, *cols[1:]])


def external_rankings(external: pd.DataFrame) -> pd.DataFrame:
    """One external ranking of the models per group of external scores.

    ``external`` is long (``io.EXTERNAL_SCORE_COLUMNS``: model, metric, group, score;
    higher scores are better). A group's ranking is the models' mean rank over its
    scores (:func:`.metrics.aggregate`, ``"rank"``), ranked again so that 1 = best
    (average ties); a model the group does not score is left out.

    Returns: long rows ``group, metrics`` (scores in the group), ``model``,
    ``external_rank``; groups in order of first appearance.
    """
    wide = external.pivot(index="model", columns="metric", values="score").reset_index()
    frames = []
    for group in dict.fromkeys(external["group"]):
        members = list(dict.fromkeys(external.loc[external["group"] == group, "metric"]))
        mean_rank = metrics.aggregate(wide, members, "rank")
        rank = (-mean_rank).rank(method="average").dropna()
        frames.append(pd.DataFrame({"group": group, "metrics": len(members),
                                    "model": rank.index.to_numpy(),
                                    "external_rank": rank.to_numpy()}))
    cols = ["group", "metrics", "model", "external_rank"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def false_rank_correlation(ranks: pd.DataFrame, external: pd.DataFrame | None,
                           n_boot: int, rng: np.random.Generator, level: float = 0.95,
                           min_models: int = 3) -> pd.DataFrame:
    """Spearman correlation of the false rank with each group's external ranking.

    Args:
        ranks: :func:`false_rank` rows.
        external: external scores, long (see :func:`external_rankings`); None or empty
            gives the table without rows.
        n_boot, rng, level: the percentile bootstrap over models
            (:func:`.metrics.agreement`: models resampled with replacement, resamples
            with a constant ranking left out).
        min_models: fewest models with both rankings for a correlation (else NaN).

    Returns:
        One row per study × ``n_train`` × ``group``: ``metrics``, ``n_models``,
        ``spearman`` (:func:`scipy.stats.spearmanr` of false rank and external rank over
        the models with both; positive: the models that other models' data favour, a
        low false rank, also lead the external benchmark), ``ci_low``, ``ci_high``.
    """
    cells = _cells(ranks)
    cols = [*cells, "n_train", "group", "metrics", "n_models", "spearman", "ci_low",
            "ci_high"]
    if external is None or external.empty:
        return pd.DataFrame(columns=cols)
    rankings = external_rankings(external)
    rows = []
    for key, cell in ranks.groupby([*cells, "n_train"], sort=True):
        for group, ext in rankings.groupby("group", sort=False):
            table = cell[["model", "false_rank"]].merge(ext[["model", "external_rank"]],
                                                        on="model", how="inner")
            agree = metrics.agreement(table, ["false_rank", "external_rank"], n_boot, rng,
                                      level, min_models).iloc[0]
            rows.append({**dict(zip([*cells, "n_train"], key)), "group": group,
                         "metrics": int(ext["metrics"].iloc[0]),
                         "n_models": int(agree["n_models"]), "spearman": agree["spearman"],
                         "ci_low": agree["spearman_ci_low"],
                         "ci_high": agree["spearman_ci_high"]})
    return pd.DataFrame(rows, columns=cols)


__all__ = ["SCORE_COLUMNS", "RANKED_BY", "POOLED", "check_scores", "tie_positions",
           "ranked", "bca_interval", "log_axis", "recovery_auc", "precision_recall_at_k",
           "false_rank", "external_rankings", "false_rank_correlation"]
