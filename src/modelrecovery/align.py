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
                                        problem_set, similarity=options.similarity,
                                        max_memory_gb=options.max_memory_gb)
    cv = pd.DataFrame({"fold": problem_set, "lambda": problem_lam, "val_acc": val_acc,
                       "val_nll": val_nll, "iterations": res.iterations.numpy(),
                       "converged": res.converged.numpy(), "status": res.status})
    best = choose_lambda(cv)
    w, info = fit_at(features, train, best, options)
    human = human_scores(features, w, train, test, options.similarity)
    human["cv_val_acc"] = float(cv[cv["lambda"] == best]["val_acc"].mean())
    return Alignment(weights=w, lam=best, cv=cv, final=info, human=human)


def fit_at(features: np.ndarray, train: np.ndarray, lam: float,
           options: fitting.FitOptions) -> tuple[np.ndarray, dict[str, object]]:
    """W (d, k) fitted to the triplets ``train`` (N, 3) at λ = ``lam``, and the fit's
    record (objective and training NLL in nats per judgement, iterations, status)."""
    final = fitting.fit(features, fitting.TripletSets.from_arrays(
        [train], dtype=options.torch_dtype), np.zeros(1, dtype=np.int64),
        np.array([float(lam)]), options)
    w = final.weights[0].detach().to(torch.float64).cpu().numpy()
    info = {"objective": float(final.objective[0]), "train_nll": float(final.train_nll[0]),
            "iterations": int(final.iterations[0]), "converged": bool(final.converged[0]),
            "status": final.status[0], "seconds": final.seconds}
    return w, info


def human_scores(features: np.ndarray, w: np.ndarray, train: np.ndarray,
                 test: np.ndarray, kind: str = "dot") -> dict[str, float]:
    """Accuracies (fractions of triplets) on the human data: zero-shot (W = I) and
    probed on the test triplets, probed on the training triplets, both under the
    similarity ``kind``."""
    sim_probe = similarity(features, w, kind)
    return {"zero_shot_test_acc": accuracy(similarity(features, kind=kind), test),
            "probed_test_acc": accuracy(sim_probe, test),
            "probed_train_acc": accuracy(sim_probe, train)}


def generator_instance(features: np.ndarray, train: np.ndarray, lam: float,
                       rng: np.random.Generator, options: fitting.FitOptions
                       ) -> tuple[np.ndarray, dict[str, object]]:
    """One more instance of a generator, as cognitive modelling draws fresh parameters
    per simulation: W refitted at the alignment's λ to a bootstrap resample of the human
    training triplets (N rows drawn with replacement from ``rng``). Returns W (d, k) and
    the fit's record (:func:`fit_at`)."""
    rows = rng.integers(0, len(train), size=len(train))
    return fit_at(features, train[rows], lam, options)
