"""Alignment methods: how a problem's parameters θ make its transform W, and the
regularisers R(W) on them, each with its gradient and (for the quadratic ones) Hessian."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import orthogonal

METHODS: tuple[str, ...] = ("zero_shot", "diagonal", "orthogonal", "low_rank:k", "full")


@dataclass(frozen=True)
class Method:
    """An alignment method: how a problem's parameters θ (P,) make its transform W (D, K).

    ``zero_shot``: W = s·I with s = e^θ (one parameter, the inverse temperature's square
    root; no penalty; s > 0 always, so the raw features' ranking, and hence accuracy, is
    kept exactly even for features that predict nothing, where s would shrink to 0);
    ``diagonal``: W = diag(θ); ``low_rank:k``: W ∈ R^{D×k}; ``full``: W ∈ R^{D×D};
    ``orthogonal``: W = diag(e^a)·Q, Q = exp(B − Bᵀ) ∈ SO(d), θ = (a (D), B (D×D)): the
    published code's ``OrthogonalScaledLinear`` (a rotation times a positive diagonal
    scaling, applied there as z = x (Q' D)ᵀ = x D Q'ᵀ, i.e. this W with Q = Q'ᵀ), its
    penalty, like theirs, on that W (:mod:`.orthogonal`). Every W starts at the (scaled,
    truncated) identity, restricted to the problem's own d.
    """

    kind: str
    rank: int = 0

    @classmethod
    def parse(cls, text: str) -> Method:
        """The method a config or CLI names (one of :data:`METHODS`, k ≥ 1)."""
        if text in ("zero_shot", "diagonal", "orthogonal", "full"):
            return cls(text)
        if text.startswith("low_rank:"):
            try:
                k = int(text.split(":", 1)[1])
            except ValueError:
                k = 0
            if k >= 1:
                return cls("low_rank", k)
        raise ValueError(f"unknown alignment method {text!r}; use one of {METHODS} "
                         "(e.g. low_rank:32)")

    def __str__(self) -> str:
        return f"low_rank:{self.rank}" if self.kind == "low_rank" else self.kind

    def out_dim(self, dmax: int) -> int:
        """K, the number of W's columns for features padded to D = ``dmax``."""
        return self.rank if self.kind == "low_rank" else dmax

    def n_params(self, dmax: int) -> int:
        """P, the length of θ for features padded to D = ``dmax``."""
        return {"full": dmax * dmax, "low_rank": dmax * max(self.rank, 1), "diagonal": dmax,
                "zero_shot": 1, "orthogonal": dmax + dmax * dmax}[self.kind]

    @property
    def quadratic_penalty(self) -> bool:
        """Whether eye_distance and l2 are quadratic in θ (every method but orthogonal,
        whose W is not linear in θ): what carrying curvature pairs along the λ path needs."""
        return self.kind != "orthogonal"

    def init(self, dims: torch.Tensor, dmax: int, dtype: torch.dtype) -> torch.Tensor:
        """θ at the identity for problems of dims (B,) → (B, P)."""
        b = len(dims)
        ar = torch.arange(dmax, device=dims.device)
        inside = (ar[None, :] < dims[:, None]).to(dtype)
        if self.kind == "zero_shot":
            return torch.zeros(b, 1, dtype=dtype, device=dims.device)  # s = e^0 = 1
        if self.kind == "diagonal":
            return inside
        if self.kind == "orthogonal":
            return orthogonal.init(inside)
        k = self.out_dim(dmax)
        w = torch.zeros(b, dmax, k, dtype=dtype, device=dims.device)
        diag = torch.arange(min(dmax, k), device=dims.device)
        w[:, diag, diag] = inside[:, : len(diag)]
        return w.reshape(b, -1)

    def matrix(self, theta: torch.Tensor, dmax: int) -> torch.Tensor:
        """W (A, D, K) from θ (A, P)."""
        a = theta.shape[0]
        if self.kind == "zero_shot":
            eye = torch.eye(dmax, dtype=theta.dtype, device=theta.device)
            return theta.exp().reshape(a, 1, 1) * eye
        if self.kind == "diagonal":
            return torch.diag_embed(theta)
        if self.kind == "orthogonal":
            return orthogonal.matrix(theta, dmax)
        return theta.reshape(a, dmax, self.out_dim(dmax))

    def transform(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Z = X W for features x (A, m, D) and θ (A, P) → (A, m, K), without forming W
        where W is diagonal or scalar."""
        if self.kind == "zero_shot":
            return x * theta.exp()[:, :, None]
        if self.kind == "diagonal":
            return x * theta[:, None, :]
        return x @ self.matrix(theta, x.shape[-1])

    def penalty(self, theta: torch.Tensor, regulariser: str, dims: torch.Tensor
                ) -> torch.Tensor:
        """R(W) per problem (A,). eye_distance: ‖W − cI‖²_F with c = tr(W)/n over the
        problem's own n = min(d, K) diagonal; l2: ‖W‖²_F; l1: Σ|W|. zero_shot: 0."""
        dmax = self._dmax(theta)
        mask, n = self.trace_mask(dims, dmax, theta.dtype)
        return self.penalty_and_grad(theta, regulariser, mask, n)[0]

    def backward(self, x: torch.Tensor, theta: torch.Tensor, dz: torch.Tensor
                 ) -> torch.Tensor:
        """∂/∂θ (A, P) from ∂/∂Z (A, m, K) for Z = :meth:`transform` (x (A, m, D), θ)."""
        if self.kind == "zero_shot":
            return (x * dz).sum((1, 2))[:, None] * theta.exp()
        if self.kind == "diagonal":
            return (x * dz).sum(1)
        if self.kind == "orthogonal":
            return orthogonal.matrix_grad(torch.bmm(x.transpose(1, 2), dz), theta)
        return torch.bmm(x.transpose(1, 2), dz).reshape(theta.shape)

    def matrix_grad(self, dw: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """∂/∂θ (A, P) from ∂/∂W (A, D, K) for W = :meth:`matrix` (θ)."""
        if self.kind == "zero_shot":  # W = e^θ·I
            return dw.diagonal(dim1=1, dim2=2).sum(-1, keepdim=True) * theta.exp()
        if self.kind == "diagonal":
            return dw.diagonal(dim1=1, dim2=2)
        if self.kind == "orthogonal":
            return orthogonal.matrix_grad(dw, theta)
        return dw.reshape(theta.shape)

    def trace_mask(self, dims: torch.Tensor, dmax: int, dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The entries of θ on W's diagonal that eye_distance's c·I covers, as 0/1 in θ's
        shape (A, P), and their number (A,), for problems of dims (A,)."""
        k = (dmax if self.kind in ("diagonal", "zero_shot", "orthogonal")
             else min(dmax, self.out_dim(dmax)))
        mask = (torch.arange(k, device=dims.device) < dims[:, None]).to(dtype)
        n = mask.sum(-1).clamp_min(1.0)
        if self.kind in ("full", "low_rank"):
            eye = torch.zeros(len(dims), dmax, self.out_dim(dmax), device=dims.device,
                              dtype=dtype)
            eye.diagonal(dim1=1, dim2=2).copy_(mask)
            mask = eye.reshape(len(dims), -1)
        return mask, n

    def penalty_and_grad(self, theta: torch.Tensor, regulariser: str, mask: torch.Tensor,
                         n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`penalty` (A,) and its gradient (A, P) (for l1 the subgradient sign(θ)),
        with ``mask`` and ``n`` from :meth:`trace_mask`."""
        if self.kind == "zero_shot":
            return torch.zeros_like(theta[:, 0]), torch.zeros_like(theta)
        if self.kind == "orthogonal":
            return orthogonal.penalty_and_grad(theta, regulariser, mask, n)
        if regulariser == "l1":
            return theta.abs().sum(-1), theta.sign()
        if regulariser == "l2":
            return (theta * theta).sum(-1), 2.0 * theta
        # ‖W − cI‖² with c = tr W / n, summed from W − cI itself: the shorter ‖W‖² − c·tr W
        # cancels catastrophically in float32 once ‖W‖² is large (d = 256 at c ≈ 4: the
        # penalty off by 4e-4, times λ in the objective). Its gradient is 2(W − cI) (c's
        # own derivative cancels).
        c = (theta * mask).sum(-1) / n
        r = torch.addcmul(theta, c[:, None], mask, value=-1.0)
        return (r * r).sum(-1), r * 2.0

    def penalty_hvp(self, v: torch.Tensor, regulariser: str, mask: torch.Tensor,
                    n: torch.Tensor) -> torch.Tensor:
        """∇²R·v for the columns of v (A, P, V), with ``mask`` and ``n`` from
        :meth:`trace_mask`: eye_distance and l2 are quadratic, so this is
        :meth:`penalty_and_grad`'s gradient at θ = v (∇R(0) = 0). Not for l1."""
        if self.kind == "zero_shot":
            return torch.zeros_like(v)
        if not self.quadratic_penalty:
            raise ValueError(f"{self} has no constant penalty Hessian")
        if regulariser == "l2":
            return 2.0 * v
        if regulariser != "eye_distance":
            raise ValueError(f"{regulariser} has no Hessian")
        c = (v * mask[:, :, None]).sum(1, keepdim=True) / n[:, None, None]
        return 2.0 * torch.addcmul(v, c, mask[:, :, None], value=-1.0)

    def _dmax(self, theta: torch.Tensor) -> int:
        """D from θ's length P."""
        p = theta.shape[-1]
        if self.kind == "diagonal":
            return p
        if self.kind == "low_rank":
            return p // self.rank
        if self.kind == "orthogonal":  # P = D + D²
            return int(round((math.sqrt(1 + 4 * p) - 1) / 2))
        return p // int(round(math.sqrt(p)))
