"""Representational geometry: dissimilarity matrices, RSA, MDS, effective and intrinsic
dimensionality.

These pure NumPy functions answer "how much does the fitted transform W reshape a model's
geometry?" (docs/study.md, "The protocol"). Features are (n, d) arrays whose row r is object r;
a transform W is (d, k) (k = d for ``full``/``diagonal``, k < d for ``low_rank:k``), so
the transformed features are X W, shape (n, k). Everything is computed in float64.

Conventions
-----------
- A representational dissimilarity matrix (RDM) is (n, n), symmetric, zero diagonal.
  ``"correlation"``: 1 − Pearson correlation between rows (objects); ``"euclidean"``:
  the plain Euclidean distance ‖x_i − x_j‖ (not squared, not divided by d).
- RDMs are compared by the Spearman correlation of their upper triangles (k = 1, in
  row-major order), as :func:`scipy.stats.spearmanr` computes it (average ranks for ties).
- The participation ratio of a (n, d) feature matrix is (Σλ)² / Σλ² over the eigenvalues λ
  of the covariance of the column-centred features: 1 for rank one, d for isotropic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

Metric = Literal["correlation", "euclidean"]
METRICS: tuple[str, ...] = ("correlation", "euclidean")


def _features(features: np.ndarray, name: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain non-finite values")
    return x


def _transformed(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    x = _features(features)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != x.shape[1]:
        raise ValueError(f"weights must be (d, k) with d = {x.shape[1]}, got shape {w.shape}")
    return x @ w


def constant_rows(features: np.ndarray) -> np.ndarray:
    """Rows (objects) whose features are all equal, shape (r,): their correlation with
    any other row is undefined (a zero row of ReLU features, or any row when d = 1)."""
    x = np.asarray(features, dtype=np.float64)
    z = x - x.mean(axis=1, keepdims=True)
    return np.flatnonzero(np.einsum("ij,ij->i", z, z) == 0)


def rdm(features: np.ndarray, metric: Metric = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix of the objects (rows) of ``features``.

    Args:
        features: (n, d) array, row r = object r.
        metric: ``"correlation"`` for 1 − Pearson correlation between rows (each row is
            centred over its d features and scaled to unit norm; range [0, 2]), or
            ``"euclidean"`` for the plain Euclidean distance between rows.

    Returns:
        (n, n) float64 array, symmetric, with an exactly zero diagonal.

    Raises:
        ValueError: unknown metric, non-finite features, or (correlation) a row that is
            constant across features, whose correlation is undefined.
    """
    x = _features(features)
    if metric == "correlation":
        z = x - x.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", z, z))
        if np.any(norms == 0):
            row = int(constant_rows(x)[0])
            raise ValueError(f"row {row} is constant across features: its correlation "
                             "distance is undefined")
        z /= norms[:, None]
        out = 1.0 - z @ z.T
    elif metric == "euclidean":
        # Distances do not change when the columns are centred; centring first keeps the
        # Gram-matrix formula from cancelling large norms.
        z = x - x.mean(axis=0, keepdims=True)
        sq = np.einsum("ij,ij->i", z, z)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        out = np.sqrt(np.maximum(d2, 0.0))
    else:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    out = (out + out.T) / 2.0
    np.fill_diagonal(out, 0.0)
    return out


def upper(m: np.ndarray) -> np.ndarray:
    """Upper triangle (above the diagonal, k = 1) of a square matrix, row-major.

    Args:
        m: (n, n) array.

    Returns:
        (n(n−1)/2,) array: m[0, 1], m[0, 2], …, m[0, n−1], m[1, 2], …, m[n−2, n−1].
    """
    a = np.asarray(m)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    return a[np.triu_indices(a.shape[0], k=1)]


def rdm_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of the upper triangles of two RDMs.

    Args:
        a, b: (n, n) RDMs of the same n objects (n ≥ 3).

    Returns:
        ρ in [−1, 1] (:func:`scipy.stats.spearmanr`, average ranks for ties); NaN when
        either upper triangle is constant (the rank correlation is undefined).
    """
    ua, ub = upper(a), upper(b)
    if ua.shape != ub.shape:
        raise ValueError(f"RDMs differ in size: {np.shape(a)} vs {np.shape(b)}")
    if len(ua) < 2 or np.all(ua == ua[0]) or np.all(ub == ub[0]):
        return float("nan")
    return float(spearmanr(ua, ub).statistic)


def geometry_shift(features: np.ndarray, weights: np.ndarray,
                   metric: Metric = "correlation") -> float:
    """How much the fitted transform reshapes the geometry: 1 − ρ_S(RDM(X), RDM(X W)).

    Args:
        features: (n, d) raw features X.
        weights: (d, k) fitted transform W.
        metric: the RDM metric (see :func:`rdm`).

    Returns:
        A value in [0, 2]: 0 when the ranks of all dissimilarities are unchanged (e.g.
        W = c·I, c > 0, under either metric; W orthogonal under ``"euclidean"``), larger
        the more W reorders them. NaN if an RDM is constant.
    """
    return 1.0 - rdm_similarity(rdm(features, metric), rdm(_transformed(features, weights),
                                                         metric))


def rsa_matrix(features_by_model: Mapping[str, np.ndarray],
               metric: Metric = "correlation") -> pd.DataFrame:
    """Model × model representational similarity: Spearman ρ between the models' RDMs.

    Args:
        features_by_model: model name → (n, d_m) features (already transformed, if the
            RSA is to be "after alignment"); all models must have the same n objects in
            the same order; d_m may differ.
        metric: the RDM metric (see :func:`rdm`).

    Returns:
        (m, m) DataFrame, index and columns the model names in the mapping's order
        (``index.name`` = ``"model"``); entry [a, b] = :func:`rdm_similarity` of the two
        RDMs, the diagonal 1 (NaN for a model with a constant RDM). Before writing it with
        :func:`modelrecovery.io.write_parquet` call ``.reset_index()`` (the writer drops
        the index).
    """
    names = list(features_by_model)
    if not names:
        raise ValueError("no models given")
    n_objects = {name: np.shape(f)[0] for name, f in features_by_model.items()}
    if len(set(n_objects.values())) != 1:
        raise ValueError(f"models differ in their number of objects: {n_objects}")
    # Spearman = Pearson of average ranks; rank each upper triangle once.
    ranks = np.stack([rankdata(upper(rdm(features_by_model[name], metric)))
                      for name in names])
    ranks -= ranks.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", ranks, ranks))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = ranks / norms[:, None]
    rho = np.clip(unit @ unit.T, -1.0, 1.0)
    rho[norms == 0, :] = np.nan
    rho[:, norms == 0] = np.nan
    idx = np.flatnonzero(norms > 0)
    rho[idx, idx] = 1.0
    frame = pd.DataFrame(rho, index=pd.Index(names, name="model"), columns=names)
    return frame


def mds(dissimilarity: np.ndarray, n_components: int = 2, *, seed: int | None = None
        ) -> np.ndarray:
    """Classical (Torgerson) multidimensional scaling of a dissimilarity matrix.

    B = −½ J D⁽²⁾ J (D⁽²⁾ the element-wise squared dissimilarities, J = I − 11ᵀ/m) is
    eigendecomposed; the coordinates are the top ``n_components`` eigenvectors scaled by
    √λ. Negative or zero eigenvalues (non-Euclidean dissimilarities, too few points) give
    all-zero coordinates on that axis. Each axis' sign is fixed so that its
    largest-magnitude coordinate is positive, so the output is deterministic.

    Args:
        dissimilarity: (m, m) symmetric, finite (e.g. 1 − :func:`rsa_matrix`).
        n_components: number of output dimensions.
        seed: accepted for interface stability only; classical MDS involves no
            randomness, so it has no effect.

    Returns:
        (m, n_components) float64 coordinates, centred at the origin. Pairwise Euclidean
        distances between rows reproduce the dissimilarities exactly when they are
        Euclidean distances of an at most ``n_components``-dimensional configuration.
    """
    del seed  # deterministic method
    d = np.asarray(dissimilarity, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dissimilarity must be square, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("dissimilarity contains non-finite values (e.g. an undefined RSA)")
    if not np.allclose(d, d.T, rtol=1e-10, atol=1e-12):
        raise ValueError("dissimilarity is not symmetric")
    if n_components < 1:
        raise ValueError(f"n_components must be ≥ 1, got {n_components}")
    m = d.shape[0]
    d = (d + d.T) / 2.0
    j = np.eye(m) - np.full((m, m), 1.0 / m)
    b = -0.5 * j @ (d ** 2) @ j
    b = (b + b.T) / 2.0
    vals, vecs = np.linalg.eigh(b)
    order = np.argsort(vals)[::-1][:n_components]
    vals, vecs = vals[order], vecs[:, order]
    coords = vecs * np.sqrt(np.maximum(vals, 0.0))[None, :]
    if coords.shape[1] < n_components:  # fewer points than requested dimensions
        coords = np.hstack([coords, np.zeros((m, n_components - coords.shape[1]))])
    for c in range(coords.shape[1]):
        col = coords[:, c]
        if col[np.argmax(np.abs(col))] < 0:
            coords[:, c] = -col
    return coords


def participation_ratio(features: np.ndarray) -> float:
    """Effective dimensionality (Σλ)² / Σλ² of the covariance spectrum of ``features``.

    The features are centred per column (feature); λ_i = s_i² / (n − 1) with s the
    singular values of the centred (n, d) matrix (the eigenvalues of the sample
    covariance; the 1/(n − 1) cancels in the ratio).

    Args:
        features: (n, d) array, n ≥ 2.

    Returns:
        A value in [1, min(n − 1, d)]: 1 for rank-one features, d for isotropic ones.
        NaN when every feature is constant (no variance).
    """
    x = _features(features)
    if x.shape[0] < 2:
        raise ValueError("participation ratio needs at least 2 objects")
    s = np.linalg.svd(x - x.mean(axis=0, keepdims=True), compute_uv=False)
    lam = s ** 2 / (x.shape[0] - 1)
    total = lam.sum()
    if total == 0:
        return float("nan")
    return float(total ** 2 / np.sum(lam ** 2))


def effective_dimensionality(features: np.ndarray, weights: np.ndarray
                             ) -> tuple[float, float]:
    """Participation ratio of the raw features X (n, d) and of X W (n, k), W (d, k)."""
    return participation_ratio(features), participation_ratio(_transformed(features, weights))


# --------------------------------------------------------------------------- intrinsic dimension


def neighbour_distances(features: np.ndarray, k: int) -> np.ndarray:
    """Euclidean distances from each distinct row to its k nearest other rows, sorted.

    Exact duplicates are kept once (a zero distance makes the ratio estimators undefined,
    and identical points carry no information about the manifold's dimension).

    Args:
        features: (n, d) array.
        k: neighbours per point, 1 ≤ k < the number of distinct rows.

    Returns:
        (m, k) float64, m the number of distinct rows; row i ascending.
    """
    x = np.unique(_features(features), axis=0)
    m = x.shape[0]
    if not 1 <= k < m:
        raise ValueError(f"{k} neighbours need more than {k} distinct points, got {m}")
    x = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    # Candidates by the Gram expansion (BLAS: a k-d tree is a brute-force search in the
    # hundreds of dimensions of network features), a few spare ones against its rounding,
    # then the exact distances of the candidates.
    spare = min(k + 8, m - 1)
    block = max(1, int(2e7 // m))
    out = np.empty((m, k))
    for start in range(0, m, block):
        rows = np.arange(start, min(start + block, m))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (x[rows] @ x.T)
        d2[np.arange(len(rows)), rows] = np.inf
        cand = np.argpartition(d2, spare - 1, axis=1)[:, :spare]
        exact = np.stack([np.linalg.norm(x[rows] - x[cand[:, j]], axis=1)
                          for j in range(spare)], axis=1)
        out[rows] = np.sort(exact, axis=1)[:, :k]
    return out


def twonn(features: np.ndarray) -> float:
    """TwoNN intrinsic dimension (Facco et al., 2017), by its closed-form maximum likelihood.

    With r1 ≤ r2 a point's distances to its two nearest neighbours, μ = r2 / r1 follows a
    Pareto law P(μ > t) = t^(−d) where the density is locally uniform on a d-dimensional
    manifold, so Σ log μ over the m distinct points is Gamma(m, d) and
    d̂ = (m − 1) / Σ log μ is its unbiased estimate (standard error ≈ d̂ / √m).

    Args:
        features: (n, d) array with at least 3 distinct rows.

    Returns:
        The estimate (> 0); NaN with fewer than 3 distinct rows or when every μ is 1.
    """
    x = np.unique(_features(features), axis=0)
    if x.shape[0] < 3:
        return float("nan")
    r = neighbour_distances(x, 2)
    total = float(np.sum(np.log(r[:, 1] / r[:, 0])))
    return (x.shape[0] - 1) / total if total > 0 else float("nan")


def _gride_scale(log_mu: np.ndarray, n1: int, n2: int) -> float:
    """Maximum-likelihood d of the ratios μ = r_n2 / r_n1 (Denti et al., 2022): the log
    density log d + (n2 − n1 − 1) log(μ^d − 1) − ((n2 − 1) d + 1) log μ − log B(n2 − n1,
    n1) has a score strictly decreasing in d, from +∞ to −n1 Σ log μ < 0: one root."""
    from scipy.optimize import brentq

    lm = np.maximum(log_mu, 1e-12)  # equal distances (μ = 1) have probability 0
    n, extra, total = len(lm), n2 - n1 - 1, float(lm.sum())

    def score(d: float) -> float:
        return n / d + extra * float(np.sum(lm / -np.expm1(-d * lm))) - (n2 - 1) * total

    hi = 1.0
    while score(hi) > 0:
        hi *= 2.0
    return float(brentq(score, hi / 2.0 if hi > 1 else 1e-9, hi, xtol=1e-10, rtol=1e-12))


def gride(features: np.ndarray, range_max: int = 64) -> float:
    """GriDE intrinsic dimension: the median over scales n1 = 1, 2, 4, … < range_max
    (n2 = 2 n1, n2 ≤ range_max and below the number of distinct rows) of the
    maximum-likelihood estimate from the ratios r_n2 / r_n1 (:func:`_gride_scale`), as the
    published code takes DADApy's ``return_id_scaling_gride``. Scale n1 = 1 is the
    TwoNN likelihood, whose maximum is m / Σ log μ.

    Args:
        features: (n, d) array with at least 3 distinct rows.
        range_max: the largest neighbour rank used (published: 64).

    Returns:
        The median estimate; NaN with fewer than 3 distinct rows.
    """
    x = np.unique(_features(features), axis=0)
    top = min(range_max, x.shape[0] - 1)
    if top < 2:
        return float("nan")
    r = neighbour_distances(x, top)
    estimates = []
    n1 = 1
    while 2 * n1 <= top:
        estimates.append(_gride_scale(np.log(r[:, 2 * n1 - 1] / r[:, n1 - 1]), n1, 2 * n1))
        n1 *= 2
    return float(np.median(estimates))


__all__ = ["METRICS", "Metric", "rdm", "upper", "rdm_similarity", "geometry_shift",
           "rsa_matrix", "mds", "participation_ratio", "effective_dimensionality",
           "neighbour_distances", "twonn", "gride"]
