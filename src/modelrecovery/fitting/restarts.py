"""Sign-flip restarts of symmetric W.

Within the symmetric matrices a long step can flip an eigenvalue's sign: the
similarities do not change (|W|² = W²), and at small λ the penalty barely does, so the
way back crosses 0. Under eye_distance |W| is strictly better (tr |W| > tr W), so such a
problem resumes from |W|, at most :data:`MAX_UNFLIPS` times.
"""

from __future__ import annotations

import torch

# An eigenvalue below −FLIP_TOL·max|eigenvalue| is a sign flip, not rounding.
FLIP_TOL = 1e-6
MAX_UNFLIPS = 3


def flipped(theta: torch.Tensor, dmax: int, own: torch.Tensor) -> torch.Tensor:
    """Which symmetric W (R, P), P = D² with D = ``dmax``, have an eigenvalue below
    −FLIP_TOL·max|eigenvalue|: (R,) bool; ``own`` (R, P) marks each problem's own
    diagonal (:meth:`.methods.Method.trace_mask`).

    A positive definite W, the usual case, is told by a Cholesky factorisation, ~15×
    cheaper than the eigenvalues; the zero padding beyond a problem's own d gets 1s on
    the diagonal for it, or every padded W would look singular.
    """
    w = theta.view(-1, dmax, dmax)
    w = (w + w.transpose(1, 2)) * 0.5
    padded = torch.eye(dmax, dtype=w.dtype, device=w.device) - own.view(-1, dmax, dmax)
    out = torch.linalg.cholesky_ex(w + padded).info != 0
    maybe = torch.nonzero(out).flatten()
    if maybe.numel():
        ev = torch.linalg.eigvalsh(w[maybe])
        scale = ev.abs().amax(1).clamp_min(torch.finfo(ev.dtype).tiny)
        out[maybe] = ev[:, 0] < -FLIP_TOL * scale
    return out


def unflipped(theta: torch.Tensor, dmax: int) -> torch.Tensor:
    """|W| = V|Λ|Vᵀ of symmetric W (R, P) → (R, P): the same similarities (|W|² = W²) and,
    under eye_distance, a smaller penalty (tr |W| > tr W) than a W with a negative
    eigenvalue."""
    w = theta.view(-1, dmax, dmax)
    ev, vec = torch.linalg.eigh((w + w.transpose(1, 2)) * 0.5)
    return ((vec * ev.abs()[:, None, :]) @ vec.transpose(1, 2)).reshape(theta.shape)
