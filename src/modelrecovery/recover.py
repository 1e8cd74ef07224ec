"""One recovery job: refit every candidate to one simulated dataset at one training size."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import fitting
from .io.contracts import RECOVERY_COLUMNS
from .simulate import eval_size, subset


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


def fit_candidates(shard: pd.DataFrame, n_train: int, candidates: dict[str, np.ndarray],
                   lambdas: list[float], options: fitting.FitOptions, *,
                   eval_fraction: float) -> CandidateFits:
    """Fit each candidate for every λ × fold on the first ``n_train`` training triplets
    of each fold of ``shard`` (see :func:`simulate.simulate_dataset`) and score it on the
    first ``eval_size(n_train)`` validation and test triplets. candidates: name →
    features (n, d)."""
    folds = sorted(int(f) for f in shard["fold"].unique())
    n_eval = eval_size(n_train, eval_fraction)
    dt = options.torch_dtype
    sets = {split: fitting.TripletSets.from_arrays(
        [subset(shard, f, split, size) for f in folds], dtype=dt)
        for split, size in (("train", n_train), ("val", n_eval), ("test", n_eval))}
    lam = np.asarray(lambdas, dtype=np.float64)
    if options.parsed_method.kind == "zero_shot":
        lam = np.zeros(1)  # W = s·I has no penalty: one fit per fold serves every λ
    names = list(candidates)
    feats = [candidates[name] for name in names]
    n_c, n_f, n_l = len(names), len(folds), len(lam)
    pf = np.repeat(np.arange(n_c), n_f * n_l)
    ps = np.tile(np.repeat(np.arange(n_f), n_l), n_c)
    pl = np.tile(lam, n_c * n_f)
    start = time.perf_counter()
    res = fitting.fit(feats, sets["train"], ps, pl, options, problem_features=pf)
    val_acc, val_nll = fitting.evaluate(feats, res.weights, sets["val"], ps,
                                        problem_features=pf)
    test_acc, test_nll = fitting.evaluate(feats, res.weights, sets["test"], ps,
                                          problem_features=pf)
    return CandidateFits(names=names, folds=folds, candidate=pf, fold=ps, lam=pl,
                         result=res, val_acc=val_acc, val_nll=val_nll, test_acc=test_acc,
                         test_nll=test_nll, n_eval=n_eval,
                         seconds=time.perf_counter() - start)


def recovery_fits(shard: pd.DataFrame, n_train: int, candidates: dict[str, np.ndarray],
                  lambdas: list[float], options: fitting.FitOptions, *, eval_fraction: float,
                  labels: dict[str, object]) -> pd.DataFrame:
    """One row per candidate × fold × λ of :func:`fit_candidates`, with the columns of
    :data:`RECOVERY_COLUMNS`. All fits run as one batched kernel call; ``seconds`` is its
    wall time divided evenly among the fits. ``labels`` fills experiment, generator and
    seed (and design, when given; else ``random``)."""
    fits = fit_candidates(shard, n_train, candidates, lambdas, options,
                          eval_fraction=eval_fraction)
    res = fits.result
    out = pd.DataFrame({
        "candidate": np.asarray(fits.names, dtype=object)[fits.candidate],
        "fold": np.asarray(fits.folds)[fits.fold].astype(np.int32),
        "lambda": fits.lam,
        "train_nll": res.train_nll.double().cpu().numpy(),
        "val_acc": fits.val_acc, "test_acc": fits.test_acc, "test_nll": fits.test_nll,
        "iterations": res.iterations.numpy().astype(np.int32),
        "converged": res.converged.numpy().astype(bool),
        "seconds": fits.seconds / len(fits.lam),
        "objective": res.objective.double().cpu().numpy(),
        "status": res.status,
        "n_val": np.int32(fits.n_eval), "n_test": np.int32(fits.n_eval),
    })
    out["n_train"] = np.int32(n_train)
    out["design"] = "random"
    for key, value in labels.items():
        out[key] = value
    out["seed"] = out["seed"].astype(np.int32)
    return out[list(RECOVERY_COLUMNS)]
