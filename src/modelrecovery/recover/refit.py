"""One recovery job: refit every candidate to one simulated dataset at one training size."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import fitting
from ..io.contracts import RECOVERY_COLUMNS
from ..simulate import eval_size, subset
from .parameters import parameter_rows
from .selection import REFIT, TIE_TOL, candidate_scores


@dataclass
class CandidateFits:
    """Every candidate × fold × λ fitted to one dataset in one kernel call.

    Problem b is candidate ``names[candidate[b]]`` on fold ``folds[fold[b]]`` at
    ``lam[b]``; ``result.weights[b]`` (D, K) is its transform (its own top rows);
    ``val_acc``/``val_nll``/``test_acc``/``test_nll`` (B,) its held-out scores (NLL in
    nats per judgement, at T = 1); ``n_eval`` validation and test triplets per fold.
    """

    names: list[str]
    folds: list[int]
    candidate: np.ndarray
    fold: np.ndarray
    lam: np.ndarray
    result: fitting.FitResult
    val_acc: np.ndarray
    val_nll: np.ndarray
    test_acc: np.ndarray
    test_nll: np.ndarray
    n_eval: int
    seconds: float
    refit: Refit | None = None


@dataclass
class Refit:
    """Every candidate × fold refitted on its fold's training + validation triplets at
    the λ of its best validation accuracy (``simulation.protocol: subsets``; ties to the
    smaller λ, as the published code). Problem r is candidate ``candidate[r]`` on fold
    index ``fold[r]`` at ``lam[r]``; ``val_acc`` (R,) the chosen λ's validation accuracy
    in the grid, ``test_acc``/``test_nll`` (R,) the refit's on the test triplets."""

    candidate: np.ndarray
    fold: np.ndarray
    lam: np.ndarray
    result: fitting.FitResult
    val_acc: np.ndarray
    test_acc: np.ndarray
    test_nll: np.ndarray


def fit_candidates(shard: pd.DataFrame, n_train: int, candidates: dict[str, np.ndarray],
                   lambdas: list[float], options: fitting.FitOptions, *,
                   eval_fraction: float) -> CandidateFits:
    """Fit each candidate for every λ × fold on the first ``n_train`` training triplets
    of each fold of ``shard`` (see :func:`simulate.simulate_dataset`) and score it on the
    first ``eval_size(n_train)`` validation and test triplets. candidates: name →
    features (n, d)."""
    return fit_datasets([shard], n_train, candidates, lambdas, options,
                        eval_fraction=eval_fraction)[0]


def fit_datasets(shards: list[pd.DataFrame], n_train: int,
                 candidates: dict[str, np.ndarray], lambdas: list[float],
                 options: fitting.FitOptions, *, eval_fraction: float
                 ) -> list[CandidateFits]:
    """:func:`fit_candidates` for each of ``shards`` (datasets of one training size), all
    in one kernel call: the solver's per-iteration work is shared by every dataset's
    fits, which is what makes a job of many small fits fast. Each dataset's
    ``result`` holds its own problems (its ``seconds`` the whole call's); ``seconds`` is
    the dataset's share of the call's wall time, by its number of fits."""
    n_eval = eval_size(n_train, eval_fraction)
    dt = options.torch_dtype
    folds = [sorted(int(f) for f in shard["fold"].unique()) for shard in shards]
    sets = {split: _triplet_sets(
        [subset(shard, f, split, size) for shard, fs in zip(shards, folds) for f in fs],
        size, dt)
        for split, size in (("train", n_train), ("val", n_eval), ("test", n_eval))}
    lam = np.asarray(lambdas, dtype=np.float64)
    if options.parsed_method.kind == "zero_shot":
        lam = np.zeros(1)  # W = s·I has no penalty: one fit per fold serves every λ
    names = list(candidates)
    feats = [candidates[name] for name in names]
    first_set = np.cumsum([0] + [len(fs) for fs in folds])
    # Problem order: dataset, candidate, fold, λ (a dataset's problems are contiguous).
    per = [(np.repeat(np.arange(len(names)), len(fs) * len(lam)),
            np.tile(np.repeat(np.arange(len(fs)), len(lam)), len(names)),
            np.tile(lam, len(names) * len(fs))) for fs in folds]
    pf = np.concatenate([c for c, _, _ in per])
    ps = np.concatenate([f + first_set[i] for i, (_, f, _) in enumerate(per)])
    pl = np.concatenate([v for _, _, v in per])
    start = time.perf_counter()
    res = fitting.fit(feats, sets["train"], ps, pl, options, problem_features=pf)
    val_acc, val_nll = fitting.evaluate(feats, res.weights, sets["val"], ps,
                                        problem_features=pf, similarity=options.similarity,
                                        max_memory_gb=options.max_memory_gb)
    test_acc, test_nll = fitting.evaluate(feats, res.weights, sets["test"], ps,
                                          problem_features=pf,
                                          similarity=options.similarity,
                                          max_memory_gb=options.max_memory_gb)
    seconds = time.perf_counter() - start
    out, lo = [], 0
    for fs, (cand, fold, lam_i) in zip(folds, per):
        sl = slice(lo, lo + len(cand))
        lo = sl.stop
        out.append(CandidateFits(names=names, folds=fs, candidate=cand, fold=fold,
                                 lam=lam_i, result=res.select(np.arange(sl.start, sl.stop)),
                                 val_acc=val_acc[sl], val_nll=val_nll[sl],
                                 test_acc=test_acc[sl], test_nll=test_nll[sl],
                                 n_eval=n_eval, seconds=seconds * len(cand) / len(pl)))
    return out


def refit_chosen(shards: list[pd.DataFrame], every: list[CandidateFits], n_train: int,
                 candidates: dict[str, np.ndarray], options: fitting.FitOptions) -> None:
    """Give each dataset's fits (:func:`fit_datasets`) their :class:`Refit`, all in one
    kernel call: per candidate and fold, the λ of best validation accuracy (ties to the
    smaller λ, the published code's first strict maximum over an ascending grid),
    refitted on the fold's first ``n_train`` training and ``n_eval`` validation triplets
    together, then scored on its test triplets."""
    dt = options.torch_dtype
    names = list(candidates)
    feats = [candidates[name] for name in names]
    chosen, train_val, test = [], [], []
    for shard, fits in zip(shards, every):
        cand, fold = np.divmod(np.arange(len(names) * len(fits.folds)), len(fits.folds))
        lam, val = np.empty(len(cand)), np.empty(len(cand))
        for r, (c, f) in enumerate(zip(cand, fold)):
            mine = np.flatnonzero((fits.candidate == c) & (fits.fold == f))
            val[r] = fits.val_acc[mine].max()
            lam[r] = fits.lam[mine][fits.val_acc[mine] >= val[r] - TIE_TOL].min()
        chosen.append((cand, fold, lam, val, len(train_val)))
        for f in fits.folds:
            train_val.append(np.concatenate([subset(shard, f, "train", n_train),
                                             subset(shard, f, "val", fits.n_eval)]))
            test.append(subset(shard, f, "test", fits.n_eval))
    ps = np.concatenate([first + fold for _, fold, _, _, first in chosen])
    pf = np.concatenate([cand for cand, *_ in chosen])
    pl = np.concatenate([lam for _, _, lam, _, _ in chosen])
    n_eval = every[0].n_eval
    res = fitting.fit(feats, _triplet_sets(train_val, n_train + n_eval, dt), ps, pl,
                      options, problem_features=pf)
    test_acc, test_nll = fitting.evaluate(feats, res.weights,
                                          _triplet_sets(test, n_eval, dt), ps,
                                          problem_features=pf,
                                          similarity=options.similarity,
                                          max_memory_gb=options.max_memory_gb)
    lo = 0
    for fits, (cand, fold, lam, val, _) in zip(every, chosen):
        sl = np.arange(lo, lo + len(cand))
        lo += len(cand)
        fits.refit = Refit(candidate=cand, fold=fold, lam=lam, result=res.select(sl),
                           val_acc=val, test_acc=test_acc[sl], test_nll=test_nll[sl])


def _triplet_sets(judgements: list[np.ndarray], size: int, dtype) -> fitting.TripletSets:
    """The kernel's sets of ``size`` triplets each. Several participants per triplet
    (more judgements than triplets) are merged into counts: the count-weighted objective
    is the mean over the judgements, fitted on at most three rows per triplet."""
    repeats = any(len(j) > size for j in judgements)
    return fitting.TripletSets.from_arrays(judgements, collapse_repeats=repeats, dtype=dtype)


def recovery_rows(fits: CandidateFits, n_train: int, labels: dict[str, object]
                  ) -> pd.DataFrame:
    """The :data:`RECOVERY_COLUMNS` rows of one dataset's fits (:func:`fit_datasets`):
    one row per candidate × fold × λ, then one per candidate × fold for its
    :class:`Refit` (status :data:`~.selection.REFIT`) where it has one; ``seconds`` is the
    dataset's share of the call's wall time divided evenly among its fits. ``labels`` fills experiment, generator and
    seed (and design, when given; else ``random``)."""
    res = fits.result
    parts = [_fit_rows(fits, fits.candidate, fits.fold, fits.lam, res, fits.val_acc,
                       fits.test_acc, fits.test_nll, fits.seconds / len(fits.lam),
                       res.status)]
    if fits.refit is not None:
        ref = fits.refit
        parts.append(_fit_rows(fits, ref.candidate, ref.fold, ref.lam, ref.result,
                               ref.val_acc, ref.test_acc, ref.test_nll, 0.0, REFIT))
    out = pd.concat(parts, ignore_index=True)
    out["n_train"] = np.int32(n_train)
    out["design"] = "random"
    for key, value in labels.items():
        out[key] = value
    out["seed"] = out["seed"].astype(np.int32)
    return out[list(RECOVERY_COLUMNS)]


def _fit_rows(fits: CandidateFits, candidate: np.ndarray, fold: np.ndarray,
              lam: np.ndarray, result: fitting.FitResult, val_acc: np.ndarray,
              test_acc: np.ndarray, test_nll: np.ndarray, seconds: float,
              status: object) -> pd.DataFrame:
    """Recovery rows of fits (grid or refits) of one dataset, without its labels."""
    return pd.DataFrame({
        "candidate": np.asarray(fits.names, dtype=object)[candidate],
        "fold": np.asarray(fits.folds)[fold].astype(np.int32),
        "lambda": lam,
        "train_nll": result.train_nll.double().cpu().numpy(),
        "val_acc": val_acc, "test_acc": test_acc, "test_nll": test_nll,
        "iterations": result.iterations.numpy().astype(np.int32),
        "converged": result.converged.numpy().astype(bool),
        "seconds": seconds,
        "objective": result.objective.double().cpu().numpy(),
        "status": status,
        "n_val": np.int32(fits.n_eval), "n_test": np.int32(fits.n_eval),
    })


def generator_parameters(fits: CandidateFits, rows: pd.DataFrame, shard: pd.DataFrame,
                         generator: str, features: np.ndarray, w_true: np.ndarray,
                         temperature: float, labels: dict[str, object], *,
                         similarity: str = "dot") -> pd.DataFrame:
    """Parameter recovery of one dataset (:func:`.parameters.parameter_rows`): the
    generator's own candidate at the λ the analysis chooses from ``rows``
    (:func:`.selection.candidate_scores`), per fold its refitted Ŵ against the generating
    W, T and ``similarity``. No rows when the generator is not among the candidates."""
    kinds = {"similarity": similarity, "fit_similarity": fits.result.options.similarity}
    if generator not in fits.names:
        return parameter_rows(features, w_true, temperature, {}, {}, {}, labels, **kinds)
    c = fits.names.index(generator)
    d = int(np.shape(features)[1])
    # W is (D, K) padded to the job's largest d: its top d rows, and d columns but for
    # low_rank:k, whose k columns are all its own.
    k = None if fits.result.options.parsed_method.kind == "low_rank" else d
    if fits.refit is not None:  # each fold's refit at its own λ
        ref = fits.refit
        problems = [(fits.folds[ref.fold[r]], ref.lam[r], ref.result.weights[r])
                    for r in np.flatnonzero(ref.candidate == c)]
    else:
        own = rows[rows["candidate"] == generator]
        lam = float(candidate_scores(own)["lambda"].iloc[0])
        problems = [(fits.folds[fits.fold[b]], lam, fits.result.weights[b])
                    for b in np.flatnonzero((fits.candidate == c) & (fits.lam == lam))]
    chosen, objects, test = {}, {}, {}
    for fold, lam, w in problems:
        chosen[fold] = (float(lam), w[:d, :k].double().cpu().numpy())
        part = shard[(shard["fold"] == fold) & (shard["split"] == "test")]
        objects[fold] = np.unique(part[["i", "j", "k"]].to_numpy())
        test[fold] = subset(shard, fold, "test", fits.n_eval)
    return parameter_rows(features, w_true, temperature, chosen, objects, test, labels,
                          **kinds)
