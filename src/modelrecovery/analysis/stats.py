"""The intervals of the analyses: exact binomial, Student-t and percentile bootstrap.

scipy does the distributions; what is left here is what scipy's interfaces do not take.
numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def clopper_pearson(successes: np.ndarray, trials: np.ndarray, level: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper–Pearson) binomial interval at ``level`` for ``successes`` out of
    ``trials`` (arrays of one shape); fractional successes (split ties) enter the Beta
    quantiles. Returns the lower and upper bounds, fractions in [0, 1], of that shape."""
    # scipy.stats.binomtest(...).proportion_ci(method="exact") is this interval, but for
    # integer successes only: a dataset won in a tie credits 1/m, so the Beta quantiles
    # are taken directly.
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    a = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(x > 0, stats.beta.ppf(a, x, n - x + 1), 0.0)
        hi = np.where(x < n, stats.beta.ppf(1 - a, x + 1, n - x), 1.0)
    return lo, hi


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the finite ``values`` (k,) and its Student-t interval
    (:func:`scipy.stats.t.interval` at the standard error of the mean).

    NaN bounds when k < 2 (no spread to estimate); the mean is NaN when k = 0.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, np.nan, np.nan
    lo, hi = stats.t.interval(level, len(v) - 1, loc=mean, scale=stats.sem(v))
    return mean, float(lo), float(hi)


def percentile_interval(resamples: np.ndarray, level: float = 0.95, min_resamples: int = 1
                        ) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Percentile bootstrap interval at ``level`` of a statistic's resampled values:
    ``resamples`` (B,) or (B, k) for k statistics of each resample.

    A resample whose statistic is undefined (any non-finite entry of its row) is left
    out; with fewer than ``min_resamples`` left the bounds are NaN. Returns the lower and
    upper bounds, floats for (B,) input, (k,) arrays for (B, k).
    """
    # scipy.stats.bootstrap draws the resamples itself and gives a NaN interval as soon
    # as one resample's statistic is undefined (a metric constant over the resampled
    # models, a design curve that never reaches its target); the analyses resample
    # clusters (seeds within generators, a regression's groups) and leave those out, so
    # they draw their own resamples and this takes the percentiles.
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    r = np.asarray(resamples, dtype=np.float64)
    rows = r if r.ndim == 2 else r[:, None]
    valid = rows[np.isfinite(rows).all(axis=1)]
    if len(valid) < max(min_resamples, 1):
        lo = hi = np.full(rows.shape[1], np.nan)
    else:
        lo, hi = np.quantile(valid, [(1 - level) / 2, (1 + level) / 2], axis=0)
    if r.ndim == 1:
        return float(lo[0]), float(hi[0])
    return lo, hi
