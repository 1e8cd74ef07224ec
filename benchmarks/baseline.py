"""The one-fit-at-a-time baseline, written only for the benchmark.

It mirrors the published approach: for every candidate × fold × λ, a fresh W = I and a
``torch.optim.LBFGS`` (lr 1, max_iter 150, history 50, strong-Wolfe line search) stepped
until the relative change of the loss between outer steps is below 1e-7; the loss is the
mean NLL over the triplets, gathered from the full similarity matrix, plus the
eye_distance penalty λ‖W − cI‖²_F with c = tr(W)/d.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def eye_distance(w: torch.Tensor) -> torch.Tensor:
    c = torch.trace(w) / w.shape[0]
    return (w - c * torch.eye(w.shape[0], dtype=w.dtype)).square().sum()


def loss_terms(x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    z = x @ w
    s = z @ z.T
    logits = torch.stack([s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]], 1)
    return (torch.logsumexp(logits, 1) - logits[:, 0]).mean()


def fit_one(x: np.ndarray, triplets: np.ndarray, lam: float, dtype: torch.dtype,
            rel_tol: float = 1e-7, max_outer: int = 1000) -> dict[str, float]:
    """One fit; returns final objective, W and the number of outer steps."""
    xt = torch.as_tensor(x, dtype=dtype)
    tt = torch.tensor(np.asarray(triplets), dtype=torch.long)
    w = torch.eye(x.shape[1], dtype=dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=150, history_size=50,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_terms(xt, w, tt) + lam * eye_distance(w)
        loss.backward()
        return loss

    prev = float("inf")
    outer = 0
    for outer in range(1, max_outer + 1):
        cur = float(opt.step(closure).detach())
        if abs(prev - cur) < rel_tol * abs(cur):
            break
        prev = cur
    with torch.no_grad():
        final = float(loss_terms(xt, w, tt) + lam * eye_distance(w))
    return {"objective": final, "weights": w.detach(), "outer_steps": outer}


def run(candidates: dict[str, np.ndarray], train: list[np.ndarray], lambdas: list[float],
        dtype: torch.dtype) -> tuple[list[dict[str, object]], float]:
    """Loop candidates × folds × λ in Python; returns one record per fit and wall seconds."""
    records = []
    start = time.perf_counter()
    for name, x in candidates.items():
        for fold, t in enumerate(train):
            for lam in lambdas:
                rec = fit_one(x, t, lam, dtype)
                records.append({"candidate": name, "fold": fold, "lambda": lam, **rec})
    return records, time.perf_counter() - start
