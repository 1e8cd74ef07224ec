"""Importers for real data: THINGS odd-one-out triplets, object lists and model features.

Every reader validates everything before anything is written and raises
:class:`~modelrecovery.errors.InputError` naming the file, the place (a 1-based *data row*
of a table with a header, a 1-based *line* of a text file, or a 0-based object row of an
array; each message says which) and the rule that was broken. The ``import_*`` functions
write through :mod:`modelrecovery.io`, whose writers are atomic, and only after all
validation has passed, so a refused import leaves no output behind.

Formats (see the function docstrings for details):

- THINGS behaviour file as published on OSF (project f5rn6,
  ``data/triplet_dataset/triplets_large_final_correctednc_correctedorder.csv``): despite
  its name TAB-separated with a header. The preprocessing script that wrote it gives the
  header ``image1 image2 image3 choice RT noise_ceiling subject_id HIT_nr trial_nr age
  gender date time`` plus a ``dataset`` column appended when the four collection batches
  were combined. Only ``image1..3``, ``choice``, ``subject_id`` and ``noise_ceiling`` are
  used; every other column is ignored. ``choice`` is the 1-based position of the odd one
  out among ``image1..image3`` (the same script derives ``testset*.txt`` by moving that
  image last), ``noise_ceiling`` is 0 for the training data and 1, 2, 3 for the repeated
  test sets.
- older THINGS triplet arrays (``trainset.txt``, ``testset1.txt``, ...): three 0-based
  indices per line, space-separated, odd one out last; or the same as ``.npy``.
- thingsvision's ``save_features(features, out_path, file_format)`` (module
  ``thingsvision.utils.storing``) writes ``out_path/features.npy`` (``np.save``),
  ``features.txt`` (``np.savetxt``, space-separated), ``features.pt`` (``torch.save`` of a
  tensor), ``features.hdf5`` (one dataset named ``features``) or ``features.mat``
  (``scipy.io.savemat``: one variable per image named after ``file_names.txt`` in the
  same folder, or a single variable ``features`` when that list is absent). When saving
  runs out of memory it splits rows into ``features_01.npy``, ``features_02.npy``, ...
  (for HDF5: datasets ``features_01``, ... in one file). Rows follow ``file_names.txt``,
  the order thingsvision's ``ImageDataset`` read the images in: that order must be the
  object order of ``objects.parquet``.
"""

from __future__ import annotations

import csv
import pickle
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import checks, io
from .errors import InputError

PathLike = io.PathLike

#: Columns of the THINGS behaviour file that the importer uses (all others are ignored).
THINGS_REQUIRED = ("image1", "image2", "image3", "choice", "subject_id", "noise_ceiling")
#: Output file stem per ``noise_ceiling`` value.
SPLIT_NAMES = {0: "train", 1: "test1", 2: "test2", 3: "test3"}
#: Feature file formats understood by :func:`read_features_file`.
FEATURE_FORMATS = ("npy", "pt", "txt", "hdf5", "csv", "parquet", "mat")
_SUFFIX_FORMAT = {".npy": "npy", ".pt": "pt", ".pth": "pt", ".txt": "txt", ".hdf5": "hdf5",
                  ".h5": "hdf5", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                  ".mat": "mat"}
_NA_STRINGS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]
# thingsvision.utils.storing.rm_suffix strips these from file names to make .mat keys.
_TV_IMAGE_SUFFIX = re.compile(r"(.eps|.jpg|.jpeg|.png|.PNG|.tif|.tiff)$")
# For a triplet whose odd one out is at position p (0, 1, 2), the other two positions.
_OTHERS = np.array([[1, 2], [0, 2], [0, 1]])

# The place of a value: where(row, column); where(row, None) names the whole row.
Where = checks.CellWhere


# --------------------------------------------------------------------------- helpers


def _exists(p: Path, what: str) -> None:
    checks.check_file(p, what)


def _not_utf8(p: Path, what: str) -> InputError:
    """The refusal of a text file that is not UTF-8, naming its first undecodable byte."""
    data = p.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return InputError(f"{p}: line {line}, byte {column}: {what} file is not UTF-8 text "
                          f"(byte 0x{data[exc.start]:02x}: {exc.reason}); save it as UTF-8")
    return InputError(f"{p}: {what} file is not UTF-8 text")


def _header_fields(p: Path, line: str, delimiter: str) -> list[str]:
    """The raw fields of a header line, as the csv module splits them."""
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise InputError(f"{p}: header line 1 cannot be split into columns: "
                         f"{checks.one_line(exc)}") from exc


def _first_line(p: Path, what: str) -> str:
    """The first line of a text file (BOM and line end stripped); refuses an empty file."""
    _exists(p, what)
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            line = fh.readline()
    except UnicodeDecodeError:
        raise _not_utf8(p, what) from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} file: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    if not line.strip():
        if p.stat().st_size == 0:
            raise InputError(f"{p}: {what} file is empty")
        raise InputError(f"{p}: line 1 is empty; expected a header line")
    return line.rstrip("\r\n")


def _count(n: int) -> str:
    return "" if n == 1 else f" ({n} such rows)"


def _data_row(r: int) -> str:
    """Location of 0-based data row ``r`` of a table with one header line."""
    return f"data row {r + 1} (line {r + 2})"


def _refuse_rows(path: object, bad: np.ndarray, problem: Callable[[int], str],
                 where: Callable[[int], str] = _data_row) -> None:
    """Raise for the first row where ``bad`` (n,) holds, naming it (``where(row)``), what
    is wrong with it (``problem(row)``) and how many rows share the fault."""
    rows = np.flatnonzero(bad)
    if len(rows):
        r = int(rows[0])
        raise InputError(f"{path}: {where(r)}: {problem(r)}{_count(len(rows))}")


def _is_number(text: str) -> bool:
    """Whether a text field is a number as pandas parses one (Python's float() also takes
    digit separators, "1_000", which pandas does not)."""
    if "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number_text(value: float | np.floating) -> str:
    """A parsed number as its file most likely wrote it: an integral value as an integer
    (4, not 4.0) while float64 holds it exactly, anything else in the shortest form of
    its own type (1e+23, also for a float32 1e23), never an int64 cast (which wraps 1e23
    to a negative number)."""
    v = float(value)
    if v.is_integer() and abs(v) < 2.0 ** 53:
        return str(int(v))
    return str(value) if isinstance(value, np.generic) else repr(v)


def _values_text(values: np.ndarray) -> str:
    """A row of parsed numbers (or of integers from a binary file) as a tuple."""
    if np.issubdtype(values.dtype, np.floating):
        return "(" + ", ".join(_number_text(v) for v in values) + ")"
    return "(" + ", ".join(str(v) for v in values.tolist()) + ")"


def _numeric_column(p: Path, series: pd.Series, name: str,
                    where: Callable[[int], str]) -> np.ndarray:
    """A column as float64; names the first non-numeric cell."""
    if pd.api.types.is_bool_dtype(series.dtype):  # pandas reads True/False as booleans
        _refuse_rows(p, np.ones(len(series), dtype=bool),
                     lambda r: f"column '{name}' must be a number, found "
                               f"{str(series.iloc[r])!r}", where)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = pd.to_numeric(series, errors="coerce")
    _refuse_rows(p, (values.isna() & series.notna()).to_numpy(),
                 lambda r: f"column '{name}' must be a number, found {series.iloc[r]!r}",
                 where)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _integer_values(p: Path, values: np.ndarray, name: str,
                    where: Callable[[int], str]) -> np.ndarray:
    """Refuse missing and non-integral values of a float64 column (N,); returns it still
    float64: callers check its range first and cast after, as an int64 cast of a value
    like 1e23 wraps around and would be shown as a negative number."""
    _refuse_rows(p, np.isnan(values), lambda r: f"missing value in column '{name}'", where)
    _refuse_rows(p, ~np.isfinite(values) | (values != np.floor(values)),
                 lambda r: f"column '{name}' must be an integer, found {float(values[r])!r}",
                 where)
    return values


def _read_text_matrix(p: Path, what: str, ncols: int | None) -> np.ndarray:
    """A whitespace-separated numeric text file as float64 (rows = lines).

    Fast path through pandas; any irregularity falls back to a line scan that names the
    first bad line (an empty line, a wrong number of values, a non-number).
    """
    _exists(p, what)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: {what} file is empty")
    error: Exception | None = None
    frame = None
    try:
        frame = pd.read_csv(p, sep=r"\s+", header=None, skip_blank_lines=False,
                            dtype=np.float64, na_filter=True, keep_default_na=False,
                            na_values=["nan", "NaN", "NAN"], encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(p, what) from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} file: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        error = exc
    irregular = (frame is None or frame.isna().to_numpy().any()
                 or (ncols is not None and frame.shape[1] != ncols))
    if irregular:
        _scan_text_matrix(p, what, ncols)  # raises on the first structural problem
        if frame is None:
            raise InputError(f"{p}: cannot be read as a whitespace-separated table of "
                             f"numbers: {checks.one_line(error)}")
    assert frame is not None
    if frame.shape[0] == 0:
        raise InputError(f"{p}: {what} file has no rows")
    return frame.to_numpy(dtype=np.float64)


def _scan_text_matrix(p: Path, what: str, ncols: int | None) -> None:
    try:
        with open(p, encoding="utf-8-sig") as fh:
            _scan_lines(p, fh, ncols)
    except UnicodeDecodeError:
        raise _not_utf8(p, what) from None


def _scan_lines(p: Path, lines: Iterable[str], ncols: int | None) -> None:
    """Raise for the first empty line, wrong number of values or non-number."""
    expected = ncols
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            raise InputError(f"{p}: line {lineno} is empty")
        if expected is None:
            expected = len(fields)
        if len(fields) != expected:
            origin = "" if ncols is not None else " (as many as line 1)"
            raise InputError(f"{p}: line {lineno} has {len(fields)} values, expected "
                             f"{expected}{origin}")
        for col, field in enumerate(fields):
            if not _is_number(field):
                raise InputError(f"{p}: line {lineno}, value {col + 1}: {field!r} is "
                                 f"not a number")


def _unique_unordered(t: np.ndarray) -> int:
    if len(t) == 0:
        return 0
    return int(len(np.unique(np.sort(t, axis=1), axis=0)))


# --------------------------------------------------------------------------- triplets


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
    header = _first_line(p, "THINGS triplet")
    delimiter = "\t" if "\t" in header else ","
    kind = "TAB" if delimiter == "\t" else "comma"
    raw_names = _header_fields(p, header, delimiter)
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
    na_values: dict[str, list[str]] = {raw[c]: _NA_STRINGS for c in numeric}
    na_values[raw["subject_id"]] = [""]
    try:
        # low_memory=False: a column whose type changes between pandas' chunks would
        # otherwise warn on stderr; the checks below name any cell that is not a number.
        frame = pd.read_csv(p, sep=delimiter, header=0, usecols=list(raw.values()),
                            dtype={raw["subject_id"]: str}, skip_blank_lines=False,
                            keep_default_na=False, na_values=na_values,
                            encoding="utf-8-sig", low_memory=False)
    except UnicodeDecodeError:
        raise _not_utf8(p, "THINGS triplet") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the THINGS triplet file: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot be read as a {kind}-separated table: "
                         f"{checks.one_line(exc)}") from exc
    if len(frame) == 0:
        raise InputError(f"{p}: THINGS triplet file has a header but no data rows")

    # Missing values first (a blank line shows up here with its line number).
    for c in THINGS_REQUIRED:
        _refuse_rows(p, frame[raw[c]].isna().to_numpy(),
                     lambda r, c=c: f"missing value in column '{c}'")
    subject = frame[raw["subject_id"]].astype(str).str.strip()
    _refuse_rows(p, (subject == "").to_numpy(),
                 lambda r: "missing value in column 'subject_id'")
    cols = {c: _integer_values(p, _numeric_column(p, frame[raw[c]], c, _data_row), c,
                               _data_row)
            for c in numeric}

    # Ranges are checked on the parsed float64 values, cast to integers only after.
    values = np.stack([cols["image1"], cols["image2"], cols["image3"]], axis=1)
    out_of_range = (values < 1) | (values > n_objects)

    def outside(r: int) -> str:
        c = int(np.flatnonzero(out_of_range[r])[0])
        return (f"image{c + 1} = {_number_text(values[r, c])} is outside 1..{n_objects} "
                "(THINGS indices are 1-based)")

    _refuse_rows(p, out_of_range.any(axis=1), outside)
    images = values.astype(np.int64)
    _refuse_rows(p, (images[:, 0] == images[:, 1]) | (images[:, 0] == images[:, 2])
                 | (images[:, 1] == images[:, 2]),
                 lambda r: f"(image1, image2, image3) = {tuple(images[r].tolist())} repeats "
                           "an object; a triplet needs three distinct objects")
    choice_value = cols["choice"]
    _refuse_rows(p, (choice_value < 1) | (choice_value > 3),
                 lambda r: f"choice = {_number_text(choice_value[r])} must be 1, 2 or 3 (the "
                           "position of the odd one out among image1..image3)")
    choice = choice_value.astype(np.int64)
    split_value = cols["noise_ceiling"]
    _refuse_rows(p, ~np.isin(split_value, list(SPLIT_NAMES)),
                 lambda r: f"noise_ceiling = {_number_text(split_value[r])} must be 0 "
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
        a = _load_npy(p, "triplet array")
        if a.ndim != 2 or a.shape[1] != 3:
            raise InputError(f"{p}: triplet array must have shape (N, 3), found {a.shape}")

        def where(r: int) -> str:
            return f"row {r + 1} (1-based)"
    else:
        a = _read_text_matrix(p, "triplet array", ncols=3)

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
        _refuse_rows(p, (~np.isfinite(values) | (values != np.floor(values))).any(axis=1),
                     lambda r: f"{tuple(values[r].tolist())} are not all integers", where)
    # The range is checked on the values as read (a uint64 or 1e23 wraps in int64).
    _refuse_rows(p, ((values < 0) | (values >= n_objects)).any(axis=1),
                 lambda r: f"{_values_text(a[r])} has an index outside "
                           f"0..{n_objects - 1} (indices are 0-based)", where)
    t = values.astype(np.int64)
    _refuse_rows(p, (t[:, 0] == t[:, 1]) | (t[:, 0] == t[:, 2]) | (t[:, 1] == t[:, 2]),
                 lambda r: f"{tuple(t[r].tolist())} repeats an object; a triplet needs "
                           "three distinct objects", where)
    return t


# --------------------------------------------------------------------------- objects


def read_object_names(path: PathLike, *, n_objects: int | None = None) -> list[str]:
    """Read a THINGS-style object list: one concept name per line, in object order.

    Surrounding whitespace is stripped; lines end with LF, CRLF or CR. Nothing is
    skipped silently: an empty line, a line holding a TAB (a table, not a list) or another
    control character, a name already seen, or bytes that are not UTF-8 are an error
    naming the (1-based) line. ``n_objects``, when given, must equal the number of names.
    Returns the names; name r is object r.
    """
    p = Path(path)
    _exists(p, "object list")
    try:
        text = p.read_text(encoding="utf-8-sig")  # universal newlines: CRLF, CR end lines
    except UnicodeDecodeError:
        raise _not_utf8(p, "object list") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the object list: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    if not text:
        raise InputError(f"{p}: object list file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it is not an empty line
    names: list[str] = []
    first_seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            raise InputError(f"{p}: line {lineno} is empty; the object list needs one "
                             f"name per line")
        if "\t" in name:
            raise InputError(f"{p}: line {lineno} holds a TAB ({name!r}); expected one "
                             f"name per line, not a table")
        ch = checks.control_character(name)
        if ch is not None:
            raise InputError(f"{p}: line {lineno}: name {name!r} holds a control "
                             f"character {ch!r}")
        if name in first_seen:
            raise InputError(f"{p}: line {lineno}: name {name!r} duplicates line "
                             f"{first_seen[name]}")
        first_seen[name] = lineno
        names.append(name)
    if n_objects is not None and len(names) != n_objects:
        raise InputError(f"{p}: object list has {len(names)} names, expected {n_objects}")
    return names


def import_objects(path: PathLike, out_path: PathLike, *, n_objects: int | None = None
                   ) -> list[str]:
    """Read an object list (:func:`read_object_names`) and write ``objects.parquet``."""
    names = read_object_names(path, n_objects=n_objects)
    io.write_objects(out_path, names)
    return names


# --------------------------------------------------------------------------- features


def _load_npy(p: Path, what: str) -> np.ndarray:
    _exists(p, what)
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(f"{p}: holds a Python object array, which would have to be "
                             f"unpickled; refused (save a numeric array)") from exc
        raise InputError(f"{p}: cannot be read as a .npy array: {checks.one_line(exc)}") \
            from exc
    except Exception as exc:  # a corrupt header fails in tokenize or ast, a short file in io
        raise InputError(f"{p}: cannot be read as a .npy array: "
                         f"{type(exc).__name__}: {checks.one_line(exc)}") from exc
    if hasattr(a, "files"):  # an .npz archive under another name
        a.close()
        raise InputError(f"{p}: is an .npz archive, expected a single .npy array")
    return a


def _array_where(r: int, c: int | None) -> str:
    if c is None:
        return f"row {r} (0-based object index)"
    return f"row {r} (0-based object index), dimension {c} (0-based)"


def _text_where(r: int, c: int | None) -> str:
    if c is None:
        return f"line {r + 1} (object row {r}, 0-based)"
    return f"line {r + 1}, value {c + 1} (object row {r}, dimension {c}, 0-based)"


def _load_features_npy(p: Path) -> tuple[np.ndarray, Where]:
    return _load_npy(p, "features"), _array_where


def _load_features_txt(p: Path) -> tuple[np.ndarray, Where]:
    return _read_text_matrix(p, "features", ncols=None), _text_where


def _load_features_pt(p: Path) -> tuple[np.ndarray, Where]:
    import torch

    _exists(p, "features")
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
        return tensor.numpy(), _array_where
    except (TypeError, RuntimeError) as exc:  # dtypes numpy lacks, meta tensors, ...
        raise InputError(f"{p}: cannot convert the {tensor.dtype} tensor of shape "
                         f"{tuple(tensor.shape)} to numbers: {checks.one_line(exc)}") from exc


def _load_features_hdf5(p: Path) -> tuple[np.ndarray, Where]:
    _exists(p, "features")
    try:
        import h5py
    except ImportError as exc:
        raise InputError(f"{p}: reading HDF5 features needs the h5py package, which is "
                         f"not installed: pip install h5py") from exc
    try:
        with h5py.File(p, "r") as f:
            if "features" in f:
                return _hdf5_array(p, f["features"], "features"), _array_where
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
    return _stack_parts(p, parts, splits), _array_where


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
    for name, part in zip(names, parts):
        if part.ndim != 2 or part.shape[1:] != parts[0].shape[1:]:
            raise InputError(f"{p}: split {name} has shape {part.shape}, expected "
                             f"(rows, {parts[0].shape[1:]}) like {names[0]}")
    return np.concatenate(parts, axis=0)


def _load_features_mat(p: Path) -> tuple[np.ndarray, Where]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    _exists(p, "features")
    try:
        content = loadmat(p)
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise InputError(f"{p}: is a MATLAB v7.3 (HDF5) file; save it as v7 or as "
                         f".npy/.hdf5") from exc
    except (ValueError, OSError, TypeError, MatReadError) as exc:
        raise InputError(f"{p}: cannot be read as a MATLAB file: {checks.one_line(exc)}") \
            from exc
    if "features" in content:
        return _mat_array(content["features"]), _array_where
    names_file = p.parent / "file_names.txt"
    variables = [key for key in content if not key.startswith("__")]
    if not names_file.exists():
        raise InputError(f"{p}: no variable 'features', and no file_names.txt beside it "
                         f"to order the per-image variables {variables[:10]}")
    rows = []
    _exists(names_file, "file_names.txt")
    try:
        lines = names_file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise _not_utf8(names_file, "file name list") from None
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
    return np.stack(rows), _array_where


def _mat_array(value: Any) -> np.ndarray:
    """A MATLAB variable as an array (a sparse matrix is made dense)."""
    from scipy import sparse

    return value.toarray() if sparse.issparse(value) else np.asarray(value)


def _load_features_csv(p: Path, n_objects: int | None) -> np.ndarray:
    first = _first_line(p, "features")
    fields = [f.strip() for f in _header_fields(p, first, ",")]
    # A header is a first line that is not all numbers, or exactly "0,1,...,d-1": the
    # header pandas writes for a frame with unnamed columns (DataFrame(x).to_csv()).
    header = (not all(_is_number(f) for f in fields)
              or fields == [str(c) for c in range(len(fields))])
    if header:
        repeated = sorted({f for f in fields if f and fields.count(f) > 1})
        if repeated:  # pandas would silently rename the second one "name.1"
            raise InputError(f"{p}: header line 1 names column(s) {repeated} more than "
                             f"once")
    try:
        frame = pd.read_csv(p, header=0 if header else None, skip_blank_lines=False,
                            encoding="utf-8-sig", low_memory=False)
    except UnicodeDecodeError:
        raise _not_utf8(p, "features") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the features file: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot be read as CSV: {checks.one_line(exc)}") from exc
    if len(frame) == 0:
        raise InputError(f"{p}: features file has a header but no data rows")
    if header:
        def row_where(r: int) -> str:
            return _data_row(r)
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
    x = np.stack([_numeric_column(p, frame[c], c, row_where) for c in feature_cols],
                 axis=1)

    def where(r: int, c: int | None) -> str:
        return row_where(r) if c is None else f"{row_where(r)}, column {feature_cols[c]!r}"

    ids = None
    if "object_id" in names:
        ids = _csv_object_ids(p, frame["object_id"], n_objects, row_where)
    x = _check_matrix(p, x, where)
    return x if ids is None else x[np.argsort(ids, kind="stable")]


def _csv_object_ids(p: Path, column: pd.Series, n_objects: int | None,
                    row_where: Callable[[int], str]) -> np.ndarray:
    """The object_id column (rows,) as int64: each of 0..n−1 exactly once."""
    values = _integer_values(p, _numeric_column(p, column, "object_id", row_where),
                             "object_id", row_where)
    n = len(values) if n_objects is None else int(n_objects)
    if len(values) != n:
        raise InputError(f"{p}: features have {len(values)} rows, expected {n} (one per "
                         f"object)")
    _refuse_rows(p, (values < 0) | (values >= n),
                 lambda r: f"object_id {_number_text(values[r])} is outside 0..{n - 1}",
                 row_where)
    ids = values.astype(np.int64)
    seen: dict[int, int] = {}
    for r, v in enumerate(ids.tolist()):
        if v in seen:
            raise InputError(f"{p}: {row_where(r)}: object_id {v} repeats "
                             f"{row_where(seen[v])}")
        seen[v] = r
    return ids


def _check_matrix(p: Path, arr: np.ndarray, where: Where) -> np.ndarray:
    """Dtype and shape of a feature matrix (n, d), then its values
    (:func:`modelrecovery.checks.check_feature_values`); returns float32 (n, d)."""
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


def _load_split_folder(p: Path) -> tuple[np.ndarray, Where]:
    """thingsvision's split layout: features_01.npy, features_02.npy, ... (or .txt/.pt)."""
    for ext, loader in (("npy", _load_features_npy), ("txt", _load_features_txt),
                        ("pt", _load_features_pt)):
        files = sorted((f for f in p.glob(f"features_*.{ext}")
                        if re.fullmatch(rf"features_\d+\.{ext}", f.name)),
                       key=lambda f: int(f.stem.split("_")[1]))
        if files:
            names = [f.name for f in files]
            _check_numbering(p, names, [int(f.stem.split("_")[1]) for f in files])
            parts = [np.asarray(loader(f)[0]) for f in files]
            return _stack_parts(p, parts, names), _array_where
    raise InputError(f"{p}: folder holds no thingsvision feature file (features.npy, "
                     f".hdf5, .txt, .pt, .mat or features_01.npy, ...)")


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
    of :func:`modelrecovery.checks.check_feature_values` (finite, within float32, row norms
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
            "npy": _load_features_npy, "pt": _load_features_pt, "txt": _load_features_txt,
            "hdf5": _load_features_hdf5, "mat": _load_features_mat,
            "split": _load_split_folder}
        arr, where = loaders[kind](p)
        x = _check_matrix(p, arr, where)
    if n_objects is not None and x.shape[0] != n_objects:
        raise InputError(f"{p}: features have {x.shape[0]} rows, expected {n_objects} "
                         f"(one per object)")
    return x


# --------------------------------------------------------------------------- preprocessing


def preprocess(features: np.ndarray, *, center: bool = False, unit_norm: bool = False,
               pca: int | None = None, source: PathLike | None = None
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """Optional per-model preprocessing, applied in this order.

    1. ``center``: subtract the column means;
    2. ``unit_norm``: scale every row to Euclidean length 1 (a zero row is refused,
       naming its 0-based index);
    3. ``pca=k``: project onto the first k principal components, fitted once by SVD of
       the column-centred data (so the output is centred); 1 ≤ k ≤ min(n, d). The sign of
       each component is fixed so that its largest-magnitude entry is positive, which
       makes the result deterministic (up to exactly repeated singular values).

    ``features`` has shape (n, d). Returns the processed features, float32 of shape
    (n, d) or (n, k), and a JSON-ready record of what was applied: the steps, input and
    output shapes, the norm of the input's column-mean vector, and for PCA the explained
    variance ratio of each kept component and their sum.

    Refusals start with ``source`` (the file the features came from) when given, else
    with "preprocess".
    """
    head = "preprocess" if source is None else str(source)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{head}: features must be a non-empty 2-D array, found "
                         f"shape {x.shape}")
    if not np.isfinite(x).all():
        r, c = (int(v) for v in np.argwhere(~np.isfinite(x))[0])
        raise InputError(f"{head}: non-finite value at row {r}, dimension {c}")
    n, d = x.shape
    record: dict[str, Any] = {
        "steps": [], "center": bool(center), "unit_norm": bool(unit_norm),
        "pca": None if pca is None else int(pca), "input_shape": [n, d],
        "input_mean_norm": float(np.linalg.norm(x.mean(axis=0))),
    }
    x = x.copy()
    if center:
        x -= x.mean(axis=0)
        record["steps"].append("center")
    if unit_norm:
        norms = np.linalg.norm(x, axis=1)
        tiny = np.finfo(np.float64).eps * max(float(norms.max()), 1e-300) * 16
        zero = np.flatnonzero(norms <= tiny)
        if len(zero):
            after = " after centering" if center else ""
            raise InputError(f"{head}: row {int(zero[0])} (0-based object index) has "
                             f"zero norm{after}; cannot scale it to unit length "
                             f"({len(zero)} such row(s))")
        x /= norms[:, None]
        record["steps"].append("unit_norm")
    if pca is not None:
        k = int(pca)
        if k != pca or k < 1 or k > min(n, d):
            raise InputError(f"{head}: pca = {pca} must be an integer in "
                             f"1..min(n, d) = 1..{min(n, d)} for features of shape {(n, d)}")
        mean = x.mean(axis=0)
        xc = x - mean
        try:
            _, s, vt = np.linalg.svd(xc, full_matrices=False)
        except np.linalg.LinAlgError as exc:
            raise InputError(f"{head}: PCA failed, the SVD of the centred features (shape "
                             f"{(n, d)}) did not converge: {checks.one_line(exc)}") from exc
        var = s ** 2
        if var.sum() <= 0:
            raise InputError(f"{head}: features have zero variance; PCA is undefined")
        comps = vt[:k]
        pivot = np.argmax(np.abs(comps), axis=1)
        signs = np.sign(comps[np.arange(k), pivot])
        comps = comps * signs[:, None]
        x = xc @ comps.T
        ratio = var[:k] / var.sum()
        record["steps"].append("pca")
        record["pca_explained_variance_ratio"] = [float(v) for v in ratio]
        record["pca_explained_variance_ratio_sum"] = float(ratio.sum())
    out = x.astype(np.float32)
    record["output_shape"] = [int(s) for s in out.shape]
    return out, record


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
        y = checks.check_feature_values(y, path, where=_array_where,
                                    step=", ".join(record["steps"]))
    meta = {"source": str(path), "format": fmt, "preprocessing": record}
    out = Path(out_path)
    io.write_features(out, y)
    io.write_json(meta, out.with_suffix(".json"))
    return meta
