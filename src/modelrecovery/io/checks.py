"""Checks shared by every reader of user files: the file itself, and feature values.

A reader names the user's file in every refusal; these helpers give the one-line
wording for the problems common to all formats (a missing path, a folder, a FIFO, an
unreadable file; features the fit cannot use).
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError

PathLike = str | os.PathLike[str]

#: The largest squared row norm ‖x_i‖² accepted in features. The fit (float32 by default)
#: starts at W = I, where its pair logits x_iᵀ W Wᵀ x_j reach ‖x_i‖‖x_j‖, and L-BFGS takes
#: inner products of gradients of that size, so ‖x‖⁴ must stay below float32's largest
#: value: ‖x‖² below its square root (≈ 1.8e19). Measured with ``modelrecovery align
#: --dtype float32`` on 12-100 objects, d = 1-200, features scaled by 10^k: the line
#: search overflowed and the fit came back as W = 0 from ‖x‖² ≈ 7e19 (the first failing
#: scale seen; 1e20-1e21 on most data sets), and align stopped with a LinAlgError
#: traceback once S itself overflowed (‖x‖² ≈ 7.8e38). A sixteenth of the square root
#: keeps accepted features some 60 times below the smallest overflow seen. (Far below it
#: the fit's convergence already depends on the scale of the features, without any
#: overflow; that is the solver's matter, and --unit-norm avoids it.)
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) ** 0.5 / 16


_FLOAT32_MAX = float(np.finfo(np.float32).max)


# Rows per block when scanning large feature matrices, so no full float64 copy is made.
_BLOCK_VALUES = 1 << 22


CellWhere = Callable[[int, int | None], str]


def shown(value: object) -> str:
    """A value from a user's table as they wrote it: ``repr`` of the Python value (numpy
    and pandas scalars as plain numbers, ``0`` rather than ``np.int64(0)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow and pandas messages can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def check_file(path: PathLike, what: str, expected: str | None = None) -> Path:
    """Refuse a path that does not exist, is a folder or not a regular file (a FIFO, a
    device), or cannot be opened for reading. ``what`` names the file in messages
    ("features"); ``expected`` is what was expected instead of a folder (default
    "a <what> file"). Returns the path."""
    p = Path(path)
    expected = expected or f"a {what} file"
    try:
        mode = p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{p}: {what} file does not exist") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot access the {what} file: "
                         f"{exc.strerror or one_line(exc)}") from exc
    if stat.S_ISDIR(mode):
        raise InputError(f"{p}: is a folder, expected {expected}")
    if not stat.S_ISREG(mode):
        raise InputError(f"{p}: is not a regular file (a FIFO, socket or device), "
                         f"expected {expected}")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{p}: cannot open the {what} file: "
                         f"{exc.strerror or one_line(exc)}") from exc
    return p


def first_true(mask: np.ndarray) -> tuple[int, int]:
    """Index of the first True in ``mask`` (n,) and the number of Trues."""
    rows = np.flatnonzero(mask)
    return int(rows[0]), len(rows)


def such(n: int, what: str = "row") -> str:
    """The suffix counting ``n`` faulty ``what``s in a refusal (empty when n is 1)."""
    return "" if n == 1 else f" ({n} such {what}s)"


def control_character(text: str) -> str | None:
    """The first control character in ``text`` (a TAB, a line break, ...), or None."""
    return next((ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)


def _cell(r: int, c: int | None) -> str:
    return f"row {r}" if c is None else f"row {r}, dimension {c}"


def _shown(value: np.generic) -> str:
    """A value as its file holds it: numpy's shortest repr in the value's own type
    (float32 1e30 is '1e+30', not the float64 1.0000000150474662e+30)."""
    return str(value)


def _row_blocks(n: int, d: int) -> Iterator[slice]:
    step = max(1, _BLOCK_VALUES // max(d, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _squared_norms(x: np.ndarray) -> np.ndarray:
    """‖x_i‖² (n,) in float64 of float32 features (n, d), without a float64 copy."""
    return np.concatenate([np.einsum("ij,ij->i", x[b], x[b], dtype=np.float64)
                           for b in _row_blocks(*x.shape)])


def _all_rows_equal(x: np.ndarray) -> bool:
    return all(not (x[b] != x[0]).any() for b in _row_blocks(*x.shape))


def check_feature_values(x: np.ndarray, path: PathLike, *, where: CellWhere | None = None,
                         step: str | None = None, nan_shown: str = "NaN") -> np.ndarray:
    """Refuse features (n, d) that the fit cannot use; return them as float32 (n, d).

    Every reader of features calls this, so one rule holds for every format: numeric,
    2-D and non-empty; every value finite and within float32 range; every squared row
    norm at most :data:`MAX_SQUARED_NORM` (larger ones overflow the float32 fit); and not
    every object the same embedding, as stored in float32 (then x_iᵀ M x_j is one number
    for every pair, and no probe can rank a triplet). Messages name ``path``, the place
    (``where(row, column)``, or ``where(row, None)`` for a whole row; default "row r,
    dimension c"), the value as the file holds it (a NaN is shown as ``nan_shown``), and
    ``step`` when given: the preprocessing the values went through ("center, pca").
    """
    a = np.asarray(x)
    place = where or _cell
    head = f"{path}: after {step}:" if step else f"{path}:"
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating)
                                 or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{head} features must be numbers, found dtype {a.dtype}")
    if a.ndim != 2:
        raise InputError(f"{head} features must be a 2-D array (objects × dimensions), "
                         f"found shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{head} features are empty (shape {a.shape})")
    finite = np.isfinite(a)
    if not finite.all():
        bad = np.argwhere(~finite)
        r, c = (int(v) for v in bad[0])
        value = nan_shown if np.isnan(a[r, c]) else _shown(a[r, c])
        raise InputError(f"{head} non-finite value ({value}) at {place(r, c)}; "
                         f"{len(bad)} non-finite value(s) in all")
    with np.errstate(over="ignore"):
        x32 = np.ascontiguousarray(a, dtype=np.float32)
    over = ~np.isfinite(x32)
    if over.any():
        bad = np.argwhere(over)
        r, c = (int(v) for v in bad[0])
        raise InputError(f"{head} value {_shown(a[r, c])} at {place(r, c)} overflows "
                         f"float32 (outside its range ±{_FLOAT32_MAX:.8g})"
                         f"{such(len(bad), 'value')}")
    sq = _squared_norms(x32)
    large = sq > MAX_SQUARED_NORM
    if large.any():
        r, count = first_true(large)
        c = int(np.argmax(np.abs(x32[r])))
        raise InputError(
            f"{head} {place(r, None)} has squared norm {sq[r]:.3g} (largest value "
            f"{_shown(a[r, c])} at {place(r, c)}), above {MAX_SQUARED_NORM:.3g}, the most "
            f"the float32 fit can take: its similarities x_iᵀ W Wᵀ x_j and their gradients "
            f"would overflow; scale the features down (e.g. import-features --unit-norm)"
            f"{such(count)}")
    # One object alike with itself says nothing; its triplet files are refused anyway.
    if x32.shape[0] > 1 and _all_rows_equal(x32):
        what = "all zero" if not x32[0].any() else f"every row is {_row_text(x32[0])}"
        raise InputError(
            f"{head} every object has the same embedding ({what} in float32, all "
            f"{x32.shape[0]} rows); no linear probe can rank a triplet (x_iᵀ M x_j is the "
            f"same for every pair), and a candidate must distinguish objects")
    return x32


def _row_text(row: np.ndarray, shown: int = 4) -> str:
    """The first values of a row (d,), as '[1.0, 2.5, ...]'."""
    values = [_shown(v) for v in row[:shown]]
    return "[" + ", ".join(values) + (", ...]" if len(row) > shown else "]")
