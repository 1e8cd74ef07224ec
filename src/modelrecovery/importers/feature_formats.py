"""Loaders of the array formats thingsvision's ``save_features`` writes: ``.npy``,
``.txt``, ``.pt``, ``.hdf5``, ``.mat`` and split files ``features_01.npy``, ...

Each loader returns the raw array as stored and the function naming a cell of it
(``where(row, column)``); :func:`check_matrix` then checks its dtype, shape and values.
No loader unpickles: ``.npy`` is read with ``allow_pickle=False``, ``.pt`` with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import checks
from .parsing import (Where, array_where, load_npy, not_utf8_error, read_text_matrix,
                      require_file, text_where)

# thingsvision.utils.storing.rm_suffix strips these from file names to make .mat keys.
_TV_IMAGE_SUFFIX = re.compile(r"(.eps|.jpg|.jpeg|.png|.PNG|.tif|.tiff)$")


def load_features_npy(p: Path) -> tuple[np.ndarray, Where]:
    """Features from a ``.npy`` file (``np.save``), as stored."""
    return load_npy(p, "features"), array_where


def load_features_txt(p: Path) -> tuple[np.ndarray, Where]:
    """Features from a whitespace-separated text file (``np.savetxt``), float64."""
    return read_text_matrix(p, "features", ncols=None), text_where


def load_features_pt(p: Path) -> tuple[np.ndarray, Where]:
    """Features from a torch file: a tensor, or a dict holding one (see
    :func:`~modelrecovery.importers.read_features_file`); half precision is widened to
    float32. torch is imported here, only when a ``.pt`` file is read."""
    import torch

    require_file(p, "features")
    try:
        obj = torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{p}: refused: it holds objects other than tensors, which torch.load("
            f"weights_only=True) will not unpickle because unpickling them could run code "
            f"({first}). Save a plain tensor: torch.save(features_tensor, path)") from exc
    except Exception as exc:  # corrupt, truncated or not a torch file at all
        raise InputError(f"{p}: cannot be read as a torch file: "
                         f"{type(exc).__name__}: {exc}") from exc
    tensor: Any
    if isinstance(obj, torch.Tensor):
        tensor = obj
    elif isinstance(obj, dict):
        named = [key for key in ("features", "embeddings") if key in obj]
        if len(named) == 2:
            raise InputError(f"{p}: holds both 'features' and 'embeddings'; keep one")
        if named:
            tensor = obj[named[0]]
            if not isinstance(tensor, torch.Tensor):
                raise InputError(f"{p}: key {named[0]!r} holds a "
                                 f"{type(tensor).__name__}, not a tensor")
        else:
            two_d = [key for key, v in obj.items()
                     if isinstance(v, torch.Tensor) and v.ndim == 2]
            if len(two_d) != 1:
                raise InputError(
                    f"{p}: holds a dict with keys {list(obj)[:10]}; expected a key "
                    f"'features' or 'embeddings', or exactly one 2-D tensor "
                    f"(found {len(two_d)})")
            tensor = obj[two_d[0]]
    else:
        raise InputError(f"{p}: holds a {type(obj).__name__}, expected a tensor or a dict "
                         f"of tensors")
    if tensor.is_complex():
        raise InputError(f"{p}: features must be real numbers, found {tensor.dtype}")
    if tensor.is_quantized:
        raise InputError(f"{p}: features are a quantized tensor ({tensor.dtype}); save "
                         f"tensor.dequantize() instead")
    try:
        tensor = tensor.detach().cpu()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        return tensor.numpy(), array_where
    except (TypeError, RuntimeError) as exc:  # dtypes numpy lacks, meta tensors, ...
        raise InputError(f"{p}: cannot convert the {tensor.dtype} tensor of shape "
                         f"{tuple(tensor.shape)} to numbers: {checks.one_line(exc)}") from exc


def load_features_hdf5(p: Path) -> tuple[np.ndarray, Where]:
    """Features from an HDF5 file: dataset ``features``, or split datasets
    ``features_01``, ``features_02``, ... stacked in order."""
    require_file(p, "features")
    try:
        import h5py
    except ImportError as exc:
        raise InputError(f"{p}: reading HDF5 features needs the h5py package, which is "
                         f"not installed: pip install h5py") from exc
    try:
        with h5py.File(p, "r") as f:
            if "features" in f:
                return _hdf5_array(p, f["features"], "features"), array_where
            splits = sorted((key for key in f if re.fullmatch(r"features_\d+", key)),
                            key=lambda key: int(key.split("_")[1]))
            if not splits:
                raise InputError(f"{p}: no dataset named 'features' (thingsvision's "
                                 f"layout); the file has {list(f)[:10]}")
            _check_numbering(p, splits, [int(key.split("_")[1]) for key in splits])
            parts = [_hdf5_array(p, f[key], key) for key in splits]
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"{p}: cannot be read as HDF5: {checks.one_line(exc)}") from exc
    return _stack_parts(p, parts, splits), array_where


def _hdf5_array(p: Path, node: Any, key: str) -> np.ndarray:
    import h5py

    if not isinstance(node, h5py.Dataset):
        raise InputError(f"{p}: '{key}' is an HDF5 group, expected a dataset")
    if node.shape is None:  # h5py.Empty: a dataset without data
        raise InputError(f"{p}: dataset '{key}' is empty (it holds no array)")
    return np.asarray(node[()])


def _check_numbering(p: Path, names: list[str], numbers: list[int]) -> None:
    """Split parts must be numbered 1, 2, 3, ... without gaps (a gap loses rows)."""
    for expected, (name, number) in enumerate(zip(names, numbers), 1):
        if number != expected:
            raise InputError(f"{p}: split parts {names[:5]}{'...' if len(names) > 5 else ''}"
                             f" are not numbered 1, 2, 3, ...: part {expected} is missing "
                             f"(found {name})")


def _stack_parts(p: Path, parts: list[np.ndarray], names: list[str]) -> np.ndarray:
    """Split parts (rows_i, d) stacked in order; refused unless all are 2-D of one width."""
    for name, part in zip(names, parts):
        if part.ndim != 2 or part.shape[1:] != parts[0].shape[1:]:
            raise InputError(f"{p}: split {name} has shape {part.shape}, expected "
                             f"(rows, {parts[0].shape[1:]}) like {names[0]}")
    return np.concatenate(parts, axis=0)


def load_features_mat(p: Path) -> tuple[np.ndarray, Where]:
    """Features from a MATLAB v7 file: variable ``features``, or one variable per image
    stacked in the order of ``file_names.txt`` beside it."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    require_file(p, "features")
    try:
        content = loadmat(p)
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise InputError(f"{p}: is a MATLAB v7.3 (HDF5) file; save it as v7 or as "
                         f".npy/.hdf5") from exc
    except (ValueError, OSError, TypeError, MatReadError) as exc:
        raise InputError(f"{p}: cannot be read as a MATLAB file: {checks.one_line(exc)}") \
            from exc
    if "features" in content:
        return _mat_array(content["features"]), array_where
    names_file = p.parent / "file_names.txt"
    variables = [key for key in content if not key.startswith("__")]
    if not names_file.exists():
        raise InputError(f"{p}: no variable 'features', and no file_names.txt beside it "
                         f"to order the per-image variables {variables[:10]}")
    rows = []
    require_file(names_file, "file_names.txt")
    try:
        lines = names_file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise not_utf8_error(names_file, "file name list") from None
    except OSError as exc:
        raise InputError(f"{names_file}: cannot read the file name list: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key = _TV_IMAGE_SUFFIX.sub("", line.strip())
        if key not in content:
            raise InputError(f"{p}: no variable {key!r} for line {lineno} of {names_file}")
        rows.append(_mat_array(content[key]).reshape(-1))
    if not rows:
        raise InputError(f"{names_file}: lists no file names")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputError(f"{p}: per-image variables differ in length: {sorted(widths)}")
    return np.stack(rows), array_where


def _mat_array(value: Any) -> np.ndarray:
    """A MATLAB variable as an array (a sparse matrix is made dense)."""
    from scipy import sparse

    return value.toarray() if sparse.issparse(value) else np.asarray(value)


def check_matrix(p: Path, arr: np.ndarray, where: Where) -> np.ndarray:
    """Dtype and shape of a feature matrix (n, d), then its values
    (:func:`modelrecovery.io.checks.check_feature_values`); returns float32 (n, d)."""
    a = np.asarray(arr)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating)
                                 or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{p}: features must be numbers, found dtype {a.dtype}")
    if a.ndim != 2:
        hint = (" (for thingsvision, extract with flatten_acts=True or pool the feature "
                "maps)" if a.ndim > 2 else "")
        raise InputError(f"{p}: features must be a 2-D array (objects × dimensions), "
                         f"found shape {a.shape}{hint}")
    return checks.check_feature_values(a, p, where=where, nan_shown="missing or NaN")


def load_split_folder(p: Path) -> tuple[np.ndarray, Where]:
    """thingsvision's split layout: features_01.npy, features_02.npy, ... (or .txt/.pt)."""
    for ext, loader in (("npy", load_features_npy), ("txt", load_features_txt),
                        ("pt", load_features_pt)):
        files = sorted((f for f in p.glob(f"features_*.{ext}")
                        if re.fullmatch(rf"features_\d+\.{ext}", f.name)),
                       key=lambda f: int(f.stem.split("_")[1]))
        if files:
            names = [f.name for f in files]
            _check_numbering(p, names, [int(f.stem.split("_")[1]) for f in files])
            parts = [np.asarray(loader(f)[0]) for f in files]
            return _stack_parts(p, parts, names), array_where
    raise InputError(f"{p}: folder holds no thingsvision feature file (features.npy, "
                     f".hdf5, .txt, .pt, .mat or features_01.npy, ...)")
