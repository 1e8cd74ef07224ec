"""One model's features: read from any supported file (:func:`read_features_file`),
preprocessed and written as our features Parquet (:func:`import_features`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from ..io import PathLike, checks
from .feature_formats import (check_matrix, load_features_hdf5, load_features_mat,
                              load_features_npy, load_features_pt, load_features_txt,
                              load_split_folder)
from .parsing import (Where, array_where, data_row, first_line, header_fields,
                      integer_values, is_number, number_text, numeric_column,
                      read_csv_table, refuse_rows)
from .preprocessing import preprocess

#: Feature file formats understood by :func:`read_features_file`.
FEATURE_FORMATS = ("npy", "pt", "txt", "hdf5", "csv", "parquet", "mat")
_SUFFIX_FORMAT = {".npy": "npy", ".pt": "pt", ".pth": "pt", ".txt": "txt", ".hdf5": "hdf5",
                  ".h5": "hdf5", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                  ".mat": "mat"}


def _load_features_csv(p: Path, n_objects: int | None) -> np.ndarray:
    """Features (n, d) float32 from a CSV file, in object order when it has an
    ``object_id`` column (see :func:`read_features_file`)."""
    first = first_line(p, "features")
    fields = [f.strip() for f in header_fields(p, first, ",")]
    # A header is a first line that is not all numbers, or exactly "0,1,...,d-1": the
    # header pandas writes for a frame with unnamed columns (DataFrame(x).to_csv()).
    header = (not all(is_number(f) for f in fields)
              or fields == [str(c) for c in range(len(fields))])
    if header:
        repeated = sorted({f for f in fields if f and fields.count(f) > 1})
        if repeated:  # pandas would silently rename the second one "name.1"
            raise InputError(f"{p}: header line 1 names column(s) {repeated} more than "
                             f"once")
    frame = read_csv_table(p, "features", "CSV", header=0 if header else None,
                           skip_blank_lines=False, low_memory=False)
    if len(frame) == 0:
        raise InputError(f"{p}: features file has a header but no data rows")
    if header:
        def row_where(r: int) -> str:
            return data_row(r)
        names = [str(c).strip() for c in frame.columns]
        for pos, name in enumerate(names):
            if not name or name.startswith("Unnamed:"):
                raise InputError(f"{p}: column {pos + 1} of the header has no name (a "
                                 f"saved DataFrame index?); name it object_id or drop it")
        frame.columns = names
    else:
        def row_where(r: int) -> str:
            return f"line {r + 1}"
        names = [f"column {c + 1}" for c in range(frame.shape[1])]
        frame.columns = names
    feature_cols = [c for c in names if c != "object_id"]
    if not feature_cols:
        raise InputError(f"{p}: has no feature columns besides object_id")
    x = np.stack([numeric_column(p, frame[c], c, row_where) for c in feature_cols],
                 axis=1)

    def where(r: int, c: int | None) -> str:
        return row_where(r) if c is None else f"{row_where(r)}, column {feature_cols[c]!r}"

    ids = None
    if "object_id" in names:
        ids = _csv_object_ids(p, frame["object_id"], n_objects, row_where)
    x = check_matrix(p, x, where)
    return x if ids is None else x[np.argsort(ids, kind="stable")]


def _csv_object_ids(p: Path, column: pd.Series, n_objects: int | None,
                    row_where: Callable[[int], str]) -> np.ndarray:
    """The object_id column (rows,) as int64: each of 0..n−1 exactly once."""
    values = integer_values(p, numeric_column(p, column, "object_id", row_where),
                             "object_id", row_where)
    n = len(values) if n_objects is None else int(n_objects)
    if len(values) != n:
        raise InputError(f"{p}: features have {len(values)} rows, expected {n} (one per "
                         f"object)")
    refuse_rows(p, (values < 0) | (values >= n),
                 lambda r: f"object_id {number_text(values[r])} is outside 0..{n - 1}",
                 row_where)
    ids = values.astype(np.int64)
    seen: dict[int, int] = {}
    for r, v in enumerate(ids.tolist()):
        if v in seen:
            raise InputError(f"{p}: {row_where(r)}: object_id {v} repeats "
                             f"{row_where(seen[v])}")
        seen[v] = r
    return ids


def _feature_source(p: Path, fmt: str) -> tuple[Path, str]:
    """Resolve a thingsvision output folder and the format of a feature file."""
    if p.is_dir():
        found = [p / f"features.{ext}" for ext in ("npy", "hdf5", "txt", "pt", "mat")
                 if (p / f"features.{ext}").exists()]
        if len(found) > 1:
            raise InputError(f"{p}: holds several feature files "
                             f"{[f.name for f in found]}; name one")
        if found:
            return found[0], fmt if fmt != "auto" else _SUFFIX_FORMAT[found[0].suffix]
        return p, "split"
    if fmt == "auto":
        kind = _SUFFIX_FORMAT.get(p.suffix.lower())
        if kind is None:
            raise InputError(f"{p}: unknown feature file type {p.suffix!r}; expected one "
                             f"of {sorted(_SUFFIX_FORMAT)} or an explicit format")
        return p, kind
    if fmt not in FEATURE_FORMATS:
        raise InputError(f"{p}: unknown feature format {fmt!r}; expected one of "
                         f"{list(FEATURE_FORMATS)} or 'auto'")
    return p, fmt


def read_features_file(path: PathLike, n_objects: int | None = None, fmt: str = "auto"
                       ) -> np.ndarray:
    """Read one model's features as a float32 array of shape (n, d); row r = object r.

    ``fmt="auto"`` dispatches on the extension:

    - ``.npy``: a 2-D numeric array (``np.load(allow_pickle=False)``; object arrays are
      refused);
    - ``.pt`` / ``.pth``: ``torch.load(weights_only=True, map_location="cpu")`` must give
      a tensor, or a dict with a key ``features`` / ``embeddings``, or a dict with
      exactly one 2-D tensor value (arbitrary pickled objects are never unpickled);
    - ``.txt``: whitespace-separated numbers, one object per line (``np.savetxt``);
    - ``.hdf5`` / ``.h5``: the dataset ``features`` (or thingsvision's split datasets
      ``features_01``, ``features_02``, ... stacked in order); needs ``h5py``;
    - ``.mat``: a variable ``features``, or thingsvision's one variable per image ordered
      by ``file_names.txt`` in the same folder;
    - ``.csv``: numeric columns, an optional header row (a first line that is not all
      numbers, or exactly ``0,1,...,d-1`` as pandas writes for unnamed columns), an
      optional ``object_id`` column giving each row's object (rows are then put in
      object order);
    - ``.parquet``: our features contract (:func:`modelrecovery.io.read_features`).

    A folder is taken as a thingsvision ``out_path``: its single ``features.<ext>`` file,
    or its split files ``features_01.npy``, ... stacked in order.

    Checks: 2-D, numeric, non-empty, rows == ``n_objects`` when given, and the values
    of :func:`modelrecovery.io.checks.check_feature_values` (finite, within float32, row norms
    the fit can take, not every object alike; the first bad value is named by row and
    column as the file holds it). Raises InputError otherwise.
    """
    p = Path(path)
    if not p.is_dir():
        checks.check_file(p, "features")
    p, kind = _feature_source(p, fmt)
    if kind == "parquet":
        return io.read_features(p, n_objects)
    if kind == "csv":
        x = _load_features_csv(p, n_objects)
    else:
        loaders: dict[str, Callable[[Path], tuple[np.ndarray, Where]]] = {
            "npy": load_features_npy, "pt": load_features_pt, "txt": load_features_txt,
            "hdf5": load_features_hdf5, "mat": load_features_mat,
            "split": load_split_folder}
        arr, where = loaders[kind](p)
        x = check_matrix(p, arr, where)
    if n_objects is not None and x.shape[0] != n_objects:
        raise InputError(f"{p}: features have {x.shape[0]} rows, expected {n_objects} "
                         f"(one per object)")
    return x


def import_features(path: PathLike, out_path: PathLike, *, n_objects: int | None = None,
                    fmt: str = "auto", center: bool = False, unit_norm: bool = False,
                    pca: int | None = None) -> dict[str, Any]:
    """Read a feature file, preprocess it, and write our features Parquet.

    Writes ``out_path`` (the features contract) and a JSON sidecar beside it
    (``out_path`` with suffix ``.json``) holding the source and the preprocessing
    record of :func:`preprocess`; returns that sidecar's content. The features are
    checked as read and, when preprocessed, again as they will be stored (unit_norm can
    make every row alike); every refusal names ``path``.
    """
    x = read_features_file(path, n_objects, fmt)
    y, record = preprocess(x, center=center, unit_norm=unit_norm, pca=pca, source=path)
    if record["steps"]:
        y = checks.check_feature_values(y, path, where=array_where,
                                    step=", ".join(record["steps"]))
    meta = {"source": str(path), "format": fmt, "preprocessing": record}
    out = Path(out_path)
    io.write_features(out, y)
    io.write_json(meta, out.with_suffix(".json"))
    return meta
