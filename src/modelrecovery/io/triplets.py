"""Triplet files: int32 ``i, j, k`` (0-based object indices, ``k`` the odd one out)
plus optional columns such as ``count`` or ``subject``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InputError
from .contracts import SHARD_COLUMNS, TRIPLET_COLUMNS, PathLike
from .tables import integer_column, open_parquet, require_columns, unique_column, write_parquet


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


def read_triplets(path: PathLike, n_objects: int, *, columns: list[str] | None = None,
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a triplet file: an (N, 3) int64 array (``k`` odd) and any extra columns asked for.

    Checks: at least one row, integer ``i, j, k`` in 0..n−1, three distinct objects
    per row, and (when present) a positive integer ``count``.
    """
    table = open_parquet(path, "triplets", lambda schema: require_columns(
        schema.names, path, list(TRIPLET_COLUMNS), "triplets"))
    if table.num_rows == 0:
        raise InputError(f"{path}: triplet file is empty (no rows)")
    t = np.stack([integer_column(table, path, c) for c in "ijk"], axis=1)
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
        counts = integer_column(table, path, "count")
        nonpos = np.flatnonzero(counts < 1)
        if len(nonpos):
            raise InputError(f"{path}: count must be ≥ 1, row {int(nonpos[0])} has "
                             f"{counts[nonpos[0]]}")
        extra["count"] = counts
    for name in columns or []:
        if name not in table.column_names:
            raise InputError(f"{path}: triplet file lacks column '{name}'")
        extra[name] = unique_column(table, path, name).to_numpy(zero_copy_only=False)
    return t, extra


def read_shard(path: PathLike) -> pd.DataFrame:
    """A simulated dataset (:data:`SHARD_COLUMNS`: fold, split, position and the triplet
    i, j, k with k chosen odd), refused in one line when a column is missing."""
    shard = open_parquet(path, "simulated shard").to_pandas()
    missing = sorted(set(SHARD_COLUMNS) - set(shard.columns))
    if missing:
        raise InputError(f"{path}: simulated shard lacks column(s) {missing}")
    return shard
