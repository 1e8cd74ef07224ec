"""Parquet and NPZ I/O with the data contracts of DESIGN.md checked on every read.

Every reader raises :class:`~modelrecovery.errors.InputError` naming the file, the row
or key, and what was wrong. Every writer writes to a temporary file in the target
folder and renames it into place, so a failed job never leaves a partial output.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- writing


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes private (0600) files; results are shared like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(table: pa.Table | pd.DataFrame, path: PathLike) -> None:
    """Write a table atomically (zstd-compressed Parquet)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_csv(frame: pd.DataFrame, path: PathLike) -> None:
    """Write a CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json(obj: Any, path: PathLike) -> None:
    """Write JSON atomically, keys sorted so identical content gives identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_objects(path: PathLike, names: list[str]) -> None:
    """``objects.parquet``: ``object_id: int32`` (0..n−1), ``name: string``."""
    table = pa.table(
        {
            "object_id": pa.array(np.arange(len(names), dtype=np.int32)),
            "name": pa.array(names, type=pa.string()),
        }
    )
    write_parquet(table, path)


def write_features(path: PathLike, features: np.ndarray) -> None:
    """One model's features: ``object_id: int32``, ``embedding: fixed_size_list<float32>[d]``.

    ``features`` has shape (n, d); row r is object r.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {x.shape}")
    n, d = x.shape
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
    table = pa.table({"object_id": pa.array(np.arange(n, dtype=np.int32)), "embedding": emb})
    write_parquet(table, path)


def triplet_table(triplets: np.ndarray, **extra: np.ndarray) -> pa.Table:
    """A triplet table from an (N, 3) array (``k`` = column 2 = the odd one out)."""
    t = np.asarray(triplets)
    cols: dict[str, pa.Array] = {
        name: pa.array(t[:, c].astype(np.int32)) for c, name in enumerate("ijk")
    }
    for name, values in extra.items():
        cols[name] = pa.array(values)
    return pa.table(cols)


def write_triplets(path: PathLike, triplets: np.ndarray, **extra: np.ndarray) -> None:
    """Triplets file: int32 ``i, j, k`` with ``k`` the odd one out, plus any extra columns."""
    write_parquet(triplet_table(triplets, **extra), path)


def save_generator(npz_path: PathLike, json_path: PathLike, weights: np.ndarray,
                   temperature: float, meta: dict[str, Any]) -> None:
    """A data-generating model: W (d, d) and T in an NPZ, metadata in a JSON sidecar."""
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, W=np.asarray(weights, dtype=np.float64),
                     T=np.asarray(float(temperature), dtype=np.float64))
    write_json({**meta, "temperature": float(temperature)}, json_path)


# --------------------------------------------------------------------------- reading


def _open_parquet(path: PathLike, what: str) -> pa.Table:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} file does not exist")
    try:
        return pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{p}: cannot be read as Parquet ({what}): {exc}") from exc


def _require_columns(table: pa.Table, path: PathLike, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(
            f"{path}: {what} file lacks column(s) {missing}; it has {table.column_names}"
        )


def _integer_column(table: pa.Table, path: PathLike, name: str) -> np.ndarray:
    col = table.column(name)
    if not pa.types.is_integer(col.type):
        raise InputError(f"{path}: column '{name}' must be an integer type, found {col.type}")
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{path}: column '{name}' is null at row {row}")
    return col.to_numpy().astype(np.int64)


def read_objects(path: PathLike) -> pd.DataFrame:
    """Read ``objects.parquet``; ids must be exactly 0..n−1 in order."""
    table = _open_parquet(path, "objects")
    _require_columns(table, path, ["object_id", "name"], "objects")
    ids = _integer_column(table, path, "object_id")
    expected = np.arange(len(ids))
    if len(ids) == 0:
        raise InputError(f"{path}: objects file has no rows")
    if not np.array_equal(ids, expected):
        row = int(np.flatnonzero(ids != expected)[0])
        raise InputError(
            f"{path}: object_id must be 0..{len(ids) - 1} in order; row {row} has {ids[row]}"
        )
    return pd.DataFrame({"object_id": ids.astype(np.int32),
                         "name": table.column("name").to_pylist()})


def read_features(path: PathLike, n_objects: int | None = None) -> np.ndarray:
    """Read one model's features as a float32 array of shape (n, d), row r = object r.

    Rows may come in any order; ``object_id`` must cover 0..n−1 exactly once
    (n = ``n_objects`` when given). Embeddings must be finite and all of one length.
    """
    table = _open_parquet(path, "features")
    _require_columns(table, path, ["object_id", "embedding"], "features")
    if table.num_rows == 0:
        raise InputError(f"{path}: features file has no rows")
    ids = _integer_column(table, path, "object_id")
    emb = table.column("embedding").combine_chunks()
    if pa.types.is_fixed_size_list(emb.type):
        d = emb.type.list_size
    elif pa.types.is_list(emb.type) or pa.types.is_large_list(emb.type):
        lengths = emb.value_lengths().to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(lengths != lengths[0])
        if len(bad):
            raise InputError(
                f"{path}: embedding lengths differ: row 0 has {lengths[0]}, "
                f"row {int(bad[0])} has {lengths[bad[0]]}"
            )
        d = int(lengths[0])
    else:
        raise InputError(
            f"{path}: column 'embedding' must be a list of floats, found {emb.type}"
        )
    if emb.null_count:
        row = int(np.flatnonzero(emb.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{path}: embedding is null at row {row}")
    values = emb.flatten()
    if not pa.types.is_floating(values.type) and not pa.types.is_integer(values.type):
        raise InputError(f"{path}: embedding values must be numbers, found {values.type}")
    x = values.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(ids), d)
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        raise InputError(
            f"{path}: embedding has a non-finite value ({x[row, col]}) "
            f"at row {row} (object_id {ids[row]}), dimension {col}"
        )
    n = len(ids) if n_objects is None else int(n_objects)
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        rows = np.flatnonzero(ids == dup)[:2].tolist()
        raise InputError(f"{path}: object_id {dup} appears more than once (rows {rows})")
    out_of_range = np.flatnonzero((ids < 0) | (ids >= n))
    if len(out_of_range):
        row = int(out_of_range[0])
        raise InputError(
            f"{path}: object_id {ids[row]} at row {row} is outside 0..{n - 1}"
        )
    if len(ids) != n:
        missing = np.setdiff1d(np.arange(n), ids)
        raise InputError(
            f"{path}: {len(missing)} object id(s) missing (expected {n} objects), "
            f"first missing: {missing[:5].tolist()}"
        )
    return x[np.argsort(ids)].astype(np.float32)


def read_triplets(path: PathLike, n_objects: int, *, columns: list[str] | None = None,
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a triplet file: an (N, 3) int64 array (``k`` odd) and any extra columns asked for.

    Checks: at least one row, integer ``i, j, k`` in 0..n−1, three distinct objects
    per row, and (when present) a positive integer ``count``.
    """
    table = _open_parquet(path, "triplets")
    _require_columns(table, path, ["i", "j", "k"], "triplets")
    if table.num_rows == 0:
        raise InputError(f"{path}: triplet file is empty (no rows)")
    t = np.stack([_integer_column(table, path, c) for c in "ijk"], axis=1)
    bad = np.flatnonzero(((t < 0) | (t >= n_objects)).any(axis=1))
    if len(bad):
        row = int(bad[0])
        raise InputError(
            f"{path}: row {row} (i, j, k) = {tuple(t[row].tolist())} has an index outside "
            f"0..{n_objects - 1} ({len(bad)} such row(s))"
        )
    rep = np.flatnonzero((t[:, 0] == t[:, 1]) | (t[:, 0] == t[:, 2]) | (t[:, 1] == t[:, 2]))
    if len(rep):
        row = int(rep[0])
        raise InputError(
            f"{path}: row {row} (i, j, k) = {tuple(t[row].tolist())} repeats an object "
            f"({len(rep)} such row(s)); a triplet needs three distinct objects"
        )
    extra = pd.DataFrame(index=range(len(t)))
    if "count" in table.column_names:
        counts = _integer_column(table, path, "count")
        nonpos = np.flatnonzero(counts < 1)
        if len(nonpos):
            raise InputError(f"{path}: count must be ≥ 1, row {int(nonpos[0])} has "
                             f"{counts[nonpos[0]]}")
        extra["count"] = counts
    for name in columns or []:
        if name not in table.column_names:
            raise InputError(f"{path}: triplet file lacks column '{name}'")
        extra[name] = table.column(name).to_numpy(zero_copy_only=False)
    return t, extra


def load_generator(npz_path: PathLike) -> tuple[np.ndarray, float]:
    """Load W (d, d) and T from a generator NPZ (no pickles)."""
    p = Path(npz_path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return np.asarray(z["W"], dtype=np.float64), float(z["T"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{p}: not a valid generator file (needs arrays W and T): {exc}") \
            from exc


def read_json(path: PathLike) -> dict[str, Any]:
    """Read a JSON file with a clear error on failure."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read JSON: {exc}") from exc


def read_tables(paths: list[PathLike], check: Callable[[pd.DataFrame, Path], None] | None
                = None) -> pd.DataFrame:
    """Concatenate Parquet tables (e.g. recovery rows) with a per-file check."""
    frames = []
    for path in paths:
        frame = _open_parquet(path, "table").to_pandas()
        if check is not None:
            check(frame, Path(path))
        frames.append(frame)
    if not frames:
        raise InputError("no input tables were given")
    return pd.concat(frames, ignore_index=True)
