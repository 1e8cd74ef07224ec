"""Outputs written all or nothing: per file (atomic rename) and per command (rollback).

Every writer of the package goes through :func:`atomic_path`, so a file is either absent
or complete. A command that writes several files (an importer, a synthetic world, tables
and figures) runs inside :func:`all_or_nothing`, so when it fails part-way the files it
had already finished are removed too, with the folders it created for them: a refused
or failed command leaves no output behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PathLike = str | os.PathLike[str]


@dataclass
class _Record:
    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


_records: list[_Record] = []


def _make_parents(folder: Path) -> None:
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    if _records:
        _records[-1].folders.extend(reversed(missing))


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    _make_parents(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes private (0600) files; results are shared like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
        if _records:
            _records[-1].files.append(target)
    except OSError as exc:
        # Writers that fail on a full disk often name no file (pyarrow's "Error writing
        # bytes"): the user needs the output's name, not the temporary's.
        if exc.filename is None or str(exc.filename) == str(tmp_path):
            exc.filename = str(target)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """Remove every file finished inside the block, and the folders created for them,
    when the block raises (whatever it raises: a refusal, a full disk, Ctrl-C)."""
    record = _Record()
    _records.append(record)
    try:
        yield
    except BaseException:
        for path in reversed(record.files):
            path.unlink(missing_ok=True)
        for folder in reversed(record.folders):
            try:
                folder.rmdir()
            except OSError:  # not empty: something else lives there
                pass
        raise
    else:
        if len(_records) > 1:  # a nested block's files belong to the enclosing one too
            _records[-2].files.extend(record.files)
            _records[-2].folders.extend(record.folders)
    finally:
        _records.pop()
