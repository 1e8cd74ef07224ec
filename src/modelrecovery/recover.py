"""One recovery job: refit every candidate to one simulated dataset at one training size."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import probe
from .simulate import eval_size, subset

RECOVERY_COLUMNS: tuple[str, ...] = (
    "experiment", "generator", "candidate", "n_train", "seed", "fold", "lambda",
    "train_nll", "val_acc", "test_acc", "test_nll", "iterations", "converged", "seconds",
    "objective", "status", "n_val", "n_test",
)


def recovery_fits(shard: pd.DataFrame, n_train: int, candidates: dict[str, np.ndarray],
                  lambdas: list[float], options: probe.FitOptions, *, eval_fraction: float,
                  labels: dict[str, object]) -> pd.DataFrame:
    """Fit each candidate for every λ × fold on the first ``n_train`` training triplets.

    shard: a simulated dataset (see :func:`simulate.simulate_dataset`); candidates:
    name → features (n, d). Returns one row per candidate × fold × λ with the
    columns of :data:`RECOVERY_COLUMNS`. All fits run as one batched kernel call;
    ``seconds`` is its wall time divided evenly among the fits. ``labels`` fills
    experiment, generator and seed.
    """
    folds = sorted(int(f) for f in shard["fold"].unique())
    n_eval = eval_size(n_train, eval_fraction)
    dt = options.torch_dtype
    train = probe.TripletSets.from_arrays([subset(shard, f, "train", n_train) for f in folds],
                                          dtype=dt)
    val = probe.TripletSets.from_arrays([subset(shard, f, "val", n_eval) for f in folds],
                                        dtype=dt)
    test = probe.TripletSets.from_arrays([subset(shard, f, "test", n_eval) for f in folds],
                                         dtype=dt)
    lam = np.asarray(lambdas, dtype=np.float64)
    if options.parsed_method.kind == "zero_shot":
        lam = np.zeros(1)  # W = s·I has no penalty: one fit per fold serves every λ
    names = list(candidates)
    feats = [candidates[name] for name in names]
    # One kernel call for every candidate × fold × λ: problem b is candidate pf[b] on
    # fold ps[b] at λ pl[b].
    n_c, n_f, n_l = len(names), len(folds), len(lam)
    pf = np.repeat(np.arange(n_c), n_f * n_l)
    ps = np.tile(np.repeat(np.arange(n_f), n_l), n_c)
    pl = np.tile(lam, n_c * n_f)
    start = time.perf_counter()
    res = probe.fit(feats, train, ps, pl, options, problem_features=pf)
    val_acc, _ = probe.evaluate(feats, res.weights, val, ps, problem_features=pf)
    test_acc, test_nll = probe.evaluate(feats, res.weights, test, ps, problem_features=pf)
    seconds = (time.perf_counter() - start) / len(ps)
    out = pd.DataFrame({
        "candidate": np.asarray(names, dtype=object)[pf],
        "fold": np.asarray(folds)[ps].astype(np.int32),
        "lambda": pl,
        "train_nll": res.train_nll.double().cpu().numpy(),
        "val_acc": val_acc, "test_acc": test_acc, "test_nll": test_nll,
        "iterations": res.iterations.numpy().astype(np.int32),
        "converged": res.converged.numpy().astype(bool),
        "seconds": seconds,
        "objective": res.objective.double().cpu().numpy(),
        "status": res.status,
        "n_val": np.int32(n_eval), "n_test": np.int32(n_eval),
    })
    out["n_train"] = np.int32(n_train)
    for key, value in labels.items():
        out[key] = value
    out["seed"] = out["seed"].astype(np.int32)
    return out[list(RECOVERY_COLUMNS)]
