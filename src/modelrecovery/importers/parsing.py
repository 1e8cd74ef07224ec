"""Reading and refusing what the importers share: text files, numeric fields, rows.

Every refusal names the file and the place: a 1-based *data row* of a table with a
header (:func:`data_row`), a 1-based *line* of a text file, or a 0-based object row of
an array (:func:`array_where`, :func:`text_where`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import checks

#: Cell texts read as missing values in numeric columns of the THINGS file.
NA_STRINGS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]

# The place of a value: where(row, column); where(row, None) names the whole row.
Where = checks.CellWhere


def require_file(p: Path, what: str) -> None:
    """Refuse a ``what`` file that is missing, a folder, a FIFO or unreadable."""
    checks.check_file(p, what)


def not_utf8_error(p: Path, what: str) -> InputError:
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


def header_fields(p: Path, line: str, delimiter: str) -> list[str]:
    """The raw fields of a header line, as the csv module splits them."""
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise InputError(f"{p}: header line 1 cannot be split into columns: "
                         f"{checks.one_line(exc)}") from exc


def first_line(p: Path, what: str) -> str:
    """The first line of a text file (BOM and line end stripped); refuses an empty file."""
    require_file(p, what)
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            line = fh.readline()
    except UnicodeDecodeError:
        raise not_utf8_error(p, what) from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} file: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    if not line.strip():
        if p.stat().st_size == 0:
            raise InputError(f"{p}: {what} file is empty")
        raise InputError(f"{p}: line 1 is empty; expected a header line")
    return line.rstrip("\r\n")


def _count(n: int) -> str:
    """How many rows share a fault, when more than one."""
    return "" if n == 1 else f" ({n} such rows)"


def data_row(r: int) -> str:
    """Location of 0-based data row ``r`` of a table with one header line."""
    return f"data row {r + 1} (line {r + 2})"


def refuse_rows(path: object, bad: np.ndarray, problem: Callable[[int], str],
                 where: Callable[[int], str] = data_row) -> None:
    """Raise for the first row where ``bad`` (n,) holds, naming it (``where(row)``), what
    is wrong with it (``problem(row)``) and how many rows share the fault."""
    rows = np.flatnonzero(bad)
    if len(rows):
        r = int(rows[0])
        raise InputError(f"{path}: {where(r)}: {problem(r)}{_count(len(rows))}")


def is_number(text: str) -> bool:
    """Whether a text field is a number as pandas parses one (Python's float() also takes
    digit separators, "1_000", which pandas does not)."""
    if "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def number_text(value: float | np.floating) -> str:
    """A parsed number as its file most likely wrote it: an integral value as an integer
    (4, not 4.0) while float64 holds it exactly, anything else in the shortest form of
    its own type (1e+23, also for a float32 1e23), never an int64 cast (which wraps 1e23
    to a negative number)."""
    v = float(value)
    if v.is_integer() and abs(v) < 2.0 ** 53:
        return str(int(v))
    return str(value) if isinstance(value, np.generic) else repr(v)


def values_text(values: np.ndarray) -> str:
    """A row of parsed numbers (or of integers from a binary file) as a tuple."""
    if np.issubdtype(values.dtype, np.floating):
        return "(" + ", ".join(number_text(v) for v in values) + ")"
    return "(" + ", ".join(str(v) for v in values.tolist()) + ")"


def numeric_column(p: Path, series: pd.Series, name: str,
                    where: Callable[[int], str]) -> np.ndarray:
    """A column as float64; names the first non-numeric cell."""
    if pd.api.types.is_bool_dtype(series.dtype):  # pandas reads True/False as booleans
        refuse_rows(p, np.ones(len(series), dtype=bool),
                     lambda r: f"column '{name}' must be a number, found "
                               f"{str(series.iloc[r])!r}", where)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = pd.to_numeric(series, errors="coerce")
    refuse_rows(p, (values.isna() & series.notna()).to_numpy(),
                 lambda r: (f"column '{name}' must be a number, found "
                            f"{checks.shown(series.iloc[r])}"),
                 where)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def integer_values(p: Path, values: np.ndarray, name: str,
                    where: Callable[[int], str]) -> np.ndarray:
    """Refuse missing and non-integral values of a float64 column (N,); returns it still
    float64: callers check its range first and cast after, as an int64 cast of a value
    like 1e23 wraps around and would be shown as a negative number."""
    refuse_rows(p, np.isnan(values), lambda r: f"missing value in column '{name}'", where)
    refuse_rows(p, ~np.isfinite(values) | (values != np.floor(values)),
                 lambda r: f"column '{name}' must be an integer, found {float(values[r])!r}",
                 where)
    return values


def read_csv_table(p: Path, what: str, shape: str, **read_csv: object) -> pd.DataFrame:
    """``pandas.read_csv(p, encoding="utf-8-sig", **read_csv)``, each failure one line
    naming ``p``: not UTF-8 (the first bad byte), unreadable, or not parseable as
    ``shape`` (e.g. "CSV", "a TAB-separated table")."""
    try:
        return pd.read_csv(p, encoding="utf-8-sig", **read_csv)
    except UnicodeDecodeError:
        raise not_utf8_error(p, what) from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} file: "
                         f"{exc.strerror or checks.one_line(exc)}") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot be read as {shape}: {checks.one_line(exc)}") from exc


def read_text_matrix(p: Path, what: str, ncols: int | None) -> np.ndarray:
    """A whitespace-separated numeric text file as float64 (rows = lines).

    Fast path through pandas; any irregularity falls back to a line scan that names the
    first bad line (an empty line, a wrong number of values, a non-number).
    """
    require_file(p, what)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: {what} file is empty")
    error: Exception | None = None
    frame = None
    try:
        frame = pd.read_csv(p, sep=r"\s+", header=None, skip_blank_lines=False,
                            dtype=np.float64, na_filter=True, keep_default_na=False,
                            na_values=["nan", "NaN", "NAN"], encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise not_utf8_error(p, what) from None
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
    """Raise for the first structural problem of a text matrix (see :func:`_scan_lines`)."""
    try:
        with open(p, encoding="utf-8-sig") as fh:
            _scan_lines(p, fh, ncols)
    except UnicodeDecodeError:
        raise not_utf8_error(p, what) from None


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
            if not is_number(field):
                raise InputError(f"{p}: line {lineno}, value {col + 1}: {field!r} is "
                                 f"not a number")


def load_npy(p: Path, what: str) -> np.ndarray:
    """One array from a ``.npy`` file, never unpickled (object arrays and ``.npz``
    archives are refused)."""
    require_file(p, what)
    _check_npy_size(p)
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


def _check_npy_size(p: Path) -> None:
    """Refuse a ``.npy`` whose header promises more (or less) data than the file holds,
    before anything is allocated: numpy would allocate the header's shape first."""
    with open(p, "rb") as fh:
        try:
            major, _ = np.lib.format.read_magic(fh)
        except ValueError:
            return  # not a .npy (an .npz, or garbage): np.load says which
        readers = {1: np.lib.format.read_array_header_1_0,
                   2: np.lib.format.read_array_header_2_0}
        if major not in readers:
            return  # a later format version: np.load reads or refuses it
        try:
            header = readers[major](fh)
        except Exception as exc:  # a corrupt header: np.load's message names it
            raise InputError(f"{p}: cannot be read as a .npy array: "
                             f"{checks.one_line(exc)}") from exc
        shape, _, dtype = header
        if dtype.hasobject:
            return  # refused as an object array by np.load(allow_pickle=False)
        offset = fh.tell()
    need = math.prod(shape) * dtype.itemsize
    have = p.stat().st_size - offset
    if need != have:
        raise InputError(f"{p}: the .npy header declares shape {tuple(shape)} of "
                         f"{dtype} ({need:,} bytes), but the file holds {have:,} bytes of "
                         f"data; the file is truncated or not what its header says")


def array_where(r: int, c: int | None) -> str:
    """The place of cell (r, c), or of row r when c is None, in an array (0-based)."""
    if c is None:
        return f"row {r} (0-based object index)"
    return f"row {r} (0-based object index), dimension {c} (0-based)"


def text_where(r: int, c: int | None) -> str:
    """The place of cell (r, c), or of row r when c is None, in a text file of one
    object per line (1-based line and value, with the 0-based object row)."""
    if c is None:
        return f"line {r + 1} (object row {r}, 0-based)"
    return f"line {r + 1}, value {c + 1} (object row {r}, dimension {c}, 0-based)"
