"""Generic tables and records: Parquet, CSV and JSON files, and the column checks
every Parquet reader of this package shares.

Writers go through :func:`modelrecovery.io.outputs.atomic_path` (a temporary file in the
target folder, renamed into place). Readers raise
:class:`~modelrecovery.errors.InputError` naming the file, the column and the row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from .checks import check_file, first_true, one_line, such
from .contracts import PathLike
from .outputs import atomic_path

# --------------------------------------------------------------------------- writing


def write_parquet(table: pa.Table | pd.DataFrame, path: PathLike) -> None:
    """Write a table atomically (zstd-compressed Parquet; a DataFrame's index is dropped)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_csv(frame: pd.DataFrame, path: PathLike) -> None:
    """Write a CSV atomically (comma-separated, a header line, no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json(obj: Any, path: PathLike) -> None:
    """Write JSON atomically, keys sorted so identical content gives identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- reading


def open_parquet(path: PathLike, what: str,
                 check_schema: Callable[[pa.Schema], None] | None = None) -> pa.Table:
    """Read one Parquet file (``what`` names it in refusals); ``check_schema`` sees its
    schema before any data is read (some malformed column types only fail, obscurely,
    while reading)."""
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


def require_columns(names: list[str], path: PathLike, columns: list[str], what: str
                    ) -> None:
    """Refuse a ``what`` file whose column ``names`` lack one of ``columns`` or repeat one."""
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


def unique_column(table: pa.Table, path: PathLike, name: str) -> pa.ChunkedArray:
    """Column ``name`` (present) of ``table``; refused if the name is not unique."""
    _refuse_repeated_column(table.column_names, path, name)
    return table.column(name)


def first_null(col: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    """The first null row of ``col`` and the number of null rows."""
    return first_true(col.is_null().to_numpy(zero_copy_only=False))


def integer_column(table: pa.Table, path: PathLike, name: str) -> np.ndarray:
    """Column ``name`` as int64 (N,): an integer type, no nulls, every value within int64
    (a uint64 beyond it would otherwise wrap to a negative number in messages)."""
    col = unique_column(table, path, name)
    if not pa.types.is_integer(col.type):
        raise InputError(f"{path}: column '{name}' must be an integer type, found {col.type}")
    if col.null_count:
        row, count = first_null(col)
        raise InputError(f"{path}: column '{name}' is null at row {row}{such(count)}")
    values = col.to_numpy()
    if values.dtype == np.uint64:
        big = values > np.iinfo(np.int64).max
        if big.any():
            row, count = first_true(big)
            raise InputError(f"{path}: column '{name}' is {values[row]} at row {row}, beyond "
                             f"the largest index (2**63 − 1){such(count)}")
    return values.astype(np.int64)


def read_json(path: PathLike) -> dict[str, Any]:
    """Read a JSON object from a file; refuses a file that is not UTF-8 JSON holding an
    object, naming it."""
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
    """Concatenate Parquet tables (e.g. recovery rows) in the order given; ``check``
    sees each file's frame and its path and raises to refuse it."""
    frames = []
    for path in paths:
        frame = open_parquet(path, "table").to_pandas()
        if check is not None:
            check(frame, Path(path))
        frames.append(frame)
    if not frames:
        raise InputError("no input tables were given")
    return pd.concat(frames, ignore_index=True)
