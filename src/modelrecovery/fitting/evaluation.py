"""The kernel's objective over a batch (:class:`Objective`) and the solver's view of
its problems (:class:`Problems`): the loss of :mod:`.loss` evaluated with a
hand-written gradient, on each problem's local objects in the batch's gather mode.
"""

from __future__ import annotations

import torch

from .batch import Batch


class Objective:
    """The kernel's objective over a batch's problems, and its evaluation counts."""

    def __init__(self, batch: Batch, dim: int) -> None:
        self.batch = batch
        self.d = dim  # D, the padded feature dimension
        self.evaluations = 0
        self.problem_evaluations = 0

    def parts(self, w: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective and data NLL (both (A,)) of problems ``idx`` at W (A, D, D),
        by the plain computation (differentiable)."""
        return self.batch.parts(w, idx)

    def view(self, idx: torch.Tensor, symmetric: bool = False) -> Problems:
        """Problems ``idx`` (A,) with their data gathered for repeated evaluation;
        ``symmetric``: gradients within the symmetric matrices (see :class:`Problems`)."""
        return Problems(self, idx, symmetric=symmetric)

    def __call__(self, flat: torch.Tensor, idx: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective (A,) and analytic gradient (A, P) of problems ``idx`` at θ (A, P)."""
        return self.view(idx)(flat)


class Problems:
    """Problems of a batch with their data gathered once: the solver's view
    (:class:`.solver_interface.SolverProblems`), evaluated with a hand-written gradient.

    Every gather mode works on each problem's local objects (m of them); ``index`` and
    ``ends`` hold the pairs in the mode's layout (:meth:`.gather.Gather.index`). The
    gradient: with G = ∂NLL/∂logits, scattered into the m × m pair matrix (or onto the
    rows), ∂NLL/∂Z = (G + Gᵀ) Z and ∂NLL/∂W = Xᵀ ∂NLL/∂Z; in pairs mode ∂NLL/∂(WWᵀ) = A =
    Σ_pairs g x_i x_jᵀ and ∂NLL/∂W = (A + Aᵀ) W. The tests hold each to autograd on
    :meth:`.batch.Batch.parts`. With ``symmetric`` the problems live in the symmetric
    matrices and the gradient is its projection there, (∇ + ∇ᵀ)/2: from a symmetric start
    every iterate stays symmetric. ``share`` (A, N) is each triplet's count over its
    problem's total.
    """

    def __init__(self, objective: Objective, idx: torch.Tensor, *,
                 parent: Problems | None = None, symmetric: bool = False) -> None:
        self.objective, self.idx = objective, idx
        self.symmetric = parent.symmetric if parent is not None else symmetric
        batch = objective.batch
        self.gather = batch.gather
        self.similarity = batch.similarity
        if parent is not None:  # a subset of a view: gather from it, not from the batch
            self.x, self.index = parent.x[idx], parent.index[idx]
            self.share = parent.share[idx]
            self.lam, self.dims = parent.lam[idx], parent.dims[idx]
            self.mask, self.n_diag = parent.mask[idx], parent.n_diag[idx]
            self.ends = None if parent.ends is None else parent.ends[idx]
            self.idx = parent.idx[idx]
        else:
            blk = batch.block[idx]
            self.x = batch.local_x[blk]
            i, j, k = batch.local_t[blk].unbind(-1)
            self.index, self.ends = self.gather.index(self.x, i, j, k)
            counts = batch.counts[batch.set_of[idx]]
            self.share = counts / counts.sum(1, keepdim=True)
            self.lam, self.dims = batch.lambdas[idx], batch.dims[idx]
            self.mask, self.n_diag = batch.method.trace_mask(self.dims, self.x.shape[-1],
                                                             self.x.dtype)
        self.offset = (torch.arange(len(idx), device=idx.device) * self.x.shape[1])[:, None]
        self.flat = self.gather.positions(self.index, self.offset)

    def select(self, sub: torch.Tensor) -> Problems:
        return Problems(self.objective, sub, parent=self)

    def replace(self, slots: torch.Tensor, ids: torch.Tensor) -> Problems:
        """Slots ``slots`` now hold the batch's problems ``ids`` (in place)."""
        batch = self.objective.batch
        if bool((batch.block[ids] == batch.block[self.idx[slots]]).all()):
            # The next λ of a chain: the same features and set, so the same data.
            self.idx[slots], self.lam[slots] = ids, batch.lambdas[ids]
            return self
        new = Problems(self.objective, ids, symmetric=self.symmetric)
        for name in ("idx", "x", "index", "share", "lam", "dims", "mask", "n_diag"):
            getattr(self, name)[slots] = getattr(new, name)
        if self.ends is not None:
            self.ends[slots] = new.ends
        self.flat = self.gather.positions(self.index, self.offset)
        return self

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obj = self.objective
        obj.evaluations += 1
        obj.problem_evaluations += int(theta.shape[0])
        batch = obj.batch
        method = batch.method
        a = theta.shape[0]
        theta = theta.detach()
        logits, saved = self.gather.logits(self, method, theta)
        # NLL of choice 0 = −log p₀; its gradient is the choice probabilities p, minus 1
        # for choice 0. (One fused log_softmax: 20–25 % faster than the shifted
        # exp/sum/log by hand, and as stable.)
        logp = torch.log_softmax(logits, 1)
        nll = -(logp[:, 0] * self.share).sum(1)
        g = logp.exp_().mul_(self.share[:, None])  # ∂NLL/∂logits (A, 3, N)
        g[:, 0] -= self.share
        dw = self.gather.backward(self, method, theta, g, saved)
        pen, dpen = method.penalty_and_grad(theta, batch.regulariser, self.mask, self.n_diag)
        if self.symmetric:  # the penalty's gradient is symmetric at symmetric W already
            dw = dw.view(a, self.x.shape[-1], -1)
            dw = (dw + dw.transpose(1, 2)).mul_(0.5).view(a, -1)
        grad = torch.addcmul(dw, self.lam[:, None], dpen)
        return torch.addcmul(nll, self.lam, pen), grad
