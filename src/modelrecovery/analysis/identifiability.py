"""Why models are misidentified: ranks, per-model precision/recall, regressions, trade-offs.

Everything here reads the tables :mod:`modelrecovery.analysis.aggregate` produces and keeps its
notions of a winner, a tie and a rank:

- ``outcomes`` (:func:`~modelrecovery.analysis.aggregate.dataset_outcomes`): one row per simulated
  dataset (experiment × generator × n_train × seed) with ``credit`` (the generator's
  share of the win, ties split), ``tie``, ``rank`` (competition rank of the generator).
- ``confusion`` (:func:`~modelrecovery.analysis.aggregate.confusion`): long form, one row per
  experiment × n_train × generator × candidate with ``wins`` (ties split), ``datasets``
  (the generator's number of datasets) and ``rate`` = wins / datasets.
- ``curve`` (:func:`~modelrecovery.analysis.aggregate.recovery_curve`): recovery per experiment × n_train.

All functions are pure; the only randomness (the bootstrap) comes from an explicit
:class:`numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..recover import selection
from . import aggregate
from .metrics import correlation
from .pvalues import CORRECTIONS, adjust_p_values, bootstrap_p_values
from .stats import clopper_pearson, percentile_interval, t_interval

_CELL = ["experiment", "n_train"]


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


# --------------------------------------------------------------------------- ranks


def rank_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Rank of the true generator among the candidates, per experiment × n_train × generator.

    Built on :func:`.aggregate.generator_curves` (which already gives the mean rank, the MRR
    and the recovery with its Clopper–Pearson interval) plus rank summaries.

    Args:
        outcomes: :func:`.aggregate.dataset_outcomes` rows.

    Returns:
        One row per experiment × n_train × generator, sorted, with columns
        ``datasets``; ``mean_rank``, ``median_rank``, ``worst_rank`` (competition ranks,
        1 = best; tied candidates share the best rank); ``mrr`` (mean of 1/rank);
        ``first_share`` (share of datasets won, ties split: the generator's recovery)
        with its exact interval ``first_ci_low``/``first_ci_high``; ``first_or_tied``
        (share with rank 1, ties counted whole); ``tie_rate`` (share of datasets with a
        tie for first place, whoever was tied).
    """
    _require(outcomes, [*selection.DATASET, "rank", "credit", "tie", "nll_credit"], "outcomes")
    keys = ["experiment", "generator", "n_train"]
    curves = aggregate.generator_curves(outcomes)
    extra = (outcomes.assign(first=outcomes["rank"] == 1)
             .groupby(keys, sort=True)
             .agg(median_rank=("rank", "median"), worst_rank=("rank", "max"),
                  first_or_tied=("first", "mean"))
             .reset_index())
    out = curves.merge(extra, on=keys, how="left").rename(
        columns={"recovery": "first_share", "ci_low": "first_ci_low",
                 "ci_high": "first_ci_high"})
    cols = ["experiment", "n_train", "generator", "datasets", "mean_rank", "median_rank",
            "worst_rank", "mrr", "first_share", "first_ci_low", "first_ci_high",
            "first_or_tied", "tie_rate"]
    return out[cols].sort_values(["experiment", "n_train", "generator"]).reset_index(drop=True)


# --------------------------------------------------------------------------- confusion


def precision_recall_f1(confusion_long: pd.DataFrame) -> pd.DataFrame:
    """Per-model precision, recall and F1 from the long-form confusion matrices.

    Each model is a class; a dataset's "prediction" is the winning candidate (ties split
    the win, so counts are fractional). Within one experiment × n_train, for model m:

    - ``correct`` = wins[generator = m, candidate = m];
    - ``generated`` = datasets with m as generator; ``recall`` = correct / generated
      (the diagonal ``rate``), NaN when m never generated data;
    - ``won`` = Σ_g wins[g, candidate = m] (over the generators present);
      ``precision`` = correct / won, NaN when m never won;
    - ``f1`` = 2·P·R / (P + R); set to 0 when it is undefined (P or R NaN, or P = R = 0),
      and ``f1_undefined`` is then True.

    Args:
        confusion_long: :func:`.aggregate.confusion` rows (columns experiment, n_train,
            generator, candidate, wins, datasets, rate).

    Returns:
        One row per experiment × n_train × model (models = generators ∪ candidates),
        columns ``model, generated, won, correct, precision, recall, f1, f1_undefined``.
    """
    _require(confusion_long, ["experiment", "n_train", "generator", "candidate", "wins",
                              "datasets"], "confusion")
    c = confusion_long
    rows = []
    for key, cell in c.groupby(_CELL, sort=True):
        generated = cell.groupby("generator")["datasets"].first()
        won = cell.groupby("candidate")["wins"].sum()
        diag = cell[cell["generator"] == cell["candidate"]].set_index("generator")["wins"]
        for model in sorted(set(generated.index) | set(won.index)):
            n_gen = float(generated.get(model, 0.0))
            n_won = float(won.get(model, 0.0))
            correct = float(diag.get(model, 0.0))
            recall = correct / n_gen if n_gen > 0 else np.nan
            precision = correct / n_won if n_won > 0 else np.nan
            undefined = bool(np.isnan(recall) or np.isnan(precision)
                             or precision + recall == 0)
            f1 = 0.0 if undefined else 2 * precision * recall / (precision + recall)
            rows.append({**dict(zip(_CELL, key)), "model": model, "generated": n_gen,
                         "won": n_won, "correct": correct, "precision": precision,
                         "recall": recall, "f1": f1, "f1_undefined": undefined})
    return pd.DataFrame(rows, columns=[*_CELL, "model", "generated", "won", "correct",
                                       "precision", "recall", "f1", "f1_undefined"])


# --------------------------------------------------------------------------- regression


def _zscore(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sd = x.std(axis=0)  # population SD (ddof = 0), as scipy.stats.zscore
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x - x.mean(axis=0)) / sd, sd


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Coefficients on z-scored predictors, R², SD of y; NaNs if the design is degenerate."""
    p = x.shape[1]
    z, sd = _zscore(x)
    if np.any(~(sd > 0)):
        return np.full(p, np.nan), np.nan, np.nan
    design = np.column_stack([np.ones(len(y)), z])
    beta, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < p + 1:
        return np.full(p, np.nan), np.nan, np.nan
    resid = y - design @ beta
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else np.nan
    return beta[1:], r2, float(y.std())


def _crossed_rows(first: np.ndarray, second: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of a crossed resample: row r enters counts[first[r]] · counts[second[r]]
    times (0 when either of its units was not drawn)."""
    return np.repeat(np.arange(len(first)), counts[first] * counts[second])


def misidentification_regression(rows: pd.DataFrame, predictors: list[str], outcome: str,
                                 n_boot: int, rng: np.random.Generator,
                                 group: str | list[str] | None = None,
                                 level: float = 0.95, *,
                                 crossed: tuple[str, str] | None = None,
                                 correction: str = "holm") -> pd.DataFrame:
    """OLS of ``outcome`` on z-scored ``predictors``, with a cluster bootstrap.

    Design (exactly): with the n rows of ``rows``, each predictor column is z-scored,
    z = (x − mean) / SD (population SD, ddof = 0, over the rows used), and

        y = b0 + Σ_j b_j z_j + ε,

    fitted by ordinary least squares (:func:`numpy.linalg.lstsq`, intercept included,
    outcome left in its own units). ``coef`` = b_j is the change in the outcome per one
    SD of predictor j holding the others fixed; ``std_coef`` = b_j / SD(y) is the fully
    standardised coefficient (= the OLS slope of z-scored y). R² = 1 − SS_res / SS_tot.

    Bootstrap: ``n_boot`` replicates; each draws G units of ``group`` (e.g. seeds, or
    models) uniformly with replacement from the G present, takes all rows of every drawn
    unit (a unit drawn twice enters twice), re-z-scores the predictors in the resample
    and refits. A replicate whose design is degenerate (a predictor constant in it, or
    rank-deficient) is dropped; ``n_boot_valid`` counts those kept. Intervals are the
    (1 − level)/2 and (1 + level)/2 percentiles of the kept replicates
    (:func:`numpy.quantile`, linear interpolation); NaN when fewer than 2 were kept.
    ``group`` None resamples rows. ``crossed`` = (a, b) instead resamples the units of
    two columns that name units of one kind (e.g. generator and candidate models), as
    the published model-level bootstrap does: a replicate draws M units with replacement
    from the M named in either column and a row enters count(a) · count(b) times.
    ``p_value`` is :func:`.pvalues.bootstrap_p_values` of the kept replicates' ``coef``;
    ``p_adjusted`` adjusts the terms' p-values together by ``correction``
    (:func:`.pvalues.adjust_p_values`). The same ``rng`` state gives the same output.

    In this study: ``rows`` = one row per experiment-cell × generator × n_train with
    outcome 1 − recovery and predictors such as the generator's geometry shift and
    effective dimensionality; the published variant (one row per generator × candidate
    × seed, outcome the generator's minus the candidate's test accuracy, ``crossed``
    over models) is :func:`.properties.properties_regression`.

    Args:
        rows: the observations (n rows).
        predictors: p column names (numeric, finite).
        outcome: the outcome column (numeric, finite).
        n_boot: number of bootstrap replicates (≥ 0; 0 gives NaN intervals).
        rng: the random stream of the bootstrap.
        group: column(s) whose units are resampled; None resamples rows.
        level: interval coverage.
        crossed: two columns resampled as one set of units (excludes ``group``).
        correction: ``bonferroni``, ``holm`` or ``bh``.

    Returns:
        One row per predictor (in the given order): ``term, coef, ci_low, ci_high,
        std_coef, std_ci_low, std_ci_high, p_value, p_adjusted, correction, r2,
        r2_ci_low, r2_ci_high, outcome, n_obs, n_groups`` (units resampled), ``n_boot,
        n_boot_valid``.

    Raises:
        ValueError: missing or non-finite columns, too few rows for p + 1 parameters, or
            a degenerate design on the full data.
    """
    predictors = list(predictors)
    if not predictors:
        raise ValueError("no predictors given")
    group_cols = [] if group is None else ([group] if isinstance(group, str) else list(group))
    if crossed is not None and group_cols:
        raise ValueError("give either group or crossed, not both")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of {CORRECTIONS}")
    _require(rows, [*predictors, outcome, *group_cols, *(crossed or ())], "regression rows")
    x = rows[predictors].to_numpy(dtype=np.float64)
    y = rows[outcome].to_numpy(dtype=np.float64)
    for name, values in [*zip(predictors, x.T), (outcome, y)]:
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"column {name!r} is not finite at row {int(bad[0])}")
    n, p = x.shape
    if n < p + 2:
        raise ValueError(f"{n} rows cannot fit {p} predictors and an intercept with a "
                         "residual")
    coef, r2, sd_y = _ols(x, y)
    if np.any(np.isnan(coef)):
        raise ValueError("degenerate design: a predictor is constant or they are collinear")
    if crossed is not None:
        units, codes = np.unique(rows[list(crossed)].astype(str).to_numpy(),
                                 return_inverse=True)
        codes = codes.reshape(n, 2)
        n_groups = len(units)
    else:
        codes = (rows.groupby(group_cols, sort=True).ngroup().to_numpy() if group_cols
                 else np.arange(n))
        n_groups = int(codes.max()) + 1
        members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    boot = np.full((n_boot, 2 * p + 1), np.nan)
    for b in range(n_boot):
        drawn = rng.integers(0, n_groups, size=n_groups)
        if crossed is not None:
            idx = _crossed_rows(codes[:, 0], codes[:, 1],
                                np.bincount(drawn, minlength=n_groups))
            if len(idx) < p + 2:  # too few models drawn to form enough pairs
                continue
        else:
            idx = np.concatenate([members[g] for g in drawn])
        bc, br2, bsd = _ols(x[idx], y[idx])
        boot[b, :p] = bc
        boot[b, p:2 * p] = bc / bsd if bsd > 0 else np.nan
        boot[b, 2 * p] = br2
    n_valid = int(np.isfinite(boot).all(axis=1).sum())
    lo, hi = percentile_interval(boot, level, min_resamples=2)
    std = coef / sd_y if sd_y > 0 else np.full(p, np.nan)
    p_values = bootstrap_p_values(boot[:, :p][np.isfinite(boot).all(axis=1)])
    out = pd.DataFrame({
        "term": predictors, "coef": coef, "ci_low": lo[:p], "ci_high": hi[:p],
        "std_coef": std, "std_ci_low": lo[p:2 * p], "std_ci_high": hi[p:2 * p],
        "p_value": p_values, "p_adjusted": adjust_p_values(p_values, correction),
        "correction": correction, "r2": r2, "r2_ci_low": lo[2 * p],
        "r2_ci_high": hi[2 * p], "outcome": outcome,
        "n_obs": n, "n_groups": n_groups, "n_boot": n_boot, "n_boot_valid": n_valid,
    })
    return out


# --------------------------------------------------------------------------- trade-off


def accuracy_vs_identifiability(human: pd.DataFrame, curve: pd.DataFrame,
                                value: str = "probed_test_acc", level: float = 0.95
                                ) -> pd.DataFrame:
    """One point per alignment-method run: human-data accuracy (x) vs recovery (y).

    Args:
        human: one row per experiment × model with column ``value`` (the model's probed
            test accuracy on held-out human triplets; the ``alignment`` table of the
            aggregate step with an ``experiment`` column added).
        curve: :func:`.aggregate.recovery_curve` rows (experiment, n_train, recovered,
            datasets); the largest ``n_train`` of each experiment is used.
        value: the human-accuracy column.
        level: coverage of both intervals.

    Returns:
        One row per experiment (outer join: an experiment missing from one table has NaN
        on that side): ``n_models``, ``human_acc`` (mean over models) with
        ``human_ci_low``/``human_ci_high`` (Student-t interval over models, NaN for one
        model), ``n_train`` (the largest), ``datasets``, ``recovered``, ``recovery`` with
        its Clopper–Pearson interval ``recovery_ci_low``/``recovery_ci_high``
        (:func:`.stats.clopper_pearson`; split ties enter as fractional successes).
    """
    _require(human, ["experiment", value], "human-accuracy table")
    _require(curve, ["experiment", "n_train", "recovered", "datasets"], "recovery curve")
    hrows = []
    for exp, grp in human.groupby("experiment", sort=True):
        mean, lo, hi = t_interval(grp[value].to_numpy(), level)
        hrows.append({"experiment": exp, "n_models": int(grp[value].notna().sum()),
                      "human_acc": mean, "human_ci_low": lo, "human_ci_high": hi})
    h = pd.DataFrame(hrows, columns=["experiment", "n_models", "human_acc", "human_ci_low",
                                     "human_ci_high"])
    last = curve.loc[curve.groupby("experiment")["n_train"].idxmax(),
                     ["experiment", "n_train", "datasets", "recovered"]].copy()
    last["recovery"] = last["recovered"] / last["datasets"]
    last["recovery_ci_low"], last["recovery_ci_high"] = clopper_pearson(
        last["recovered"].to_numpy(), last["datasets"].to_numpy(), level)
    out = h.merge(last, on="experiment", how="outer")
    return out.sort_values("experiment").reset_index(drop=True)


# --------------------------------------------------------------------------- metrics


def metric_agreement(scores: pd.DataFrame, metrics: list[str] | None = None,
                     model: str = "model", min_models: int = 3
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How aligned are alignment metrics: per-model scores and their rank correlations.

    Args:
        scores: one row per model, a ``model`` column and one numeric column per metric
            (e.g. zero-shot accuracy, probed accuracy, RSA with the human similarity,
            recovery rate as generator).
        metrics: the metric columns, in order; None = every numeric column but ``model``.
        model: the model-name column.
        min_models: fewest models with both metrics present for a correlation.

    Returns:
        ``(table, rho)``: ``table`` is ``scores[[model, *metrics]]`` sorted by model;
        ``rho`` is the (k, k) Spearman rank correlation across models (index and columns
        the metrics, ``index.name`` = ``"metric"``): per pair,
        :func:`scipy.stats.spearmanr` (average ranks for ties) over the models where both
        are non-NaN (:func:`.metrics.correlation`). An entry is NaN when fewer than
        ``min_models`` models remain or either metric is constant over them (the rank
        correlation is undefined); the diagonal is 1 otherwise.
    """
    _require(scores, [model], "metric table")
    if scores[model].duplicated().any():
        dup = scores.loc[scores[model].duplicated(), model].iloc[0]
        raise ValueError(f"metric table has more than one row for model {dup!r}")
    if metrics is None:
        metrics = [c for c in scores.columns
                   if c != model and pd.api.types.is_numeric_dtype(scores[c])
                   and not pd.api.types.is_bool_dtype(scores[c])]
    _require(scores, metrics, "metric table")
    table = scores[[model, *metrics]].sort_values(model).reset_index(drop=True)
    values = table[metrics].to_numpy(dtype=np.float64)
    k = len(metrics)
    rho = np.full((k, k), np.nan)
    for a in range(k):
        for b in range(a, k):
            ok = np.isfinite(values[:, a]) & np.isfinite(values[:, b])
            if ok.sum() < min_models:
                continue
            r = correlation(values[ok, a], values[ok, b], "spearman", min_models)
            rho[a, b] = rho[b, a] = 1.0 if a == b and np.isfinite(r) else r
    corr = pd.DataFrame(rho, index=pd.Index(metrics, name="metric"), columns=metrics)
    return table, corr


__all__ = ["rank_table", "precision_recall_f1", "misidentification_regression",
           "accuracy_vs_identifiability", "metric_agreement"]
