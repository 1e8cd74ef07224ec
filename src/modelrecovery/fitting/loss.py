"""The loss: the count-weighted mean NLL of the odd-one-out choices plus λ·R(W), its plain
form on whole tensors. What the solver evaluates over a batch, with its hand-written
gradient, is :mod:`.evaluation`.

Objective of problem b (set f, strength λ_b), pair logits as in :mod:`..oddoneout`:

    L_b(W) = Σ_t n_t [logsumexp(S_ij, S_ik, S_jk) − S_ij] / Σ_t n_t  +  λ_b R(W)
    R(W)   = ‖W − cI‖²_F, c = tr(W)/n, n = min(d, k)  (eye_distance)   or   ‖W‖²_F  (l2)

with n_t triplet t's count and S = (X W)(X W)ᵀ at T = 1 (the scale of W absorbs the
temperature), or S the cosine or negative euclidean distance of the rows of X W
(:mod:`.similarities`; the cosine is blind to W's scale, so at T = 1 its logits stay
within ±1, as in the published code, which fits W at T = 1 under every similarity).
"""

from __future__ import annotations

import math

import torch

from .gather import Gather, evaluation_mode

# The NLL of uniform choices (W = 0), in nats per judgement.
LOG3 = math.log(3.0)


def probe_logits(features: torch.Tensor, weights: torch.Tensor, triplets: torch.Tensor,
                 gather: Gather | str = "auto", similarity: str = "dot") -> torch.Tensor:
    """Pair logits [S_ij, S_ik, S_jk] under the linear probe, S the ``similarity`` (dot:
    (XW)(XW)ᵀ; cosine; euclidean) of Z = XW, for a batch of problems on shared features
    (:func:`modelrecovery.oddoneout.pair_logits` takes S).

    features (n, d) or (B, n, d); weights W (B, d, d); triplets (B, N, 3) long → (B, N, 3).
    The plain computation, used for evaluation and as the reference in tests; ``auto``
    chooses similarity or rows by :func:`.gather.prefers_similarity`.
    """
    mode = evaluation_mode(gather, features.shape[-2], int(triplets.shape[1]),
                           features.element_size())
    return mode.plain_logits(features, weights, triplets, similarity)


def penalty(weights: torch.Tensor, regulariser: str, dims: torch.Tensor | None = None
            ) -> torch.Tensor:
    """R(W) per problem, shape (B,), for W = ``weights`` (B, D, K) whose top-left block
    is used.

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


def data_nll(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Count-weighted mean NLL of choice 0 per problem, in nats per judgement: logits
    (B, N, 3), counts (B, N) → (B,)."""
    a, b, c = logits.unbind(-1)
    # logsumexp(a, b, c) − a, shifted by the largest logit; about twice as fast as
    # torch.logsumexp over a last dimension of 3 (forward + backward). (softplus would
    # return x itself beyond x = 20, an error of up to e^-20 per triplet: a kink in the
    # objective at the scale of the stopping tolerances.)
    top = torch.maximum(torch.maximum(a, b), c)
    per = ((a - top).exp() + (b - top).exp() + (c - top).exp()).log() + (top - a)
    return (counts * per).sum(-1) / counts.sum(-1)


def tie_aware_accuracy(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Count-weighted accuracy of the most probable choice, exact ties splitting credit:
    logits (B, N, 3), counts (B, N) → (B,), a fraction of judgements."""
    top = logits == logits.amax(dim=-1, keepdim=True)
    per = top[..., 0].to(counts.dtype) / top.sum(-1).to(counts.dtype)
    return (counts * per).sum(-1) / counts.sum(-1)
