"""Concept-disjoint folds, uniform triplet draws, and choices sampled from a generator."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError
from .oddoneout import choice_probabilities

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class FoldObjects:
    """Object ids of one fold's three disjoint subsets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def concept_folds(n_objects: int, n_folds: int, val_fraction: float,
                  rng: np.random.Generator) -> list[FoldObjects]:
    """K concept-disjoint folds: fold f tests on the f-th of K object groups.

    The remaining objects are split at random, ``val_fraction`` to validation, the rest
    to training (published protocol: K = 3, 30% validation).
    """
    if n_folds < 2:
        raise InputError(f"need at least 2 folds, got {n_folds}")
    groups = np.array_split(rng.permutation(n_objects), n_folds)
    folds = []
    for f in range(n_folds):
        rest = rng.permutation(np.concatenate([g for h, g in enumerate(groups) if h != f]))
        n_val = int(round(val_fraction * len(rest)))
        folds.append(FoldObjects(train=np.sort(rest[n_val:]), val=np.sort(rest[:n_val]),
                                 test=np.sort(groups[f])))
    return folds


def triplet_keys(triplets: np.ndarray, n_objects: int) -> np.ndarray:
    """One int64 per unordered triplet (sorted ids), to test membership and repeats."""
    s = np.sort(np.asarray(triplets, dtype=np.int64), axis=1)
    return (s[:, 0] * n_objects + s[:, 1]) * n_objects + s[:, 2]


def _exclusions_within(objects: np.ndarray, n_objects: int, exclude: np.ndarray | None
                       ) -> np.ndarray:
    """The excluded keys whose three objects all lie in ``objects``: only these can
    collide with a draw (or reduce how many triplets there are to draw)."""
    if exclude is None or not len(exclude):
        return np.empty(0, dtype=np.int64)
    keys = np.unique(np.asarray(exclude, dtype=np.int64))
    a, rest = np.divmod(keys, n_objects * n_objects)
    b, c = np.divmod(rest, n_objects)
    inside = np.isin(a, objects) & np.isin(b, objects) & np.isin(c, objects)
    return keys[inside]


def available_triplets(objects: np.ndarray, n_objects: int,
                       exclude: np.ndarray | None = None) -> int:
    """How many distinct unordered triplets of ``objects`` are not excluded."""
    objects = np.asarray(objects, dtype=np.int64)
    return math.comb(len(objects), 3) - len(_exclusions_within(objects, n_objects, exclude))


def sample_triplets(objects: np.ndarray, count: int, rng: np.random.Generator,
                    n_objects: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """``count`` distinct unordered triplets of three distinct ``objects``, shape (count, 3).

    Uniform over all such triplets not in ``exclude`` (sorted keys from
    :func:`triplet_keys`); the order within a row is random.
    """
    objects = np.asarray(objects, dtype=np.int64)
    m = len(objects)
    possible = math.comb(m, 3)
    excluded = _exclusions_within(objects, n_objects, exclude)
    if count > possible - len(excluded):
        raise InputError(f"cannot draw {count} distinct triplets from {m} objects "
                         f"({possible} possible, {len(excluded)} excluded)")
    if count > possible // 2:
        # Dense case: enumerate and shuffle rather than rejection-sample.
        combos = np.array(list(itertools.combinations(range(m), 3)))
        combos = objects[combos]
        keep = ~np.isin(triplet_keys(combos, n_objects), excluded)
        combos = combos[keep][rng.permutation(int(keep.sum()))[:count]]
        return rng.permuted(combos, axis=1)
    chosen = np.empty((0, 3), dtype=np.int64)
    keys = np.empty(0, dtype=np.int64)
    while len(chosen) < count:
        need = count - len(chosen)
        draw = objects[rng.integers(0, m, size=(int(need * 1.3) + 16, 3))]
        distinct = (draw[:, 0] != draw[:, 1]) & (draw[:, 0] != draw[:, 2]) & (
            draw[:, 1] != draw[:, 2])
        draw = draw[distinct]
        k = triplet_keys(draw, n_objects)
        _, first = np.unique(k, return_index=True)
        first = np.sort(first)
        draw, k = draw[first], k[first]
        fresh = ~np.isin(k, keys) & ~np.isin(k, excluded)
        chosen = np.concatenate([chosen, draw[fresh][:need]])
        keys = np.concatenate([keys, k[fresh][:need]])
    return chosen


def sample_choices(sim: np.ndarray, triplets: np.ndarray, temperature: float,
                   rng: np.random.Generator) -> np.ndarray:
    """One choice per triplet drawn from softmax(S/T); returns rows reordered so k is odd.

    sim (n, n); triplets (N, 3) in any order → (N, 3) with the sampled odd one last.
    """
    t = np.asarray(triplets, dtype=np.int64)
    p = choice_probabilities(sim, t, temperature)
    u = rng.random(len(t))
    choice = (u >= p[:, 0]).astype(np.int64) + (u >= p[:, 0] + p[:, 1])
    choice = np.minimum(choice, 2)  # guards u ≥ Σp from rounding
    # choice 0: k odd (keep); 1: j odd → (i, k, j); 2: i odd → (j, k, i).
    order = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])[choice]
    return np.take_along_axis(t, order, axis=1)


def eval_size(n_train: int, eval_fraction: float) -> int:
    """Validation/test triplets per fold for a training size (N/8 by default, at least 1)."""
    return max(1, math.ceil(n_train * eval_fraction))


def simulate_dataset(sim: np.ndarray, temperature: float, n_train_max: int, *,
                     n_folds: int, val_fraction: float, eval_fraction: float,
                     rng: np.random.Generator, exclude: np.ndarray | None = None
                     ) -> pd.DataFrame:
    """A simulated study: per fold, n_train_max training and matching val/test triplets.

    Returns rows ``fold, split, position, i, j, k`` (k odd); ``position`` counts rows
    within (fold, split), so the first N training rows of each fold are the size-N set
    and every smaller size is a prefix of the largest.
    """
    n = sim.shape[0]
    folds = concept_folds(n, n_folds, val_fraction, rng)
    n_eval = eval_size(n_train_max, eval_fraction)
    frames = []
    for f, fold in enumerate(folds):
        for split, objs, size in (("train", fold.train, n_train_max),
                                  ("val", fold.val, n_eval), ("test", fold.test, n_eval)):
            trip = sample_triplets(objs, size, rng, n, exclude)
            frames.append(_answered(f, split, sample_choices(sim, trip, temperature, rng)))
    return pd.concat(frames, ignore_index=True)


def simulate_design(sim: np.ndarray, temperature: float, design: pd.DataFrame,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Responses to a design's triplets: the design's rows ``fold, split, position, i, j,
    k`` (display order), each answered by one draw from softmax(S/T), in the shard layout
    of :func:`simulate_dataset` (k odd, positions as in the design)."""
    frames = []
    for f in sorted(int(v) for v in design["fold"].unique()):
        for split in SPLITS:
            rows = design[(design["fold"] == f) & (design["split"] == split)]
            trip = rows.sort_values("position", kind="stable")[["i", "j", "k"]].to_numpy(
                dtype=np.int64)
            frames.append(_answered(f, split, sample_choices(sim, trip, temperature, rng)))
    return pd.concat(frames, ignore_index=True)


def _answered(fold: int, split: str, trip: np.ndarray) -> pd.DataFrame:
    """Shard rows of one fold and split from answered triplets (m, 3), k odd."""
    return pd.DataFrame({
        "fold": np.full(len(trip), fold, dtype=np.int8),
        "split": split,
        "position": np.arange(len(trip), dtype=np.int32),
        "i": trip[:, 0].astype(np.int32),
        "j": trip[:, 1].astype(np.int32),
        "k": trip[:, 2].astype(np.int32),
    })


def subset(shard: pd.DataFrame, fold: int, split: str, size: int) -> np.ndarray:
    """The first ``size`` triplets of one fold and split, shape (size, 3)."""
    rows = shard[(shard["fold"] == fold) & (shard["split"] == split)]
    rows = rows.sort_values("position", kind="stable")
    if len(rows) < size:
        raise InputError(f"the simulated shard has {len(rows)} {split} triplets in fold "
                         f"{fold}, fewer than the {size} asked for")
    return rows[["i", "j", "k"]].to_numpy(dtype=np.int64)[:size]
