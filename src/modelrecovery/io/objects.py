"""Tables keyed by object: the object list (``objects.parquet``) and one model's
features, with their contracts checked on every read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InputError
from .checks import check_feature_values, control_character, first_true, such
from .contracts import FEATURES_COLUMNS, OBJECTS_COLUMNS, PathLike
from .tables import (first_null, integer_column, open_parquet, require_columns,
                     unique_column, write_parquet)


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


def _is_string_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _object_names(table: pa.Table, path: PathLike) -> list[str]:
    """The ``name`` column as (n,) strings: non-null, not blank, no control characters,
    unique. Row r is object r (``object_id`` is checked first)."""
    col = unique_column(table, path, "name")
    if pa.types.is_dictionary(col.type) and _is_string_type(col.type.value_type):
        col = col.cast(col.type.value_type)  # pandas categoricals are stored this way
    if not _is_string_type(col.type):
        raise InputError(f"{path}: column 'name' must be a string type, found {col.type}")
    if col.null_count:
        row, count = first_null(col)
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
    table = open_parquet(path, "objects", lambda schema: require_columns(
        schema.names, path, list(OBJECTS_COLUMNS), "objects"))
    if table.num_rows == 0:
        raise InputError(f"{path}: objects file has no rows")
    ids = integer_column(table, path, "object_id")
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
    require_columns(schema.names, path, list(FEATURES_COLUMNS), "features")
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
    emb = unique_column(table, path, "embedding").combine_chunks()

    def row(r: int) -> str:
        return f"row {r} (object_id {ids[r]})"

    if emb.null_count:
        r, count = first_null(emb)
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
        first, count = first_null(values)
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
    table = open_parquet(path, "features", lambda schema: _check_features_schema(
        schema, path))
    if table.num_rows == 0:
        raise InputError(f"{path}: features file has no rows")
    ids = integer_column(table, path, "object_id")
    raw = _embedding_matrix(table, path, ids)
    _check_object_ids(path, ids, len(ids) if n_objects is None else int(n_objects))

    def where(r: int, c: int | None) -> str:
        place = f"row {r} (object_id {ids[r]})"
        return place if c is None else f"{place}, dimension {c}"

    x = check_feature_values(raw, path, where=where)
    return x[np.argsort(ids)]
