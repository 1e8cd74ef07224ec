"""Are two regularisers equivalent? Paired two one-sided t tests (TOST) between
experiments of one alignment method, after Figure S1 of Avitan & Golan (2025).

The published code (github.com/brainsandmachines/oddoneout_model_recovery,
``figures_scripts/create_Figure_S1_violin_plot.py``: ``_tost_paired``,
``perform_tost_on_means``) compares, per flexibility level (diagonal, rectangular
W ∈ ℝ^{p×k}, full W), each model's held-out test accuracy on the human triplets under
L2 (‖W‖²_F) and under eye_distance (‖W − γI‖²_F), paired by model, the differences
eye_distance − L2; with margin ε (0.05 in its configuration) the two one-sided tests are

    H0: μ ≤ −ε  against  μ > −ε:   t_lower = (d̄ + ε) / se,  p_lower = P(T_{n−1} ≥ t_lower)
    H0: μ ≥ +ε  against  μ < +ε:   t_upper = (d̄ − ε) / se,  p_upper = P(T_{n−1} ≤ t_upper)

with se = SD(d) / √n (ddof = 1); p_TOST = max(p_lower, p_upper), and the regularisers
are equivalent when p_TOST < α, α = 0.05 divided (Bonferroni) by the number of levels.

Here every two experiments of one method (``diagonal``, ``orthogonal``, ``low_rank:k``,
``full``) and one similarity whose regularisers differ are a pair, and both tests are
:func:`scipy.stats.ttest_1samp` with ``alternative="greater"`` / ``"less"``. Deviations
from the published code, and why:

- **Which pairs.** Any two regularisers (``l2``, ``l1``, ``eye_distance``), not L2 and
  eye_distance only; the difference is the later of (l2, l1, eye_distance) minus the
  earlier, so L2 against eye_distance is eye_distance − L2 as published. ``zero_shot``
  is left out, as published: it fits no λ, so its regulariser does nothing.
- **Also recovery.** Besides the published quantity (``probed_test_acc``, paired by
  model), the same test on each generator's recovery, paired by generator × training
  size: equal accuracy on the humans does not make the models equally identifiable.
- **Bonferroni** divides α over the pairs of each quantity (the published: over the
  flexibility levels, one pair each).
- **Interval.** The two-sided (1 − 2α) t interval of the mean difference (90% for
  α = 0.05) is reported; equivalence holds exactly when it lies inside (−ε, ε).
- Only the t-based test: the published bootstrap p-values are not computed.

numpy, pandas and scipy only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

#: Regularisers in the order the difference is taken (later minus earlier).
REGULARISER_ORDER: tuple[str, ...] = ("l2", "l1", "eye_distance")

#: The columns of :func:`regulariser_equivalence`.
EQUIVALENCE_COLUMNS: tuple[str, ...] = (
    "quantity", "paired_by", "method", "experiment_a", "regulariser_a", "experiment_b",
    "regulariser_b", "n", "mean_a", "mean_b", "difference", "se", "ci_level", "ci_low",
    "ci_high", "margin", "t_lower", "p_lower", "t_upper", "p_upper", "p_tost", "alpha",
    "equivalent",
)


def tost_paired(a: np.ndarray, b: np.ndarray, margin: float, alpha: float = 0.05
                ) -> dict[str, float | bool | int]:
    """Paired TOST of the mean difference b − a against the margin (−margin, margin).

    Args:
        a, b: paired values (n,), same units (here fractions).
        margin: ε > 0, in the values' units.
        alpha: the level of each one-sided test.

    Returns:
        ``n``, ``mean_a``, ``mean_b``, ``difference`` (mean of b − a), ``se`` (its
        standard error, ddof = 1), ``ci_level`` (1 − 2α), ``ci_low``/``ci_high`` (the
        two-sided t interval at that level), ``t_lower``/``p_lower`` (H0: μ ≤ −ε),
        ``t_upper``/``p_upper`` (H0: μ ≥ ε), ``p_tost`` = max of the two and
        ``equivalent`` = p_tost < α. With n < 2 every statistic is NaN and
        ``equivalent`` False; with constant differences (se = 0) the t statistics are
        ±inf and the p-values 0 or 1, scipy's limits.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need one shape (n,), got {a.shape} and {b.shape}")
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
    d = b - a
    n = len(d)
    out: dict[str, float | bool | int] = {
        "n": n, "mean_a": float(a.mean()) if n else np.nan,
        "mean_b": float(b.mean()) if n else np.nan,
        "difference": float(d.mean()) if n else np.nan, "ci_level": 1 - 2 * alpha}
    if n < 2:
        return {**out, **dict.fromkeys(("se", "ci_low", "ci_high", "t_lower", "p_lower",
                                        "t_upper", "p_upper", "p_tost"), np.nan),
                "equivalent": False}
    with warnings.catch_warnings():
        # Constant differences: scipy warns of precision loss and returns the limits.
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        lower = stats.ttest_1samp(d, -margin, alternative="greater")
        upper = stats.ttest_1samp(d, margin, alternative="less")
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(1 - 2 * alpha)
    p_tost = max(float(lower.pvalue), float(upper.pvalue))
    return {**out, "se": float(stats.sem(d)), "ci_low": float(ci.low),
            "ci_high": float(ci.high), "t_lower": float(lower.statistic),
            "p_lower": float(lower.pvalue), "t_upper": float(upper.statistic),
            "p_upper": float(upper.pvalue), "p_tost": p_tost,
            "equivalent": bool(p_tost < alpha)}


def _flexibility(method: str) -> tuple[int, int]:
    """Sort key from rigid to flexible: diagonal, orthogonal, low_rank:k by k, full (a
    label's first word is the method: "full (cosine)" sorts as full)."""
    name = method.split(" ")[0]
    if name.startswith("low_rank:"):
        return 2, int(name.partition(":")[2])
    order = {"zero_shot": -1, "diagonal": 0, "orthogonal": 1, "full": 3}
    return order.get(name, 4), 0


def regulariser_pairs(experiments: Mapping[str, tuple[str, str]]
                      ) -> list[tuple[str, str, str]]:
    """Every (method, experiment_a, experiment_b) of one method, not ``zero_shot``, whose
    regularisers differ, a's earlier in :data:`REGULARISER_ORDER`; sorted from rigid to
    flexible methods, then by names. ``experiments``: name → (method, regulariser); the
    method is a label compared whole (the command writes a similarity other than the
    dot product into it, "full (cosine)", so that only the regulariser differs)."""
    unknown = sorted({r for _, r in experiments.values()} - set(REGULARISER_ORDER))
    if unknown:
        raise ValueError(f"unknown regulariser(s) {unknown}; expected {REGULARISER_ORDER}")
    pairs = []
    names = sorted(experiments, key=lambda e: (REGULARISER_ORDER.index(experiments[e][1]),
                                               e))
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (ma, ra), (mb, rb) = experiments[a], experiments[b]
            if ma == mb and ra != rb and not ma.startswith("zero_shot"):
                pairs.append((ma, a, b))
    return sorted(pairs, key=lambda p: (_flexibility(p[0]), p[0], p[1], p[2]))


def regulariser_equivalence(experiments: Mapping[str, tuple[str, str]],
                            alignment: pd.DataFrame, generator_curves: pd.DataFrame,
                            margin: float, alpha: float = 0.05) -> pd.DataFrame:
    """Paired TOST between every pair of :func:`regulariser_pairs`.

    Args:
        experiments: experiment name → (method, regulariser), as in the config.
        alignment: one row per experiment × model with ``probed_test_acc`` (the
            ``alignment`` tables with an ``experiment`` column): the published quantity,
            paired by model.
        generator_curves: :func:`.aggregate.generator_curves` rows (``experiment,
            generator, n_train, recovery``): recovery paired by generator × n_train.
        margin: ε, a fraction (both quantities are fractions).
        alpha: family-wise level, divided by the number of pairs of each quantity.

    Returns:
        One row per quantity × pair (:data:`EQUIVALENCE_COLUMNS`; the statistics of
        :func:`tost_paired`, ``alpha`` the per-test level); only the columns when no
        two experiments form a pair.
    """
    pairs = regulariser_pairs(experiments)
    sources = [("probed_test_acc", "model", alignment, ["model"]),
               ("recovery", "generator × n_train", generator_curves,
                ["generator", "n_train"])]
    rows = []
    for quantity, paired_by, table, keys in sources:
        for method, a, b in pairs:
            side = [table.loc[table["experiment"] == e, [*keys, quantity]] for e in (a, b)]
            both = side[0].merge(side[1], on=keys, suffixes=("_a", "_b")).dropna()
            both = both.sort_values(keys)
            per_test = alpha / len(pairs)
            rows.append({"quantity": quantity, "paired_by": paired_by, "method": method,
                         "experiment_a": a, "regulariser_a": experiments[a][1],
                         "experiment_b": b, "regulariser_b": experiments[b][1],
                         "margin": margin, "alpha": per_test,
                         **tost_paired(both[f"{quantity}_a"].to_numpy(),
                                       both[f"{quantity}_b"].to_numpy(), margin, per_test)})
    return pd.DataFrame(rows, columns=list(EQUIVALENCE_COLUMNS))


__all__ = ["REGULARISER_ORDER", "EQUIVALENCE_COLUMNS", "tost_paired", "regulariser_pairs",
           "regulariser_equivalence"]
