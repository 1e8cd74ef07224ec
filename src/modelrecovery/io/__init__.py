"""Parquet and NPZ I/O with the data contracts of docs/study.md checked on every read.

Every reader raises :class:`~modelrecovery.errors.InputError` naming the file, the row
or key, and what was wrong. Every writer writes to a temporary file in the target
folder and renames it into place (:func:`modelrecovery.io.outputs.atomic_path`), so a
failed job never leaves a partial output.

The modules, all re-exported here (``from modelrecovery import io; io.read_features``):

- :mod:`.contracts`: the column lists of every table (``RECOVERY_COLUMNS``,
  ``SHARD_COLUMNS``, ...) and ``PathLike``; standard library only;
- :mod:`.tables`: generic Parquet, CSV and JSON files and the shared column checks;
- :mod:`.objects`: ``objects.parquet`` and one model's features;
- :mod:`.triplets`: triplet files;
- :mod:`.generators`: a generator's W, T and similarity (NPZ) with its JSON sidecar.

Nothing here imports torch, so analysis jobs load only numpy, pandas and pyarrow.
"""

from __future__ import annotations

from .contracts import (DESIGN_COLUMNS, EXTERNAL_SCORE_COLUMNS, FEATURES_COLUMNS,
                        GENERATOR_ARRAYS, OBJECTS_COLUMNS, PARAMETER_COLUMNS,
                        RECOVERY_COLUMNS, SHARD_COLUMNS, TRIPLET_COLUMNS, PathLike)
from .generators import Generator, load_generator, read_generator, save_generator
from .objects import read_features, read_objects, write_features, write_objects
from .tables import (first_null, integer_column, open_parquet, read_json, read_tables,
                     require_columns, unique_column, write_csv, write_json, write_parquet)
from .triplets import read_shard, read_triplets, triplet_table, write_triplets

__all__ = [
    "DESIGN_COLUMNS", "EXTERNAL_SCORE_COLUMNS", "FEATURES_COLUMNS", "GENERATOR_ARRAYS",
    "Generator",
    "OBJECTS_COLUMNS", "PARAMETER_COLUMNS", "RECOVERY_COLUMNS", "SHARD_COLUMNS",
    "TRIPLET_COLUMNS", "PathLike", "first_null", "integer_column",
    "load_generator", "open_parquet", "read_features", "read_json", "read_objects",
    "read_generator", "read_shard", "read_tables", "read_triplets", "require_columns", "save_generator",
    "triplet_table", "unique_column", "write_csv", "write_features", "write_json", "write_objects",
    "write_parquet", "write_triplets",
]
