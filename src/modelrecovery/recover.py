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
    columns of :data:`RECOVERY_COLUMNS`; ``seconds`` is the batch's wall time divided
    evenly among its fits. ``labels`` fills experiment, generator and seed.
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
    problem_set = np.repeat(np.arange(len(folds)), len(lam))
    problem_lam = np.tile(lam, len(folds))
    frames = []
    for name, x in candidates.items():
        start = time.perf_counter()
        res = probe.fit(x, train, problem_set, problem_lam, options)
        val_acc, _ = probe.evaluate(x, res.weights, val, problem_set)
        test_acc, test_nll = probe.evaluate(x, res.weights, test, problem_set)
        seconds = (time.perf_counter() - start) / len(problem_set)
        frames.append(pd.DataFrame({
            "candidate": name,
            "fold": np.asarray(folds)[problem_set].astype(np.int32),
            "lambda": problem_lam,
            "train_nll": res.train_nll.double().cpu().numpy(),
            "val_acc": val_acc, "test_acc": test_acc, "test_nll": test_nll,
            "iterations": res.iterations.numpy().astype(np.int32),
            "converged": res.converged.numpy().astype(bool),
            "seconds": seconds,
            "objective": res.objective.double().cpu().numpy(),
            "status": res.status,
            "n_val": np.int32(n_eval), "n_test": np.int32(n_eval),
        }))
    out = pd.concat(frames, ignore_index=True)
    out["n_train"] = np.int32(n_train)
    for key, value in labels.items():
        out[key] = value
    out["seed"] = out["seed"].astype(np.int32)
    return out[list(RECOVERY_COLUMNS)]
