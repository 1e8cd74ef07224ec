"""``modelrecovery synthesize-scores | import-scores | analyse-parameters``: external
benchmark scores, simulated for the synthetic world or validated from the user's files
(workflow/rules/data.smk, :mod:`modelrecovery.importers.scores`), and parameter
recovery, the generator's own refits against its generating transform
(workflow/rules/analyse.smk, :mod:`modelrecovery.parameters`)."""

from __future__ import annotations

import argparse

import pandas as pd

from . import io
from .cli_args import (add_figure_outputs, add_table_outputs, check_outputs, named_values,
                       save_figures, write_tables)
from .errors import InputError

PARAMETER_TABLES = ["parameter_recovery"]


def _check_parameter_rows(frame: pd.DataFrame, source: object) -> None:
    missing = [c for c in io.PARAMETER_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: parameter table lacks column(s) {missing}")


def cmd_synthesize_scores(args: argparse.Namespace) -> None:
    from .synthetic import external_scores

    counts = {group: _count(value) for group, value in
              named_values(args.groups, "--groups").items()}
    outs = named_values(args.out, "--out")
    if set(outs) != set(counts):
        raise InputError(f"--out: needs one GROUP=PATH for each of {sorted(counts)}; got "
                         f"{sorted(outs)}")
    for group, table in external_scores(args.models, counts, args.study_seed).items():
        io.write_csv(table, outs[group])


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"--groups: a group's number of scores must be a positive "
                         f"integer, got {text!r}")
    return int(text)


def cmd_import_scores(args: argparse.Namespace) -> None:
    from .importers.scores import import_scores

    import_scores(args.file, args.group, args.models, args.out)


def cmd_analyse_parameters(args: argparse.Namespace) -> None:
    from . import parameters, plots

    check_outputs(args, tables=PARAMETER_TABLES, figures=["parameter_recovery"])
    rows = io.read_tables(args.rows, _check_parameter_rows)
    curves = parameters.parameter_curves(rows)
    recovery = pd.read_parquet(args.generator_curves)
    random = curves[curves["design"] == "random"]
    write_tables(args, {"parameter_recovery": curves})
    save_figures(args, {"parameter_recovery": lambda: plots.parameter_figure(
        random, recovery, f"Parameter recovery: {args.experiment} (random design)")})


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``synthesize-scores``, ``import-scores`` and ``analyse-parameters``."""
    p = sub.add_parser("synthesize-scores",
                       help="simulated external benchmark scores for the synthetic world")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--groups", nargs="+", required=True, metavar="GROUP=COUNT")
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--out", nargs="+", required=True, metavar="GROUP=CSV")
    p.set_defaults(func=cmd_synthesize_scores)

    p = sub.add_parser("import-scores", help="validate external benchmark score files")
    p.add_argument("--file", nargs="+", required=True, help="CSV or Parquet, one per group")
    p.add_argument("--group", nargs="+", required=True, help="one per --file")
    p.add_argument("--models", nargs="+", required=True, help="the study's models")
    p.add_argument("--out", required=True, help="the scores as long rows (Parquet)")
    p.set_defaults(func=cmd_import_scores)

    p = sub.add_parser("analyse-parameters",
                       help="parameter recovery: refitted against generating transforms")
    p.add_argument("--rows", nargs="+", required=True, help="parameter rows per dataset")
    p.add_argument("--generator-curves", required=True)
    p.add_argument("--experiment", required=True)
    add_table_outputs(p, PARAMETER_TABLES)
    add_figure_outputs(p, ["parameter_recovery"])
    p.set_defaults(func=cmd_analyse_parameters)
