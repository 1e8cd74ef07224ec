"""Random draws of the odd-one-out study: distinct uniform triplets within a set of
objects (avoiding given ones), and choices sampled from a model. One sampler serves the
synthetic world's humans, the simulated datasets and the designs' pools; every draw
takes an explicit generator.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .errors import InputError
from .oddoneout import choice_probabilities


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


# Row orders that put choice c's odd one last: 0: k odd (keep); 1: j odd → (i, k, j);
# 2: i odd → (j, k, i).
_ORIENT = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])


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
    return np.take_along_axis(t, _ORIENT[choice], axis=1)


def sample_judgements(sim: np.ndarray, triplets: np.ndarray, temperature: float,
                      rng: np.random.Generator, participants: int = 1
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each triplet answered by ``participants`` independent draws from softmax(S/T).

    sim (n, n); triplets (N, 3) → judgements (M, 3) with the chosen odd one last, and
    each judgement's triplet (M,) int64 (its row in ``triplets``), grouped by triplet in
    order. One participant is :func:`sample_choices` exactly (M = N, the same draws);
    with P > 1 a triplet's three choice counts are one multinomial(P, p) draw, as when
    P people see the same triplet, and each choice made c > 0 times is c rows.
    """
    t = np.asarray(triplets, dtype=np.int64)
    if participants == 1:
        return sample_choices(sim, t, temperature, rng), np.arange(len(t))
    if participants < 1:
        raise InputError(f"participants per triplet must be at least 1, got {participants}")
    p = choice_probabilities(sim, t, temperature)
    counts = rng.multinomial(participants, p / p.sum(axis=1, keepdims=True))  # (N, 3)
    which = np.repeat(np.arange(len(t) * 3), counts.reshape(-1))  # triplet-major order
    row, choice = np.divmod(which, 3)
    return np.take_along_axis(t[row], _ORIENT[choice], axis=1), row
