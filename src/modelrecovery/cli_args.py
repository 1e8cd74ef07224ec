"""Parsing of the CLI's NAME=VALUE arguments (``--features a=path b=path``), shared by
every subcommand that takes them."""

from __future__ import annotations

from .errors import InputError


def named_values(items: list[str], flag: str) -> dict[str, str]:
    """``["a=x", "b=y"]`` → ``{"a": "x", "b": "y"}``, in order; a missing ``=``, an empty
    name or a name given twice is refused naming ``flag``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"{flag}: expected NAME=VALUE, got {item!r}")
        if name in out:
            raise InputError(f"{flag}: {name!r} is given twice")
        out[name] = value
    return out
