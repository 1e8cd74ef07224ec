"""Generator files: a data-generating model's transform W, temperature T and similarity
in an NPZ (never unpickled), its metadata in a JSON sidecar.

A generator's similarity (dot, cosine or euclidean: how its transformed features make
pair similarities) travels with it: :func:`save_generator` writes the meta's
``similarity`` into the NPZ beside W and T, and every consumer turns W into similarities
through :meth:`Generator.similarities` / :meth:`Generator.pair_logits` of
:func:`read_generator`, never by assuming the candidates' own similarity (generators
aligned under one experiment may simulate for candidates refitted under another).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..oddoneout import row_pair_logits, similarity, transformed
from ..settings import SIMILARITIES
from .checks import check_file, one_line
from .contracts import PathLike
from .outputs import atomic_path
from .tables import write_json


@dataclass(frozen=True)
class Generator:
    """A generator as its NPZ holds it: W (d, k), temperature T > 0 and the similarity of
    its transformed features (:data:`~modelrecovery.settings.SIMILARITIES`)."""

    weights: np.ndarray
    temperature: float
    similarity: str = "dot"

    def similarities(self, features: np.ndarray) -> np.ndarray:
        """S (n, n) at T = 1 of features (n, d) under W and this generator's similarity
        (:func:`modelrecovery.oddoneout.similarity`); divide by T for its logits."""
        return similarity(features, self.weights, self.similarity)

    def pair_logits(self, features: np.ndarray, triplets: np.ndarray) -> np.ndarray:
        """[S_ij, S_ik, S_jk] (N, 3) at T = 1 for triplets (N, 3), from rows of X W
        without the n × n matrix (:func:`modelrecovery.oddoneout.row_pair_logits`)."""
        return row_pair_logits(transformed(features, self.weights), triplets,
                               self.similarity)


def save_generator(npz_path: PathLike, json_path: PathLike, weights: np.ndarray,
                   temperature: float, meta: dict[str, Any]) -> None:
    """A data-generating model: ``weights`` W (d, k) and the temperature T (> 0) as
    float64 arrays ``W`` and ``T`` and ``meta["similarity"]`` (default ``dot``) as the
    string array ``similarity`` in ``npz_path``; ``meta`` plus ``temperature`` (and the
    similarity) as JSON in ``json_path``. Both are written atomically."""
    kind = meta.get("similarity", "dot")
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; use one of {SIMILARITIES}")
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, W=np.asarray(weights, dtype=np.float64),
                     T=np.asarray(float(temperature), dtype=np.float64),
                     similarity=np.asarray(kind))
    write_json({**meta, "similarity": kind, "temperature": float(temperature)}, json_path)


def read_generator(npz_path: PathLike, dim: int | None = None) -> Generator:
    """Load a generator NPZ (no pickles): W (d, k) (k = d but for low_rank:k), T and its
    similarity (``dot`` where the file has none). ``dim``: the dimension d of the
    features W transforms, which W's rows must match."""
    p = check_file(npz_path, "generator")
    try:
        with np.load(p, allow_pickle=False) as z:
            w, t = np.asarray(z["W"], dtype=np.float64), float(z["T"])
            kind = str(z["similarity"]) if "similarity" in z.files else "dot"
    except Exception as exc:  # a broken zip, a missing array, a corrupt .npy header, ...
        raise InputError(f"{p}: not a valid generator file (needs arrays W and T): "
                         f"{type(exc).__name__}: {one_line(exc)}") from exc
    if w.ndim != 2 or 0 in w.shape or not np.isfinite(w).all():
        raise InputError(f"{p}: W must be a finite matrix (d, k), found shape {w.shape}"
                         f"{'' if np.isfinite(w).all() else ' with non-finite values'}")
    if not np.isfinite(t) or t <= 0:
        raise InputError(f"{p}: temperature T must be a positive number, found {t}")
    if dim is not None and w.shape[0] != dim:
        raise InputError(f"{p}: W has {w.shape[0]} rows but the features it transforms have "
                         f"{dim} dimensions: a transform of another model or feature file")
    if kind not in SIMILARITIES:
        raise InputError(f"{p}: unknown similarity {kind!r} (array 'similarity'); one of "
                         f"{SIMILARITIES}")
    return Generator(w, t, kind)


def load_generator(npz_path: PathLike, dim: int | None = None) -> tuple[np.ndarray, float]:
    """W (d, k) and T of a generator NPZ (:func:`read_generator`, whose similarity turns
    W into similarities)."""
    g = read_generator(npz_path, dim)
    return g.weights, g.temperature
