"""The adaptive design: triplets chosen in rounds under the candidates fitted so far.

An experiment run in rounds: before round r, every candidate is fitted to the responses
collected in rounds 0..r−1 (the recovery protocol: every λ of the grid on each fold's
training triplets, λ by mean validation accuracy), weighted by the likelihood of the
validation responses so far, and the next batch is the pool triplets with the most
information about the candidates under *their* predictive distributions — the fitted
candidates, not the generators, are what recovery will compare. Then the batch's
responses are collected (here: simulated from the generator). Round r ends at the r-th
training size, so the training rows in order of collection are again nested prefixes,
and a response is never seen before the round after the one that collects it.

Round 0 has no responses to fit: it takes the first rows of a given design (the static
design, ranked under the generators), or uniform triplets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import fitting
from ..recover.refit import CandidateFits, fit_candidates
from ..sampling import triplet_keys
from ..simulate import SPLITS, FoldObjects
from .information import pool_information
from .static import DesignOptions, design_split, split_sizes


@dataclass(frozen=True)
class AdaptiveOptions:
    """``posterior_floor``: share of the uniform weights mixed into the candidates'
    posterior, so that no candidate's predictions drop out of the criterion after one
    unlucky round."""

    posterior_floor: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.posterior_floor <= 1:
            raise ValueError(f"posterior_floor must be in [0, 1], got {self.posterior_floor}")


def chosen_lambdas(fits: CandidateFits) -> np.ndarray:
    """Per problem whether its λ is its candidate's choice: best mean validation accuracy
    over folds, ties to the larger λ (as the recovery analysis chooses), shape (B,)."""
    chosen = np.zeros(len(fits.lam), dtype=bool)
    for c in range(len(fits.names)):
        rows = np.flatnonzero(fits.candidate == c)
        lams = np.unique(fits.lam[rows])
        mean = np.array([fits.val_acc[rows][fits.lam[rows] == lam].mean() for lam in lams])
        best = lams[np.flatnonzero(mean >= mean.max() - 1e-9)].max()
        chosen[rows[fits.lam[rows] == best]] = True
    return chosen


def candidate_weights(fits: CandidateFits, chosen: np.ndarray, floor: float) -> np.ndarray:
    """Posterior weight of each candidate (C,) from the summed log-likelihood of every
    fold's validation responses at its chosen λ (uniform prior), mixed with ``floor`` of
    the uniform weights."""
    n_c = len(fits.names)
    loglik = np.array([-(fits.val_nll[chosen & (fits.candidate == c)] * fits.n_eval).sum()
                       for c in range(n_c)])
    post = np.exp(loglik - loglik.max())
    post /= post.sum()
    return (1.0 - floor) * post + floor / n_c


def _rows(fold: int, split: str, start: int, trip: np.ndarray, utility: np.ndarray
          ) -> pd.DataFrame:
    return pd.DataFrame({
        "fold": np.full(len(trip), fold, dtype=np.int8), "split": split,
        "position": np.arange(start, start + len(trip), dtype=np.int32),
        "i": trip[:, 0].astype(np.int32), "j": trip[:, 1].astype(np.int32),
        "k": trip[:, 2].astype(np.int32), "utility": utility})


def fitted_criterion(collected: pd.DataFrame, n_train: int,
                     candidates: dict[str, np.ndarray], lambdas: list[float],
                     fit_options: fitting.FitOptions, eval_fraction: float,
                     adaptive: AdaptiveOptions, device: str = "cpu"
                     ) -> tuple[Callable[[int], Callable[[np.ndarray], np.ndarray]],
                                np.ndarray]:
    """The candidates fitted to the first ``n_train`` training triplets of each fold of
    ``collected`` (the shard layout), their weights (C,), and per fold the information of
    pool triplets under them."""
    fits = fit_candidates(collected, n_train, candidates, lambdas, fit_options,
                          eval_fraction=eval_fraction)
    chosen = chosen_lambdas(fits)
    weights = candidate_weights(fits, chosen, adaptive.posterior_floor)
    return _fitted_scorer(fits, chosen, candidates, weights, device), weights


def choose_batch(folds: list[FoldObjects], collected: pd.DataFrame | None,
                 want: dict[str, int], n_objects: int,
                 score_for: Callable[[int], Callable[[np.ndarray], np.ndarray]],
                 rng: np.random.Generator, options: DesignOptions,
                 exclude: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """The next triplets of every fold and split, up to ``want`` per split, never one
    already collected; rows ``fold, split, position, i, j, k, utility`` (display order,
    positions continuing the collected ones) and how many batches had no information."""
    frames, flat = [], 0
    for f, fold in enumerate(folds):
        for split in SPLITS:
            if collected is None:
                mine = pd.DataFrame(columns=["i", "j", "k"])
            else:
                mine = collected[(collected["fold"] == f) & (collected["split"] == split)]
            count = want[split] - len(mine)
            if count <= 0:
                continue
            seen = triplet_keys(mine[["i", "j", "k"]].to_numpy(dtype=np.int64), n_objects)
            if exclude is not None:
                seen = np.concatenate([seen, exclude])
            trip, util, _, uninformative = design_split(
                getattr(fold, split), count, n_objects, score_for(f), rng, options, seen)
            flat += int(uninformative)
            frames.append(_rows(f, split, len(mine), trip, util))
    return pd.concat(frames, ignore_index=True), flat


def adaptive_dataset(folds: list[FoldObjects], sizes: list[int], eval_fraction: float,
                     n_objects: int,
                     respond: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
                     candidates: dict[str, np.ndarray], lambdas: list[float],
                     fit_options: fitting.FitOptions, options: DesignOptions,
                     adaptive: AdaptiveOptions,
                     rng_for_round: Callable[[int], np.random.Generator],
                     first: pd.DataFrame | None = None, exclude: np.ndarray | None = None,
                     device: str = "cpu") -> tuple[pd.DataFrame, list[dict]]:
    """A simulated study collected in rounds, one round per training size.

    ``respond(triplets (m, 3), round)`` returns the judgements (M, 3), the sampled odd
    one last, and each one's row in ``triplets`` (M,) (the only place responses come
    from; M > m with several participants per triplet); ``rng_for_round(r)`` the
    design's generator for round r; ``first``: rows ``fold, split, position, i, j, k,
    utility`` whose first rows are round 0 (else round 0 is uniform). Returns the shard
    (rows ``fold, split, position, i, j, k`` with k odd, plus ``utility`` and ``round``)
    and one record per round: its size, the candidates' weights and how many of its
    batches had no information (then uniform).
    """
    sizes = sorted(sizes)
    names = list(candidates)
    collected: pd.DataFrame | None = None
    records = []
    for r, n_train in enumerate(sizes):
        want = split_sizes(n_train, eval_fraction)
        weights = np.full(len(names), 1.0 / len(names))
        if r == 0 and first is not None:
            batch, flat = _first_rows(first, want), 0
        else:
            if r == 0:
                score_for = _no_information
            else:
                score_for, weights = fitted_criterion(collected, sizes[r - 1], candidates,
                                                      lambdas, fit_options, eval_fraction,
                                                      adaptive, device)
            batch, flat = choose_batch(folds, collected, want, n_objects, score_for,
                                       rng_for_round(r), options, exclude)
        answered = _answer(batch, respond, r)
        collected = answered if collected is None else pd.concat(
            [collected, answered], ignore_index=True)
        records.append({"round": r, "n_train": n_train, "uninformative_batches": flat,
                        "weights": dict(zip(names, map(float, weights)))})
    assert collected is not None
    return collected, records


def _no_information(fold: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda pool: np.zeros(len(pool))


def _first_rows(first: pd.DataFrame, want: dict[str, int]) -> pd.DataFrame:
    """Round 0 from a ranked design: its first ``want[split]`` rows of every fold."""
    keep = first["position"] < first["split"].map(want)
    return first[keep].sort_values(["fold", "split", "position"], kind="stable")[
        ["fold", "split", "position", "i", "j", "k", "utility"]].reset_index(drop=True)


def _answer(batch: pd.DataFrame,
            respond: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
            round_: int) -> pd.DataFrame:
    """The batch with its responses (k odd, one row per judgement) and its round, in
    SPLITS order per fold."""
    out = []
    for f in sorted(int(v) for v in batch["fold"].unique()):
        for split in SPLITS:
            rows = batch[(batch["fold"] == f) & (batch["split"] == split)]
            if rows.empty:
                continue
            rows = rows.sort_values("position", kind="stable")
            trip, row = respond(rows[["i", "j", "k"]].to_numpy(dtype=np.int64), round_)
            out.append(rows.iloc[row].assign(i=trip[:, 0].astype(np.int32),
                                   j=trip[:, 1].astype(np.int32),
                                   k=trip[:, 2].astype(np.int32),
                                   round=np.int16(round_)))
    return pd.concat(out, ignore_index=True)


def _fitted_scorer(fits: CandidateFits, chosen: np.ndarray,
                   candidates: dict[str, np.ndarray], weights: np.ndarray, device: str
                   ) -> Callable[[int], Callable[[np.ndarray], np.ndarray]]:
    """Per fold, the information of pool triplets under the candidates fitted on that
    fold at their chosen λ (their own scale is their temperature: T = 1)."""
    w_all = fits.result.weights.detach().double().cpu().numpy()  # (B, D, K)
    # W acts on features zero-padded to D columns (the kernel's layout), so a padded
    # candidate times its W is exactly its own transform.
    feats = []
    for name in fits.names:
        x = np.asarray(candidates[name], dtype=np.float64)
        padded = np.zeros((x.shape[0], w_all.shape[1]))
        padded[:, :x.shape[1]] = x
        feats.append(padded)

    def for_fold(f: int) -> Callable[[np.ndarray], np.ndarray]:
        ws = [w_all[int(np.flatnonzero(chosen & (fits.candidate == c) & (fits.fold == f))[0])]
              for c in range(len(fits.names))]
        return lambda pool: pool_information(feats, ws, np.ones(len(feats)), pool,
                                             prior=weights, device=device,
                                             similarity=fits.result.options.similarity)

    return for_fold
