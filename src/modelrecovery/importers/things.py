"""THINGS odd-one-out triplets: the published behaviour file and the older arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from ..io import PathLike
from .parsing import (NA_STRINGS, data_row, first_line, header_fields, integer_values,
                      load_npy, number_text, numeric_column, read_csv_table,
                      read_text_matrix, refuse_rows, values_text)

#: Columns of the THINGS behaviour file that the importer uses (all others are ignored).
THINGS_REQUIRED = ("image1", "image2", "image3", "choice", "subject_id", "noise_ceiling")
#: Output file stem per ``noise_ceiling`` value.
SPLIT_NAMES = {0: "train", 1: "test1", 2: "test2", 3: "test3"}
# For a triplet whose odd one out is at position p (0, 1, 2), the other two positions.
_OTHERS = np.array([[1, 2], [0, 2], [0, 1]])


def _unique_unordered(t: np.ndarray) -> int:
    """The number of distinct unordered object sets among triplets (N, 3)."""
    if len(t) == 0:
        return 0
    return int(len(np.unique(np.sort(t, axis=1), axis=0)))


def read_things_triplets(path: PathLike, n_objects: int = 1854) -> pd.DataFrame:
    """Read the THINGS odd-one-out behaviour file as published.

    The file (``triplets_large_final_correctednc_correctedorder.csv``) is TAB-separated
    with a header despite its name; comma-separated files are accepted too (the
    delimiter is sniffed from the header line: TAB if it has one, else comma). Columns
    used: ``image1, image2, image3`` (1-based object indices, 1..``n_objects``),
    ``choice`` (the 1-based *position* 1, 2 or 3 of the odd one out among
    image1..image3), ``subject_id`` and ``noise_ceiling`` (0 = training data; 1, 2, 3 =
    the repeated test sets). Every other column (``RT``, ``HIT_nr``, ``trial_nr``,
    ``age``, ``gender``, ``date``, ``time``, ``dataset``, ...) is ignored.

    Returns a DataFrame with one row per data row of the file (N rows), in file order:
    ``i, j, k`` (int32, 0-based; ``k`` the odd one out, ``i, j`` the other two in their
    original order), ``subject`` (string) and ``split`` (int32, the noise_ceiling value).

    Raises InputError naming the file, the data row (1-based, with its line number) and
    the rule: a required column missing, a missing or non-numeric or non-integer value,
    an index outside 1..n_objects, a repeated object, a choice outside {1, 2, 3}, a
    noise_ceiling outside {0, 1, 2, 3}, or no data rows.
    """
    p = Path(path)
    header = first_line(p, "THINGS triplet")
    delimiter = "\t" if "\t" in header else ","
    kind = "TAB" if delimiter == "\t" else "comma"
    raw_names = header_fields(p, header, delimiter)
    names = [n.strip() for n in raw_names]
    missing = [c for c in THINGS_REQUIRED if c not in names]
    if missing:
        raise InputError(f"{p}: THINGS triplet file lacks required column(s) {missing} "
                         f"(header line 1 read as {kind}-separated: {names})")
    repeated = [c for c in THINGS_REQUIRED if names.count(c) > 1]
    if repeated:
        raise InputError(f"{p}: header line 1 names column(s) {repeated} more than once")
    raw = {c: raw_names[names.index(c)] for c in THINGS_REQUIRED}
    numeric = [c for c in THINGS_REQUIRED if c != "subject_id"]
    na_values: dict[str, list[str]] = {raw[c]: NA_STRINGS for c in numeric}
    na_values[raw["subject_id"]] = [""]
    # low_memory=False: a column whose type changes between pandas' chunks would
    # otherwise warn on stderr; the checks below name any cell that is not a number.
    frame = read_csv_table(p, "THINGS triplet", f"a {kind}-separated table", sep=delimiter,
                           header=0, usecols=list(raw.values()),
                           dtype={raw["subject_id"]: str}, skip_blank_lines=False,
                           keep_default_na=False, na_values=na_values, low_memory=False)
    if len(frame) == 0:
        raise InputError(f"{p}: THINGS triplet file has a header but no data rows")

    # Missing values first (a blank line shows up here with its line number).
    for c in THINGS_REQUIRED:
        refuse_rows(p, frame[raw[c]].isna().to_numpy(),
                     lambda r, c=c: f"missing value in column '{c}'")
    subject = frame[raw["subject_id"]].astype(str).str.strip()
    refuse_rows(p, (subject == "").to_numpy(),
                 lambda r: "missing value in column 'subject_id'")
    cols = {c: integer_values(p, numeric_column(p, frame[raw[c]], c, data_row), c,
                               data_row)
            for c in numeric}

    # Ranges are checked on the parsed float64 values, cast to integers only after.
    values = np.stack([cols["image1"], cols["image2"], cols["image3"]], axis=1)
    out_of_range = (values < 1) | (values > n_objects)

    def outside(r: int) -> str:
        c = int(np.flatnonzero(out_of_range[r])[0])
        return (f"image{c + 1} = {number_text(values[r, c])} is outside 1..{n_objects} "
                "(THINGS indices are 1-based)")

    refuse_rows(p, out_of_range.any(axis=1), outside)
    images = values.astype(np.int64)
    refuse_rows(p, (images[:, 0] == images[:, 1]) | (images[:, 0] == images[:, 2])
                 | (images[:, 1] == images[:, 2]),
                 lambda r: f"(image1, image2, image3) = {tuple(images[r].tolist())} repeats "
                           "an object; a triplet needs three distinct objects")
    choice_value = cols["choice"]
    refuse_rows(p, (choice_value < 1) | (choice_value > 3),
                 lambda r: f"choice = {number_text(choice_value[r])} must be 1, 2 or 3 (the "
                           "position of the odd one out among image1..image3)")
    choice = choice_value.astype(np.int64)
    split_value = cols["noise_ceiling"]
    refuse_rows(p, ~np.isin(split_value, list(SPLIT_NAMES)),
                 lambda r: f"noise_ceiling = {number_text(split_value[r])} must be 0 "
                           "(training) or 1, 2, 3 (repeated test sets)")
    split = split_value.astype(np.int64)

    zero = images - 1
    rows = np.arange(len(zero))
    pos = choice - 1
    return pd.DataFrame({
        "i": zero[rows, _OTHERS[pos, 0]].astype(np.int32),
        "j": zero[rows, _OTHERS[pos, 1]].astype(np.int32),
        "k": zero[rows, pos].astype(np.int32),
        "subject": subject.to_numpy(dtype=object),
        "split": split.astype(np.int32),
    })


def import_things(path: PathLike, out_dir: PathLike, n_objects: int = 1854
                  ) -> dict[str, Any]:
    """Convert the THINGS behaviour file into our triplet Parquet files, one per split.

    Writes ``out_dir/train.parquet`` (noise_ceiling 0) and ``test1/2/3.parquet`` for the
    repeated test sets present, each with int32 ``i, j, k`` (0-based, ``k`` odd) and
    string ``subject``, rows in file order; then ``out_dir/summary.json`` (written last).
    The whole file is validated by :func:`read_things_triplets` before anything is
    written, so a refused file leaves no output.

    Returns the summary: per split ``rows``, ``unique_triplets`` (unordered object sets),
    ``objects`` (distinct objects seen), ``subjects``, and the file name.
    """
    frame = read_things_triplets(path, n_objects)
    out = Path(out_dir)
    splits: dict[str, Any] = {}
    writes = []
    for value in sorted(int(v) for v in frame["split"].unique()):
        part = frame[frame["split"] == value]
        t = part[["i", "j", "k"]].to_numpy(dtype=np.int32)
        name = SPLIT_NAMES[value]
        splits[name] = {
            "file": f"{name}.parquet",
            "noise_ceiling": value,
            "rows": int(len(part)),
            "unique_triplets": _unique_unordered(t),
            "objects": int(len(np.unique(t))),
            "subjects": int(part["subject"].nunique()),
        }
        writes.append((out / f"{name}.parquet", t,
                       np.asarray(part["subject"].to_numpy(), dtype=object)))
    summary = {"source": str(path), "n_objects": int(n_objects), "rows": int(len(frame)),
               "subjects": int(frame["subject"].nunique()), "splits": splits}
    for target, t, subject in writes:
        io.write_triplets(target, t, subject=subject)
    io.write_json(summary, out / "summary.json")
    return summary


def read_triplet_array(path: PathLike, n_objects: int) -> np.ndarray:
    """Read an older THINGS triplet array: (N, 3) int64, 0-based, odd one out LAST.

    ``.npy`` files are loaded with ``allow_pickle=False``; anything else is read as
    whitespace-separated text (``trainset.txt``, ``testset1.txt``, ...: ``"i j k"`` per
    line). Integral floats (``np.savetxt``'s default ``1.000e+00``) are accepted.

    Raises InputError naming the file and the line (text, 1-based) or row (``.npy``,
    1-based) for: an empty file, a wrong number of columns, a non-number or non-integer,
    an index outside 0..n_objects−1, or a repeated object.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        a = load_npy(p, "triplet array")
        if a.ndim != 2 or a.shape[1] != 3:
            raise InputError(f"{p}: triplet array must have shape (N, 3), found {a.shape}")

        def where(r: int) -> str:
            return f"row {r + 1} (1-based)"
    else:
        a = read_text_matrix(p, "triplet array", ncols=3)

        def where(r: int) -> str:
            return f"line {r + 1}"
    if a.shape[0] == 0:
        raise InputError(f"{p}: triplet array has no rows")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer)
                                 or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{p}: triplet array must hold integers, found dtype {a.dtype}")
    values = a
    if np.issubdtype(a.dtype, np.floating):
        values = a.astype(np.float64)
        refuse_rows(p, (~np.isfinite(values) | (values != np.floor(values))).any(axis=1),
                     lambda r: f"{tuple(values[r].tolist())} are not all integers", where)
    # The range is checked on the values as read (a uint64 or 1e23 wraps in int64).
    refuse_rows(p, ((values < 0) | (values >= n_objects)).any(axis=1),
                 lambda r: f"{values_text(a[r])} has an index outside "
                           f"0..{n_objects - 1} (indices are 0-based)", where)
    t = values.astype(np.int64)
    refuse_rows(p, (t[:, 0] == t[:, 1]) | (t[:, 0] == t[:, 2]) | (t[:, 1] == t[:, 2]),
                 lambda r: f"{tuple(t[r].tolist())} repeats an object; a triplet needs "
                           "three distinct objects", where)
    return t
