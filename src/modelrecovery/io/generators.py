"""Generator files: a data-generating model's transform W and temperature T in an NPZ
(never unpickled), its metadata in a JSON sidecar."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .checks import check_file, one_line
from .contracts import PathLike
from .outputs import atomic_path
from .tables import write_json


def save_generator(npz_path: PathLike, json_path: PathLike, weights: np.ndarray,
                   temperature: float, meta: dict[str, Any]) -> None:
    """A data-generating model: ``weights`` W (d, k) and the temperature T (> 0) as
    float64 arrays ``W`` and ``T`` in ``npz_path``; ``meta`` plus ``temperature`` as JSON
    in ``json_path``. Both are written atomically."""
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, W=np.asarray(weights, dtype=np.float64),
                     T=np.asarray(float(temperature), dtype=np.float64))
    write_json({**meta, "temperature": float(temperature)}, json_path)


def load_generator(npz_path: PathLike, dim: int | None = None) -> tuple[np.ndarray, float]:
    """Load W (d, k) and T from a generator NPZ (no pickles); k = d but for low_rank:k.
    ``dim``: the dimension d of the features W transforms, which W's rows must match."""
    p = check_file(npz_path, "generator")
    try:
        with np.load(p, allow_pickle=False) as z:
            w, t = np.asarray(z["W"], dtype=np.float64), float(z["T"])
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
    return w, t
