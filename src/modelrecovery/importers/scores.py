"""External benchmark scores of the study's models (Brain-Score, perceptual alignment, …).

A scores file is CSV (comma-separated, one header line) or Parquet with a ``model``
column and one numeric column per score; an empty cell is a model the benchmark did
not score. Each file belongs to one group (``neural``, ``behavioural``, …). Every file is
refused whole, naming the file, the data row or column and the rule broken: a missing
``model`` column, no score column, a missing, unknown or repeated model, a value that is
not a finite number, a score name that another file (or the study's own metrics)
already uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import io
from ..errors import InputError
from ..io import checks
from ..io.contracts import EXTERNAL_SCORE_COLUMNS
from .parsing import (NA_STRINGS, data_row, first_line, header_fields, numeric_column,
                      read_csv_table, refuse_rows, require_file)

# The study's own metrics (modelrecovery.analysis.study.metric_table) are named
# zero_shot_test_acc and <metric>:<experiment>: external names must differ from both.
RESERVED = ("model", "zero_shot_test_acc")


def _frame(p: Path) -> pd.DataFrame:
    require_file(p, "scores")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        fields = [f.strip() for f in header_fields(p, first_line(p, "scores"), ",")]
        twice = sorted({f for f in fields if fields.count(f) > 1})
        if twice:
            raise InputError(f"{p}: header line 1 names column(s) {twice} more than once")
        # Text as text: a non-number is then refused by name, not read as NaN.
        return read_csv_table(p, "scores", "CSV", dtype=str, keep_default_na=False)
    if suffix in (".parquet", ".pq"):
        table = io.open_parquet(p, "scores")
        for field in table.schema:
            if pa.types.is_nested(field.type) or pa.types.is_binary(field.type):
                raise InputError(f"{p}: column '{field.name}' must hold numbers, found "
                                 f"{field.type}")
        return table.to_pandas()
    raise InputError(f"{p}: a scores file must be .csv or .parquet, found '{p.suffix}'")


def read_scores(path: io.PathLike, group: str, models: list[str]) -> pd.DataFrame:
    """One scores file as long rows of :data:`EXTERNAL_SCORE_COLUMNS` (model, metric,
    group, score as float64; unscored models left out), in the file's column order and
    then the file's row order. ``models``: the study's model names, the only ones a file
    may score."""
    p = Path(path)
    frame = _frame(p)
    # A CSV's place is its data row and line; a Parquet table has rows only.
    where = data_row if p.suffix.lower() == ".csv" else (lambda r: f"row {r + 1}")
    if "model" not in frame.columns:
        raise InputError(f"{p}: scores file needs a 'model' column; found columns "
                         f"{list(frame.columns)[:8]}")
    if len(frame) == 0:
        raise InputError(f"{p}: scores file has no rows")
    names = frame["model"].astype("string").str.strip()
    refuse_rows(p, (names.isna() | (names == "")).to_numpy(),
                lambda r: "missing model name", where)
    known = set(models)
    refuse_rows(p, ~names.isin(known).to_numpy(),
                lambda r: (f"model {checks.shown(names.iloc[r])} is not one of the study's "
                           f"models ({', '.join(sorted(known)[:6])}"
                           f"{', …' if len(known) > 6 else ''})"),
                where)
    refuse_rows(p, names.duplicated().to_numpy(),
                lambda r: f"model {checks.shown(names.iloc[r])} appears more than once",
                where)
    metrics = [c for c in frame.columns if c != "model"]
    if not metrics:
        raise InputError(f"{p}: scores file has no score column besides 'model'")
    rows = []
    for col in metrics:
        name = str(col).strip()
        if not name or name in RESERVED or ":" in name:
            raise InputError(f"{p}: column {str(col)!r} cannot name a score (empty, "
                             f"reserved, or holding ':', which the study's own metrics use)")
        series = frame[col]
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            series = series.astype("string").str.strip().replace(NA_STRINGS, pd.NA)
        values = numeric_column(p, series, name, where)
        refuse_rows(p, np.isinf(values),
                    lambda r: f"column '{name}' must be a finite number, found {values[r]}",
                    where)
        ok = np.isfinite(values)
        if not ok.any():
            raise InputError(f"{p}: column '{name}' scores no model")
        rows.append(pd.DataFrame({"model": names[ok].astype(str).to_numpy(), "metric": name,
                                  "group": group, "score": values[ok]}))
    return pd.concat(rows, ignore_index=True)[list(EXTERNAL_SCORE_COLUMNS)]


def import_scores(paths: list[io.PathLike], groups: list[str], models: list[str],
                  out: io.PathLike) -> pd.DataFrame:
    """Validate every scores file (each with its group) and write their long rows to
    ``out`` (Parquet); a score name used by two files is refused, naming both."""
    if len(paths) != len(groups):
        raise InputError(f"need one group per scores file; got {len(paths)} files and "
                         f"{len(groups)} groups")
    frames, seen = [], {}
    for path, group in zip(paths, groups):
        frame = read_scores(path, group, models)
        for name in dict.fromkeys(frame["metric"]):
            if name in seen:
                raise InputError(f"{path}: score '{name}' is also a column of {seen[name]}; "
                                 f"rename one of them")
            seen[name] = path
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    io.write_parquet(table, out)
    return table
