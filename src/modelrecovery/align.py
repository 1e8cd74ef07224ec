"""Aligning a model to human triplets: λ by K-fold cross-validation, then a final fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import fitting
from .oddoneout import accuracy, similarity


@dataclass
class Alignment:
    """The fitted transform W (d, d), its λ, the CV table, and human-data scores."""

    weights: np.ndarray
    lam: float
    cv: pd.DataFrame
    final: dict[str, object]
    human: dict[str, float]


def choose_lambda(table: pd.DataFrame) -> float:
    """λ with the best mean validation accuracy; ties go to lower validation NLL, then larger λ.

    ``table`` has one row per (fold, lambda) with ``val_acc`` and ``val_nll``.
    """
    mean = table.groupby("lambda")[["val_acc", "val_nll"]].mean().reset_index()
    mean = mean.sort_values(["val_acc", "val_nll", "lambda"], ascending=[False, True, False])
    return float(mean["lambda"].iloc[0])


def align_to_humans(features: np.ndarray, train: np.ndarray, test: np.ndarray,
                    lambdas: list[float], cv_folds: int, rng: np.random.Generator,
                    options: fitting.FitOptions) -> Alignment:
    """Fit W on human training triplets (N, 3) with λ chosen by ``cv_folds``-fold CV.

    Folds split the triplets (not the objects): the generator is meant to model the
    humans on these objects. Returns W refitted on all training triplets at that λ.
    """
    parts = np.array_split(rng.permutation(len(train)), cv_folds)
    fit_sets = [train[np.concatenate([p for h, p in enumerate(parts) if h != f])]
                for f in range(cv_folds)]
    val_sets = [train[p] for p in parts]
    lam = np.asarray(lambdas, dtype=np.float64)
    if options.parsed_method.kind == "zero_shot":
        lam = np.zeros(1)  # W = s·I has no penalty, so no λ to choose
    problem_set = np.repeat(np.arange(cv_folds), len(lam))
    problem_lam = np.tile(lam, cv_folds)
    dt = options.torch_dtype
    res = fitting.fit(features, fitting.TripletSets.from_arrays(fit_sets, dtype=dt),
                      problem_set, problem_lam, options)
    val_acc, val_nll = fitting.evaluate(features, res.weights,
                                        fitting.TripletSets.from_arrays(val_sets, dtype=dt),
                                        problem_set)
    cv = pd.DataFrame({"fold": problem_set, "lambda": problem_lam, "val_acc": val_acc,
                       "val_nll": val_nll, "iterations": res.iterations.numpy(),
                       "converged": res.converged.numpy(), "status": res.status})
    best = choose_lambda(cv)
    final = fitting.fit(features, fitting.TripletSets.from_arrays([train], dtype=dt),
                        np.zeros(1, dtype=np.int64), np.array([best]), options)
    w = final.weights[0].detach().to(torch.float64).cpu().numpy()
    sim_probe, sim_raw = similarity(features, w), similarity(features)
    human = {"zero_shot_test_acc": accuracy(sim_raw, test),
             "probed_test_acc": accuracy(sim_probe, test),
             "probed_train_acc": accuracy(sim_probe, train),
             "cv_val_acc": float(cv[cv["lambda"] == best]["val_acc"].mean())}
    info = {"objective": float(final.objective[0]), "train_nll": float(final.train_nll[0]),
            "iterations": int(final.iterations[0]), "converged": bool(final.converged[0]),
            "status": final.status[0], "seconds": final.seconds}
    return Alignment(weights=w, lam=best, cv=cv, final=info, human=human)
