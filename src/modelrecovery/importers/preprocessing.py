"""Optional per-model preprocessing of features: centring, unit norm, PCA."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..io import PathLike, checks


def preprocess(features: np.ndarray, *, center: bool = False, unit_norm: bool = False,
               pca: int | None = None, source: PathLike | None = None
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """Optional per-model preprocessing, applied in this order.

    1. ``center``: subtract the column means;
    2. ``unit_norm``: scale every row to Euclidean length 1 (a zero row is refused,
       naming its 0-based index);
    3. ``pca=k``: project onto the first k principal components, fitted once by SVD of
       the column-centred data (so the output is centred); 1 ≤ k ≤ min(n, d). The sign of
       each component is fixed so that its largest-magnitude entry is positive, which
       makes the result deterministic (up to exactly repeated singular values).

    ``features`` has shape (n, d). Returns the processed features, float32 of shape
    (n, d) or (n, k), and a JSON-ready record of what was applied: the steps, input and
    output shapes, the norm of the input's column-mean vector, and for PCA the explained
    variance ratio of each kept component and their sum.

    Refusals start with ``source`` (the file the features came from) when given, else
    with "preprocess".
    """
    head = "preprocess" if source is None else str(source)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{head}: features must be a non-empty 2-D array, found "
                         f"shape {x.shape}")
    if not np.isfinite(x).all():
        r, c = (int(v) for v in np.argwhere(~np.isfinite(x))[0])
        raise InputError(f"{head}: non-finite value at row {r}, dimension {c}")
    n, d = x.shape
    record: dict[str, Any] = {
        "steps": [], "center": bool(center), "unit_norm": bool(unit_norm),
        "pca": None if pca is None else int(pca), "input_shape": [n, d],
        "input_mean_norm": float(np.linalg.norm(x.mean(axis=0))),
    }
    x = x.copy()
    if center:
        x -= x.mean(axis=0)
        record["steps"].append("center")
    if unit_norm:
        norms = np.linalg.norm(x, axis=1)
        tiny = np.finfo(np.float64).eps * max(float(norms.max()), 1e-300) * 16
        zero = np.flatnonzero(norms <= tiny)
        if len(zero):
            after = " after centering" if center else ""
            raise InputError(f"{head}: row {int(zero[0])} (0-based object index) has "
                             f"zero norm{after}; cannot scale it to unit length "
                             f"({len(zero)} such row(s))")
        x /= norms[:, None]
        record["steps"].append("unit_norm")
    if pca is not None:
        k = int(pca)
        if k != pca or k < 1 or k > min(n, d):
            raise InputError(f"{head}: pca = {pca} must be an integer in "
                             f"1..min(n, d) = 1..{min(n, d)} for features of shape {(n, d)}")
        mean = x.mean(axis=0)
        xc = x - mean
        try:
            _, s, vt = np.linalg.svd(xc, full_matrices=False)
        except np.linalg.LinAlgError as exc:
            raise InputError(f"{head}: PCA failed, the SVD of the centred features (shape "
                             f"{(n, d)}) did not converge: {checks.one_line(exc)}") from exc
        var = s ** 2
        if var.sum() <= 0:
            raise InputError(f"{head}: features have zero variance; PCA is undefined")
        comps = vt[:k]
        pivot = np.argmax(np.abs(comps), axis=1)
        signs = np.sign(comps[np.arange(k), pivot])
        comps = comps * signs[:, None]
        x = xc @ comps.T
        ratio = var[:k] / var.sum()
        record["steps"].append("pca")
        record["pca_explained_variance_ratio"] = [float(v) for v in ratio]
        record["pca_explained_variance_ratio_sum"] = float(ratio.sum())
    out = x.astype(np.float32)
    record["output_shape"] = [int(s) for s in out.shape]
    return out, record
