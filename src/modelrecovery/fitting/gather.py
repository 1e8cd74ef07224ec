"""Three exact ways to form the pair logits [S_ij, S_ik, S_jk] of a batch of problems, and
the cost model that chooses one per call.

``similarity`` computes S = Z Zᵀ (Z = X W) over just the m objects a triplet set touches (a
fold's training objects) in one batched matmul and gathers; ``rows`` gathers the rows of
Z for each triplet (cheaper when the triplets cover few of the m² pairs); ``pairs``
gathers the features of both ends of every pair once, before the first iteration, and
forms each logit as x_iᵀ (W Wᵀ) x_j, its gradient as (A + Aᵀ) W with A = Σ_pairs g x_i x_jᵀ
(no gathers or scatters per iteration: cheapest for small D and few triplets).

Each mode is one :class:`Gather` object; the option value that names it (``gather`` in
:class:`~.options.FitOptions`) is parsed by :func:`parse_gather`. Every mode forms every
similarity (the problems' ``similarity``: dot, cosine or euclidean, :mod:`.similarities`);
the dot product's code paths are the ones the other two branch off from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import torch

from . import similarities as sims
from .methods import Method


class GatheredData(Protocol):
    """A working batch's data as a gather mode leaves it (see :meth:`Gather.index`):
    local features ``x`` (A, m, D), pair ``index``, gathered ``ends`` and, for rows,
    ``flat`` positions in Z viewed as (A·m, K); the ``similarity`` of every problem."""

    similarity: str
    x: torch.Tensor
    index: torch.Tensor
    ends: torch.Tensor | None
    flat: torch.Tensor | None


class Gather(ABC):
    """One way to form pair logits and their gradient, and what it costs."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"<gather {self.name}>"

    @abstractmethod
    def index(self, x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, k: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pairs of local triplets (i, j, k) (A, N) each, for local features x
        (A, m, D), in this mode's layout (the ij, ik, jk planes), and the features of
        both ends (A, 2, 3N, D) where the mode keeps them (else None)."""

    def positions(self, index: torch.Tensor, offset: torch.Tensor) -> torch.Tensor | None:
        """Flat positions of :meth:`index` in Z viewed as (A·m, K), with ``offset``
        (A, 1) = each problem's first row there; None where the mode needs none."""
        return None

    @abstractmethod
    def logits(self, data: GatheredData, method: Method, theta: torch.Tensor
               ) -> tuple[torch.Tensor, Any]:
        """Pair logits (A, 3, N) at θ (A, P), and what :meth:`backward` reuses."""

    @abstractmethod
    def backward(self, data: GatheredData, method: Method, theta: torch.Tensor,
                 g: torch.Tensor, saved: Any) -> torch.Tensor:
        """∂/∂θ (A, P) from g = ∂/∂logits (A, 3, N), ``saved`` from :meth:`logits`."""

    def logits_of(self, z: torch.Tensor, triplets: torch.Tensor, similarity: str = "dot"
                  ) -> torch.Tensor:
        """Pair logits (B, N, 3) from Z (B, n, K) for triplets (B, N, 3), differentiably."""
        return row_logits(z, triplets, similarity)

    def plain_logits(self, features: torch.Tensor, weights: torch.Tensor,
                     triplets: torch.Tensor, similarity: str = "dot") -> torch.Tensor:
        """Pair logits (B, N, 3) of features (n, d) or (B, n, d) under W (B, d, K)."""
        return self.logits_of(features @ weights, triplets, similarity)

    @abstractmethod
    def work_bytes(self, n_objects: int, n_triplets: int, dim: int, itemsize: int) -> int:
        """This mode's own working memory of one problem in one evaluation, in bytes."""

    @abstractmethod
    def cost(self, n_objects: int, n_triplets: int, dim: int) -> float:
        """Multiply-adds of one problem's evaluation, gathers at their measured price."""


class Similarity(Gather):
    """S over the local objects in one matmul, then gathered (scattered for backward)."""

    name = "similarity"

    def index(self, x, i, j, k):
        m = x.shape[1]
        return torch.cat([i * m + j, i * m + k, j * m + k], 1), None

    def logits(self, data, method, theta):
        x = data.x
        a, m = theta.shape[0], x.shape[1]
        z = method.transform(x, theta)  # (A, m, K)
        if data.similarity == "euclidean":
            dist = sims.distance_matrix(z)
            return -dist.view(a, m * m).gather(1, data.index).view(a, 3, -1), (z, dist)
        if data.similarity == "cosine":
            u, inv = sims.unit_rows(z)
            sim = torch.bmm(u, u.transpose(1, 2)).reshape(a, m * m)
            return sim.gather(1, data.index).view(a, 3, -1), (z, sim, u, inv)
        sim = torch.bmm(z, z.transpose(1, 2)).reshape(a, m * m)
        return sim.gather(1, data.index).view(a, 3, -1), (z, sim)

    def backward(self, data, method, theta, g, saved):
        if data.similarity != "dot":
            return self._backward_other(data, method, theta, g, saved)
        z, sim = saved
        x = data.x
        a, m = theta.shape[0], x.shape[1]
        # S is spent once its logits are gathered: its buffer, still in cache, takes G.
        gs = sim.zero_().scatter_add_(1, data.index, g.reshape(a, -1))
        gs = gs.view(a, m, m)
        if method.kind in ("full", "low_rank"):
            # ∂/∂W = Xᵀ(G + Gᵀ)XW = (A + Aᵀ)W with A = XᵀGX (D × D): no m × m sum.
            # (XᵀG)X, not Xᵀ(GX): the same flops, but BLAS runs a D-row product of
            # the m × m matrix about 1.8× faster than an m-row one.
            xgx = torch.bmm(torch.bmm(x.transpose(1, 2), gs), x)
            return torch.bmm(xgx + xgx.transpose(1, 2),
                             method.matrix(theta, x.shape[-1])).view(a, -1)
        return method.backward(x, theta, torch.bmm(gs + gs.transpose(1, 2), z))

    @staticmethod
    def _backward_other(data, method, theta, g, saved):
        x = data.x
        a, m = theta.shape[0], x.shape[1]
        if data.similarity == "euclidean":
            z, dist = saved
            gd = torch.zeros_like(dist).view(a, m * m).scatter_add_(
                1, data.index, g.reshape(a, -1).neg())
            return method.backward(x, theta,
                                   sims.distance_matrix_backward(z, dist, gd.view(a, m, m)))
        z, sim, u, inv = saved
        gs = sim.zero_().scatter_add_(1, data.index, g.reshape(a, -1)).view(a, m, m)
        du = torch.bmm(gs + gs.transpose(1, 2), u)
        return method.backward(x, theta, sims.unit_rows_backward(u, inv, du))

    def logits_of(self, z, triplets, similarity="dot"):
        b, n = z.shape[0], z.shape[1]
        i, j, k = triplets.unbind(-1)
        sim = z @ z.transpose(1, 2) if similarity == "dot" else sims.matrix(z, similarity)
        flat = sim.reshape(b, n * n)
        idx = torch.stack([i * n + j, i * n + k, j * n + k], dim=-1)
        return flat.gather(1, idx.reshape(b, -1)).reshape(idx.shape)

    def work_bytes(self, n_objects, n_triplets, dim, itemsize):
        # S, its gradient and two temporaries; Z, dZ, the local features and the SVD
        # workspace of the rank reduction.
        return 4 * n_objects * n_objects * itemsize + 8 * n_objects * dim * itemsize

    def cost(self, n_objects, n_triplets, dim):
        return 1.7 * n_objects * n_objects * dim


class Rows(Gather):
    """The rows of Z at both ends of every pair, gathered per evaluation."""

    name = "rows"

    def index(self, x, i, j, k):  # (A, 3·2·N) as (planes, ends, N)
        return torch.cat([i, j, i, k, j, k], 1), None

    def positions(self, index, offset):
        return (index + offset).reshape(-1)

    def logits(self, data, method, theta):
        x = data.x
        a, m = theta.shape[0], x.shape[1]
        z = method.transform(x, theta)  # (A, m, K)
        kdim = z.shape[-1]
        if data.similarity != "dot":
            # Cosine: the dot product of unit rows; euclidean: −‖z_i − z_j‖ of the ends.
            u, inv = sims.unit_rows(z) if data.similarity == "cosine" else (z, None)
            ends = u.reshape(a * m, kdim).index_select(0, data.flat).view(a, 3, 2, -1, kdim)
            logits = sims.rowwise(ends[:, :, 0], ends[:, :, 1], data.similarity)
            return logits, (z, ends, u, inv)
        ends = z.reshape(a * m, kdim).index_select(0, data.flat).view(a, 3, 2, -1, kdim)
        return (ends[:, :, 0] * ends[:, :, 1]).sum(-1), (z, ends)

    def backward(self, data, method, theta, g, saved):
        if data.similarity != "dot":
            return self._backward_other(data, method, theta, g, saved)
        z, ends = saved
        x = data.x
        a, m, kdim = theta.shape[0], x.shape[1], z.shape[-1]
        # Each end of a pair gets g times the other end.
        dzt = torch.empty_like(ends)
        torch.mul(ends[:, :, 1], g[..., None], out=dzt[:, :, 0])
        torch.mul(ends[:, :, 0], g[..., None], out=dzt[:, :, 1])
        dz = torch.zeros(a * m, kdim, dtype=z.dtype, device=z.device).index_add_(
            0, data.flat, dzt.view(-1, kdim)).view(a, m, kdim)
        return method.backward(x, theta, dz)

    @staticmethod
    def _backward_other(data, method, theta, g, saved):
        z, ends, u, inv = saved
        x = data.x
        a, m, kdim = theta.shape[0], x.shape[1], z.shape[-1]
        dzt = torch.stack(sims.rowwise_backward(ends[:, :, 0], ends[:, :, 1], g,
                                                data.similarity), 2)
        du = torch.zeros(a * m, kdim, dtype=z.dtype, device=z.device).index_add_(
            0, data.flat, dzt.view(-1, kdim)).view(a, m, kdim)
        dz = du if inv is None else sims.unit_rows_backward(u, inv, du)
        return method.backward(x, theta, dz)

    def work_bytes(self, n_objects, n_triplets, dim, itemsize):
        # Z and the gathered ends.
        return 4 * n_objects * dim * itemsize + 4 * 3 * n_triplets * dim * itemsize

    def cost(self, n_objects, n_triplets, dim):
        return 2.0 * n_objects * dim * dim + 40.0 * 12 * n_triplets * dim


class Pairs(Gather):
    """Logits x_iᵀ (W Wᵀ) x_j from both ends' features, gathered once per problem."""

    name = "pairs"

    def index(self, x, i, j, k):  # (A, 2·3·N) as (ends, planes, N), and the ends' features
        index = torch.cat([i, i, j, j, k, k], 1)
        return index, rows(x, index).view(len(index), 2, -1, x.shape[-1])

    def logits(self, data, method, theta):
        a = theta.shape[0]
        w = method.matrix(theta, data.x.shape[-1])  # M = W Wᵀ (A, D, D)
        xi, xj = data.ends.unbind(1)  # (A, 3N, D) each
        if data.similarity != "dot":
            logits, own = sims.quadratic_logits(xi, xj, torch.bmm(w, w.mT), data.similarity)
            return logits.view(a, 3, -1), (w, xi, xj, own)
        logits = torch.linalg.vecdot(torch.bmm(xi, torch.bmm(w, w.mT)), xj).view(a, 3, -1)
        return logits, (w, xi, xj)

    def backward(self, data, method, theta, g, saved):
        if data.similarity != "dot":
            w, xi, xj, own = saved
            am = sims.quadratic_backward(xi, xj, g.reshape(theta.shape[0], -1), own,
                                         data.similarity)
            return method.matrix_grad(torch.bmm(am + am.mT, w), theta)
        w, xi, xj = saved
        # ∂/∂M = A = Σ g x_i x_jᵀ; ∂/∂W = (A + Aᵀ) W.
        am = torch.bmm(xi.mT, xj * g.view(theta.shape[0], -1, 1))
        return method.matrix_grad(torch.bmm(am + am.mT, w), theta)

    def plain_logits(self, features, weights, triplets, similarity="dot"):
        if similarity != "dot":
            return super().plain_logits(features, weights, triplets, similarity)
        i, j, k = triplets.unbind(-1)
        x = features.expand(weights.shape[0], -1, -1) if features.dim() == 2 else features
        xm = rows(x, torch.cat([i, i, j], 1)) @ (weights @ weights.mT)
        out = torch.linalg.vecdot(xm, rows(x, torch.cat([j, k, k], 1)))
        return out.view(x.shape[0], 3, -1).transpose(1, 2)

    def work_bytes(self, n_objects, n_triplets, dim, itemsize):
        # Both ends' features kept, x_iᵀM and g·x_j (the memory of rows).
        return 4 * n_objects * dim * itemsize + 4 * 3 * n_triplets * dim * itemsize

    def cost(self, n_objects, n_triplets, dim):
        return 6.0 * n_triplets * dim * dim + float(dim) ** 3


SIMILARITY, ROWS, PAIRS = Similarity(), Rows(), Pairs()
GATHERS: dict[str, Gather] = {g.name: g for g in (SIMILARITY, ROWS, PAIRS)}
GATHER_CHOICES: tuple[str, ...] = ("auto", *GATHERS)


def parse_gather(mode: str | Gather) -> Gather | None:
    """The mode an option value names (one of :data:`GATHER_CHOICES`); None for auto."""
    if isinstance(mode, Gather):
        return mode
    if mode == "auto":
        return None
    try:
        return GATHERS[mode]
    except KeyError:
        raise ValueError(f"unknown gather mode {mode!r}; use one of {GATHER_CHOICES}"
                         ) from None


# The plain forward pass of evaluation (probe_logits): its similarity path costs m²·D in
# matmuls, its rows path ~3N·D in memory-bound gathers. Measured on whole default
# recovery jobs (m ≈ 125–140 objects per fold, 2-core CPU): in float64 rows wins up to
# N ≈ 250 and similarity from N ≈ 300; in float32 similarity is as fast at N = 150 and
# 18 % faster at N = 300. Hence similarity once m² ≤ k·N, k by itemsize.
_SIMILARITY_PAYS = {4: 160, 8: 72}


def prefers_similarity(n_objects: int, n_triplets: int, itemsize: int = 4) -> bool:
    """Whether evaluation's similarity path beats rows for m objects and N triplets."""
    k = _SIMILARITY_PAYS.get(itemsize, _SIMILARITY_PAYS[8])
    return n_objects * n_objects <= k * n_triplets


def evaluation_mode(mode: str | Gather, n_objects: int, n_triplets: int,
                    itemsize: int) -> Gather:
    """The mode of the plain forward pass (evaluation): the one ``mode`` names, or for
    ``auto`` similarity or rows by :func:`prefers_similarity`."""
    return parse_gather(mode) or (
        SIMILARITY if prefers_similarity(n_objects, n_triplets, itemsize) else ROWS)


# The fit's modes. Pairs costs ~6N·D² + D³ multiply-adds per problem and evaluation (x_iᵀM for the 3N
# pairs, A, M = WWᵀ) and no gathers; similarity ~1.7·m²·D (its matmuls run at a better
# rate, and it fills, gathers and scatters m² entries); rows ~2m·D² plus gathers and the
# scatter of 6N rows of Z, each costing ~40 multiply-adds per entry (index_add_ is slow on
# CPU). Constants fitted to single evaluations of 4–18 problems, float64, 2-core CPU:
# m = 125–3,000, D = 16–256, N = 100–3,000 (pairs 2.5× faster than rows at the default
# N = 100 jobs, 1.2× slower at D = 256, N = m = 1,000; 1.1× faster than similarity at
# N = 300, m = 140, D = 16, 2.6× slower at N = 1,000). The mode is the least cost of
# the three: at the study's shape (m = 865, D = 64 and 256, float64, 1 thread,
# benchmarks/study_shape.py) similarity takes 2.9 s where rows takes 17.5 s (N = 10⁴),
# and the three are within 10 % of each other at N = 10³.
def choose_gather(n_objects: int, n_triplets: int, dim: int, itemsize: int,
                  fits: Callable[[Gather], bool]) -> Gather:
    """The mode of least :meth:`Gather.cost` for problems of m objects, N triplets and
    dimension D, among those whose working memory ``fits(mode)`` allows (rows and pairs
    need the same, which always fits where a problem fits at all). ``itemsize`` (bytes
    per entry) is part of the memory test the caller's ``fits`` makes."""
    modes = [ROWS, PAIRS] + ([SIMILARITY] if fits(SIMILARITY) else [])
    return min(modes, key=lambda g: g.cost(n_objects, n_triplets, dim))


def rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (B, R) of x (B, n, d) → (B, R, d)."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


def row_logits(z: torch.Tensor, triplets: torch.Tensor, similarity: str = "dot"
               ) -> torch.Tensor:
    """Pair logits from rows of Z (B, n, d) for triplets (B, N, 3), via flat index_select."""
    b, n, d = z.shape
    offset = (torch.arange(b, device=z.device) * n)[:, None, None]
    flat = (triplets + offset).reshape(-1, 3)
    if similarity == "cosine":
        z = sims.unit_rows(z)[0]
    zf = z.reshape(b * n, d)
    zi, zj, zk = (zf.index_select(0, flat[:, c]) for c in range(3))
    if similarity == "euclidean":
        out = torch.stack([sims.rowwise(zi, zj, similarity), sims.rowwise(zi, zk, similarity),
                           sims.rowwise(zj, zk, similarity)], dim=-1)
        return out.reshape(b, -1, 3)
    out = torch.stack([(zi * zj).sum(-1), (zi * zk).sum(-1), (zj * zk).sum(-1)], dim=-1)
    return out.reshape(b, -1, 3)
