"""The kernel's pair similarities of transformed features Z = X W other than the dot
product (:func:`modelrecovery.oddoneout.similarity` is their NumPy reference):

- ``cosine``: S_ij = u_i·u_j with u = z/‖z‖ (u = 0 for a zero row). Every gather mode that
  works on Z normalises its rows once (:func:`unit_rows`) and proceeds as for the dot
  product; :func:`unit_rows_backward` takes ∂/∂U back to ∂/∂Z.
- ``euclidean``: S_ij = −‖z_i − z_j‖, with the subgradient 0 where two rows coincide
  (as torch's norm has it).

All of S is a function of the Gram matrix Z Zᵀ = X (W Wᵀ) Xᵀ, like the dot product, so the
kernel's exact reductions that rest on that (rank reduction, symmetric ``full`` W, pairs
mode's ∂/∂W = (A + Aᵀ)W with A = ∂/∂(W Wᵀ)) hold for all three. The plain functions here
are differentiable by autograd (the tests' reference and evaluation's forward pass); the
``*_backward`` ones are the hand-written gradients of :mod:`.gather`.
"""

from __future__ import annotations

import torch


def unit_rows(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U = Z/‖Z‖ row-wise (…, m, K), and 1/‖z‖ per row (…, m, 1), 0 for a zero row
    (whose U row is then 0). Differentiable without NaN: a zero row's gradient is 0."""
    norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    inv = torch.where(norm > 0, 1.0 / norm.clamp_min(torch.finfo(z.dtype).tiny), 0.0)
    return z * inv, inv


def unit_rows_backward(u: torch.Tensor, inv: torch.Tensor, du: torch.Tensor
                       ) -> torch.Tensor:
    """∂/∂Z from ∂/∂U for U = :func:`unit_rows` (Z): (du − u (u·du)) / ‖z‖."""
    return (du - u * (u * du).sum(-1, keepdim=True)).mul_(inv)


def distance_matrix(z: torch.Tensor) -> torch.Tensor:
    """‖z_i − z_j‖ (B, n, n) for Z (B, n, K), from the Gram matrix (in place on it), its
    rounding below 0 clamped; the square root's argument is at least the dtype's
    smallest normal number, so autograd gives the coincident rows' gradient 0, not NaN."""
    sq = (z * z).sum(-1)
    d2 = torch.baddbmm(sq[:, :, None] + sq[:, None, :], z, z.transpose(1, 2), alpha=-2.0)
    return d2.clamp_min_(torch.finfo(z.dtype).tiny).sqrt_()


def distance_matrix_backward(z: torch.Tensor, dist: torch.Tensor, gd: torch.Tensor
                             ) -> torch.Tensor:
    """∂/∂Z (B, n, K) from ∂/∂dist ``gd`` (B, n, n) for dist = :func:`distance_matrix` (Z),
    overwriting ``gd``. With H = gd/(2·dist) (0 where rows coincide) and L = H + Hᵀ:
    d² = ‖z_i‖² + ‖z_j‖² − 2 z_i·z_j gives ∂/∂Z = 2 (diag(L 1) − L) Z."""
    tiny = torch.finfo(z.dtype).tiny
    h = gd.div_(dist).mul_(0.5).masked_fill_(dist <= tiny ** 0.5, 0.0)
    lap = h + h.transpose(1, 2)
    return 2.0 * (z * lap.sum(-1, keepdim=True) - torch.bmm(lap, z))


def matrix(z: torch.Tensor, kind: str) -> torch.Tensor:
    """S (B, n, n) of Z (B, n, K) under ``kind``, differentiably."""
    if kind == "cosine":
        z = unit_rows(z)[0]
    elif kind == "euclidean":
        return -distance_matrix(z)
    return z @ z.transpose(1, 2)


def rowwise(za: torch.Tensor, zb: torch.Tensor, kind: str) -> torch.Tensor:
    """s(z_a, z_b) of matching rows (…, K) → (…): z_a·z_b, or −‖z_a − z_b‖ (for cosine
    pass rows already through :func:`unit_rows`). Differentiable (torch's norm has the
    subgradient 0 at 0)."""
    if kind == "euclidean":
        return -torch.linalg.vector_norm(za - zb, dim=-1)
    return (za * zb).sum(-1)


def rowwise_backward(za: torch.Tensor, zb: torch.Tensor, g: torch.Tensor, kind: str
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """∂/∂z_a and ∂/∂z_b (…, K) of Σ g·:func:`rowwise` (z_a, z_b, kind), g (…)."""
    if kind != "euclidean":
        return zb * g[..., None], za * g[..., None]
    diff = za - zb
    dist = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    coef = torch.where(dist > 0, -g[..., None] / dist.clamp_min(torch.finfo(za.dtype).tiny),
                       0.0)
    da = diff.mul_(coef)
    return da, -da


def quadratic_logits(xi: torch.Tensor, xj: torch.Tensor, m: torch.Tensor, kind: str
                     ) -> tuple[torch.Tensor, tuple]:
    """Pair similarities (A, R) of feature ends x_i, x_j (A, R, D) under the metric
    M = W Wᵀ (A, D, D), for pairs mode: x_iᵀ M x_j, its cosine x_iᵀMx_j/√(q_i q_j) with
    q = xᵀMx, or −√((x_i − x_j)ᵀ M (x_i − x_j)); and what :func:`quadratic_backward` needs."""
    tiny = torch.finfo(xi.dtype).tiny
    if kind == "euclidean":
        delta = xi - xj
        dist = torch.linalg.vecdot(torch.bmm(delta, m), delta).clamp_min_(0.0).sqrt_()
        return -dist, (delta, dist)
    xim = torch.bmm(xi, m)
    p = torch.linalg.vecdot(xim, xj)
    if kind == "dot":
        return p, ()
    qi = torch.linalg.vecdot(xim, xi).clamp_min_(0.0)
    qj = torch.linalg.vecdot(torch.bmm(xj, m), xj).clamp_min_(0.0)
    both = qi * qj
    inv = torch.where(both > 0, both.clamp_min(tiny).rsqrt(), 0.0)
    s = p * inv
    return s, (s, inv, qi, qj)


def quadratic_backward(xi: torch.Tensor, xj: torch.Tensor, g: torch.Tensor, saved: tuple,
                       kind: str) -> torch.Tensor:
    """A = ∂/∂M (A, D, D) of Σ g·:func:`quadratic_logits`, g (A, R)."""
    tiny = torch.finfo(xi.dtype).tiny
    if kind == "euclidean":
        delta, dist = saved
        h = torch.where(dist > 0, -0.5 * g / dist.clamp_min(tiny), 0.0)
        return torch.bmm(delta.mT, delta * h[..., None])
    if kind == "dot":
        return torch.bmm(xi.mT, xj * g[..., None])
    s, inv, qi, qj = saved
    # ∂s/∂p = 1/√(q_i q_j), ∂s/∂q_i = −s/(2 q_i) (and j alike); a zero q gives s = 0, 0.
    half = -0.5 * g * s
    ci = torch.where(qi > 0, half / qi.clamp_min(tiny), 0.0)
    cj = torch.where(qj > 0, half / qj.clamp_min(tiny), 0.0)
    return torch.baddbmm(torch.bmm(xj.mT, xj * cj[..., None]), xi.mT,
                         torch.addcmul(xi * ci[..., None], xj, (g * inv)[..., None]))
