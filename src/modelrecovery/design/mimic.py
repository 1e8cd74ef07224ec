"""Designs aimed at the mimic: triplets that separate each generator from the candidates
that will imitate it at analysis.

At analysis every candidate is refitted to the generator's data and imitates it as well
as its probe allows. The *mimic* m_{c→g} is candidate c's probe fitted to generator g's
predicted choice probabilities (soft targets) on a uniform pool of a fold's training
triplets, at the most flexible λ of the experiment's grid: the imitation a refit
approaches as its data grow. Per triplet t,

    D_gc(t) = KL(p_g(·|t) ‖ p_{m_{c→g}}(·|t))      (nats)

is the expected log-likelihood ratio one response of g adds for g against its mimic; a
design's sum A_gc is the evidence, and by Stein's lemma the chance that g's data look
like c's falls like exp(−A_gc), so ln(1/ε)/D̄_gc triplets separate the pair at error ε
(:func:`stein_triplets`). A pair whose mimic reproduces the generator (D ≈ 0 on every
triplet) cannot be separated by any design. The design minimises the union bound
Σ_gc π_g exp(−A_gc) greedily (:func:`union_bound_order`): each next triplet maximises
Σ_gc π_g exp(−A_gc) D_gc(t), the bound's steepest descent, so a pair already separated
stops drawing triplets and the chosen ones are not redundant; the uniform share and the
object cap of :class:`.static.DesignOptions` keep coverage for the probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import log_softmax

from .. import fitting
from ..oddoneout import row_pair_logits
from ..sampling import available_triplets, sample_triplets
from ..simulate import SPLITS, FoldObjects
from .static import (NO_INFORMATION, DesignOptions, design_split, split_design,
                     uniform_slots)

# Weights are recomputed after every 1/REWEIGHTS of a split's triplets: often enough that
# a pair's share follows its evidence, rarely enough that ranking stays a sort per step.
REWEIGHTS = 64


@dataclass(frozen=True)
class MimicOptions:
    """``mimic_pool``: uniform triplets of a fold's training objects the mimics are
    fitted to (soft targets: three rows per triplet)."""

    mimic_pool: int = 4000

    def __post_init__(self) -> None:
        if not self.mimic_pool >= 10:
            raise ValueError(f"mimic_pool must be ≥ 10, got {self.mimic_pool}")


def log_probs(z: np.ndarray, triplets: np.ndarray, temperature: float = 1.0,
              similarity: str = "dot") -> np.ndarray:
    """log p(choice | t) in the pair-logit order of :func:`..oddoneout.pair_logits`, shape
    (P, 3), for transformed features ``z`` (n, k) (their ``similarity``, by row products:
    no n × n matrix) at ``temperature``."""
    logits = row_pair_logits(z, triplets, similarity)
    return log_softmax(logits / float(temperature), axis=1)


def soft_target_rows(pool: np.ndarray, log_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and counts whose count-weighted NLL is the cross-entropy against ``log_p``:
    triplet (i, j, k) becomes (i, j, k), (i, k, j), (j, k, i), each row's first pair the
    one its count (the probability of that pair's choice) rewards; (3P, 3), (3P,)."""
    i, j, k = pool[:, 0], pool[:, 1], pool[:, 2]
    rows = np.concatenate([np.stack(r, axis=1) for r in ((i, j, k), (i, k, j), (j, k, i))])
    return rows, np.exp(log_p).T.reshape(-1)


def fit_mimics(candidates: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               pool: np.ndarray, pairs: Sequence[tuple[int, int]], lam: float,
               options: fitting.FitOptions) -> list[np.ndarray]:
    """Each pair's mimic: candidate ``c``'s probe fitted to target ``g``'s choice
    probabilities on ``pool`` (P, 3) at λ = ``lam``, in one batched fit.

    ``candidates[c]`` (n, d_c) features; ``targets[g]`` (P, 3) log-probabilities on the
    pool; ``pairs`` (g, c). Returns per pair the mimic's transformed features X_c W
    (n, k).
    """
    rows, counts = zip(*(soft_target_rows(pool, t) for t in targets))
    data = fitting.TripletSets.from_arrays(list(rows), list(counts),
                                           dtype=options.torch_dtype)
    sets = np.array([g for g, _ in pairs], dtype=np.int64)
    feats = np.array([c for _, c in pairs], dtype=np.int64)
    res = fitting.fit(list(candidates), data, sets, np.full(len(pairs), float(lam)),
                      options, problem_features=feats)
    w = res.weights.double().cpu().numpy()
    return [np.asarray(candidates[c], dtype=np.float64) @ w[b, : candidates[c].shape[1]]
            for b, c in enumerate(feats)]


def divergences(gen_log_p: np.ndarray, mimic_log_p: np.ndarray) -> np.ndarray:
    """KL(p_g ‖ p_m) per triplet (nats, ≥ 0) from two (P, 3) log-probability arrays."""
    kl = (np.exp(gen_log_p) * (gen_log_p - mimic_log_p)).sum(axis=1)
    return np.maximum(kl, 0.0)


def stein_triplets(divergence: float, error: float = 0.05) -> float:
    """Triplets that separate a generator from its mimic at error ``error``: ln(1/error)
    over the mean divergence per triplet (inf where it is 0)."""
    return math.log(1.0 / error) / divergence if divergence > 0 else math.inf


def union_bound_order(divergence: np.ndarray, prior: np.ndarray, count: int,
                      pool: np.ndarray, n_objects: int, options: DesignOptions
                      ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Choose and order ``count`` pool triplets by the union bound's steepest descent.

    ``divergence`` (P, Q): D_q(t) of every pool triplet and generator–mimic pair;
    ``prior`` (Q,): π of each pair's generator; ``pool`` (P, 3) in uniformly random order
    (uniform slots take it in that order); ``n_objects``: the split's objects (for the
    cap). Returns the chosen rows (count,), each one's weighted divergence
    Σ_q w_q D_q(t) with the weights when it was chosen (w sums to 1; nats), and whether
    the pool carried no divergence (then the order is the pool's own).
    """
    n_pool = len(pool)
    if count > n_pool:
        raise ValueError(f"cannot choose {count} triplets from a pool of {n_pool}")
    if n_pool == 0 or float(divergence.max(initial=0.0)) < NO_INFORMATION:
        return np.arange(count), np.zeros(count), True
    prior = np.asarray(prior, dtype=np.float64)
    live = prior > 0
    uniform = uniform_slots(count, options.random_fraction)
    evidence = np.zeros(divergence.shape[1])
    taken = np.zeros(n_pool, dtype=bool)
    uses = np.zeros(int(pool.max()) + 1, dtype=np.int64)
    chosen, value = np.empty(count, dtype=np.int64), np.empty(count)
    step = max(1, math.ceil(count / REWEIGHTS))
    order, utility, next_uniform, picks = np.empty(0, dtype=np.int64), None, 0, 0
    for m in range(count):
        if utility is None or (not uniform[m] and picks % step == 0):
            shifted = np.where(live, evidence - evidence[live].min(), np.inf)
            w = prior * np.exp(-shifted)
            utility = divergence @ (w / w.sum())
            order = np.lexsort((np.arange(n_pool), -utility))  # best first, pool order
        if uniform[m]:
            while taken[next_uniform]:
                next_uniform += 1
            row = next_uniform
        else:
            picks += 1
            row = _first_fitting(order, taken, uses, pool, m + 1, n_objects, options)
        taken[row] = True
        uses[pool[row]] += 1
        evidence += divergence[row]
        chosen[m], value[m] = row, utility[row]
    return chosen, value, False


def _first_fitting(order: np.ndarray, taken: np.ndarray, uses: np.ndarray,
                   pool: np.ndarray, length: int, n_objects: int,
                   options: DesignOptions) -> int:
    """The best untaken row whose objects stay within the cap at prefix ``length``
    (the best untaken row if none does)."""
    free = order[~taken[order]]
    if options.object_cap is None:
        return int(free[0])
    cap = math.ceil(options.object_cap * 3 * length / n_objects)
    for start in range(0, len(free), 512):
        window = free[start:start + 512]
        ok = np.flatnonzero(uses[pool[window]].max(axis=1) < cap)
        if len(ok):
            return int(window[ok[0]])
    return int(free[0])


def mimic_design(folds: Sequence[FoldObjects], sizes: dict[str, int], n_objects: int,
                 generators: Sequence[tuple[np.ndarray, float, str]],
                 candidates: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]],
                 prior: np.ndarray, lam: float, fit: fitting.FitOptions,
                 options: DesignOptions, mimic: MimicOptions, rng: np.random.Generator,
                 exclude: np.ndarray | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """A design aimed at the mimics, for every fold and split (as
    :func:`.static.static_design`, whose rows and records it returns).

    ``generators[g]``: transformed features X_g W_g (n, k), temperature T_g and
    similarity (the mimics use the fit options' ``similarity``);
    ``candidates[c]`` (n, d_c) features; ``pairs`` (g, c): the generator and the
    candidate that mimics it; ``prior`` (Q,): π of each pair's generator. Per fold the
    mimics are fitted on ``mimic.mimic_pool`` uniform triplets of its training objects
    at λ = ``lam``; every record adds ``divergence``: per pair the mean D_gc (nats per
    triplet) over the uniform pool and over the chosen triplets.
    """
    frames, records = [], []
    for f, fold in enumerate(folds):
        size = min(mimic.mimic_pool, available_triplets(fold.train, n_objects))
        fit_pool = sample_triplets(fold.train, size, rng, n_objects)
        targets = [log_probs(z, fit_pool, t, kind) for z, t, kind in generators]
        mimics = fit_mimics(candidates, targets, fit_pool, pairs, lam, fit)

        def score(pool: np.ndarray) -> np.ndarray:
            gen = [log_probs(z, pool, t, kind) for z, t, kind in generators]
            return np.stack([divergences(gen[g], log_probs(mimics[q], pool,
                                                           similarity=fit.similarity))
                             for q, (g, _) in enumerate(pairs)], axis=1)

        def rank(pool: np.ndarray, d: np.ndarray, count: int, n_split: int):
            pool_mean.append(d.mean(axis=0))
            return union_bound_order(d, prior, count, pool, n_split, options)

        for split in SPLITS:
            pool_mean: list[np.ndarray] = []
            trip, value, _, flat = design_split(getattr(fold, split), sizes[split],
                                                n_objects, score, rng, options, exclude,
                                                rank)
            chosen = score(trip).mean(axis=0)
            frame, record = split_design(f, split, trip, value,
                                         float(pool_mean[0].mean()), flat)
            record["divergence"] = [{"pair": q, "pool": float(pool_mean[0][q]),
                                     "design": float(chosen[q])}
                                    for q in range(len(pairs))]
            frames.append(frame)
            records.append(record)
    return pd.concat(frames, ignore_index=True), records
