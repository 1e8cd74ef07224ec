"""THINGS-style object lists: one concept name per line, in object order."""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..errors import InputError
from ..io import PathLike, checks
from .parsing import not_utf8_error, require_file


def read_object_names(path: PathLike, *, n_objects: int | None = None) -> list[str]:
    """Read a THINGS-style object list: one concept name per line, in object order.

    Surrounding whitespace is stripped; lines end with LF, CRLF or CR. Nothing is
    skipped silently: an empty line, a line holding a TAB (a table, not a list) or another
    control character, a name already seen, or bytes that are not UTF-8 are an error
    naming the (1-based) line. ``n_objects``, when given, must equal the number of names.
    Returns the names; name r is object r.
    """
    p = Path(path)
    require_file(p, "object list")
    try:
        text = p.read_text(encoding="utf-8-sig")  # universal newlines: CRLF, CR end lines
    except UnicodeDecodeError:
        raise not_utf8_error(p, "object list") from None
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
