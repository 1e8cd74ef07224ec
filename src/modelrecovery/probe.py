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

Two exact ways to get the pair logits, chosen per call by cost and memory:
``similarity`` computes S over just the objects a triplet set touches (a fold's training
objects) in one batched matmul and gathers; ``rows`` gathers the rows of Z = X W for each
triplet (cheaper when the triplets cover few of the n² pairs).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

Regulariser = Literal["eye_distance", "l2", "l1"]
REGULARISERS: tuple[str, ...] = ("eye_distance", "l2", "l1")
METHODS: tuple[str, ...] = ("zero_shot", "diagonal", "low_rank:k", "full")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
STATUS: tuple[str, ...] = ("running", "gradient", "loss", "line_search", "max_iter")
_LOG3 = math.log(3.0)
# A warm start needs a previous solution that predicts better than chance by this much
# (nats per triplet); a collapsed W ≈ 0 sits at log 3 and would trap the next λ.
_WARM_MARGIN = 1e-2


class MemoryLimitError(RuntimeError):
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
        if self.kind == "zero_shot":
            return torch.zeros(theta.shape[0], dtype=theta.dtype, device=theta.device)
        if regulariser == "l1":
            return theta.abs().sum(-1)
        sq = theta.square().sum(-1)
        if regulariser == "l2":
            return sq
        if self.kind == "diagonal":
            inside = torch.arange(theta.shape[-1], device=theta.device) < dims[:, None]
            tr, n = (theta * inside).sum(-1), dims.to(theta.dtype)
        else:
            w = theta.reshape(theta.shape[0], -1, self._k(theta))
            tr, n = _masked_trace(w, dims)
        return sq - tr.square() / n

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
    that solution predicts better than chance (else from the identity).
    ``reduce_rank`` fits each fold in the row space of its own objects' features when
    their rank r is below d (W_r of size r × r), and maps the solution back exactly.
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
    gather: Literal["auto", "similarity", "rows"] = "auto"
    allow_tf32: bool = False
    warm_start: bool = True
    max_memory_gb: float = 8.0
    reduce_rank: bool = True

    def __post_init__(self) -> None:
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"unknown regulariser {self.regulariser!r}; use one of {REGULARISERS}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use float32 or float64")
        if self.gather not in ("auto", "similarity", "rows"):
            raise ValueError(f"unknown gather mode {self.gather!r}")
        Method.parse(self.method)

    @property
    def parsed_method(self) -> Method:
        return Method.parse(self.method)

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


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

# The similarity path costs m²·D per problem in one matmul; the rows path ~3N·D in
# memory-bound gathers. Measured on the default recovery jobs (m ≈ 140 objects per fold,
# 2-core CPU, float32 and float64 alike): rows wins below N ≈ 300, similarity from
# N ≈ 400 on (3.3x faster at N = 3000). Hence similarity once m² ≤ 48·N.
_SIMILARITY_PAYS = 48


def _prefers_similarity(n_objects: int, n_triplets: int) -> bool:
    return n_objects * n_objects <= _SIMILARITY_PAYS * n_triplets


def pair_logits(features: torch.Tensor, weights: torch.Tensor, triplets: torch.Tensor,
                gather: str = "auto") -> torch.Tensor:
    """Pair logits [S_ij, S_ik, S_jk] for a batch of problems on shared features.

    features (n, d) or (B, n, d); weights (B, d, d); triplets (B, N, 3) long → (B, N, 3).
    The plain computation, used for evaluation and as the reference in tests.
    """
    z = features @ weights  # (B, n, d)
    n = z.shape[1]
    i, j, k = triplets.unbind(-1)
    if gather == "similarity" or (gather == "auto" and
                                  _prefers_similarity(n, int(triplets.shape[1]))):
        flat = (z @ z.transpose(1, 2)).reshape(z.shape[0], n * n)
        idx = torch.stack([i * n + j, i * n + k, j * n + k], dim=-1)
        return flat.gather(1, idx.reshape(idx.shape[0], -1)).reshape(idx.shape)
    return _row_logits(z, triplets)


def _row_logits(z: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """Pair logits from rows of Z (B, n, d) for triplets (B, N, 3), via flat index_select."""
    b, n, d = z.shape
    offset = (torch.arange(b, device=z.device) * n)[:, None, None]
    flat = (triplets + offset).reshape(-1, 3)
    zf = z.reshape(b * n, d)
    zi, zj, zk = (zf.index_select(0, flat[:, c]) for c in range(3))
    out = torch.stack([(zi * zj).sum(-1), (zi * zk).sum(-1), (zj * zk).sum(-1)], dim=-1)
    return out.reshape(b, -1, 3)


def _masked_trace(weights: torch.Tensor, dims: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor | int]:
    """Trace over each problem's own diagonal and its length: weights (A, D, K), dims (A,).

    Only positions i < min(d, K) count: padded entries must get no gradient from c·I.
    """
    diag = weights.diagonal(dim1=1, dim2=2)
    k = diag.shape[-1]
    if dims is None:
        return diag.sum(-1), k
    mask = torch.arange(k, device=diag.device) < dims[:, None]
    return (diag * mask).sum(-1), torch.clamp(dims, max=k).to(weights.dtype)


def penalty(weights: torch.Tensor, regulariser: str, dims: torch.Tensor | None = None
            ) -> torch.Tensor:
    """R(W) per problem, shape (B,), for weights (B, D, K) whose top-left block is used.

    ``dims`` (B,) gives each problem's own d (default D). eye_distance: ‖W − cI‖²_F with
    c = tr(W)/n, n = min(d, K); l2: ‖W‖²_F; l1: Σ|W|. Entries outside the block are zero
    by construction, so only the trace needs the block's own size.
    """
    if regulariser == "l1":
        return weights.abs().sum(dim=(1, 2))
    sq = weights.square().sum(dim=(1, 2))
    if regulariser == "l2":
        return sq
    # ‖W − cI‖² with c = tr(W)/n expands to ‖W‖² − tr(W)²/n.
    tr, n = _masked_trace(weights, dims)
    return sq - tr.square() / n


def data_nll(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean NLL of choice 0 per problem: logits (B, N, 3), weights (B, N) → (B,)."""
    a, b, c = logits.unbind(-1)
    # logsumexp(a, b, c) − a = log(1 + e^(b−a) + e^(c−a)); this form is stable and about
    # twice as fast as torch.logsumexp over a last dimension of 3 (forward + backward).
    per = torch.nn.functional.softplus(torch.logaddexp(b - a, c - a))
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

    For the similarity path, each (feature block, set) pair has its objects re-indexed
    locally: ``local_x`` (K, m, D) and ``local_t`` (K, N, 3), with problem b using
    block ``block[b]``. For the rows path ``global_x`` (C, n, D) and the set triplets.
    """

    mode: str
    block: torch.Tensor
    local_x: torch.Tensor | None
    local_t: torch.Tensor | None
    global_x: torch.Tensor | None
    feature_of: torch.Tensor
    set_of: torch.Tensor
    triplets: torch.Tensor
    weights: torch.Tensor
    lambdas: torch.Tensor
    dims: torch.Tensor
    regulariser: str
    method: Method = Method("full")
    bases: dict[int, torch.Tensor] = field(default_factory=dict)

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
        if self.mode == "similarity":
            blk = self.block[idx]
            z = self.method.transform(self.local_x[blk], theta)
            m = z.shape[1]
            t = self.local_t[blk]
            i, j, k = t.unbind(-1)
            flat = (z @ z.transpose(1, 2)).reshape(len(idx), m * m)
            pidx = torch.stack([i * m + j, i * m + k, j * m + k], dim=-1)
            logits = flat.gather(1, pidx.reshape(len(idx), -1)).reshape(pidx.shape)
        else:
            z = self.method.transform(self.global_x[self.feature_of[idx]], theta)
            logits = _row_logits(z, self.triplets[sets])
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
    # three int64 index copies (the set, its local re-indexing, the flat pair index).
    triplet_terms = n_trip * 3 * 12 * itemsize + n_trip * 3 * 8 * 3
    if mode == "similarity":
        # S, its gradient and two temporaries; Z, dZ, the local features and the SVD
        # workspace of the rank reduction.
        work = 4 * n_obj * n_obj * itemsize + 8 * n_obj * dim * itemsize + triplet_terms
    else:
        work = 4 * n_obj * dim * itemsize + 4 * 3 * n_trip * dim * itemsize + triplet_terms
    # 2·history curvature vectors (and a transient copy of them while only part of the
    # batch is active), ~20 more of size D² (iterates, gradients, direction, line-search
    # trials, autograd buffers, results); checked against peak RSS up to d = 2048 on CPU.
    state = (4 * history + 20) * p * itemsize + 2 * history * history * itemsize
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
    n = int(features[0].shape[0])
    gx = _padded(features, dmax)
    dims = torch.as_tensor(dims_c, device=device)[feature_of]
    n_trip = int(data.triplets.shape[1])
    # Objects each set touches (the fold's training objects), for the local S.
    trip_cpu = data.triplets.cpu()
    local_objs = [torch.unique(trip_cpu[f].reshape(-1)) for f in range(data.n_sets)]
    m = max(len(o) for o in local_objs)
    itemsize = torch.finfo(dtype).bits // 8
    mode = options.gather
    if mode == "auto":
        mode = "similarity" if _prefers_similarity(m, n_trip) else "rows"
        limit = options.max_memory_gb * 2**30
        if (mode == "similarity" and _bytes_per_problem("similarity", m, n_trip, dmax,
                                                        options.history, itemsize) > limit):
            mode = "rows"
    if mode == "similarity":
        pairs = torch.stack([feature_of, set_of], 1).cpu()
        uniq, block = torch.unique(pairs, dim=0, return_inverse=True)
        lx = torch.zeros(len(uniq), m, dmax, dtype=dtype, device=device)
        lt = torch.zeros(len(uniq), n_trip, 3, dtype=torch.long, device=device)
        bases: dict[int, torch.Tensor] = {}
        block_dim = torch.as_tensor(dims_c, device=device)[uniq[:, 0].to(device)]
        for u, (c, f) in enumerate(uniq.tolist()):
            objs = local_objs[f]
            xl = gx[c, objs.to(device), : dims_c[c]]
            lt[u] = torch.searchsorted(objs, trip_cpu[f]).to(device)
            if (options.reduce_rank and options.parsed_method.kind == "full"
                    and options.regulariser in ("eye_distance", "l2")):
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
        batch = _Batch("similarity", block, lx, lt, None, feature_of, set_of,
                       data.triplets, data.weights, lambdas, dims, options.regulariser,
                       options.parsed_method, bases)
        n_obj = m
    else:
        batch = _Batch("rows", torch.zeros_like(feature_of), None, None, gx, feature_of,
                       set_of, data.triplets, data.weights, lambdas, dims, options.regulariser,
                       options.parsed_method)
        n_obj = n
    return batch, _bytes_per_problem(mode, n_obj, n_trip, dmax, options.history, itemsize)


# ----------------------------------------------------------------------------- L-BFGS


class _Objective:
    """Objective and gradient for any subset of a batch's problems."""

    def __init__(self, batch: _Batch, dim: int) -> None:
        self.batch = batch
        self.d = dim  # D, the padded feature dimension
        self.evaluations = 0
        self.problem_evaluations = 0

    def parts(self, w: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective and data NLL (both (A,)) of problems ``idx`` at weights w (A, D, D)."""
        return self.batch.parts(w, idx)

    def __call__(self, flat: torch.Tensor, idx: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        self.evaluations += 1
        self.problem_evaluations += int(idx.numel())
        theta = flat.detach().requires_grad_(True)
        with torch.enable_grad():
            obj, _ = self.batch.parts(theta, idx)
            (grad,) = torch.autograd.grad(obj.sum(), theta)
        return obj.detach(), grad


class _History:
    """Per-problem L-BFGS curvature pairs in ring buffers, with their inner products.

    Directions use the compact representation (Byrd, Nocedal & Schnabel 1994): the same
    H·g as the two-loop recursion in a fixed number of batched ops, whatever the history
    length. ``sy[b, i, j] = s_iᵀ y_j`` and ``yy[b, i, j] = y_iᵀ y_j`` in slot order are kept
    up to date as pairs arrive, so no step costs more than O(history · D²) per problem.
    """

    def __init__(self, b: int, m: int, p: int, device: torch.device, dtype: torch.dtype):
        self.m = m
        self.s = torch.zeros(b, m, p, device=device, dtype=dtype)
        self.y = torch.zeros(b, m, p, device=device, dtype=dtype)
        self.sy = torch.zeros(b, m, m, device=device, dtype=dtype)
        self.yy = torch.zeros(b, m, m, device=device, dtype=dtype)
        self.count = torch.zeros(b, dtype=torch.long, device=device)
        self.head = torch.zeros(b, dtype=torch.long, device=device)

    def reset(self, idx: torch.Tensor) -> None:
        self.count[idx] = 0

    def _rows(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        # idx holds distinct problem numbers: all of them means a view, not a copy of the
        # whole history (2·history·D² values per problem).
        return t if idx.numel() == t.shape[0] else t[idx]

    def push(self, idx: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        slot = self.head[idx]
        self.s[idx, slot] = s
        self.y[idx, slot] = y
        s_all, y_all = self._rows(self.s, idx), self._rows(self.y, idx)
        sy_col = torch.bmm(s_all, y[:, :, None]).squeeze(-1)  # s_iᵀ y_new
        sy_row = torch.bmm(y_all, s[:, :, None]).squeeze(-1)  # s_newᵀ y_j
        yy_col = torch.bmm(y_all, y[:, :, None]).squeeze(-1)
        sy, yy = self.sy[idx], self.yy[idx]
        rows = torch.arange(len(idx), device=s.device)
        sy[rows, :, slot] = sy_col
        sy[rows, slot, :] = sy_row
        yy[rows, :, slot] = yy_col
        yy[rows, slot, :] = yy_col
        self.sy[idx], self.yy[idx] = sy, yy
        self.head[idx] = (slot + 1) % self.m
        self.count[idx] = torch.clamp(self.count[idx] + 1, max=self.m)

    def direction(self, idx: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """−H g for problems ``idx`` with gradients g (A, P)."""
        count = self.count[idx]
        if int(count.max()) == 0:
            return -g
        m = self.m
        a_n = len(idx)
        ks = torch.arange(m, device=g.device)
        # Chronological order: position k holds slot (head − count + k) mod m; the slots
        # past ``count`` are masked out.
        order = (self.head[idx, None] - count[:, None] + ks[None, :]) % m
        valid = ks[None, :] < count[:, None]
        vf = valid.to(g.dtype)
        s = self._rows(self.s, idx)
        y = self._rows(self.y, idx)
        a = torch.bmm(s, g[:, :, None]).squeeze(-1).gather(1, order) * vf  # Sᵀg
        b = torch.bmm(y, g[:, :, None]).squeeze(-1).gather(1, order) * vf  # Yᵀg
        sy = self.sy[idx].gather(1, order[:, :, None].expand(-1, -1, m)).gather(
            2, order[:, None, :].expand(-1, m, -1))
        yy = self.yy[idx].gather(1, order[:, :, None].expand(-1, -1, m)).gather(
            2, order[:, None, :].expand(-1, m, -1))
        mask2 = vf[:, :, None] * vf[:, None, :]
        sy, yy = sy * mask2, yy * mask2
        diag = torch.diagonal(sy, dim1=1, dim2=2)
        r = torch.triu(sy) + torch.diag_embed(1.0 - vf)  # masked slots: identity rows
        newest = (count - 1).clamp_min(0)
        rows = torch.arange(a_n, device=g.device)
        gamma = diag[rows, newest] / yy[rows, newest, newest]
        q = torch.linalg.solve_triangular(r, a[:, :, None], upper=True)
        rhs = (torch.diag_embed(diag) + gamma[:, None, None] * yy) @ q - gamma[:, None, None] * b[:, :, None]
        u = torch.linalg.solve_triangular(r.transpose(1, 2), rhs, upper=False)
        # Back to slot order for the products with the stored S and Y.
        u_slot = torch.zeros_like(a).scatter(1, order, u.squeeze(-1) * vf)
        q_slot = torch.zeros_like(a).scatter(1, order, q.squeeze(-1) * vf)
        hg = (gamma[:, None] * g + torch.bmm(u_slot[:, None, :], s).squeeze(1)
              - gamma[:, None] * torch.bmm(q_slot[:, None, :], y).squeeze(1))
        return -hg


def lbfgs(fun: _Objective, x0: torch.Tensor, options: FitOptions
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise B independent problems with per-problem L-BFGS.

    ``fun(x_sub, idx)`` returns objective (A,) and gradient (A, P) for problems ``idx``.
    Line search: per-problem backtracking with safeguarded quadratic interpolation under
    the Armijo condition. Returns x (B, P), f (B,), iterations (B,), status codes (B,)
    indexing :data:`STATUS`.
    """
    dev, dt = x0.device, x0.dtype
    b, p = x0.shape
    x = x0.clone()
    f, g = fun(x, torch.arange(b, device=dev))
    hist = _History(b, options.history, p, dev, dt)
    iters = torch.zeros(b, dtype=torch.long, device=dev)
    status = torch.zeros(b, dtype=torch.long, device=dev)
    status[g.abs().amax(1) <= options.grad_tol] = 1
    c1 = 1e-4
    for _ in range(options.max_iter):
        act = torch.nonzero(status == 0).flatten()
        if act.numel() == 0:
            break
        xa, fa, ga = x[act], f[act], g[act]
        d = hist.direction(act, ga)
        gtd = (ga * d).sum(1)
        bad = ~(gtd < 0)
        if bad.any():  # stale curvature: restart from steepest descent
            d[bad] = -ga[bad]
            gtd = (ga * d).sum(1)
            hist.reset(act[bad])
        first = hist.count[act] == 0
        step = torch.where(first, torch.clamp(1.0 / ga.abs().sum(1), max=1.0),
                           torch.ones_like(fa))
        x_new, f_new, g_new = xa.clone(), fa.clone(), ga.clone()
        searching = torch.ones_like(fa, dtype=torch.bool)
        f_last = fa.clone()
        for _ls in range(options.max_line_search):
            sidx = torch.nonzero(searching).flatten()
            if sidx.numel() == 0:
                break
            xt = xa[sidx] + step[sidx, None] * d[sidx]
            ft, gt = fun(xt, act[sidx])
            f_last[sidx] = ft
            ok = torch.isfinite(ft) & (ft <= fa[sidx] + c1 * step[sidx] * gtd[sidx])
            acc = sidx[ok]
            x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
            searching[acc] = False
            rej = sidx[~ok]
            if rej.numel():
                t, f0, slope, fr = step[rej], fa[rej], gtd[rej], ft[~ok]
                denom = 2.0 * (fr - f0 - slope * t)
                t_quad = torch.where(torch.isfinite(fr) & (denom > 0), -slope * t * t / denom,
                                     0.5 * t)
                step[rej] = torch.minimum(torch.maximum(t_quad, 0.1 * t), 0.5 * t)
        failed = searching
        s = x_new - xa
        y = g_new - ga
        sy = (s * y).sum(1)
        good = (~failed) & (sy > 1e-10 * y.square().sum(1).clamp_min(1e-30))
        if good.any():
            hist.push(act[good], s[good], y[good])
        iters[act] += 1
        x[act], f[act], g[act] = x_new, f_new, g_new
        scale = torch.maximum(fa.abs(), f_new.abs()).clamp_min(1e-12)
        conv_grad = g_new.abs().amax(1) <= options.grad_tol
        conv_loss = (fa - f_new).abs() <= options.loss_tol * scale
        # A failed search whose trial points did not measurably change the loss has hit
        # the resolution of the dtype: the loss criterion, not a solver failure.
        stalled = failed & ((f_last - fa).abs() <= options.loss_tol * scale)
        new = torch.zeros_like(act)
        new = torch.where(iters[act] >= options.max_iter, torch.full_like(new, 4), new)
        new = torch.where(failed, torch.full_like(new, 3), new)
        new = torch.where(stalled | (conv_loss & ~failed), torch.full_like(new, 2), new)
        new = torch.where(conv_grad, torch.full_like(new, 1), new)
        status[act] = new
    status[status == 0] = 4
    return x, f, iters, status


# ----------------------------------------------------------------------------- API


@dataclass
class FitResult:
    """Per-problem results of a batched fit (B problems).

    weights (B, D, K) (K = D, or k for low_rank:k), problem b's transform in its top
    ``dims[b]`` rows;
    objective and train_nll (B,) in nats per judgement; iterations (B,) (under warm
    starts: of the problem's own λ stage); converged (B,) bool; status (B,) one of
    ``gradient`` / ``loss`` (tolerance met), ``max_iter``, ``line_search``; seconds
    for the whole call; evaluations: batched objective calls.
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
            f"{options.max_memory_gb} GiB (fitting.max_memory_gb)")
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
    # Stages: all problems at once, or one λ value at a time from the largest down, each
    # problem starting from the solution of its own (features, set) at the previous λ.
    if options.warm_start and len(np.unique(lam_np)) > 1:
        stages = [np.flatnonzero(lam_np == v) for v in sorted(np.unique(lam_np), reverse=True)]
    else:
        stages = [np.arange(b)]
    x_out = w0.clone()
    f_out = torch.zeros(b, dtype=dtype, device=device)
    it_out = torch.zeros(b, dtype=torch.long, device=device)
    st_out = torch.zeros(b, dtype=torch.long, device=device)
    fun = _Objective(batch, dmax)
    prev: dict[tuple[int, int], int] = {}
    for stage in stages:
        for lo in range(0, len(stage), chunk):
            ids_np = stage[lo: lo + chunk]
            ids = torch.as_tensor(ids_np, device=device)
            x0 = w0[ids].clone()
            for row, pb in enumerate(ids_np.tolist()):
                key = (int(pf[pb]), int(problem_set[pb]))
                if key in prev:
                    x0[row] = x_out[prev[key]]
            sub = _Subset(fun, ids)
            x, f, it, st = lbfgs(sub, x0, options)
            x_out[ids], f_out[ids], it_out[ids], st_out[ids] = x, f, it, st
        # A larger λ can collapse W towards 0 (uniform predictions, NLL = log 3). W = 0 is
        # stationary for every λ under both regularisers (zero data gradient, and c = 0),
        # so only solutions that fit better than chance seed the next λ; others restart
        # from the identity like a cold fit.
        with torch.no_grad():
            stage_t = torch.as_tensor(stage, device=device)
            _, stage_nll = batch.parts(x_out[stage_t], stage_t)
        for pb, nll_pb in zip(stage.tolist(), stage_nll.tolist()):
            key = (int(pf[pb]), int(problem_set[pb]))
            if nll_pb < _LOG3 - _WARM_MARGIN:
                prev[key] = pb
            else:
                prev.pop(key, None)
    with torch.no_grad():
        nll = torch.cat([batch.parts(x_out[lo: lo + chunk],
                                     torch.arange(lo, min(b, lo + chunk), device=device))[1]
                         for lo in range(0, b, chunk)])
        w = batch.to_original(method.weights(x_out, dmax))
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


class _Subset:
    """Maps a stage's local problem numbers to the batch's global ones."""

    def __init__(self, fun: _Objective, ids: torch.Tensor) -> None:
        self.fun, self.ids = fun, ids

    def __call__(self, flat: torch.Tensor, idx: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fun(flat, self.ids[idx])


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
