"""p-values of the analyses' bootstrap regressions and their multiple-comparison
corrections. numpy and scipy only."""

from __future__ import annotations

import numpy as np
from scipy.stats import false_discovery_control

CORRECTIONS = ("bonferroni", "holm", "bh")


def adjust_p_values(p_values: np.ndarray, method: str) -> np.ndarray:
    """p-values (k,) adjusted for testing the m finite ones together; NaN stays NaN.

    ``bonferroni``: min(1, m·p) (the published code's); ``holm``: the step-down
    max_{j ≤ i} min(1, (m − j + 1) p_(j)) over the ascending p_(1..m), which controls
    the family-wise error as Bonferroni does and rejects at least as much; ``bh``:
    Benjamini–Hochberg's false-discovery-rate adjustment
    (:func:`scipy.stats.false_discovery_control`).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q, m = p[ok], int(ok.sum())
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {CORRECTIONS}")
    if m == 0:
        return out
    if method == "bonferroni":
        adj = np.minimum(1.0, m * q)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    else:
        adj = false_discovery_control(q, method="bh")
    out[ok] = adj
    return out


def bootstrap_p_values(resamples: np.ndarray, min_resamples: int = 2) -> np.ndarray:
    """Two-sided bootstrap p-values of statistics against 0, as the published code takes
    them: with B finite resamples (rows of ``resamples`` (B, k) with a non-finite entry
    left out), p = min(1, 2 min((#{b ≤ 0} + 1) / (B + 1), (#{b ≥ 0} + 1) / (B + 1))).
    Returns (k,); NaN with fewer than ``min_resamples`` resamples."""
    r = np.asarray(resamples, dtype=np.float64)
    valid = r[np.isfinite(r).all(axis=1)]
    if len(valid) < min_resamples:
        return np.full(r.shape[1], np.nan)
    b = len(valid)
    left = ((valid <= 0).sum(axis=0) + 1) / (b + 1)
    right = ((valid >= 0).sum(axis=0) + 1) / (b + 1)
    return np.minimum(1.0, 2.0 * np.minimum(left, right))


__all__ = ["CORRECTIONS", "adjust_p_values", "bootstrap_p_values"]
