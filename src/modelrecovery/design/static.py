"""Which triplets to collect: ranking a pool of candidate triplets by their information.

A design is, per concept-disjoint fold and split, an ordered list of distinct triplets
drawn within that split's objects, so that every training size is a prefix of the
largest and concept-disjoint cross-validation later discards none of them. The pool is a
uniform sample of the split's triplets; each pool triplet is scored by
I(M; Y | t) (:mod:`modelrecovery.design.information`) and the pool is ranked greedily by score
under two safeguards against the crowding of informative triplets onto a few objects:
a share of uniform triplets mixed into every prefix (``random_fraction``) and a cap on
how often an object may appear in every prefix, relative to a uniform design
(``object_cap``). Where no pool triplet carries information (identical models) the
ranking is the pool's own uniform order, and the design says so.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..sampling import available_triplets, sample_triplets
from ..seeds import rng_for
from ..simulate import SPLITS, FoldObjects, concept_folds, eval_size

#: Information (nats) below which a triplet tells nothing about the model: the rounding
#: level of the score in float32, far below any triplet that separates two models.
NO_INFORMATION = 1e-6


@dataclass(frozen=True)
class DesignOptions:
    """How a design ranks its pool.

    ``pool_factor``: pool size as a multiple of the triplets to choose (capped by the
    triplets there are); ``random_fraction``: share of uniform triplets in every prefix;
    ``object_cap``: in every prefix of length m, no object of a split with n_s objects
    appears more than ``ceil(object_cap · 3m / n_s)`` times (a uniform design's expected
    count times the cap; None: no cap).
    """

    pool_factor: float = 20.0
    random_fraction: float = 0.1
    object_cap: float | None = 3.0

    def __post_init__(self) -> None:
        if not self.pool_factor >= 1:
            raise ValueError(f"pool_factor must be ≥ 1, got {self.pool_factor}")
        if not 0 <= self.random_fraction <= 1:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction}")
        if self.object_cap is not None and not self.object_cap >= 1:
            raise ValueError(f"object_cap must be ≥ 1 or None, got {self.object_cap}")

    def pool_size(self, count: int, possible: int) -> int:
        """Pool triplets to draw for ``count`` chosen ones among ``possible``."""
        return int(min(possible, max(count, math.ceil(self.pool_factor * count))))


def uniform_slots(count: int, fraction: float) -> np.ndarray:
    """Which positions 0..count−1 hold a uniform triplet: position m does when
    ⌊(m+1)·f⌋ > ⌊m·f⌋, so every prefix of length m holds ⌊m·f⌋ of them."""
    m = np.arange(count)
    return np.floor((m + 1) * fraction + 1e-12) > np.floor(m * fraction + 1e-12)


def rank_pool(pool: np.ndarray, utility: np.ndarray, count: int, n_objects: int,
              options: DesignOptions) -> tuple[np.ndarray, bool]:
    """Choose and order ``count`` of the pool's triplets.

    ``pool`` (P, 3): distinct triplets in uniformly random order (the order uniform slots
    take them in); ``utility`` (P,): their scores; ``n_objects``: objects of the split
    (for the cap). Returns the chosen pool rows in collection order, shape (count,), and
    whether the pool carried no information (then the order is the pool's own).
    """
    if count > len(pool):
        raise ValueError(f"cannot choose {count} triplets from a pool of {len(pool)}")
    if len(pool) == 0 or float(np.max(utility, initial=0.0)) < NO_INFORMATION:
        return np.arange(count), True
    by_score = np.lexsort((np.arange(len(pool)), -utility))  # best first, ties in pool order
    uniform = uniform_slots(count, options.random_fraction)
    taken = np.zeros(len(pool), dtype=bool)
    uses = np.zeros(int(pool.max()) + 1, dtype=np.int64)

    def cap(length: int) -> float:
        if options.object_cap is None:
            return math.inf
        return math.ceil(options.object_cap * 3 * length / n_objects)

    def fits(rank: int, length: int) -> bool:
        return int(uses[pool[by_score[rank]]].max()) < cap(length)

    chosen = np.empty(count, dtype=np.int64)
    fresh = next_uniform = 0  # next unseen rank; next pool row for a uniform slot
    ready: list[int] = []  # ranks the cap refused once but fitted at the last rescan (heap)
    deferred: list[int] = []  # ranks the cap refused
    limit = -1.0
    for m in range(count):
        if uniform[m]:
            while taken[next_uniform]:
                next_uniform += 1
            row = next_uniform
        else:
            if cap(m + 1) > limit:  # the cap grew: refused triplets may fit now
                limit = cap(m + 1)
                ranks = np.asarray(deferred, dtype=np.int64)
                ok = uses[pool[by_score[ranks]]].max(axis=1, initial=0) < limit
                deferred = ranks[~ok].tolist()
                for r in ranks[ok].tolist():
                    heapq.heappush(ready, r)
            rank = -1
            while rank < 0:
                use_ready = bool(ready) and (fresh >= len(pool) or ready[0] < fresh)
                if use_ready:
                    r = heapq.heappop(ready)
                elif fresh < len(pool):
                    r, fresh = fresh, fresh + 1
                else:  # every triplet left breaks the cap: take the best of them
                    r = min(r for r in deferred if not taken[by_score[r]])
                    deferred.remove(r)
                    rank = r
                    break
                if taken[by_score[r]]:
                    continue
                if fits(r, m + 1):
                    rank = r
                else:
                    deferred.append(r)
            row = int(by_score[rank])
        taken[row] = True
        uses[pool[row]] += 1
        chosen[m] = row
    return chosen, False


def split_sizes(n_train: int, eval_fraction: float) -> dict[str, int]:
    """Triplets per split of one fold: N training, N·eval_fraction validation and test."""
    n_eval = eval_size(n_train, eval_fraction)
    return {"train": n_train, "val": n_eval, "test": n_eval}


#: A ranking of a pool: (pool (P, 3), its scores, count, objects of the split) → the
#: chosen rows in collection order, each one's utility, and whether the pool carried none.
Ranker = Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray, bool]]


def design_split(objects: np.ndarray, count: int, n_objects: int,
                 score: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator,
                 options: DesignOptions, exclude: np.ndarray | None = None,
                 rank: Ranker | None = None) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """The ranked design of one fold's split: ``count`` distinct triplets of ``objects``.

    ``score`` maps pool triplets (P, 3) to their information (P,); ``rank`` orders the
    pool by those scores (default: :func:`rank_pool`; a ranker may take scores of
    another shape, e.g. (P, Q) per pair of models). Returns the triplets (count, 3) in
    collection order, their utility (count,), the pool's mean score, and whether the
    pool carried no information (a uniform design).
    """
    possible = available_triplets(objects, n_objects, exclude)
    pool = sample_triplets(objects, options.pool_size(count, possible), rng, n_objects,
                           exclude)
    utility = score(pool)
    if rank is None:
        order, uninformative = rank_pool(pool, utility, count, len(objects), options)
        value = utility[order]
    else:
        order, value, uninformative = rank(pool, utility, count, len(objects))
    return pool[order], value, float(utility.mean()), uninformative


def static_design(folds: list[FoldObjects], sizes: dict[str, int], n_objects: int,
                  score: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator,
                  options: DesignOptions, exclude: np.ndarray | None = None
                  ) -> tuple[pd.DataFrame, list[dict]]:
    """A design for every fold and split, chosen before any response exists.

    Returns rows ``fold, split, position, i, j, k, utility`` (the triplet in display
    order; ``position`` is the rank, so a size-N design is the first N rows) and one
    record per fold and split: the mean information of the chosen triplets and of the
    pool, and ``uninformative`` (the uniform fallback).
    """
    frames, records = [], []
    for f, fold in enumerate(folds):
        for split in SPLITS:
            objects = getattr(fold, split)
            trip, util, pool_mean, flat = design_split(objects, sizes[split], n_objects,
                                                       score, rng, options, exclude)
            frame, record = split_design(f, split, trip, util, pool_mean, flat)
            frames.append(frame)
            records.append(record)
    return pd.concat(frames, ignore_index=True), records


def split_design(fold: int, split: str, triplets: np.ndarray, utility: np.ndarray,
                 pool_mean: float, uninformative: bool) -> tuple[pd.DataFrame, dict]:
    """One fold's split of a design: its rows ``fold, split, position, i, j, k,
    utility`` (triplets (m, 3) in collection order) and its record."""
    frame = pd.DataFrame({
        "fold": np.full(len(triplets), fold, dtype=np.int8), "split": split,
        "position": np.arange(len(triplets), dtype=np.int32),
        "i": triplets[:, 0].astype(np.int32), "j": triplets[:, 1].astype(np.int32),
        "k": triplets[:, 2].astype(np.int32), "utility": utility})
    record = {"fold": fold, "split": split, "triplets": int(len(triplets)),
              "mean_utility": float(utility.mean()), "pool_mean_utility": pool_mean,
              "uninformative": uninformative}
    return frame, record


def design_folds(n_objects: int, n_folds: int, val_fraction: float, study_seed: int,
                 experiment: str, seed: int) -> list[FoldObjects]:
    """The concept-disjoint folds every designed dataset of one seed shares (static and
    adaptive alike, whatever generator answers them)."""
    return concept_folds(n_objects, n_folds, val_fraction,
                         rng_for(study_seed, "design folds", experiment, seed))
