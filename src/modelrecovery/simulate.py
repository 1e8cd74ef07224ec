"""Concept-disjoint folds and the simulated datasets of a generator: uniform triplets (or
a design's) answered by choices sampled from it (:mod:`.sampling`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError
from .sampling import sample_judgements, sample_triplets

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


def eval_size(n_train: int, eval_fraction: float) -> int:
    """Validation/test triplets per fold for a training size (N/8 by default, at least 1)."""
    return max(1, math.ceil(n_train * eval_fraction))


def simulate_dataset(sim: np.ndarray, temperature: float, n_train_max: int, *,
                     n_folds: int, val_fraction: float, eval_fraction: float,
                     rng: np.random.Generator, exclude: np.ndarray | None = None,
                     participants: int = 1) -> pd.DataFrame:
    """A simulated study: per fold, n_train_max training and matching val/test triplets,
    each answered by ``participants`` simulated people
    (:func:`~modelrecovery.sampling.sample_judgements`).

    Returns rows ``fold, split, position, i, j, k`` (k odd), one per judgement;
    ``position`` numbers the triplets within (fold, split) (a triplet's judgements share
    it), so the triplets at positions < N of each fold are the size-N set and every
    smaller size is a prefix of the largest.
    """
    n = sim.shape[0]
    folds = concept_folds(n, n_folds, val_fraction, rng)
    n_eval = eval_size(n_train_max, eval_fraction)
    frames = []
    for f, fold in enumerate(folds):
        for split, objs, size in (("train", fold.train, n_train_max),
                                  ("val", fold.val, n_eval), ("test", fold.test, n_eval)):
            trip = sample_triplets(objs, size, rng, n, exclude)
            frames.append(_answered(f, split, *sample_judgements(sim, trip, temperature,
                                                                 rng, participants)))
    return pd.concat(frames, ignore_index=True)


def simulate_design(sim: np.ndarray, temperature: float, design: pd.DataFrame,
                    rng: np.random.Generator, participants: int = 1) -> pd.DataFrame:
    """Responses to a design's triplets: the design's rows ``fold, split, position, i, j,
    k`` (display order), each answered by ``participants`` draws from softmax(S/T), in
    the shard layout of :func:`simulate_dataset` (k odd, positions as in the design)."""
    frames = []
    for f in sorted(int(v) for v in design["fold"].unique()):
        for split in SPLITS:
            rows = design[(design["fold"] == f) & (design["split"] == split)]
            trip = rows.sort_values("position", kind="stable")[["i", "j", "k"]].to_numpy(
                dtype=np.int64)
            frames.append(_answered(f, split, *sample_judgements(sim, trip, temperature,
                                                                 rng, participants)))
    return pd.concat(frames, ignore_index=True)


def _answered(fold: int, split: str, trip: np.ndarray, position: np.ndarray
              ) -> pd.DataFrame:
    """Shard rows of one fold and split from judgements (m, 3), k odd, and the position
    of each one's triplet (m,)."""
    return pd.DataFrame({
        "fold": np.full(len(trip), fold, dtype=np.int8),
        "split": split,
        "position": np.asarray(position, dtype=np.int32),
        "i": trip[:, 0].astype(np.int32),
        "j": trip[:, 1].astype(np.int32),
        "k": trip[:, 2].astype(np.int32),
    })


def subset(shard: pd.DataFrame, fold: int, split: str, size: int) -> np.ndarray:
    """The judgements of the first ``size`` triplets (in position order) of one fold and
    split, shape (M, 3): M = size with one participant per triplet, more with several
    (:func:`simulate_dataset`)."""
    rows = shard[(shard["fold"] == fold) & (shard["split"] == split)]
    rows = rows.sort_values("position", kind="stable")
    position = rows["position"].to_numpy()
    triplets = np.unique(position)
    if len(triplets) < size:
        raise InputError(f"the simulated shard has {len(triplets)} {split} triplets in "
                         f"fold {fold}, fewer than the {size} asked for")
    keep = position <= triplets[size - 1] if size else np.zeros(len(position), bool)
    return rows[["i", "j", "k"]].to_numpy(dtype=np.int64)[keep]
