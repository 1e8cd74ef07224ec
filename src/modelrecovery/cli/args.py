"""Arguments shared by the subcommands: the NAME=VALUE parser (``--features a=path
b=path``), the fitting options of the torch commands, and the named outputs of the
commands that write tables and figures (``--out-parquet NAME=PATH`` and its kin), so
that every file a command writes is one its caller named."""

from __future__ import annotations

import argparse

import numpy as np

from .. import settings
from ..errors import InputError


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


def named_paths(items: list[str], flag: str, names: list[str]) -> dict[str, str]:
    """:func:`named_values` of ``flag``, which must name exactly ``names`` (in any order)."""
    given = named_values(items, flag)
    if set(given) != set(names):
        raise InputError(f"{flag}: needs one NAME=PATH for each of {sorted(names)}; got "
                         f"{sorted(given)}")
    return {name: given[name] for name in names}


# ------------------------------------------------------------------ fitting


def prior_weights(names: list[str], items: list[str], flag: str = "--prior") -> np.ndarray:
    """A prior over ``names`` (G,), normalised: uniform without ``items``, else the
    weights NAME=W given (names left out weigh 0). Unknown names, weights that are not
    finite non-negative numbers, or all-zero weights are refused naming ``flag``."""
    if not items:
        return np.full(len(names), 1.0 / len(names))
    given = named_values(items, flag)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(f"{flag}: unknown model(s) {unknown}; the models are {names}")
    try:
        w = np.array([float(given.get(n, 0.0)) for n in names])
    except ValueError as exc:
        raise InputError(f"{flag}: weights must be numbers: {exc}") from exc
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"{flag}: weights must be finite, non-negative and not all zero, "
                         f"got {dict(zip(names, w.tolist()))}")
    return w / w.sum()


def criterion_prior(names: list[str], items: list[str], pair: list[str] | None
                    ) -> np.ndarray:
    """A design criterion's prior over the models (G,): :func:`prior_weights` of
    ``--prior NAME=W ...``, or with ``--pair A B`` half on each of the two, the others
    zero."""
    if pair:
        unknown = [p for p in pair if p not in names]
        if unknown or len(set(pair)) != 2:
            raise InputError(f"--pair: needs two different models of {names}, got {pair}")
        return np.array([0.5 if n in pair else 0.0 for n in names])
    return prior_weights(names, items)


def excluded_keys(paths: list[str], n: int) -> np.ndarray | None:
    """The keys (:func:`..sampling.triplet_keys`) of every triplet in the triplet files
    ``paths`` over ``n`` objects, never to be drawn; None without files."""
    from .. import io
    from ..sampling import triplet_keys

    if not paths:
        return None
    return np.concatenate([triplet_keys(io.read_triplets(p, n)[0], n) for p in paths])


def fit_parent() -> argparse.ArgumentParser:
    """The fitting options every torch command takes (align, recover, design adaptive
    and next), one flag per :data:`~modelrecovery.settings.SETTINGS` entry; the workflow
    passes them from config keys ``fitting`` and the experiment's."""
    p = argparse.ArgumentParser(add_help=False)
    settings.add_arguments(p.add_argument_group("fitting"))
    return p


def fit_options(args: argparse.Namespace):
    """The :class:`FitOptions` of a command that took :func:`fit_parent`'s options."""
    from ..fitting import FitOptions

    return FitOptions(**settings.option_values(args))


def fitting_process(args: argparse.Namespace) -> None:
    """Threads as configured, an allocator that keeps freed memory (see
    :mod:`modelrecovery.fitting.allocator`), and the process's peak memory in its log
    when it succeeds (:func:`.main.main`)."""
    import torch

    from ..fitting.allocator import keep_freed_memory

    torch.set_num_threads(max(1, args.threads))
    keep_freed_memory()
    args.log_peak_memory = True


# ------------------------------------------------------------------ simulated studies


def add_protocol_arguments(p: argparse.ArgumentParser) -> None:
    """The simulation protocol of the commands that lay out a study's folds (simulate,
    design static): its seed, the largest training size per fold, the number of
    concept-disjoint folds and the validation and evaluation shares."""
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--n-train-max", type=int, required=True)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--val-fraction", type=float, default=0.3)
    p.add_argument("--eval-fraction", type=float, default=0.125)


# ------------------------------------------------------------------ named outputs


def add_table_outputs(p: argparse.ArgumentParser, names: list[str]) -> None:
    """``--out-parquet`` and ``--out-csv``: one NAME=PATH per table in ``names``."""
    shown = ", ".join(names)
    p.add_argument("--out-parquet", nargs="+", required=True, metavar="NAME=PATH",
                   help=f"where each table goes as Parquet ({shown})")
    p.add_argument("--out-csv", nargs="+", required=True, metavar="NAME=PATH",
                   help="where each table goes as CSV (the same names)")


def add_figure_outputs(p: argparse.ArgumentParser, names: list[str]) -> None:
    """``--out-png`` and ``--out-svg``: one NAME=PATH per figure in ``names``."""
    shown = ", ".join(names)
    p.add_argument("--out-png", nargs="+", required=True, metavar="NAME=PATH",
                   help=f"where each figure goes as PNG ({shown})")
    p.add_argument("--out-svg", nargs="+", required=True, metavar="NAME=PATH",
                   help="where each figure goes as SVG (the same names)")


def write_tables(args: argparse.Namespace, tables: dict) -> None:
    """Each frame of ``tables`` to the Parquet and CSV paths the command was given."""
    from .. import io

    parquet = named_paths(args.out_parquet, "--out-parquet", list(tables))
    csv = named_paths(args.out_csv, "--out-csv", list(tables))
    for name, frame in tables.items():
        io.write_parquet(frame, parquet[name])
        io.write_csv(frame, csv[name])


def save_figures(args: argparse.Namespace, figures: dict) -> None:
    """Each figure of ``figures`` to the PNG and SVG paths the command was given. The
    paths are checked before any figure is drawn: ``figures`` maps a name to a function
    that draws it."""
    from ..analysis import plots

    png = named_paths(args.out_png, "--out-png", list(figures))
    svg = named_paths(args.out_svg, "--out-svg", list(figures))
    for name, draw in figures.items():
        plots.save_figure_as(draw(), png[name], svg[name])


def check_outputs(args: argparse.Namespace, tables: list[str] = (),
                  figures: list[str] = ()) -> None:
    """Refuse output flags that do not name exactly these tables and figures, before the
    command reads or computes anything."""
    if tables:
        named_paths(args.out_parquet, "--out-parquet", list(tables))
        named_paths(args.out_csv, "--out-csv", list(tables))
    if figures:
        named_paths(args.out_png, "--out-png", list(figures))
        named_paths(args.out_svg, "--out-svg", list(figures))


def design_options(args: argparse.Namespace):
    """The :class:`~modelrecovery.design.static.DesignOptions` of a design command's flags
    (:data:`~modelrecovery.settings.DESIGN_SETTINGS`, section ``design``)."""
    from ..design.static import DesignOptions

    try:
        return DesignOptions(**settings.design_values(args, "design"))
    except ValueError as exc:
        raise InputError(f"design options: {exc}") from exc


def adaptive_options(args: argparse.Namespace):
    """The :class:`~modelrecovery.design.adaptive.AdaptiveOptions` of an adaptive
    command's flags (:data:`~modelrecovery.settings.DESIGN_SETTINGS`, section
    ``adaptive``)."""
    from ..design.adaptive import AdaptiveOptions

    try:
        return AdaptiveOptions(**settings.design_values(args, "adaptive"))
    except ValueError as exc:
        raise InputError(f"design options: {exc}") from exc
