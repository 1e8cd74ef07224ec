"""How aligned are alignment metrics, and how much does the aggregate hide?

Input everywhere is a *metric table*: one row per model, a unique ``model`` column (str)
and numeric metric columns (float; NaN = not scored on that metric). Metrics may belong
to groups ("neural", "behavioural", ...), given as a mapping metric column → group name.
Following Ahlert et al. (2024), "How aligned are different alignment metrics?": pairwise
agreement, the mean off-diagonal correlation, the variance of an aggregate each metric or
group explains, and how the aggregation (mean, z-score, rank) reorders models. All
functions are pure; the only randomness (the bootstrap) comes from an explicit
:class:`numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, pearsonr, rankdata, spearmanr

from .stats import percentile_interval

AGGREGATIONS = ("mean", "zscore", "rank")
CORRELATIONS = ("spearman", "pearson")


def _values(table: pd.DataFrame, metrics: Sequence[str]) -> np.ndarray:
    """The (n_models, k) float matrix of ``metrics``; ±inf is treated as missing."""
    if "model" not in table.columns:
        raise ValueError(f"metric table lacks a 'model' column; it has {list(table.columns)}")
    if table["model"].duplicated().any():
        dup = table.loc[table["model"].duplicated(), "model"].iloc[0]
        raise ValueError(f"metric table has more than one row for model {dup!r}")
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise ValueError(f"metric(s) {missing} not in the metric table; it has "
                         f"{[c for c in table.columns if c != 'model']}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics are listed more than once: {list(metrics)}")
    values = table[list(metrics)].to_numpy(dtype=np.float64).reshape(len(table), len(metrics))
    return np.where(np.isfinite(values), values, np.nan)


def correlation(x: np.ndarray, y: np.ndarray, method: str, min_models: int = 3) -> float:
    """scipy's ``method`` correlation (spearman, pearson, kendall) of two complete
    vectors (n,); NaN with fewer than ``min_models`` entries or either constant."""
    if len(x) < max(min_models, 2) or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    func = {"spearman": spearmanr, "pearson": pearsonr, "kendall": kendalltau}[method]
    return float(func(x, y)[0])


def _masked_corr(x: np.ndarray, y: np.ndarray, mask: np.ndarray, method: str,
                 min_models: int) -> np.ndarray:
    """Row-wise correlation of (B, n) resamples ``x``, ``y`` over the entries in ``mask``.

    Returns (B,): NaN where under ``min_models`` entries are in the mask or either
    variable is constant over them (the correlation is undefined).
    """
    # Vectorised over B resamples with a per-row mask (the models where both metrics are
    # finite), which scipy's pearsonr and spearmanr do not take: Spearman is scipy's
    # average ranks of the masked entries, then this Pearson. The tests hold each row
    # to scipy's spearmanr and pearsonr on that row's entries.
    count = mask.sum(axis=1)
    # Exact constancy test: a centred constant need not be exactly zero in floating point.
    const = np.zeros(len(x), dtype=bool)
    for v in (x, y):
        const |= np.where(mask, v, -np.inf).max(axis=1) == np.where(mask, v, np.inf).min(axis=1)
    if method == "spearman":
        # Excluded entries set to +inf rank above every included one, so the included
        # entries get the ranks (average ties) they would have among themselves.
        x = rankdata(np.where(mask, x, np.inf), axis=1)
        y = rankdata(np.where(mask, y, np.inf), axis=1)
    safe = np.maximum(count, 1)
    cx = np.where(mask, x - (np.where(mask, x, 0.0).sum(axis=1) / safe)[:, None], 0.0)
    cy = np.where(mask, y - (np.where(mask, y, 0.0).sum(axis=1) / safe)[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (cx * cy).sum(axis=1) / np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))
    r = np.clip(r, -1.0, 1.0)
    r[const | (count < max(min_models, 2))] = np.nan
    return r


def agreement(table: pd.DataFrame, metrics: Sequence[str], n_boot: int,
              rng: np.random.Generator, level: float = 0.95,
              min_models: int = 3) -> pd.DataFrame:
    """Pairwise agreement between metrics across models, with bootstrap intervals.

    Args:
        table: metric table (``model`` plus the ``metrics`` columns).
        metrics: k metric columns; pairs (a, b) are taken with a before b in this order.
        n_boot, rng: bootstrap resamples per pair (0 = no intervals) and their source.
        level: coverage of the percentile intervals, in (0, 1).
        min_models: fewest models with both metrics finite for a correlation.

    Returns:
        k·(k−1)/2 rows, columns ``metric_a, metric_b, n_models`` (models where both are
        finite), ``spearman``, ``pearson`` (= :func:`scipy.stats.spearmanr` / ``pearsonr``
        on those models; NaN with fewer than ``min_models`` or a constant metric) and
        percentile bootstrap intervals ``*_ci_low``/``*_ci_high`` (the pair's models
        resampled with replacement; resamples with a constant metric left out).
    """
    values = _values(table, metrics)
    rows = []
    for i, a in enumerate(metrics):
        for j in range(i + 1, len(metrics)):
            ok = np.isfinite(values[:, i]) & np.isfinite(values[:, j])
            x, y, n = values[ok, i], values[ok, j], int(ok.sum())
            row: dict = {"metric_a": a, "metric_b": metrics[j], "n_models": n}
            idx = rng.integers(0, n, size=(n_boot, n)) if n > 0 and n_boot > 0 else None
            for method in CORRELATIONS:
                row[method] = correlation(x, y, method, min_models)
                lo = hi = np.nan
                if idx is not None and np.isfinite(row[method]):
                    boot = _masked_corr(x[idx], y[idx], np.ones(idx.shape, dtype=bool),
                                        method, min_models)
                    lo, hi = percentile_interval(boot, level)
                row[f"{method}_ci_low"], row[f"{method}_ci_high"] = lo, hi
            rows.append(row)
    cols = ["metric_a", "metric_b", "n_models", "spearman", "spearman_ci_low",
            "spearman_ci_high", "pearson", "pearson_ci_low", "pearson_ci_high"]
    return pd.DataFrame(rows, columns=cols)


def mean_off_diagonal(table: pd.DataFrame, metrics: Sequence[str], n_boot: int,
                      rng: np.random.Generator, level: float = 0.95,
                      method: str = "spearman", min_models: int = 3) -> dict:
    """Mean correlation over all unordered pairs of distinct metrics, with its interval.

    The headline figure of Ahlert et al. (2024): 0.198 over Brain-Score's 69 metrics.

    Args:
        table, metrics, rng, level, min_models: as for :func:`agreement`.
        n_boot: bootstrap resamples of the table's models (rows), drawn with replacement;
            each resample's mean is taken over its pairwise-complete correlations.
        method: ``"spearman"`` or ``"pearson"``.

    Returns:
        ``{"method", "mean", "ci_low", "ci_high", "pairs", "n_models"}``: ``pairs`` =
        pairs with a defined correlation (NaN pairs are left out), ``n_models`` = rows.
    """
    if method not in CORRELATIONS:
        raise ValueError(f"unknown method {method!r}; expected one of {CORRELATIONS}")
    values = _values(table, metrics)
    n, k = values.shape
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    point = np.full(len(pairs), np.nan)
    for p, (i, j) in enumerate(pairs):
        ok = np.isfinite(values[:, i]) & np.isfinite(values[:, j])
        point[p] = correlation(values[ok, i], values[ok, j], method, min_models)
    defined = np.isfinite(point)
    mean = float(point[defined].mean()) if defined.any() else np.nan
    lo = hi = np.nan
    if n_boot > 0 and n > 0 and defined.any():
        idx = rng.integers(0, n, size=(n_boot, n))
        boot = np.full((len(pairs), n_boot), np.nan)
        for p, (i, j) in enumerate(pairs):
            x, y = values[idx, i], values[idx, j]
            boot[p] = _masked_corr(x, y, np.isfinite(x) & np.isfinite(y), method, min_models)
        lo, hi = percentile_interval(_row_mean(boot.T), level)  # per resample, over its pairs
    return {"method": method, "mean": mean, "ci_low": lo, "ci_high": hi,
            "pairs": int(defined.sum()), "n_models": int(n)}


def _rank_finite(v: np.ndarray, method: str = "average") -> np.ndarray:
    """Ranks (1 = lowest) among the finite entries of ``v`` (n,); NaN elsewhere."""
    ok = np.isfinite(v)
    out = np.full(len(v), np.nan)
    out[ok] = rankdata(v[ok], method=method)
    return out


def _row_mean(values: np.ndarray) -> np.ndarray:
    """Per-row mean over finite entries; NaN for a row without any (no empty-slice warning)."""
    ok = np.isfinite(values)
    count = ok.sum(axis=1)
    total = np.where(ok, values, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def aggregate(table: pd.DataFrame, metrics: Sequence[str], how: str) -> pd.Series:
    """One aggregate score per model from its metrics.

    Args:
        table, metrics: metric table and the metric columns to combine (at least one).
        how: ``"mean"`` (arithmetic mean of the raw scores, Brain-Score's aggregate),
            ``"zscore"`` (mean of (x − mean)/SD per metric, SD with ddof=0, over the
            models with the metric; a constant metric has no z-score and is skipped) or
            ``"rank"`` (mean of the model's rank per metric, ranks 1..m among the m
            models with the metric, average ties, higher score = higher rank).

    Returns:
        Series indexed by model (table order), named ``how``; NaN entries are skipped in
        each model's mean, a model with none usable gets NaN. Units: the metrics' for
        ``"mean"``, SDs for ``"zscore"``, rank positions for ``"rank"``.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; expected one of {AGGREGATIONS}")
    if len(metrics) == 0:
        raise ValueError("no metrics to aggregate")
    values = _values(table, metrics)
    if how == "zscore":
        ok = np.isfinite(values)
        count = np.maximum(ok.sum(axis=0), 1)
        mu = np.where(ok, values, 0.0).sum(axis=0) / count
        sd = np.sqrt(np.where(ok, (values - mu) ** 2, 0.0).sum(axis=0) / count)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(sd > 0, (values - mu) / sd, np.nan)
    elif how == "rank":
        values = np.column_stack([_rank_finite(v) for v in values.T])
    index = pd.Index(table["model"].to_numpy(), name="model")
    return pd.Series(_row_mean(values), index=index, name=how)


def _r2(x: np.ndarray, y: np.ndarray, min_models: int) -> tuple[int, float]:
    """(models used, squared Pearson r) over the entries where both are finite."""
    ok = np.isfinite(x) & np.isfinite(y)
    r = correlation(x[ok], y[ok], "pearson", min_models)
    return int(ok.sum()), r * r


def explained_variance(table: pd.DataFrame, metrics: Sequence[str],
                       groups: Mapping[str, str], how: str,
                       min_models: int = 3) -> pd.DataFrame:
    """Share of the aggregate's variance across models explained by each metric and group.

    For A = ``aggregate(table, metrics, how)``: a metric's share is the R² of the
    least-squares regression of A on it over models where both are finite (the squared
    Pearson r); a group's, the R² of A on the group's own aggregate (same ``how``).

    Args:
        table, metrics, how: as for :func:`aggregate`.
        groups: metric column → group name; metrics absent from it belong to no group,
            entries for metrics not in ``metrics`` are ignored.
        min_models: fewest models for an R² (NaN otherwise, or when either is constant).

    Returns:
        One row per metric (``metrics`` order), then per group (order of first member):
        ``aggregation, level`` ("metric"/"group"), ``name``, ``group`` (a metric's group
        or ""; a group's own name), ``n_models``, ``explained_variance`` (in [0, 1]).
    """
    total = aggregate(table, metrics, how).to_numpy()
    values = _values(table, metrics)
    rows = []
    for c, m in enumerate(metrics):
        n, r2 = _r2(total, values[:, c], min_models)
        rows.append({"aggregation": how, "level": "metric", "name": m,
                     "group": groups.get(m, ""), "n_models": n, "explained_variance": r2})
    for g in dict.fromkeys(groups[m] for m in metrics if m in groups):  # first-seen order
        members = [m for m in metrics if groups.get(m) == g]
        n, r2 = _r2(total, aggregate(table, members, how).to_numpy(), min_models)
        rows.append({"aggregation": how, "level": "group", "name": g, "group": g,
                     "n_models": n, "explained_variance": r2})
    cols = ["aggregation", "level", "name", "group", "n_models", "explained_variance"]
    return pd.DataFrame(rows, columns=cols)


def ranking_changes(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """How much the choice of aggregation reorders the models.

    Returns one row per unordered pair of aggregations in :data:`AGGREGATIONS` order:
    ``aggregation_a, aggregation_b, n_models`` (models with both aggregates finite) and
    ``kendall_tau`` (:func:`scipy.stats.kendalltau`, tau-b, between the two aggregates;
    NaN with fewer than 2 models or a constant aggregate).
    """
    aggs = {how: aggregate(table, metrics, how).to_numpy() for how in AGGREGATIONS}
    rows = []
    for i, a in enumerate(AGGREGATIONS):
        for b in AGGREGATIONS[i + 1:]:
            ok = np.isfinite(aggs[a]) & np.isfinite(aggs[b])
            tau = correlation(aggs[a][ok], aggs[b][ok], "kendall", 2)
            rows.append({"aggregation_a": a, "aggregation_b": b,
                         "n_models": int(ok.sum()), "kendall_tau": tau})
    return pd.DataFrame(rows, columns=["aggregation_a", "aggregation_b", "n_models",
                                       "kendall_tau"])


def aggregates(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Every aggregation of every model, with the ranks they give.

    Returns one row per model (table order): ``model``, one column per aggregation in
    :data:`AGGREGATIONS`, then ``rank_<how>`` for each (1 = best, ties share the best
    rank, float; NaN where the aggregate is NaN).
    """
    out = pd.DataFrame({"model": table["model"].to_numpy()})
    for how in AGGREGATIONS:
        out[how] = aggregate(table, metrics, how).to_numpy()
    for how in AGGREGATIONS:
        # Negated so that the highest aggregate gets rank 1.
        out[f"rank_{how}"] = _rank_finite(-out[how].to_numpy(), method="min")
    return out


__all__ = ["AGGREGATIONS", "agreement", "mean_off_diagonal", "aggregate",
           "explained_variance", "ranking_changes", "aggregates"]
