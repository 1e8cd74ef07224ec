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
#: The fold layouts of a simulated study (config ``simulation.protocol``): ``folds``, K
#: folds each with its own random validation objects (:func:`concept_folds`); ``subsets``,
#: the published code's simplified protocol, K disjoint object subsets each answered
#: once, fold f testing on subset f, validating on subset f + 1 and training on the rest
#: (:func:`simulate_subsets`), its candidates refitted on training + validation.
PROTOCOLS: tuple[str, ...] = ("folds", "subsets")


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


def simulate_subsets(sim: np.ndarray, temperature: float, n_train_max: int, *,
                     n_folds: int, eval_fraction: float, rng: np.random.Generator,
                     exclude: np.ndarray | None = None, participants: int = 1
                     ) -> pd.DataFrame:
    """A simulated study in the published code's simplified protocol: the objects in K =
    ``n_folds`` disjoint random subsets, each with its own triplets (all three objects
    inside it) answered once; fold f tests on subset f, validates on subset f + 1 (mod
    K) and trains on the other K − 2, so validation and test objects are disjoint from
    training and from each other, and one subset's answers serve several folds.

    A fold's training triplets interleave its K − 2 subsets' (position p is triplet
    p // (K − 2) of the (p mod (K − 2))-th), so every prefix of N draws about N/(K − 2)
    from each; validation and test are a subset's first ``eval_size(N)`` triplets. Rows
    as :func:`simulate_dataset`.
    """
    if n_folds < 3:
        raise InputError(f"the subsets protocol needs at least 3 subsets (test, "
                         f"validation and training), got {n_folds}")
    n = sim.shape[0]
    groups = [np.sort(g) for g in np.array_split(rng.permutation(n), n_folds)]
    m = n_folds - 2
    n_eval = eval_size(n_train_max, eval_fraction)
    per = max(math.ceil(n_train_max / m), n_eval)
    answered = []
    for g in groups:
        trip = sample_triplets(g, per, rng, n, exclude)
        answered.append(sample_judgements(sim, trip, temperature, rng, participants))
    frames = []
    for f in range(n_folds):
        train = [h for h in range(n_folds) if h not in (f, (f + 1) % n_folds)]
        frames.append(_interleaved(f, [answered[h] for h in train], n_train_max))
        for split, h in (("val", (f + 1) % n_folds), ("test", f)):
            rows, which = answered[h]
            keep = which < n_eval
            frames.append(_answered(f, split, rows[keep], which[keep]))
    return pd.concat(frames, ignore_index=True)


def _interleaved(fold: int, parts: list[tuple[np.ndarray, np.ndarray]], size: int
                 ) -> pd.DataFrame:
    """Training rows of one fold from the answered triplets of its subsets (judgements,
    triplet index each): triplet t of part p at position t·len(parts) + p, first
    ``size`` positions."""
    rows = np.concatenate([r for r, _ in parts])
    position = np.concatenate([w * len(parts) + p for p, (_, w) in enumerate(parts)])
    order = np.argsort(position, kind="stable")
    keep = order[position[order] < size]
    return _answered(fold, "train", rows[keep], position[keep])


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
