"""The probabilistic odd-one-out model.

A triplet is stored as (i, j, k) with k the odd one out, i.e. the pair (i, j) was judged
most similar. With similarity S of the transformed features Z = X W (by default the dot
product, S = (X W)(X W)ᵀ; :func:`similarity`) and temperature T,

    p(k odd | i, j, k) = exp(S_ij/T) / (exp(S_ij/T) + exp(S_ik/T) + exp(S_jk/T)).

Throughout, the three "pair logits" of a triplet are ordered [S_ij, S_ik, S_jk]: entry 0
is the pair whose third member is k (the recorded choice), entry 1 means j was odd,
entry 2 means i was odd. These NumPy functions are the reference implementation the
torch kernel is tested against, and serve simulation; :func:`calibrate_temperature`
solves for the T at which a model's expected accuracy reaches the noise ceiling.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

from scipy.spatial.distance import pdist, squareform

from .errors import InputError
from .settings import SIMILARITIES


def transformed(features: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Z = X W, shape (n, k), in float64. ``weights`` None means W = I."""
    x = np.asarray(features, dtype=np.float64)
    return x if weights is None else x @ np.asarray(weights, dtype=np.float64)


def unit_rows(z: np.ndarray) -> np.ndarray:
    """The rows of ``z`` (n, k) scaled to unit length; a zero row stays zero (its cosine
    with every row is then 0)."""
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, z / norm, 0.0)


def similarity(features: np.ndarray, weights: np.ndarray | None = None,
               kind: str = "dot") -> np.ndarray:
    """S (n, n), float64, of the transformed features z = x W (``weights`` None: W = I).

    ``kind`` (:data:`~modelrecovery.settings.SIMILARITIES`), as the published code's
    ``tools/similarity_functions.py`` defines them: ``dot`` S_ij = z_i·z_j; ``cosine``
    z_i·z_j / (‖z_i‖‖z_j‖) (0 where a row is zero); ``euclidean`` −‖z_i − z_j‖. Their
    ``euclidean_distance`` returns the distance itself, a dissimilarity: as a choice logit
    the closest pair must be the most similar, hence the sign (unscaled, unsquared).
    """
    z = transformed(features, weights)
    if kind == "dot":
        return z @ z.T
    if kind == "cosine":
        u = unit_rows(z)
        return u @ u.T
    if kind == "euclidean":
        # From differences, not the Gram matrix: no cancellation for close objects.
        return -squareform(pdist(z)) if len(z) > 1 else np.zeros((len(z), len(z)))
    raise ValueError(f"unknown similarity {kind!r}; use one of {SIMILARITIES}")


def row_pair_logits(z: np.ndarray, triplets: np.ndarray, kind: str = "dot") -> np.ndarray:
    """:func:`pair_logits` of :func:`similarity` (``kind``) from rows of the transformed
    features ``z`` (n, k), without the n × n matrix: shape (N, 3)."""
    t = np.asarray(triplets)
    if kind == "cosine":
        z = unit_rows(z)
    elif kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; use one of {SIMILARITIES}")
    zi, zj, zk = (z[t[:, c]] for c in range(3))
    if kind == "euclidean":
        return -np.stack([np.linalg.norm(zi - zj, axis=1), np.linalg.norm(zi - zk, axis=1),
                          np.linalg.norm(zj - zk, axis=1)], axis=1)
    return np.stack([(zi * zj).sum(1), (zi * zk).sum(1), (zj * zk).sum(1)], axis=1)


def pair_logits(sim: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Pair similarities [S_ij, S_ik, S_jk] per triplet, shape (N, 3)."""
    t = np.asarray(triplets)
    i, j, k = t[:, 0], t[:, 1], t[:, 2]
    return np.stack([sim[i, j], sim[i, k], sim[j, k]], axis=1)


def choice_probabilities(sim: np.ndarray, triplets: np.ndarray, temperature: float = 1.0
                         ) -> np.ndarray:
    """Probabilities of the three choices, shape (N, 3), in the pair-logit order."""
    logits = pair_logits(sim, triplets) / temperature
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))


def nll(sim: np.ndarray, triplets: np.ndarray, temperature: float = 1.0,
        counts: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood (nats per judgement) of the recorded choices."""
    logits = pair_logits(sim, triplets) / temperature
    per = logsumexp(logits, axis=1) - logits[:, 0]
    w = np.ones(len(per)) if counts is None else np.asarray(counts, dtype=np.float64)
    return float((w * per).sum() / w.sum())


def accuracy_from_logits(logits: np.ndarray) -> np.ndarray:
    """Per-triplet accuracy of the model's most probable choice, shape (N,).

    Exact ties among the top logits split the credit (1/number tied), so a model
    that cannot tell the pairs apart scores 1/3, not 1 through argmax's first-index rule.
    """
    top = logits == logits.max(axis=1, keepdims=True)
    return top[:, 0] / top.sum(axis=1)


def accuracy(sim: np.ndarray, triplets: np.ndarray) -> float:
    """Mean accuracy (ties split) of predicting the recorded odd one out."""
    return float(accuracy_from_logits(pair_logits(sim, triplets)).mean())


def expected_accuracy(logits: np.ndarray, temperature: float) -> float:
    """Mean over triplets of max_k p_k at temperature T: the model's own noise ceiling."""
    z = logits / temperature
    return float(np.exp(z.max(axis=1) - logsumexp(z, axis=1)).mean())


def calibrate_temperature(logits: np.ndarray, target: float, *, rtol: float = 1e-12) -> float:
    """T > 0 with mean_t max_k softmax(logits_t / T)_k = ``target``.

    logits (N, 3): pair similarities of the calibration triplets at T = 1. Expected
    accuracy falls monotonically from its T→0 limit (1 without exact ties) to 1/3 as
    T→∞, so this is a 1-D root find, solved with Brent's method on log T.
    """
    if not 1.0 / 3.0 < target < 1.0:
        raise InputError(f"noise-ceiling target must lie in (1/3, 1), got {target}")
    z = np.asarray(logits, dtype=np.float64)
    spread = z.max(axis=1) - z.min(axis=1)
    if not np.any(spread > 0):
        raise InputError("the model gives every triplet equal pair similarities; "
                         "no temperature reaches the target accuracy")

    def gap(log_t: float) -> float:
        return expected_accuracy(z, float(np.exp(log_t))) - target

    # The T→0 limit: exact ties cap what any temperature can reach.
    top = z == z.max(axis=1, keepdims=True)
    ceiling = float((1.0 / top.sum(axis=1)).mean())
    if ceiling <= target:
        raise InputError(f"the model's best reachable expected accuracy is {ceiling:.4f} "
                         f"(exact ties in its similarities), below the target {target}")
    scale = float(np.median(spread[spread > 0]))
    lo, hi = np.log(scale) - 2.0, np.log(scale) + 2.0
    for _ in range(200):
        if gap(lo) > 0:
            break
        lo -= 2.0
    for _ in range(200):
        if gap(hi) < 0:
            break
        hi += 2.0
    return float(np.exp(brentq(gap, lo, hi, xtol=1e-14, rtol=rtol, maxiter=500)))
