"""A kernel run's problems on the device: features padded to a common D, each (features,
set) pair's objects re-indexed locally, the gather mode chosen, and the rank reduction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .gather import GATHERS, Gather, choose_gather
from .loss import data_nll
from .memory import bytes_per_problem
from .methods import Method
from .options import FitOptions
from .triplets import TripletSets

Features = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]


@dataclass
class Batch:
    """Everything one kernel run needs, on the device.

    Each (features, set) pair is a block with its objects re-indexed locally (the m
    objects the set touches): ``local_x`` (U, m, D) and ``local_t`` (U, N, 3), problem b
    using block ``block[b]``. ``gather`` says how pair logits are formed
    (:mod:`.gather`), ``similarity`` from which pair similarity; ``counts`` (F, N) are the
    sets' triplet counts.
    """

    gather: Gather
    block: torch.Tensor
    local_x: torch.Tensor
    local_t: torch.Tensor
    set_of: torch.Tensor
    counts: torch.Tensor
    lambdas: torch.Tensor
    dims: torch.Tensor
    regulariser: str
    method: Method = Method("full")
    bases: dict[int, torch.Tensor] = field(default_factory=dict)
    symmetric: bool = False
    similarity: str = "dot"

    def to_original(self, w: torch.Tensor) -> torch.Tensor:
        """Map rank-reduced solutions W (B, D, D) back to the features' own coordinates."""
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
        """Objective and data NLL (A,) of problems ``idx`` at parameters θ (A, P) (for
        ``full`` also accepted as W (A, D, D)), by the plain, differentiable computation."""
        theta = theta.reshape(len(idx), -1)
        sets = self.set_of[idx]
        blk = self.block[idx]
        z = self.method.transform(self.local_x[blk], theta)
        logits = self.gather.logits_of(z, self.local_t[blk], self.similarity)
        nll = data_nll(logits, self.counts[sets])
        pen = self.method.penalty(theta, self.regulariser, self.dims[idx])
        return nll + self.lambdas[idx] * pen, nll


def as_list(features: Features) -> list:
    """One feature array or a sequence of them, as a list."""
    return [features] if isinstance(features, (np.ndarray, torch.Tensor)) else list(features)


def padded(xs: list[torch.Tensor], dmax: int) -> torch.Tensor:
    """Stack C feature arrays (n, d_c) into (C, n, D), zero beyond each d_c."""
    gx = torch.zeros(len(xs), xs[0].shape[0], dmax, dtype=xs[0].dtype, device=xs[0].device)
    for c, x in enumerate(xs):
        gx[c, :, : x.shape[1]] = x
    return gx


def tensors(features: Features, data: TripletSets, problem_set: np.ndarray,
            lambdas: np.ndarray, problem_features: np.ndarray | None,
            device: torch.device, dtype: torch.dtype
            ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor,
                       TripletSets]:
    """The inputs of a fit on ``device``: feature arrays, each problem's features (B,)
    and set (B,), its λ (B,), and the triplet sets."""
    xs = [torch.as_tensor(np.asarray(x), dtype=dtype, device=device) for x in as_list(features)]
    b = len(problem_set)
    pf = np.zeros(b, dtype=np.int64) if problem_features is None else np.asarray(
        problem_features, dtype=np.int64)
    feature_of = torch.as_tensor(pf, device=device)
    set_of = torch.as_tensor(np.asarray(problem_set), dtype=torch.long, device=device)
    lam = torch.as_tensor(np.asarray(lambdas, dtype=np.float64), dtype=dtype, device=device)
    return xs, feature_of, set_of, lam, data.to(device, dtype)


def prepare(features: list[torch.Tensor], data: TripletSets, feature_of: torch.Tensor,
            set_of: torch.Tensor, lambdas: torch.Tensor, options: FitOptions,
            device: torch.device, dtype: torch.dtype) -> tuple[Batch, int]:
    """Pad features to a common D, choose the gather mode, build local indices: the
    batch and the bytes one of its problems needs."""
    dims_c = [int(x.shape[1]) for x in features]
    dmax = max(dims_c)
    gx = padded(features, dmax)
    n_trip = int(data.triplets.shape[1])
    # Objects each set touches (the fold's training objects), for the local S.
    trip_cpu = data.triplets.cpu()
    local_objs = [torch.unique(trip_cpu[f].reshape(-1)) for f in range(data.n_sets)]
    m = max(len(o) for o in local_objs)
    itemsize = torch.finfo(dtype).bits // 8
    limit = options.max_memory_gb * 2**30

    def per_problem(mode: Gather) -> int:
        return bytes_per_problem(mode, m, n_trip, dmax, options.history, itemsize)

    mode = options.gather_mode or choose_gather(m, n_trip, dmax, itemsize,
                                                lambda g: per_problem(g) <= limit)
    keys = torch.stack([feature_of, set_of], 1).cpu()
    uniq, block = torch.unique(keys, dim=0, return_inverse=True)
    lx = torch.zeros(len(uniq), m, dmax, dtype=dtype, device=device)
    lt = torch.zeros(len(uniq), n_trip, 3, dtype=torch.long, device=device)
    bases: dict[int, torch.Tensor] = {}
    block_dim = torch.as_tensor(dims_c, device=device)[uniq[:, 0].to(device)]
    # Full W under a penalty that, like the data term, depends on W only through its
    # rotation-invariant parts: both the rank reduction and the symmetric restriction
    # are exact there (docs/kernel.md, "Exact reductions of the problem"), under every
    # similarity (each is a function of the Gram matrix X W Wᵀ Xᵀ).
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
    batch = Batch(mode, block, lx, lt, set_of, data.counts, lambdas, dims,
                  options.regulariser, options.parsed_method, bases,
                  options.symmetric and exact_shortcuts, options.similarity)
    return batch, per_problem(mode)


# The fixed cost of one solver call's evaluation (the solver's and the objective's ~100
# small operations, whatever the batch holds), in the cost model's multiply-adds: ~1 ms
# on the 2-core CPU the gather costs were fitted on. On the default world's jobs (D = 16,
# candidates of d = 10–16) one call per dimension took 1.35–2.44× the time of one padded
# call (benchmarks/kernel_ab.py); at the study's shape (d = 64 beside 256, m = 865,
# N = 10³) it took half the time.
CALL_COST = 2e7


def by_dimension(dims: np.ndarray, n_objects: int, n_triplets: int,
                 gather_mode: Gather | None) -> bool:
    """Whether problems of feature dimensions ``dims`` (B,) cost less fitted one
    dimension at a time (each at its own cheapest gather mode, one solver call each)
    than padded to the largest in one call, by :meth:`.gather.Gather.cost` per
    evaluation plus :data:`CALL_COST` per further call."""
    def cost(d: int) -> float:
        modes = [gather_mode] if gather_mode is not None else list(GATHERS.values())
        return min(g.cost(n_objects, n_triplets, int(d)) for g in modes)

    values, counts = np.unique(dims, return_counts=True)
    apart = sum(c * cost(d) for d, c in zip(values, counts))
    return apart + (len(values) - 1) * CALL_COST < len(dims) * cost(values.max())
