"""The torch fitting kernel: batched, full-batch L-BFGS for odd-one-out linear probes.

A *problem* is one fit: one candidate's features X (n, d), one triplet set (a fold's
training triplets) and one regularisation strength λ. Many problems are solved at once,
also across candidates of different d: W is stacked to (B, D, D) with D the largest d,
each problem's W living in its own top-left d × d block (exact: the padded rows and
columns have zero features, zero gradient and zero penalty, so they stay zero). The
optimiser is L-BFGS with each problem's own state (curvature history, step length, line
search, convergence), so a batched fit takes the same steps as the problem fitted alone;
problems that have converged leave the batch and stop costing work.

Objective of problem b (set f, strength λ_b), pair logits as in :mod:`oddoneout`:

    L_b(W) = Σ_t w_t [logsumexp(S_ij, S_ik, S_jk) − S_ij] / Σ_t w_t  +  λ_b R(W)
    R(W)   = ‖W − cI‖²_F, c = tr(W)/d  (eye_distance)   or   ‖W‖²_F  (l2)

with S = (X W)(X W)ᵀ at T = 1 (the scale of W absorbs the temperature).

Three exact ways to get the pair logits, chosen per call by cost and memory:
``similarity`` computes S over just the objects a triplet set touches (a fold's training
objects) in one batched matmul and gathers; ``rows`` gathers the rows of Z = X W for each
triplet (cheaper when the triplets cover few of the n² pairs); ``pairs`` gathers the
features of both ends of every pair once, before the first iteration, and forms each
logit as x_iᵀ (W Wᵀ) x_j, its gradient as (A + Aᵀ) W with A = Σ_pairs g x_i x_jᵀ (no
gathers or scatters per iteration: cheapest for small D and few triplets).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from .errors import ResourceError
from .lbfgs import STATUS, Settings, Start, minimise

log = logging.getLogger(__name__)

Regulariser = Literal["eye_distance", "l2", "l1"]
REGULARISERS: tuple[str, ...] = ("eye_distance", "l2", "l1")
METHODS: tuple[str, ...] = ("zero_shot", "diagonal", "low_rank:k", "full")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_LOG3 = math.log(3.0)
# A warm start needs a previous solution that predicts better than chance by this much
# (nats per triplet); a collapsed W ≈ 0 sits at log 3 and would trap the next λ.
_WARM_MARGIN = 1e-2
# A fit that improves on W = 0 (objective log 3: uniform choices, no penalty) by less
# than this (nats per triplet) is returned as W = 0. Near 0 the solver leaves a residue
# (logit gaps of 1e-15 to 3e-5 nats on the default world's collapsed fits) whose
# direction, and so its ranking of triplets, is arbitrary: the same fit at float32/config
# and float64/tight tolerances scored test accuracies from 0 to 0.54. A gain this small
# would take ~10¹² judgements to show; float32 resolves log 3 only to ~1e-7. Not for
# zero_shot: W = s·I ranks triplets as the raw features do at every s > 0, and W = 0 is
# outside its family (a generator's calibration rescales s anyway).
_CHANCE_TOL = 1e-6
# Symmetric W: an eigenvalue below −_FLIP_TOL·max|eigenvalue| is a sign flip, not
# rounding; a problem is restarted from |W| at most _MAX_UNFLIPS times.
_FLIP_TOL = 1e-6
_MAX_UNFLIPS = 3


class MemoryLimitError(ResourceError):
    """A single fit would need more memory than the configured limit allows."""


@dataclass(frozen=True)
class Method:
    """An alignment method: how a problem's parameters θ (P,) make its transform W (D, K).

    ``zero_shot``: W = s·I with s = e^θ (one parameter, the inverse temperature's square
    root; no penalty; s > 0 always, so the raw features' ranking, and hence accuracy, is
    kept exactly even for features that predict nothing, where s would shrink to 0); ``diagonal``: W = diag(θ); ``low_rank:k``: W ∈ R^{D×k}; ``full``: W ∈ R^{D×D}.
    Every W starts at the (scaled, truncated) identity, restricted to the problem's own d.
    """

    kind: str
    rank: int = 0

    @classmethod
    def parse(cls, text: str) -> Method:
        if text in ("zero_shot", "diagonal", "full"):
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
        return self.rank if self.kind == "low_rank" else dmax

    def n_params(self, dmax: int) -> int:
        return {"full": dmax * dmax, "low_rank": dmax * max(self.rank, 1), "diagonal": dmax,
                "zero_shot": 1}[self.kind]

    def init(self, dims: torch.Tensor, dmax: int, dtype: torch.dtype) -> torch.Tensor:
        """θ at the identity for problems of dims (B,) → (B, P)."""
        b = len(dims)
        ar = torch.arange(dmax, device=dims.device)
        inside = (ar[None, :] < dims[:, None]).to(dtype)
        if self.kind == "zero_shot":
            return torch.zeros(b, 1, dtype=dtype, device=dims.device)  # s = e^0 = 1
        if self.kind == "diagonal":
            return inside
        k = self.out_dim(dmax)
        w = torch.zeros(b, dmax, k, dtype=dtype, device=dims.device)
        diag = torch.arange(min(dmax, k), device=dims.device)
        w[:, diag, diag] = inside[:, : len(diag)]
        return w.reshape(b, -1)

    def weights(self, theta: torch.Tensor, dmax: int) -> torch.Tensor:
        """W (A, D, K) from θ (A, P)."""
        a = theta.shape[0]
        if self.kind == "zero_shot":
            eye = torch.eye(dmax, dtype=theta.dtype, device=theta.device)
            return theta.exp().reshape(a, 1, 1) * eye
        if self.kind == "diagonal":
            return torch.diag_embed(theta)
        return theta.reshape(a, dmax, self.out_dim(dmax))

    def transform(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Z = X W for features x (A, m, D) and θ (A, P) → (A, m, K), without forming W
        where W is diagonal or scalar."""
        if self.kind == "zero_shot":
            return x * theta.exp()[:, :, None]
        if self.kind == "diagonal":
            return x * theta[:, None, :]
        return x @ self.weights(theta, x.shape[-1])

    def penalty(self, theta: torch.Tensor, regulariser: str, dims: torch.Tensor
                ) -> torch.Tensor:
        """R(W) per problem (A,). eye_distance: ‖W − cI‖²_F with c = tr(W)/n over the
        problem's own n = min(d, K) diagonal; l2: ‖W‖²_F; l1: Σ|W|. zero_shot: 0."""
        dmax = theta.shape[-1] if self.kind == "diagonal" else theta.shape[-1] // self._k(theta)
        mask, n = self.trace_mask(dims, dmax, theta.dtype)
        return self.penalty_and_grad(theta, regulariser, mask, n)[0]

    def backward(self, x: torch.Tensor, theta: torch.Tensor, dz: torch.Tensor
                 ) -> torch.Tensor:
        """∂/∂θ (A, P) from ∂/∂Z (A, m, K) for Z = :meth:`transform` (x (A, m, D), θ)."""
        if self.kind == "zero_shot":
            return (x * dz).sum((1, 2))[:, None] * theta.exp()
        if self.kind == "diagonal":
            return (x * dz).sum(1)
        return torch.bmm(x.transpose(1, 2), dz).reshape(theta.shape)

    def weight_grad(self, dw: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """∂/∂θ (A, P) from ∂/∂W (A, D, K) for W = :meth:`weights` (θ)."""
        if self.kind == "zero_shot":  # W = e^θ·I
            return dw.diagonal(dim1=1, dim2=2).sum(-1, keepdim=True) * theta.exp()
        if self.kind == "diagonal":
            return dw.diagonal(dim1=1, dim2=2)
        return dw.reshape(theta.shape)

    def trace_mask(self, dims: torch.Tensor, dmax: int, dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The entries of θ on W's diagonal that eye_distance's c·I covers, as 0/1 in θ's
        shape (A, P), and their number (A,), for problems of dims (A,)."""
        k = dmax if self.kind in ("diagonal", "zero_shot") else min(dmax, self.out_dim(dmax))
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
        if regulariser == "l2":
            return 2.0 * v
        if regulariser != "eye_distance":
            raise ValueError(f"{regulariser} has no Hessian")
        c = (v * mask[:, :, None]).sum(1, keepdim=True) / n[:, None, None]
        return 2.0 * torch.addcmul(v, c, mask[:, :, None], value=-1.0)

    def _k(self, theta: torch.Tensor) -> int:
        if self.kind == "low_rank":
            return self.rank
        return int(round(math.sqrt(theta.shape[-1])))


@dataclass(frozen=True)
class FitOptions:
    """Solver settings. Tolerances are recorded with every fit.

    ``loss_tol`` is on the relative change of the objective between iterations,
    ``grad_tol`` on the largest absolute gradient entry. ``max_memory_gb`` bounds the
    kernel's working memory: batches are split to fit, and a single problem that
    cannot fit is refused with :class:`MemoryLimitError`. ``warm_start`` solves the λ
    grid from the largest λ down, each λ starting from the previous λ's solution when
    that solution predicts better than chance (else from the identity);
    ``carry_history`` lets such a start keep the previous λ's L-BFGS curvature pairs,
    shifted by the change of the penalty (exact for eye_distance and l2), so that its
    first steps need not measure the curvature again (docs/DESIGN.md, "Warm starts").
    ``reduce_rank`` fits each fold in the row space of its own objects' features when
    their rank r is below d (W_r of size r × r), and maps the solution back exactly.
    ``symmetric`` solves ``full`` W under eye_distance or l2 within the symmetric
    matrices, where their optima lie (see docs/DESIGN.md, "Symmetric W"): the same
    optimum in 25–40 % fewer iterations.
    """

    regulariser: Regulariser = "eye_distance"
    method: str = "full"
    max_iter: int = 500
    history: int = 20
    grad_tol: float = 1e-6
    loss_tol: float = 1e-7
    max_line_search: int = 25
    dtype: str = "float32"
    device: str = "auto"
    gather: Literal["auto", "similarity", "rows", "pairs"] = "auto"
    allow_tf32: bool = False
    warm_start: bool = True
    max_memory_gb: float = 8.0
    reduce_rank: bool = True
    symmetric: bool = True
    carry_history: bool = True

    def __post_init__(self) -> None:
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"unknown regulariser {self.regulariser!r}; use one of {REGULARISERS}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use float32 or float64")
        if self.gather not in ("auto", "similarity", "rows", "pairs"):
            raise ValueError(f"unknown gather mode {self.gather!r}")
        Method.parse(self.method)

    @classmethod
    def from_config(cls, fitting: Mapping, experiment: Mapping | None = None,
                    **overrides) -> FitOptions:
        """The options a workflow run fits with, from its config: the ``fitting``
        section (a key it lacks keeps its default here, as in the config schema) and, for
        ``method`` and ``regulariser``, one of its ``experiments`` (default: full W under
        eye_distance); ``overrides`` replace any field. (The workflow's rules pass the
        same settings to the CLI as flags.)"""
        opts = {key: fitting[key] for key in _CONFIG_KEYS if key in fitting}
        if experiment is not None:
            opts.update(method=experiment["method"], regulariser=experiment["regulariser"])
        opts.update(overrides)
        return cls(**opts)

    @property
    def parsed_method(self) -> Method:
        return Method.parse(self.method)

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


# The config's ``fitting`` keys that are FitOptions fields (``threads`` is the process's).
_CONFIG_KEYS = ("dtype", "device", "allow_tf32", "max_iter", "history", "grad_tol",
                "loss_tol", "warm_start", "max_memory_gb")


@functools.cache
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first visible CUDA device (as SLURM sets CUDA_VISIBLE_DEVICES), else CPU.

    Cached, so the fallback is logged once per process.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("no CUDA device visible (CUDA_VISIBLE_DEVICES=%s); fitting on CPU",
                 os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        return torch.device("cpu")
    return torch.device(name)


# ----------------------------------------------------------------------------- data


def collapse(triplets: np.ndarray, counts: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Merge repeated judgements: (N, 3) → unique rows (U, 3) and their counts (U,).

    (i, j, k) and (j, i, k) are the same judgement (the pair is unordered), so rows are
    canonicalised to i < j first. The weighted mean NLL over the unique rows equals the
    plain mean over the original rows.
    """
    t = np.asarray(triplets, dtype=np.int64)
    canon = np.stack([np.minimum(t[:, 0], t[:, 1]), np.maximum(t[:, 0], t[:, 1]), t[:, 2]], 1)
    w = np.ones(len(t)) if counts is None else np.asarray(counts, dtype=np.float64)
    uniq, inverse = np.unique(canon, axis=0, return_inverse=True)
    return uniq, np.bincount(inverse.reshape(-1), weights=w, minlength=len(uniq))


@dataclass
class TripletSets:
    """F triplet sets padded to a common length N.

    ``triplets`` (F, N, 3) int64 with k odd; ``weights`` (F, N): the count of each
    triplet (1 for plain rows), 0 on padding.
    """

    triplets: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def from_arrays(cls, sets: Sequence[np.ndarray], counts: Sequence[np.ndarray] | None = None,
                    *, collapse_repeats: bool = False, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> TripletSets:
        """Pad a list of (N_f, 3) arrays (and optional (N_f,) counts).

        ``collapse_repeats`` merges repeated judgements into counts (see :func:`collapse`).
        """
        rows, wts = [], []
        for f, s in enumerate(sets):
            c = None if counts is None else counts[f]
            if collapse_repeats:
                s, c = collapse(s, c)
            rows.append(np.asarray(s, dtype=np.int64).reshape(-1, 3))
            wts.append(np.ones(len(rows[-1])) if c is None else np.asarray(c, dtype=np.float64))
        n_max = max(len(s) for s in rows)
        t = np.zeros((len(rows), n_max, 3), dtype=np.int64)
        w = np.zeros((len(rows), n_max), dtype=np.float64)
        for f, (s, c) in enumerate(zip(rows, wts)):
            t[f, : len(s)] = s
            w[f, : len(s)] = c
            # Padding rows point at a triplet of the set itself; their weight is 0.
            t[f, len(s):] = s[0] if len(s) else (0, 1, 2)
        return cls(torch.as_tensor(t, device=device), torch.as_tensor(w, dtype=dtype,
                                                                       device=device))

    @property
    def n_sets(self) -> int:
        return int(self.triplets.shape[0])


# ----------------------------------------------------------------------------- model

# The similarity path costs m²·D per problem in matmuls; the rows path ~3N·D in
# memory-bound gathers. Measured on whole default recovery jobs (m ≈ 125–140 objects per
# fold, 2-core CPU; benchmarks/kernel_benchmark.py's shapes): in float64 rows wins up to
# N ≈ 250 and similarity from N ≈ 300 (6 % faster there, 3.3× at N = 3000); in float32,
# where the matmuls gain more than the gathers, similarity is as fast at N = 150 and 7 %
# / 18 % faster at N = 200 / 300. Hence similarity once m² ≤ k·N, k by itemsize.
_SIMILARITY_PAYS = {4: 160, 8: 72}


def _prefers_similarity(n_objects: int, n_triplets: int, itemsize: int = 4) -> bool:
    k = _SIMILARITY_PAYS.get(itemsize, _SIMILARITY_PAYS[8])
    return n_objects * n_objects <= k * n_triplets


# The pairs path costs ~6N·D² + D³ multiply-adds per problem and evaluation (x_iᵀM for
# the 3N pairs, A, M = WWᵀ) and no gathers; similarity ~1.7·m²·D (its matmuls run at a
# better rate, and it fills, gathers and scatters m² entries); rows ~2m·D² plus gathers
# and the scatter of 6N rows of Z, each costing ~40 multiply-adds per entry
# (index_add_ is slow on CPU). Constants fitted to single evaluations of 4–18 problems,
# float64, 2-core CPU: m = 125–3,000, D = 16–256, N = 100–3,000 (pairs 2.5× faster than
# rows at the default N = 100 jobs, 1.2× slower at D = 256, N = m = 1,000; 1.1× faster
# than similarity at N = 300, m = 140, D = 16, 2.6× slower at N = 1,000).
def _prefers_pairs(mode: str, n_objects: int, n_triplets: int, dim: int) -> bool:
    pairs = 6.0 * n_triplets * dim * dim + float(dim) ** 3
    if mode == "similarity":
        return pairs < 1.7 * n_objects * n_objects * dim
    return pairs < 2.0 * n_objects * dim * dim + 40.0 * 12 * n_triplets * dim


def pair_logits(features: torch.Tensor, weights: torch.Tensor, triplets: torch.Tensor,
                gather: str = "auto") -> torch.Tensor:
    """Pair logits [S_ij, S_ik, S_jk] for a batch of problems on shared features.

    features (n, d) or (B, n, d); weights (B, d, d); triplets (B, N, 3) long → (B, N, 3).
    The plain computation, used for evaluation and as the reference in tests.
    """
    i, j, k = triplets.unbind(-1)
    if gather == "pairs":  # x_iᵀ (W Wᵀ) x_j from the ends' feature rows
        x = features.expand(weights.shape[0], -1, -1) if features.dim() == 2 else features
        xm = _rows(x, torch.cat([i, i, j], 1)) @ (weights @ weights.mT)
        out = torch.linalg.vecdot(xm, _rows(x, torch.cat([j, k, k], 1)))
        return out.view(x.shape[0], 3, -1).transpose(1, 2)
    z = features @ weights  # (B, n, d)
    n = z.shape[1]
    if gather == "similarity" or (gather == "auto" and
                                  _prefers_similarity(n, int(triplets.shape[1]),
                                                      z.element_size())):
        flat = (z @ z.transpose(1, 2)).reshape(z.shape[0], n * n)
        idx = torch.stack([i * n + j, i * n + k, j * n + k], dim=-1)
        return flat.gather(1, idx.reshape(idx.shape[0], -1)).reshape(idx.shape)
    return _row_logits(z, triplets)


def _rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (B, R) of x (B, n, d) → (B, R, d)."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


def _row_logits(z: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """Pair logits from rows of Z (B, n, d) for triplets (B, N, 3), via flat index_select."""
    b, n, d = z.shape
    offset = (torch.arange(b, device=z.device) * n)[:, None, None]
    flat = (triplets + offset).reshape(-1, 3)
    zf = z.reshape(b * n, d)
    zi, zj, zk = (zf.index_select(0, flat[:, c]) for c in range(3))
    out = torch.stack([(zi * zj).sum(-1), (zi * zk).sum(-1), (zj * zk).sum(-1)], dim=-1)
    return out.reshape(b, -1, 3)


def penalty(weights: torch.Tensor, regulariser: str, dims: torch.Tensor | None = None
            ) -> torch.Tensor:
    """R(W) per problem, shape (B,), for weights (B, D, K) whose top-left block is used.

    ``dims`` (B,) gives each problem's own d (default D). eye_distance: ‖W − cI‖²_F with
    c = tr(W)/n, n = min(d, K); l2: ‖W‖²_F; l1: Σ|W|. Entries outside the block are zero
    by construction, so only the trace needs the block's own size.
    """
    if regulariser == "l1":
        return weights.abs().sum(dim=(1, 2))
    if regulariser == "l2":
        return weights.square().sum(dim=(1, 2))
    # Summed from W − cI, not expanded to ‖W‖² − tr(W)²/n (cancellation; see
    # Method.penalty_and_grad). Only the problem's own diagonal, i < min(d, K), carries
    # c·I: padded entries must get no gradient from it.
    r = weights.clone()
    diag = r.diagonal(dim1=1, dim2=2)
    k = diag.shape[-1]
    inside = torch.arange(k, device=r.device) < (k if dims is None else dims[:, None])
    c = (diag * inside).sum(-1) / inside.sum(-1)
    diag.sub_(inside * c[:, None])
    return r.square().sum(dim=(1, 2))


def data_nll(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean NLL of choice 0 per problem: logits (B, N, 3), weights (B, N) → (B,)."""
    a, b, c = logits.unbind(-1)
    # logsumexp(a, b, c) − a, shifted by the largest logit; about twice as fast as
    # torch.logsumexp over a last dimension of 3 (forward + backward). (softplus would
    # return x itself beyond x = 20, an error of up to e^-20 per triplet: a kink in the
    # objective at the scale of the stopping tolerances.)
    top = torch.maximum(torch.maximum(a, b), c)
    per = ((a - top).exp() + (b - top).exp() + (c - top).exp()).log() + (top - a)
    return (weights * per).sum(-1) / weights.sum(-1)


def tie_aware_accuracy(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted accuracy of the most probable choice, exact ties splitting credit: (B,)."""
    top = logits == logits.amax(dim=-1, keepdim=True)
    per = top[..., 0].to(weights.dtype) / top.sum(-1).to(weights.dtype)
    return (weights * per).sum(-1) / weights.sum(-1)


# ----------------------------------------------------------------------------- problems


@dataclass
class _Batch:
    """Everything one kernel run needs, on the device.

    Each (features, set) pair is a block with its objects re-indexed locally (the m
    objects the set touches): ``local_x`` (U, m, D) and ``local_t`` (U, N, 3), problem b
    using block ``block[b]``. ``mode`` says how pair logits are formed: ``similarity``
    (S over the m objects, then gathered), ``rows`` (rows of Z gathered per triplet) or
    ``pairs`` (logits x_iᵀ W Wᵀ x_j from the ends' features, gathered once per problem).
    """

    mode: str
    block: torch.Tensor
    local_x: torch.Tensor
    local_t: torch.Tensor
    set_of: torch.Tensor
    weights: torch.Tensor
    lambdas: torch.Tensor
    dims: torch.Tensor
    regulariser: str
    method: Method = Method("full")
    bases: dict[int, torch.Tensor] = field(default_factory=dict)
    symmetric: bool = False

    def to_original(self, w: torch.Tensor) -> torch.Tensor:
        """Map rank-reduced solutions (B, D, D) back to the features' own coordinates."""
        if not self.bases:
            return w
        out = w.clone()
        for b, blk in enumerate(self.block.tolist()):
            basis = self.bases.get(blk)
            if basis is not None:
                d_c, r = basis.shape
                w11 = w[b, :r, :r]
                # Null-space block b·I: 0 under l2; under eye_distance profiled at tr(W11)/r.
                scale = torch.trace(w11) / r if self.regulariser == "eye_distance" else 0.0
                eye = torch.eye(d_c, dtype=w.dtype, device=w.device)
                out[b] = 0.0
                out[b, :d_c, :d_c] = basis @ w11 @ basis.T + scale * (eye - basis @ basis.T)
        return out

    def parts(self, theta: torch.Tensor, idx: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective and data NLL of problems ``idx`` at parameters θ (A, P) (for ``full``
        also accepted as W (A, D, D))."""
        theta = theta.reshape(len(idx), -1)
        sets = self.set_of[idx]
        blk = self.block[idx]
        z = self.method.transform(self.local_x[blk], theta)
        t = self.local_t[blk]
        if self.mode == "similarity":
            m = z.shape[1]
            i, j, k = t.unbind(-1)
            flat = (z @ z.transpose(1, 2)).reshape(len(idx), m * m)
            pidx = torch.stack([i * m + j, i * m + k, j * m + k], dim=-1)
            logits = flat.gather(1, pidx.reshape(len(idx), -1)).reshape(pidx.shape)
        else:
            logits = _row_logits(z, t)
        nll = data_nll(logits, self.weights[sets])
        pen = self.method.penalty(theta, self.regulariser, self.dims[idx])
        return nll + self.lambdas[idx] * pen, nll


def _bytes_per_problem(mode: str, n_obj: int, n_trip: int, dim: int, history: int,
                       itemsize: int) -> int:
    """Peak working memory of one problem in one evaluation, plus its optimiser state.

    Counted generously: forward tensors kept for backward, their gradients, and the
    L-BFGS state (2·history vectors of D² plus a handful of D² work vectors).
    """
    p = dim * dim
    # Per triplet: logits and ~11 same-sized temporaries of forward and backward, plus
    # int64 indices: the set, its local re-indexing, and the pair index with its flat
    # copy (both ends of each pair in rows mode: counted for both modes).
    triplet_terms = n_trip * 3 * 12 * itemsize + n_trip * 3 * 8 * 6
    if mode == "similarity":
        # S, its gradient and two temporaries; Z, dZ, the local features and the SVD
        # workspace of the rank reduction.
        work = 4 * n_obj * n_obj * itemsize + 8 * n_obj * dim * itemsize + triplet_terms
    else:  # rows: Z and the gathered ends; pairs: both ends' features kept, x_iᵀM, g·x_j
        work = 4 * n_obj * dim * itemsize + 4 * 3 * n_trip * dim * itemsize + triplet_terms
    # 2·history curvature vectors (and a transient copy of them while only part of the
    # batch is active), ~22 more of size D² (iterates, gradients, direction, line-search
    # trials and fallback point, autograd buffers, results); checked against peak RSS up
    # to d = 2048 on CPU.
    state = (4 * history + 22) * p * itemsize + 2 * history * history * itemsize
    return int(work + state)


def _as_list(features) -> list:
    return [features] if isinstance(features, (np.ndarray, torch.Tensor)) else list(features)


def _padded(xs: list[torch.Tensor], dmax: int) -> torch.Tensor:
    """Stack C feature arrays (n, d_c) into (C, n, D), zero beyond each d_c."""
    gx = torch.zeros(len(xs), xs[0].shape[0], dmax, dtype=xs[0].dtype, device=xs[0].device)
    for c, x in enumerate(xs):
        gx[c, :, : x.shape[1]] = x
    return gx


def _prepare(features: list[torch.Tensor], data: TripletSets, feature_of: torch.Tensor,
             set_of: torch.Tensor, lambdas: torch.Tensor, options: FitOptions,
             device: torch.device, dtype: torch.dtype) -> tuple[_Batch, int]:
    """Pad features to a common D, choose the gather mode, build local indices."""
    dims_c = [int(x.shape[1]) for x in features]
    dmax = max(dims_c)
    gx = _padded(features, dmax)
    n_trip = int(data.triplets.shape[1])
    # Objects each set touches (the fold's training objects), for the local S.
    trip_cpu = data.triplets.cpu()
    local_objs = [torch.unique(trip_cpu[f].reshape(-1)) for f in range(data.n_sets)]
    m = max(len(o) for o in local_objs)
    itemsize = torch.finfo(dtype).bits // 8
    mode = options.gather
    if mode == "auto":
        mode = "similarity" if _prefers_similarity(m, n_trip, itemsize) else "rows"
        limit = options.max_memory_gb * 2**30
        if (mode == "similarity" and _bytes_per_problem("similarity", m, n_trip, dmax,
                                                        options.history, itemsize) > limit):
            mode = "rows"
        # Pairs needs the memory of rows (the gathered ends instead of Z's rows).
        if _prefers_pairs(mode, m, n_trip, dmax):
            mode = "pairs"
    keys = torch.stack([feature_of, set_of], 1).cpu()
    uniq, block = torch.unique(keys, dim=0, return_inverse=True)
    lx = torch.zeros(len(uniq), m, dmax, dtype=dtype, device=device)
    lt = torch.zeros(len(uniq), n_trip, 3, dtype=torch.long, device=device)
    bases: dict[int, torch.Tensor] = {}
    block_dim = torch.as_tensor(dims_c, device=device)[uniq[:, 0].to(device)]
    # Full W under a penalty that, like the data term, depends on W only through its
    # rotation-invariant parts: both the rank reduction and the symmetric restriction
    # are exact there (see DESIGN notes).
    exact_shortcuts = (options.parsed_method.kind == "full"
                       and options.regulariser in ("eye_distance", "l2"))
    for u, (c, f) in enumerate(uniq.tolist()):
        objs = local_objs[f]
        xl = gx[c, objs.to(device), : dims_c[c]]
        lt[u] = torch.searchsorted(objs, trip_cpu[f]).to(device)
        if options.reduce_rank and exact_shortcuts:
            # Exact (see DESIGN notes): in the basis (V_r, V_⊥) of xl's row space the
            # cross blocks of W have zero gradient from W = I on, the null block stays
            # b·I and is profiled out (b = 0 for l2, tr(W11)/r for eye_distance).
            u_, sv, vh = torch.linalg.svd(xl, full_matrices=False)
            r = int((sv > sv.max() * max(xl.shape) * torch.finfo(dtype).eps).sum())
            if r < dims_c[c]:
                lx[u, : len(objs), :r] = u_[:, :r] * sv[:r]
                bases[u] = vh[:r].T
                block_dim[u] = r
                continue
        lx[u, : len(objs), : dims_c[c]] = xl
    block = block.to(device)
    dims = block_dim[block]
    batch = _Batch(mode, block, lx, lt, set_of, data.weights, lambdas, dims,
                   options.regulariser, options.parsed_method, bases,
                   options.symmetric and exact_shortcuts)
    return batch, _bytes_per_problem(mode, m, n_trip, dmax, options.history, itemsize)


# ----------------------------------------------------------------------------- objective


class _Objective:
    """The kernel's objective over a batch's problems, and its evaluation counts."""

    def __init__(self, batch: _Batch, dim: int) -> None:
        self.batch = batch
        self.d = dim  # D, the padded feature dimension
        self.evaluations = 0
        self.problem_evaluations = 0

    def parts(self, w: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective and data NLL (both (A,)) of problems ``idx`` at weights w (A, D, D),
        by the plain computation (differentiable)."""
        return self.batch.parts(w, idx)

    def view(self, idx: torch.Tensor, symmetric: bool = False) -> _Problems:
        """Problems ``idx`` (A,) with their data gathered for repeated evaluation;
        ``symmetric``: gradients within the symmetric matrices (see :class:`_Problems`)."""
        return _Problems(self, idx, symmetric=symmetric)

    def __call__(self, flat: torch.Tensor, idx: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective (A,) and analytic gradient (A, P) of problems ``idx`` at θ (A, P)."""
        return self.view(idx)(flat)


class _Problems:
    """Problems of a batch with their data gathered once: the solver's view
    (:class:`lbfgs.Problems`), evaluated with a hand-written gradient.

    All gather modes work on each problem's local objects (m of them). ``index`` holds
    the pairs (ij, ik, jk planes): (A, 3N) flat positions in S (similarity), or (A, 6N)
    local object numbers of both ends of each pair (rows: as (planes, ends, N); pairs: as
    (ends, planes, N), with ``ends`` (A, 2, 3N, D) their features). The gradient: with
    G = ∂NLL/∂logits, scattered into the m × m pair matrix (or onto the rows),
    ∂NLL/∂Z = (G + Gᵀ) Z and ∂NLL/∂W = Xᵀ ∂NLL/∂Z; in pairs mode ∂NLL/∂(WWᵀ) = A =
    Σ_pairs g x_i x_jᵀ and ∂NLL/∂W = (A + Aᵀ) W. The tests hold each to autograd on
    :meth:`_Batch.parts`. With ``symmetric`` the problems
    live in the symmetric matrices and the gradient is its projection there, (∇ + ∇ᵀ)/2:
    from a symmetric start every iterate stays symmetric.
    """

    def __init__(self, objective: _Objective, idx: torch.Tensor, *,
                 parent: _Problems | None = None, symmetric: bool = False) -> None:
        self.objective, self.idx = objective, idx
        self.symmetric = parent.symmetric if parent is not None else symmetric
        batch = objective.batch
        if parent is not None:  # a subset of a view: gather from it, not from the batch
            self.x, self.index, self.w = parent.x[idx], parent.index[idx], parent.w[idx]
            self.lam, self.dims = parent.lam[idx], parent.dims[idx]
            self.mask, self.n_diag = parent.mask[idx], parent.n_diag[idx]
            self.ends = None if parent.ends is None else parent.ends[idx]
            self.idx = parent.idx[idx]
        else:
            blk = batch.block[idx]
            self.x = batch.local_x[blk]
            i, j, k = batch.local_t[blk].unbind(-1)
            self.ends = None
            if batch.mode == "similarity":
                m = self.x.shape[1]
                self.index = torch.cat([i * m + j, i * m + k, j * m + k], 1)
            elif batch.mode == "rows":  # (A, 3·2·N) as (planes, ends, N)
                self.index = torch.cat([i, j, i, k, j, k], 1)
            else:  # pairs: (A, 2·3·N) as (ends, planes, N), and the ends' features
                self.index = torch.cat([i, i, j, j, k, k], 1)
                self.ends = _rows(self.x, self.index).view(len(idx), 2, -1, self.x.shape[-1])
            w = batch.weights[batch.set_of[idx]]
            self.w = w / w.sum(1, keepdim=True)
            self.lam, self.dims = batch.lambdas[idx], batch.dims[idx]
            self.mask, self.n_diag = batch.method.trace_mask(self.dims, self.x.shape[-1],
                                                             self.x.dtype)
        self.offset = (torch.arange(len(idx), device=idx.device) * self.x.shape[1])[:, None]
        self._flatten()

    def _flatten(self) -> None:
        """Rows mode: the ends' positions in Z viewed as (A·m, K)."""
        if self.objective.batch.mode == "rows":
            self.flat = (self.index + self.offset).reshape(-1)

    def select(self, sub: torch.Tensor) -> _Problems:
        return _Problems(self.objective, sub, parent=self)

    def replace(self, slots: torch.Tensor, ids: torch.Tensor) -> _Problems:
        """Slots ``slots`` now hold the batch's problems ``ids`` (in place)."""
        batch = self.objective.batch
        if bool((batch.block[ids] == batch.block[self.idx[slots]]).all()):
            # The next λ of a chain: the same features and set, so the same data.
            self.idx[slots], self.lam[slots] = ids, batch.lambdas[ids]
            return self
        new = _Problems(self.objective, ids, symmetric=self.symmetric)
        for name in ("idx", "x", "index", "w", "lam", "dims", "mask", "n_diag"):
            getattr(self, name)[slots] = getattr(new, name)
        if self.ends is not None:
            self.ends[slots] = new.ends
        self._flatten()
        return self

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obj = self.objective
        obj.evaluations += 1
        obj.problem_evaluations += int(theta.shape[0])
        batch, x = obj.batch, self.x
        method = batch.method
        a, m = theta.shape[0], x.shape[1]
        n = self.w.shape[1]
        theta = theta.detach()
        if batch.mode == "pairs":  # S_ij = x_iᵀ M x_j with M = W Wᵀ (A, D, D)
            wfull = method.weights(theta, x.shape[-1])
            xi, xj = self.ends.unbind(1)  # (A, 3N, D) each
            logits = torch.linalg.vecdot(torch.bmm(xi, torch.bmm(wfull, wfull.mT)),
                                         xj).view(a, 3, n)
        else:
            z = method.transform(x, theta)  # (A, m, K)
            kdim = z.shape[-1]
        if batch.mode == "similarity":
            sim = torch.bmm(z, z.transpose(1, 2)).reshape(a, m * m)
            logits = sim.gather(1, self.index).view(a, 3, n)
        elif batch.mode == "rows":
            ends = z.reshape(a * m, kdim).index_select(0, self.flat).view(a, 3, 2, n, kdim)
            logits = (ends[:, :, 0] * ends[:, :, 1]).sum(-1)
        # NLL of choice 0 = −log p₀; its gradient is the choice probabilities p, minus 1
        # for choice 0. (One fused log_softmax: 20–25 % faster than the shifted
        # exp/sum/log by hand, and as stable.)
        logp = torch.log_softmax(logits, 1)
        nll = -(logp[:, 0] * self.w).sum(1)
        g = logp.exp_().mul_(self.w[:, None])  # ∂NLL/∂logits (A, 3, N)
        g[:, 0] -= self.w
        if batch.mode == "similarity":
            # S is spent once its logits are gathered: its buffer, still in cache, takes G.
            gs = sim.zero_().scatter_add_(1, self.index, g.reshape(a, 3 * n))
            gs = gs.view(a, m, m)
            if method.kind in ("full", "low_rank"):
                # ∂/∂W = Xᵀ(G + Gᵀ)XW = (A + Aᵀ)W with A = XᵀGX (D × D): no m × m sum.
                # (XᵀG)X, not Xᵀ(GX): the same flops, but BLAS runs a D-row product of
                # the m × m matrix about 1.8× faster than an m-row one.
                xgx = torch.bmm(torch.bmm(x.transpose(1, 2), gs), x)
                dw = torch.bmm(xgx + xgx.transpose(1, 2),
                               method.weights(theta, x.shape[-1])).view(a, -1)
            else:
                dw = method.backward(x, theta, torch.bmm(gs + gs.transpose(1, 2), z))
        elif batch.mode == "pairs":  # ∂/∂M = A = Σ g x_i x_jᵀ; ∂/∂W = (A + Aᵀ) W
            am = torch.bmm(xi.mT, xj * g.view(a, 3 * n, 1))
            dw = method.weight_grad(torch.bmm(am + am.mT, wfull), theta)
        else:  # each end of a pair gets g times the other end
            dzt = torch.empty_like(ends)
            torch.mul(ends[:, :, 1], g[..., None], out=dzt[:, :, 0])
            torch.mul(ends[:, :, 0], g[..., None], out=dzt[:, :, 1])
            dz = torch.zeros(a * m, kdim, dtype=z.dtype, device=z.device).index_add_(
                0, self.flat, dzt.view(-1, kdim)).view(a, m, kdim)
            dw = method.backward(x, theta, dz)
        pen, dpen = method.penalty_and_grad(theta, batch.regulariser, self.mask, self.n_diag)
        if self.symmetric:  # the penalty's gradient is symmetric at symmetric W already
            dw = dw.view(a, x.shape[-1], -1)
            dw = (dw + dw.transpose(1, 2)).mul_(0.5).view(a, -1)
        grad = torch.addcmul(dw, self.lam[:, None], dpen)
        return torch.addcmul(nll, self.lam, pen), grad


def _flipped(theta: torch.Tensor, dmax: int, own: torch.Tensor) -> torch.Tensor:
    """Which symmetric W (R, P) have an eigenvalue below −_FLIP_TOL·max|eigenvalue|: (R,)
    bool; ``own`` (R, P) marks each problem's own diagonal (:meth:`Method.trace_mask`).
    (A positive definite W, the usual case, is told by a Cholesky factorisation, ~15×
    cheaper than the eigenvalues; the zero padding beyond a problem's own d gets 1s on
    the diagonal for it, or every padded W would look singular.)"""
    w = theta.view(-1, dmax, dmax)
    w = (w + w.transpose(1, 2)) * 0.5
    padded = torch.eye(dmax, dtype=w.dtype, device=w.device) - own.view(-1, dmax, dmax)
    flipped = torch.linalg.cholesky_ex(w + padded).info != 0
    maybe = torch.nonzero(flipped).flatten()
    if maybe.numel():
        ev = torch.linalg.eigvalsh(w[maybe])
        scale = ev.abs().amax(1).clamp_min(torch.finfo(ev.dtype).tiny)
        flipped[maybe] = ev[:, 0] < -_FLIP_TOL * scale
    return flipped


def _unflipped(theta: torch.Tensor, dmax: int) -> torch.Tensor:
    """|W| = V|Λ|Vᵀ of symmetric W (R, P) → (R, P): the same similarities (|W|² = W²) and,
    under eye_distance, a smaller penalty (tr |W| > tr W) than a W with a negative
    eigenvalue."""
    w = theta.view(-1, dmax, dmax)
    ev, vec = torch.linalg.eigh((w + w.transpose(1, 2)) * 0.5)
    return ((vec * ev.abs()[:, None, :]) @ vec.transpose(1, 2)).reshape(theta.shape)


# ----------------------------------------------------------------------------- API


@dataclass
class FitResult:
    """Per-problem results of a batched fit (B problems).

    weights (B, D, K) (K = D, or k for low_rank:k), problem b's transform in its top
    ``dims[b]`` rows;
    objective and train_nll (B,) in nats per judgement; iterations (B,) (under warm
    starts: of the problem's own λ stage; after a restart from |W|, of its last run);
    converged (B,) bool; status (B,) one of
    ``gradient`` / ``loss`` (tolerance met), ``max_iter``, ``line_search``; seconds
    for the whole call; evaluations: batched objective calls. A fit (other than
    zero_shot) whose objective ends within 1e-6 of W = 0's (log 3) or above it is
    returned as W = 0, objective and train_nll log 3: the solver's residue near 0 ranks
    triplets arbitrarily.
    """

    weights: torch.Tensor
    objective: torch.Tensor
    train_nll: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    status: list[str]
    dims: torch.Tensor
    seconds: float
    evaluations: int
    problem_evaluations: int
    mode: str
    options: FitOptions = field(repr=False)


def objective(features: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
              data: TripletSets, problem_set: np.ndarray, lambdas: np.ndarray,
              options: FitOptions = FitOptions(), *,
              problem_features: np.ndarray | None = None) -> _Objective:
    """The kernel's objective for B problems, as :func:`fit` builds it.

    Call it as ``obj(flat_w, idx)`` → (objective (A,), gradient (A, D²)) or use
    ``obj.parts(w, idx)`` → (objective, data NLL) for weights w (A, D, D).
    """
    device = resolve_device(options.device)
    dtype = options.torch_dtype
    xs, feature_of, set_of, lam, data = _tensors(features, data, problem_set, lambdas,
                                                 problem_features, device, dtype)
    batch, _ = _prepare(xs, data, feature_of, set_of, lam, options, device, dtype)
    return _Objective(batch, max(int(x.shape[1]) for x in xs))


def _tensors(features, data, problem_set, lambdas, problem_features, device, dtype):
    xs = [torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
          for x in _as_list(features)]
    b = len(problem_set)
    pf = np.zeros(b, dtype=np.int64) if problem_features is None else np.asarray(
        problem_features, dtype=np.int64)
    feature_of = torch.as_tensor(pf, device=device)
    set_of = torch.as_tensor(np.asarray(problem_set), dtype=torch.long, device=device)
    lam = torch.as_tensor(np.asarray(lambdas, dtype=np.float64), dtype=dtype, device=device)
    data = TripletSets(data.triplets.to(device), data.weights.to(device=device, dtype=dtype))
    return xs, feature_of, set_of, lam, data


def memory_estimate(n_objects: int, n_triplets: int, dim: int, batch: int,
                    options: FitOptions, mode: str = "similarity") -> int:
    """Bytes the kernel needs for ``batch`` problems of this size (see :func:`fit`)."""
    itemsize = torch.finfo(options.torch_dtype).bits // 8
    return batch * _bytes_per_problem(mode, n_objects, n_triplets, dim, options.history,
                                      itemsize)


def fit(features: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        data: TripletSets, problem_set: np.ndarray, lambdas: np.ndarray,
        options: FitOptions = FitOptions(), init: torch.Tensor | None = None, *,
        problem_features: np.ndarray | None = None) -> FitResult:
    """Fit B problems together.

    features: one (n, d) array, or a list of C arrays (n, d_c) (candidates; same n);
    data: F triplet sets; problem_set (B,) the set each problem fits; lambdas (B,);
    problem_features (B,) which feature array each problem uses (default 0);
    init: parameters (B, P) (for ``full``: W as (B, D, D)), or None for the identity;
    warm-started stages after the first start from the previous λ instead.
    """
    device = resolve_device(options.device)
    dtype = options.torch_dtype
    torch.backends.cuda.matmul.allow_tf32 = options.allow_tf32
    torch.backends.cudnn.allow_tf32 = options.allow_tf32
    xs, feature_of, set_of, lam, data = _tensors(features, data, problem_set, lambdas,
                                                 problem_features, device, dtype)
    b = len(problem_set)
    pf = feature_of.cpu().numpy()
    lam_np = np.asarray(lambdas, dtype=np.float64)
    start = time.perf_counter()
    batch, per_problem = _prepare(xs, data, feature_of, set_of, lam, options, device, dtype)
    dmax = max(int(x.shape[1]) for x in xs)
    limit = options.max_memory_gb * 2**30
    if per_problem > limit:
        raise MemoryLimitError(
            f"one fit needs about {per_problem / 2**30:.2f} GiB ({batch.mode} path: "
            f"{int(data.triplets.shape[1])} triplets, {xs[0].shape[0]} objects, d = {dmax}, "
            f"history {options.history}, {options.dtype}), over the limit of "
            f"{options.max_memory_gb} GiB: raise fitting.max_memory_gb (with the job's "
            f"memory), or use fewer triplets or fewer feature dimensions (pca)")
    chunk = max(1, int(limit // per_problem))
    method = options.parsed_method
    p = method.n_params(dmax)
    if init is None:
        w0 = method.init(batch.dims, dmax, dtype)
    else:
        if batch.bases:
            raise ValueError("an explicit init is in the features' coordinates; it cannot "
                             "be combined with reduce_rank (set reduce_rank=False)")
        w0 = init.to(device=device, dtype=dtype).reshape(b, p)
        if batch.symmetric:  # an asymmetric start is solved in all of R^{D×D}
            w3 = w0.view(b, dmax, dmax)
            batch.symmetric = bool(torch.equal(w3, w3.transpose(1, 2)))
    # Chains: each problem alone, or under warm starts one chain per (features, set)
    # running its λ values from the largest down, each from the previous solution. A
    # chain holds one slot of the working batch (at most ``chunk`` slots, by memory);
    # when it ends, the next waiting chain takes the slot.
    chains: dict[tuple[int, int], list[int]] = {}
    for pb in range(b):
        key = (int(pf[pb]), int(problem_set[pb])) if options.warm_start else (pb, 0)
        chains.setdefault(key, []).append(pb)
    after = np.full(b, -1)
    for chain in chains.values():
        chain.sort(key=lambda pb: -lam_np[pb])
        after[chain[:-1]] = chain[1:]
    waiting = [chain[0] for chain in chains.values()]
    fun = _Objective(batch, dmax)
    settings = Settings(max_iter=options.max_iter, history=options.history,
                        grad_tol=options.grad_tol, loss_tol=options.loss_tol,
                        max_line_search=options.max_line_search)

    unflips = np.zeros(b, dtype=np.int64)

    def refill(done: torch.Tensor, x_done: torch.Tensor, f_done: torch.Tensor,
               g_done: torch.Tensor) -> Start:
        # A larger λ can collapse W towards 0 (uniform predictions, NLL = log 3). W = 0 is
        # stationary for every λ under both regularisers (zero data gradient, and c = 0),
        # so only solutions that fit better than chance seed the next λ; others restart
        # from the identity like a cold fit.
        own, n_own = method.trace_mask(batch.dims[done], dmax, dtype)
        pen, dpen = method.penalty_and_grad(x_done, batch.regulariser, own, n_own)
        nll_done = f_done - batch.lambdas[done] * pen
        # Within the symmetric matrices a long step can flip an eigenvalue's sign (the
        # similarities do not change, and at small λ the penalty barely does), and the
        # way back crosses 0. Under eye_distance |W| is strictly better, so such a
        # problem resumes from it (under l2 a flip costs nothing: W and |W| tie).
        flipped = (_flipped(x_done, dmax, own)
                   if batch.symmetric and batch.regulariser == "eye_distance"
                   else torch.zeros(len(done), dtype=torch.bool))
        cont, nxt, starts, known = [], [], [], []
        for r, (pb, nll_pb, flip) in enumerate(zip(done.tolist(), nll_done.tolist(),
                                                   flipped.tolist())):
            warm = False
            if flip and unflips[pb] < _MAX_UNFLIPS:
                unflips[pb] += 1
                nxt.append(pb)
                starts.append(_unflipped(x_done[r:r + 1], dmax)[0])
            elif after[pb] >= 0:
                nxt.append(int(after[pb]))
                warm = nll_pb < _LOG3 - _WARM_MARGIN
                starts.append(x_done[r] if warm else w0[after[pb]])
            elif waiting:
                nxt.append(waiting.pop(0))
                starts.append(w0[nxt[-1]])
            else:
                continue
            cont.append(r)
            known.append(warm)
        cont_t = torch.as_tensor(cont, dtype=torch.long, device=device)
        nxt_t = torch.as_tensor(nxt, dtype=torch.long, device=device)
        # A warm start sits where the previous λ ended, and the two objectives differ
        # only in λ: its objective and gradient are the finished ones shifted by Δλ·R.
        dlam = batch.lambdas[nxt_t] - batch.lambdas[done[cont_t]]
        hess = None
        if options.carry_history and batch.regulariser in ("eye_distance", "l2"):
            own_c, n_own_c = own[cont_t], n_own[cont_t]

            def penalty_change(rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                return dlam[rows, None, None] * method.penalty_hvp(
                    v, batch.regulariser, own_c[rows], n_own_c[rows])

            hess = penalty_change
        return Start(cont_t, nxt_t, torch.stack(starts) if starts else x_done[:0],
                     f_done[cont_t] + dlam * pen[cont_t],
                     torch.addcmul(g_done[cont_t], dlam[:, None], dpen[cont_t]),
                     torch.as_tensor(known, dtype=torch.bool, device=device), hess)

    first = torch.as_tensor(waiting[:chunk], device=device)
    del waiting[:chunk]
    # Inference mode skips autograd's dispatch on the ~100 small operations of every
    # iteration (~10 % of a small job); its tensors are cloned out of it for the caller.
    with torch.inference_mode():
        out = minimise(fun.view(first, batch.symmetric), w0[first], settings, ids=first,
                       n_total=b, refill=refill)
    x_out, f_out, it_out, st_out = (v.clone() for v in out)
    with torch.no_grad():
        nll = torch.cat([batch.parts(x_out[lo: lo + chunk],
                                     torch.arange(lo, min(b, lo + chunk), device=device))[1]
                         for lo in range(0, b, chunk)])
        w = batch.to_original(method.weights(x_out, dmax))
        if method.kind != "zero_shot":
            chance = f_out > _LOG3 - _CHANCE_TOL
            w[chance], f_out[chance], nll[chance] = 0.0, _LOG3, _LOG3
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    st_cpu = st_out.cpu()
    return FitResult(weights=w, objective=f_out, train_nll=nll, iterations=it_out.cpu(),
                     converged=(st_cpu == 1) | (st_cpu == 2),
                     status=[STATUS[int(s)] for s in st_cpu],
                     dims=torch.as_tensor([int(xs[c].shape[1]) for c in pf]),
                     seconds=time.perf_counter() - start, evaluations=fun.evaluations,
                     problem_evaluations=fun.problem_evaluations, mode=batch.mode,
                     options=options)


@torch.no_grad()
def evaluate(features: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
             weights: torch.Tensor, data: TripletSets, problem_set: np.ndarray,
             gather: str = "auto", *, problem_features: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (ties split) and mean NLL at T = 1 of each problem on its set.

    features as in :func:`fit`; weights (B, D, K) as in :class:`FitResult`; data: F sets;
    problem_set (B,) → two float64 arrays (B,).
    """
    xs_list = [torch.as_tensor(np.asarray(x), dtype=weights.dtype, device=weights.device)
               for x in _as_list(features)]
    gx = _padded(xs_list, weights.shape[-2])  # W is (B, D, K): pad features to its rows
    b = len(problem_set)
    pf = np.zeros(b, dtype=np.int64) if problem_features is None else np.asarray(
        problem_features)
    sets = torch.as_tensor(np.asarray(problem_set), dtype=torch.long, device=weights.device)
    trip = data.triplets.to(weights.device)[sets]
    wts = data.weights.to(device=weights.device, dtype=weights.dtype)[sets]
    xs = gx[torch.as_tensor(pf, device=weights.device)]
    logits = pair_logits(xs, weights, trip, gather)
    # Accuracy in float64: equal fractions of correct triplets must compare equal later.
    acc = tie_aware_accuracy(logits, wts.double())
    nll = data_nll(logits, wts)
    return acc.cpu().numpy(), nll.double().cpu().numpy()
