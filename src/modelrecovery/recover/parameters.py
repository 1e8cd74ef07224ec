"""Parameter recovery: how close the generator's refitted transform is to the one that
generated its data (Wilson & Collins, "Ten simple rules for the computational modeling
of behavioral data", eLife 2019, rule 6: recover the parameters, not only the model).

A generator simulates choices from S = X W Wᵀ Xᵀ at temperature T, so its logits are
X M Xᵀ with M = W Wᵀ / T. Its own candidate, refitted to those choices, gives
M̂ = Ŵ Ŵᵀ (at T = 1). Three scores compare them, each per fold at the λ the analysis
chooses (:func:`.selection.candidate_scores`):

- ``similarity_r``: the Pearson correlation of S and Ŝ over the object pairs i < j of the
  fold's test objects (scale-free: a refit that is right up to its overall scale scores 1);
- ``metric_error``: ‖c M̂ − M‖_F / ‖M‖_F at the least-squares scale c = ⟨M, M̂⟩ / ⟨M̂, M̂⟩
  (scale-aligned, because the penalty shrinks M̂ and the data fix its scale only through
  T); identifiable only up to the features' null space, so it is measured on the
  features' row space, as X M Xᵀ sees it (M projected onto span(Xᵀ));
- ``accuracy_gap``: the test accuracy (ties split) of S minus that of Ŝ on the fold's
  test triplets; temperature-free, as accuracy ignores the scale of the logits.

Under a cosine or euclidean similarity S and Ŝ are those of X W and X Ŵ (each under its
own: the generator's, and the refit's experiment's); both are functions of X M Xᵀ, so
``metric_error`` compares the same M (scale-aligned, as the cosine leaves M's scale free).

This module is numpy only: the recover job computes the rows (:func:`parameter_rows`),
and the analysis summarises them (:func:`modelrecovery.analysis.parameters.parameter_curves`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..io.contracts import PARAMETER_COLUMNS
from ..oddoneout import accuracy, similarity as similarity_matrix

#: The scores of each refit (the module docstring), in the order of the row's columns.
SCORES: tuple[str, ...] = ("similarity_r", "metric_error", "accuracy_gap")


@dataclass(frozen=True)
class _Generating:
    """What every refit of one generator is scored against: its similarity S = X M Xᵀ
    (n, n), an orthonormal basis V (d, r) of X's row space, and Vᵀ M V (r, r)."""

    sim: np.ndarray
    basis: np.ndarray
    metric: np.ndarray


def _generating(x: np.ndarray, w_true: np.ndarray, temperature: float,
                kind: str = "dot") -> _Generating:
    m_true = w_true @ w_true.T / temperature
    _, sv, vh = np.linalg.svd(x, full_matrices=False)
    v = vh[: int((sv > sv.max() * max(x.shape) * np.finfo(np.float64).eps).sum())].T
    sim = (x @ m_true @ x.T if kind == "dot"
           else similarity_matrix(x, w_true, kind) / temperature)
    return _Generating(sim=sim, basis=v, metric=v.T @ m_true @ v)


def _scores(gen: _Generating, x: np.ndarray, w_fit: np.ndarray, objects: np.ndarray,
            test: np.ndarray, kind: str = "dot") -> dict[str, float]:
    m_fit = w_fit @ w_fit.T
    s_fit = x @ m_fit @ x.T if kind == "dot" else similarity_matrix(x, w_fit, kind)
    pairs = tuple(np.asarray(objects)[i] for i in np.triu_indices(len(objects), 1))
    a, b = gen.sim[pairs], s_fit[pairs]
    r = (float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else np.nan)
    p_fit = gen.basis.T @ m_fit @ gen.basis
    denom = float(np.sum(p_fit * p_fit))
    scale = float(np.sum(gen.metric * p_fit)) / denom if denom > 0 else 0.0
    err = float(np.linalg.norm(scale * p_fit - gen.metric) / np.linalg.norm(gen.metric))
    gap = accuracy(gen.sim, test) - accuracy(s_fit, test)
    return {"similarity_r": r, "metric_error": err, "accuracy_gap": float(gap)}


def parameter_rows(features: np.ndarray, w_true: np.ndarray, temperature: float,
                   fits: dict[int, tuple[float, np.ndarray]],
                   test_objects: dict[int, np.ndarray], test: dict[int, np.ndarray],
                   labels: dict[str, object], *, similarity: str = "dot",
                   fit_similarity: str = "dot") -> pd.DataFrame:
    """One row per fold of :data:`PARAMETER_COLUMNS`: the refit's λ, its transform Ŵ
    (``weights``: d·k̂ float64 values in row-major order, ``dim`` d, ``rank`` k̂) and its
    scores (:data:`SCORES`). fits: fold → (λ, Ŵ (d, k̂)); test_objects and test: fold →
    that fold's test objects and test triplets; labels: experiment, design, generator,
    n_train, seed. The generator's side (its n × n similarity, X's row space) is
    computed once for all folds. ``similarity`` is the generator's, ``fit_similarity`` the
    refit's (its experiment's): S and Ŝ are each under their own."""
    rows = []
    if fits:
        x = np.asarray(features, dtype=np.float64)
        gen = _generating(x, w_true, temperature, similarity)
    for fold, (lam, w_fit) in sorted(fits.items()):
        w = np.asarray(w_fit, dtype=np.float64)
        rows.append({**labels, "fold": int(fold), "lambda": float(lam),
                     "dim": int(w.shape[0]), "rank": int(w.shape[1]),
                     "weights": w.ravel().tolist(),
                     **_scores(gen, x, w, test_objects[fold], test[fold], fit_similarity)})
    frame = pd.DataFrame(rows, columns=list(PARAMETER_COLUMNS))
    for col in ("n_train", "seed", "dim", "rank"):
        frame[col] = frame[col].astype(np.int32)
    frame["fold"] = frame["fold"].astype(np.int8)
    return frame
