"""The ``orthogonal`` method: W = diag(e^a)·Q with Q = exp(B − Bᵀ) ∈ SO(d).

The published code (Avitan & Golan, ``tools/constraints.py``, ``OrthogonalScaledLinear``)
has weight A·D, A orthogonal (geotorch, the matrix exponential of a skew matrix) and D a
positive diagonal (exp of a diagonal), applied as ``F.linear``: z = x (A D)ᵀ = x D Aᵀ. In
this package's z = x W that is W = D·Q with Q = Aᵀ, and the same W carries the penalty
(their ``RegularizationFunction`` takes the layer's ``weight``, A·D, whose norms and
trace are W's). Unconstrained parameters θ = (a (D,), B (D×D)) let L-BFGS run as for
every other method; Q reaches all of SO(d) (the component of the identity, where the
fit starts: geotorch would start at a random orthogonal matrix instead).

Every similarity here (dot, cosine, euclidean) depends on Z only through Z Zᵀ =
X D Q Qᵀ D Xᵀ = X D² Xᵀ: Q is invisible to the data, and the data term's gradient in B is
zero. The probe therefore predicts exactly as a diagonal W with positive entries;
Q moves only where the penalty moves it: eye_distance towards ±I (it is blind to W's
sign), l1 towards signed permutations, l2 (= ‖D‖²) not at all; a start at Q = I is
stationary under all three. A scalar s·Q would be zero-shot's W = s·I in disguise
(X s²QQᵀ Xᵀ = s² X Xᵀ).

The gradient to θ is written by hand: ∂/∂a_i = e^{a_i} Σ_j (∂/∂W)_ij Q_ij, and with
G_Q = diag(e^a)·∂/∂W, ∂/∂K = L(Kᵀ, G_Q), the adjoint of exp's Fréchet derivative at K,
read off exp([[Kᵀ, G_Q], [0, Kᵀ]]) (the upper right block), and ∂/∂B = ∂/∂K − (∂/∂K)ᵀ.
"""

from __future__ import annotations

import torch

# e^PAD is exactly 0 in float32 and float64: a padded dimension's row of W is zero, its
# θ entries get exactly zero gradient and never move (see :func:`init`).
PAD_LOG_SCALE = -1e4


def _split(theta: torch.Tensor, dmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """a (A, D) and the skew generator K = B − Bᵀ (A, D, D) of θ (A, D + D²)."""
    b = theta[:, dmax:].reshape(len(theta), dmax, dmax)
    return theta[:, :dmax], b - b.transpose(1, 2)


def init(inside: torch.Tensor) -> torch.Tensor:
    """θ at W = I on each problem's own dimensions, for ``inside`` (A, D) 0/1 marking
    them: a = 0 there and :data:`PAD_LOG_SCALE` beyond (W exactly zero outside the
    problem's d × d block, as for every method), B = 0 → (A, D + D²)."""
    a = torch.where(inside > 0, 0.0, PAD_LOG_SCALE).to(inside.dtype)
    zeros = inside.new_zeros(len(inside), inside.shape[1] ** 2)
    return torch.cat([a, zeros], 1)


def matrix(theta: torch.Tensor, dmax: int) -> torch.Tensor:
    """W = diag(e^a)·exp(B − Bᵀ) (A, D, D) from θ (A, D + D²)."""
    a, k = _split(theta, dmax)
    return a.exp()[:, :, None] * torch.linalg.matrix_exp(k)


def expm_adjoint(k: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """L(Kᵀ, G): the gradient in K (A, D, D) of ⟨G, exp(K)⟩, G (A, D, D).

    The block is linear in G, so G enters scaled by a power of two (exact) to the norm of
    K (at least 2⁻¹⁰): exp's degree and squarings, chosen by the block matrix's norm,
    are then K's own, which near Q = I (K ≈ 0) makes the 2D × 2D exponential cheap."""
    a, d = k.shape[0], k.shape[-1]
    norm_k = torch.linalg.matrix_norm(k, ord=1).clamp_min(2.0 ** -10)
    norm_g = torch.linalg.matrix_norm(g, ord=1)
    scale = torch.where(norm_g > 0, torch.exp2(torch.round(torch.log2(
        norm_k / norm_g.clamp_min(torch.finfo(g.dtype).tiny)))), 1.0)[:, None, None]
    big = k.new_zeros(a, 2 * d, 2 * d)
    big[:, :d, :d] = k.transpose(1, 2)
    big[:, d:, d:] = k.transpose(1, 2)
    big[:, :d, d:] = g * scale
    return torch.linalg.matrix_exp(big)[:, :d, d:] / scale


def matrix_grad(dw: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """∂/∂θ (A, D + D²) from ∂/∂W (A, D, D) for W = :func:`matrix` (θ)."""
    dmax = dw.shape[-1]
    a, k = _split(theta, dmax)
    s = a.exp()
    q = torch.linalg.matrix_exp(k)
    da = s * (dw * q).sum(-1)
    dk = expm_adjoint(k, s[:, :, None] * dw)
    return torch.cat([da, (dk - dk.transpose(1, 2)).reshape(len(theta), -1)], 1)


def penalty_and_grad(theta: torch.Tensor, regulariser: str, mask: torch.Tensor,
                     n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R(W) (A,) on W = :func:`matrix` (θ), as the published code penalises its layer's
    weight, and ∂R/∂θ (A, P): eye_distance ‖W − cI‖²_F with c = tr(W)/n over the
    problem's own diagonal (``mask`` (A, D), n (A,)), l2 ‖W‖²_F = Σ e^{2a} (Q orthogonal:
    no gradient in B), l1 Σ|W| (subgradient sign(W))."""
    dmax = mask.shape[-1]
    if regulariser == "l2":
        s2 = (2.0 * theta[:, :dmax]).exp()
        return s2.sum(-1), torch.cat([2.0 * s2, torch.zeros_like(theta[:, dmax:])], 1)
    w = matrix(theta, dmax)
    if regulariser == "l1":
        return w.abs().sum((1, 2)), matrix_grad(w.sign(), theta)
    c = (w.diagonal(dim1=1, dim2=2) * mask).sum(-1) / n
    r = w - torch.diag_embed(c[:, None] * mask)
    # c's own derivative cancels (it minimises ‖W − cI‖² over c): ∂R/∂W = 2(W − cI).
    return (r * r).sum((1, 2)), matrix_grad(2.0 * r, theta)
