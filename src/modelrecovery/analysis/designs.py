"""What a design buys: recovery curves per design and the triplets saved at equal recovery.

The savings factor of a design at a target recovery R is N_random(R) / N_design(R), where
N(R) is the training size at which the design's recovery curve first reaches R,
interpolated linearly in log N between the two training sizes that bracket the crossing.
A curve already at R at the smallest size reached it with *at most* that many triplets
(the factor is then a lower bound); one that never reaches R needs *more than* the largest
size (an upper bound, or no crossing at all). Intervals come from a bootstrap over
simulated datasets: per design, the seeds of every generator are resampled with
replacement (the design's curves keep their nesting, since one dataset is one seed at
every size), and the factor is recomputed on every resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..recover import selection
from . import aggregate
from .stats import percentile_interval


def design_scores(fits: pd.DataFrame) -> pd.DataFrame:
    """Per design, one row per dataset × candidate (see
    :func:`..recover.selection.candidate_scores`), with a ``design`` column."""
    return pd.concat([selection.candidate_scores(rows).assign(design=design)
                      for design, rows in fits.groupby("design", sort=True)],
                     ignore_index=True)


def design_outcomes(fits: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per design, one row per simulated dataset (see :func:`.aggregate.dataset_outcomes`),
    with a ``design`` column; ``scores``, when given, are :func:`design_scores` of
    ``fits``."""
    scores = design_scores(fits) if scores is None else scores
    return pd.concat([aggregate.dataset_outcomes(rows.drop(columns="design"))
                      .assign(design=design)
                      for design, rows in scores.groupby("design", sort=True)],
                     ignore_index=True)


def design_curves(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Recovery per experiment × design × training size with exact binomial intervals."""
    return aggregate._curve(outcomes, ["experiment", "design", "n_train"])


def design_confusion(fits: pd.DataFrame) -> pd.DataFrame:
    """Long-form confusion matrices (see :func:`.aggregate.confusion`) per design."""
    return pd.concat([aggregate.confusion(selection.candidate_scores(rows)).assign(design=d)
                      for d, rows in fits.groupby("design", sort=True)], ignore_index=True)


@dataclass(frozen=True)
class Crossing:
    """Where a curve reaches a target: ``n`` (log-interpolated), and whether that is an
    upper bound (reached at the smallest size already) or not reached at all."""

    n: float
    at_most: bool = False
    reached: bool = True


def crossing(sizes: np.ndarray, recovery: np.ndarray, target: float) -> Crossing:
    """First training size at which ``recovery`` (per sorted ``sizes``) reaches
    ``target``, interpolated in log N."""
    sizes = np.asarray(sizes, dtype=np.float64)
    rec = np.asarray(recovery, dtype=np.float64)
    above = np.flatnonzero(rec >= target - 1e-12)
    if not len(above):
        return Crossing(n=float("inf"), reached=False)
    k = int(above[0])
    if k == 0:
        return Crossing(n=float(sizes[0]), at_most=True)
    lo, hi = rec[k - 1], rec[k]
    frac = min(1.0, (target - lo) / (hi - lo))
    if frac >= 1.0 - 1e-12:  # reached exactly at a size: that size, without rounding
        return Crossing(n=float(sizes[k]))
    log_n = np.log(sizes[k - 1]) + frac * (np.log(sizes[k]) - np.log(sizes[k - 1]))
    return Crossing(n=float(np.exp(log_n)))


def _curve_of(outcomes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    curve = outcomes.groupby("n_train", sort=True)["credit"].mean()
    return curve.index.to_numpy(), curve.to_numpy()


def _resample(outcomes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The datasets of one design resampled: per generator, its seeds with replacement."""
    parts = []
    for _, rows in outcomes.groupby("generator", sort=True):
        seeds = np.unique(rows["seed"])
        pick = rng.choice(seeds, size=len(seeds), replace=True)
        by_seed = {s: g for s, g in rows.groupby("seed")}
        parts.extend(by_seed[s] for s in pick)
    return pd.concat(parts, ignore_index=True)


Boots = dict[str, list[tuple[np.ndarray, np.ndarray]]]


def bootstrap_curves(outcomes: pd.DataFrame, n_boot: int, rng: np.random.Generator
                     ) -> Boots:
    """Per design, ``n_boot`` recovery curves (sizes, recovery) of resampled datasets
    (per generator, its seeds with replacement), drawn design by design in name order."""
    designs = sorted(outcomes["design"].unique())
    by_design = {d: outcomes[outcomes["design"] == d] for d in designs}
    return {d: [_curve_of(_resample(by_design[d], rng)) for _ in range(n_boot)]
            for d in designs}


def equal_n_differences(outcomes: pd.DataFrame, boots: Boots,
                        reference: str = "random", level: float = 0.95) -> pd.DataFrame:
    """Each design's recovery minus the reference's at the same training size, with a
    percentile bootstrap interval from ``boots`` (:func:`bootstrap_curves` of the same
    outcomes; the designs' datasets are resampled independently). One row per design ×
    n_train: ``recovery_vs_random``, ``vs_random_ci_low``, ``vs_random_ci_high`` (0 for
    the reference itself). Unlike the savings factor it does not saturate when a design
    reaches the target at the smallest size."""
    rows = []
    ref_sizes, ref_rec = _curve_of(outcomes[outcomes["design"] == reference])
    ref_boot = np.array([r for _, r in boots[reference]])
    for d, curves in boots.items():
        sizes, rec = _curve_of(outcomes[outcomes["design"] == d])
        mine = np.array([r for _, r in curves])
        for k, n in enumerate(sizes):
            j = int(np.searchsorted(ref_sizes, n))
            if j >= len(ref_sizes) or ref_sizes[j] != n:
                continue
            lo, hi = percentile_interval(mine[:, k] - ref_boot[:, j], level)
            rows.append({"design": d, "n_train": int(n),
                         "recovery_vs_random": float(rec[k] - ref_rec[j]),
                         "vs_random_ci_low": float(lo), "vs_random_ci_high": float(hi)})
    return pd.DataFrame(rows)


def savings(outcomes: pd.DataFrame, targets: dict[str, float], n_boot: int,
            rng: np.random.Generator, reference: str = "random",
            boots: Boots | None = None) -> pd.DataFrame:
    """Triplets needed to reach each target recovery, per design, and the savings
    factor N_reference / N_design with a percentile bootstrap 95% interval.

    ``outcomes``: one experiment's :func:`design_outcomes`; ``targets``: label →
    recovery (e.g. the reference's recovery at its largest size, and 0.9). One row per
    target × design: ``n_needed`` (log-interpolated), ``at_most`` / ``reached`` (see
    :class:`Crossing`), ``savings`` with ``savings_ci_low`` / ``savings_ci_high`` (NaN
    where a resample's curve never reaches the target), and ``savings_bound``:
    ``lower`` when the design reached the target at its smallest size or the reference
    never reached it (the factor is at least this: the reference's N is then taken as its
    largest size), ``none`` where it is a plain estimate, ``unreached`` where the design
    did not reach it. ``boots``: :func:`bootstrap_curves` already drawn (else drawn
    here from ``rng``).
    """
    designs = sorted(outcomes["design"].unique())
    if reference not in designs:
        raise ValueError(f"the reference design {reference!r} has no outcomes")
    by_design = {d: outcomes[outcomes["design"] == d] for d in designs}
    boots = bootstrap_curves(outcomes, n_boot, rng) if boots is None else boots
    rows = []
    for label, target in targets.items():
        ref = crossing(*_curve_of(by_design[reference]), target)
        ref_boot = np.array([crossing(s, r, target).n for s, r in boots[reference]])
        for d in designs:
            own = crossing(*_curve_of(by_design[d]), target)
            mine = np.array([crossing(s, r, target).n for s, r in boots[d]])
            # Where the reference never reaches the target, it needs more than its
            # largest size: the factor is then at least that size over the design's N.
            ref_n = ref.n if ref.reached else float(by_design[reference]["n_train"].max())
            factor = ref_n / own.n if own.reached else np.nan
            # A resample whose curve never reaches the target has no crossing: it enters
            # the interval as missing (bootstrap_reached says how often that happened).
            both = np.isfinite(ref_boot) & np.isfinite(mine)
            ratio = ref_boot[both] / mine[both]
            lo, hi = percentile_interval(ratio, 0.95, min_resamples=10)
            bound = ("unreached" if not own.reached
                     else "lower" if own.at_most or not ref.reached else "none")
            rows.append({"target": label, "target_recovery": target, "design": d,
                         "n_needed": own.n, "at_most": own.at_most, "reached": own.reached,
                         "reference_n": ref.n, "savings": factor,
                         "savings_ci_low": float(lo), "savings_ci_high": float(hi),
                         "savings_bound": bound,
                         "bootstrap_reached": float(np.isfinite(mine).mean())})
    return pd.DataFrame(rows)


def best_design(table: pd.DataFrame, reference: str = "random") -> pd.Series | None:
    """The design that reaches the first target with the fewest triplets (None if none
    does)."""
    first = table[table["target"] == table["target"].iloc[0]]
    others = first[(first["design"] != reference) & first["reached"]]
    if others.empty:
        return None
    return others.sort_values("n_needed", kind="stable").iloc[0]


def headline(table: pd.DataFrame, reference: str = "random") -> str:
    """The one-line verdict: the best design's savings at the first target,
    ``design saves R.Rx triplets over random at recovery X (random N=…, best design
    N=…)``."""
    best = best_design(table, reference)
    if best is None:
        first = table.iloc[0]
        return (f"design saves 0.0x triplets over random at recovery "
                f"{first['target_recovery']:.3f} (random N={first['reference_n']:.0f}, best "
                "design N=not reached)")
    return (f"design saves {best['savings']:.1f}x triplets over random at recovery "
            f"{best['target_recovery']:.3f} (random N={best['reference_n']:.0f}, best "
            f"design N={best['n_needed']:.0f})")


def headline_details(table: pd.DataFrame, reference: str = "random") -> str:
    """Which design the headline names, its interval, and whether the factor is a bound."""
    best = best_design(table, reference)
    if best is None:
        return "no design reached the target within the training sizes run"
    bound = ""
    if best["savings_bound"] == "lower":
        bound = (" (a lower bound: it reached the target at its smallest N)"
                 if best["at_most"] else " (a lower bound: random never reached it)")
    return (f"best design: {best['design']}; savings {best['savings']:.1f}x, 95% bootstrap "
            f"interval {best['savings_ci_low']:.1f}-{best['savings_ci_high']:.1f}{bound}")


def most_confused_pair(confusion: pd.DataFrame, models: list[str]) -> tuple[str, str]:
    """The two models the random design confuses most at its largest training size:
    the largest rate(a → b) + rate(b → a) over pairs of ``models`` (ties: first in
    name order)."""
    last = confusion[confusion["n_train"] == confusion["n_train"].max()]
    rate = last.pivot_table(index="generator", columns="candidate", values="rate",
                            aggfunc="sum").reindex(index=models, columns=models).fillna(0)
    best, pair = -1.0, (models[0], models[1])
    for a in range(len(models)):
        for b in range(a + 1, len(models)):
            both = float(rate.iloc[a, b] + rate.iloc[b, a])
            if both > best:
                best, pair = both, (models[a], models[b])
    return pair
