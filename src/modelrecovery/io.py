"""Parquet and NPZ I/O with the data contracts of DESIGN.md checked on every read.

Every reader raises :class:`~modelrecovery.errors.InputError` naming the file, the row
or key, and what was wrong. Every writer writes to a temporary file in the target
folder and renames it into place (:func:`modelrecovery.outputs.atomic_path`), so a
failed job never leaves a partial output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .checks import check_feature_values, check_file, control_character, first_true, \
    one_line, such
from .errors import InputError
from .outputs import atomic_path

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- writing


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
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"features must be 2-D (n, d) with n, d ≥ 1, got shape {x.shape}")
    finite = np.isfinite(x)
    if not finite.all():  # the readers refuse these; writing one is a programming error
        r, c = (int(v) for v in np.argwhere(~finite)[0])
        raise ValueError(f"{path}: refusing to write features with a non-finite float32 "
                         f"value at row {r}, dimension {c} ({(~finite).sum()} in all)")
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


def _open_parquet(path: PathLike, what: str,
                  check_schema: Callable[[pa.Schema], None] | None = None) -> pa.Table:
    """Read one Parquet file; ``check_schema`` sees its schema before any data is read
    (some malformed column types only fail, obscurely, while reading)."""
    p = check_file(path, what, expected=f"a Parquet file ({what})")
    try:
        # One file, not pq.read_table's dataset reader: that one also reads folders and
        # infers partition columns from the path.
        with open(p, "rb") as fh:
            parquet = pq.ParquetFile(fh)
            if check_schema is not None:
                check_schema(parquet.schema_arrow)
            return parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{p}: cannot be read as Parquet ({what}): {one_line(exc)}") \
            from exc


def _require_columns(names: list[str], path: PathLike, columns: list[str], what: str
                     ) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"{path}: {what} file lacks column(s) {missing}; it has {names}")
    for c in columns:
        _refuse_repeated_column(names, path, c)


def _refuse_repeated_column(names: list[str], path: PathLike, name: str) -> None:
    positions = [i for i, n in enumerate(names) if n == name]
    if len(positions) > 1:
        raise InputError(f"{path}: column '{name}' appears {len(positions)} times "
                         f"(columns {positions} of {names}); keep one")


def _column(table: pa.Table, path: PathLike, name: str) -> pa.ChunkedArray:
    """Column ``name`` (present) of ``table``; refused if the name is not unique."""
    _refuse_repeated_column(table.column_names, path, name)
    return table.column(name)


def _null_row(col: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    return first_true(col.is_null().to_numpy(zero_copy_only=False))


def _integer_column(table: pa.Table, path: PathLike, name: str) -> np.ndarray:
    """Column ``name`` as int64 (N,): an integer type, no nulls, every value within int64
    (a uint64 beyond it would otherwise wrap to a negative number in messages)."""
    col = _column(table, path, name)
    if not pa.types.is_integer(col.type):
        raise InputError(f"{path}: column '{name}' must be an integer type, found {col.type}")
    if col.null_count:
        row, count = _null_row(col)
        raise InputError(f"{path}: column '{name}' is null at row {row}{such(count)}")
    values = col.to_numpy()
    if values.dtype == np.uint64:
        big = values > np.iinfo(np.int64).max
        if big.any():
            row, count = first_true(big)
            raise InputError(f"{path}: column '{name}' is {values[row]} at row {row}, beyond "
                             f"the largest index (2**63 − 1){such(count)}")
    return values.astype(np.int64)


def _is_string_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _object_names(table: pa.Table, path: PathLike) -> list[str]:
    """The ``name`` column as (n,) strings: non-null, not blank, no control characters,
    unique. Row r is object r (``object_id`` is checked first)."""
    col = _column(table, path, "name")
    if pa.types.is_dictionary(col.type) and _is_string_type(col.type.value_type):
        col = col.cast(col.type.value_type)  # pandas categoricals are stored this way
    if not _is_string_type(col.type):
        raise InputError(f"{path}: column 'name' must be a string type, found {col.type}")
    if col.null_count:
        row, count = _null_row(col)
        raise InputError(f"{path}: row {row} (object_id {row}): name is null{such(count)}")
    try:
        names = col.to_pylist()
    except UnicodeDecodeError:
        raw = col.cast(pa.binary()).to_pylist()
        row = next(r for r, b in enumerate(raw) if not _is_utf8(b))
        raise InputError(f"{path}: row {row} (object_id {row}): name {raw[row]!r} is not "
                         f"valid UTF-8") from None
    first_row: dict[str, int] = {}
    for row, name in enumerate(names):
        where = f"{path}: row {row} (object_id {row})"
        if not name.strip():
            kind = "empty" if not name else "blank (whitespace only)"
            raise InputError(f"{where}: name {name!r} is {kind}; every object needs a name")
        ch = control_character(name)
        if ch is not None:
            raise InputError(f"{where}: name {name!r} holds a control character {ch!r}")
        if name in first_row:
            first = first_row[name]
            raise InputError(f"{path}: rows {first} and {row} (object_id {first} and {row}) "
                             f"have the same name {name!r}; names must be unique")
        first_row[name] = row
    return names


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_objects(path: PathLike) -> pd.DataFrame:
    """Read ``objects.parquet``: ids exactly 0..n−1 in order, names unique non-blank
    strings. Returns (n,) columns ``object_id`` (int32) and ``name``."""
    table = _open_parquet(path, "objects", lambda schema: _require_columns(
        schema.names, path, ["object_id", "name"], "objects"))
    if table.num_rows == 0:
        raise InputError(f"{path}: objects file has no rows")
    ids = _integer_column(table, path, "object_id")
    expected = np.arange(len(ids))
    if not np.array_equal(ids, expected):
        row = int(np.flatnonzero(ids != expected)[0])
        raise InputError(
            f"{path}: object_id must be 0..{len(ids) - 1} in order; row {row} has {ids[row]}"
        )
    return pd.DataFrame({"object_id": ids.astype(np.int32),
                         "name": _object_names(table, path)})


def _is_list_type(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)
            or pa.types.is_large_list_view(t) or pa.types.is_fixed_size_list(t))


def _is_number_type(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t)


def _check_features_schema(schema: pa.Schema, path: PathLike) -> None:
    """Column names and the embedding's type, before any data is read."""
    _require_columns(schema.names, path, ["object_id", "embedding"], "features")
    t = schema.field("embedding").type
    if not _is_list_type(t):
        raise InputError(f"{path}: column 'embedding' must be a list of numbers, found {t}")
    if not _is_number_type(t.value_type):
        raise InputError(f"{path}: embedding values must be numbers (integers or floats), "
                         f"found {t.value_type}")
    if pa.types.is_fixed_size_list(t) and t.list_size == 0:
        raise InputError(f"{path}: embeddings have length 0 (column 'embedding' is {t}); "
                         f"every object needs at least one feature")


def _embedding_matrix(table: pa.Table, path: PathLike, ids: np.ndarray) -> np.ndarray:
    """The embedding column as an (n, d) array of its own value type, row r = file row r.

    Refuses null lists, lists of different (or zero) length and null values in a list,
    in that order (a null list has no length to compare)."""
    emb = _column(table, path, "embedding").combine_chunks()

    def row(r: int) -> str:
        return f"row {r} (object_id {ids[r]})"

    if emb.null_count:
        r, count = _null_row(emb)
        raise InputError(f"{path}: {row(r)}: embedding is null{such(count)}")
    if pa.types.is_fixed_size_list(emb.type):
        d = emb.type.list_size
    else:
        lengths = emb.value_lengths().to_numpy(zero_copy_only=False)
        differ = lengths != lengths[0]
        if differ.any():
            r, count = first_true(differ)
            raise InputError(f"{path}: embedding lengths differ: {row(0)} has {lengths[0]}, "
                             f"{row(r)} has {lengths[r]}{such(count)}")
        d = int(lengths[0])
    if d == 0:
        raise InputError(f"{path}: embeddings have length 0 (every list in column "
                         f"'embedding' is empty); every object needs at least one feature")
    values = emb.flatten()
    if values.null_count:
        first, count = _null_row(values)
        r, c = divmod(first, d)
        raise InputError(f"{path}: {row(r)}, dimension {c}: embedding value is null"
                         f"{such(count, 'value')}")
    return values.to_numpy(zero_copy_only=False).reshape(len(ids), d)


def _check_object_ids(path: PathLike, ids: np.ndarray, n: int) -> None:
    """``ids`` (rows,) must hold each of 0..n−1 exactly once."""
    uniq, counts = np.unique(ids, return_counts=True)
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


def read_features(path: PathLike, n_objects: int | None = None) -> np.ndarray:
    """Read one model's features as a float32 array of shape (n, d), row r = object r.

    Rows may come in any order; ``object_id`` must cover 0..n−1 exactly once
    (n = ``n_objects`` when given). Embeddings must be non-null lists of one length
    d ≥ 1 of non-null numbers; their values must pass :func:`check_feature_values`.
    """
    table = _open_parquet(path, "features", lambda schema: _check_features_schema(
        schema, path))
    if table.num_rows == 0:
        raise InputError(f"{path}: features file has no rows")
    ids = _integer_column(table, path, "object_id")
    raw = _embedding_matrix(table, path, ids)
    _check_object_ids(path, ids, len(ids) if n_objects is None else int(n_objects))

    def where(r: int, c: int | None) -> str:
        place = f"row {r} (object_id {ids[r]})"
        return place if c is None else f"{place}, dimension {c}"

    x = check_feature_values(raw, path, where=where)
    return x[np.argsort(ids)]


def read_triplets(path: PathLike, n_objects: int, *, columns: list[str] | None = None,
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a triplet file: an (N, 3) int64 array (``k`` odd) and any extra columns asked for.

    Checks: at least one row, integer ``i, j, k`` in 0..n−1, three distinct objects
    per row, and (when present) a positive integer ``count``.
    """
    table = _open_parquet(path, "triplets", lambda schema: _require_columns(
        schema.names, path, ["i", "j", "k"], "triplets"))
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
        extra[name] = _column(table, path, name).to_numpy(zero_copy_only=False)
    return t, extra


def load_generator(npz_path: PathLike) -> tuple[np.ndarray, float]:
    """Load W (d, k) and T from a generator NPZ (no pickles); k = d but for low_rank:k."""
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
    return w, t


def read_json(path: PathLike) -> dict[str, Any]:
    """Read a JSON object from a file with a clear error on failure."""
    p = check_file(path, "JSON")
    try:
        obj = json.loads(p.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise InputError(f"{p}: cannot read JSON: {one_line(exc)}") from exc
    if not isinstance(obj, dict):
        raise InputError(f"{p}: expected a JSON object, found {type(obj).__name__}")
    return obj


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
