"""How much one odd-one-out response tells about which model produced it.

For a triplet t, model g predicts the three choices with probabilities
p_g(t) = softmax([S_ij, S_ik, S_jk] / T_g) (the pair-logit order of
:mod:`modelrecovery.oddoneout`). With a prior π over the models, the expected information
about the model's identity M from one response Y is the mutual information

    I(M; Y | t) = H(Σ_g π_g p_g(t)) − Σ_g π_g H(p_g(t))      (nats, 0 ≤ I ≤ log 3),

zero where every model predicts the same distribution. It is computed from
log-probabilities (log-softmax, log-sum-exp over models), never from clipped
probabilities, so near-deterministic models stay exact. Pools are scored in chunks on the
fitting device with bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..fitting.similarities import rowwise
from ..oddoneout import similarity as similarity_matrix
from ..oddoneout import unit_rows

#: Upper bound of I(M; Y | t) for a three-way choice.
MAX_INFORMATION = math.log(3.0)


def information_from_log_probs(log_p: torch.Tensor, log_prior: torch.Tensor
                               ) -> torch.Tensor:
    """I(M; Y | t) per triplet, shape (N,), from log p_g(t) (G, N, 3) and log π (G,).

    Computed as Σ_g π_g KL(p_g(t) ‖ p̄(t)) with p̄ = Σ_g π_g p_g, the same quantity as the
    entropy difference but without subtracting two entropies near log 3 from each other.
    Models with π_g = 0 (log π = −inf) drop out exactly.
    """
    keep = torch.isfinite(log_prior)
    log_p, log_prior = log_p[keep], log_prior[keep]
    log_mix = torch.logsumexp(log_p + log_prior[:, None, None], dim=0)  # (N, 3)
    kl = (log_p.exp() * (log_p - log_mix)).sum(dim=2)  # (G, N)
    info = (log_prior.exp()[:, None] * kl).sum(dim=0)
    # Rounding can leave −1e-17 where the models agree; information is never negative.
    return info.clamp_min(0.0)


def _pair_logits_from_sims(sims: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """[S_ij, S_ik, S_jk] per model and triplet, shape (G, N, 3), from sims (G, n, n)."""
    n = sims.shape[1]
    i, j, k = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    flat = sims.reshape(sims.shape[0], n * n)
    pairs = torch.stack([i * n + j, i * n + k, j * n + k], dim=1).reshape(-1)
    return flat[:, pairs].reshape(sims.shape[0], -1, 3)


def _pair_logits_from_rows(z: Sequence[torch.Tensor], triplets: torch.Tensor,
                           kinds: Sequence[str]) -> torch.Tensor:
    """The same from the transformed features Z_g = X_g W_g (n, d_g) by row products
    (rows already of unit length for a cosine model), for worlds too large to hold every
    model's n × n similarity."""
    i, j, k = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    out = []
    for zg, kind in zip(z, kinds):
        zi, zj, zk = zg[i], zg[j], zg[k]
        out.append(torch.stack([rowwise(zi, zj, kind), rowwise(zi, zk, kind),
                                rowwise(zj, zk, kind)], dim=1))
    return torch.stack(out)


def pool_information(features: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                     temperatures: Sequence[float], triplets: np.ndarray, *,
                     prior: Sequence[float] | None = None, device: str = "cpu",
                     dtype: torch.dtype = torch.float32, max_memory_gb: float = 2.0,
                     similarity: str | Sequence[str] = "dot") -> np.ndarray:
    """I(M; Y | t) for every triplet of a pool, shape (N,), float64, in nats.

    ``features[g]`` (n, d_g) and ``weights[g]`` (d_g, k_g) give model g's similarity
    S_g of Z_g = X_g W_g under ``similarity`` (one for all models or one per model:
    dot (X_g W_g)(X_g W_g)ᵀ, cosine, euclidean;
    :func:`modelrecovery.oddoneout.similarity`), ``temperatures[g]`` its T_g > 0;
    ``prior`` (G,) sums to
    1 (uniform when None); ``triplets`` (N, 3) are object ids. The models' n × n
    similarities are held on ``device`` when they fit in half of ``max_memory_gb``
    (else pair similarities come from feature rows), and triplets are scored in chunks
    sized to the other half, so memory stays bounded for any pool size.
    """
    g = len(features)
    if not (len(weights) == len(temperatures) == g) or g == 0:
        raise ValueError("one weight matrix and one temperature per model are needed")
    pi = np.full(g, 1.0 / g) if prior is None else np.asarray(prior, dtype=np.float64)
    if pi.shape != (g,) or (pi < 0).any() or not math.isclose(pi.sum(), 1.0, rel_tol=1e-9):
        raise ValueError(f"the prior must be {g} non-negative numbers summing to 1, got {pi}")
    dev = torch.device(device)
    itemsize = torch.finfo(dtype).bits // 8
    budget = max_memory_gb * 2**30 / 2
    kinds = [similarity] * g if isinstance(similarity, str) else list(similarity)
    if len(kinds) != g:
        raise ValueError(f"one similarity per model is needed, got {len(kinds)} for {g}")
    z64 = [np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64)
           for x, w in zip(features, weights)]
    n = z64[0].shape[0]
    use_sims = g * n * n * itemsize <= budget
    if use_sims:
        sims = torch.as_tensor(np.stack([similarity_matrix(x, w, kind) for x, w, kind
                                         in zip(features, weights, kinds)]),
                               dtype=dtype, device=dev)
        per_triplet = g * 3 * itemsize * 8  # gathered logits and the KL's temporaries
    else:
        z = [torch.as_tensor(unit_rows(zg) if kind == "cosine" else zg, dtype=dtype,
                             device=dev) for zg, kind in zip(z64, kinds)]
        per_triplet = (3 * max(zg.shape[1] for zg in z64) + g * 3 * 8) * itemsize
    chunk = max(1, int(budget // per_triplet))
    temps = torch.as_tensor(np.asarray(temperatures, dtype=np.float64), dtype=dtype,
                            device=dev)[:, None, None]
    with np.errstate(divide="ignore"):
        log_prior = torch.as_tensor(np.log(pi), dtype=dtype, device=dev)
    t_all = np.asarray(triplets, dtype=np.int64)
    out = np.empty(len(t_all), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(t_all), chunk):
            t = torch.as_tensor(t_all[start:start + chunk], device=dev)
            logits = (_pair_logits_from_sims(sims, t) if use_sims
                      else _pair_logits_from_rows(z, t, kinds))
            log_p = torch.log_softmax(logits / temps, dim=2)
            info = information_from_log_probs(log_p, log_prior)
            out[start:start + len(t)] = info.double().cpu().numpy()
    return out
