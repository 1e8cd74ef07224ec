"""``modelrecovery import-published``: a results database of the published study
(Avitan & Golan, NeurIPS 2025) into this project's tables, and its recovery curves beside
this study's (workflow/rules/published.smk), with
:mod:`modelrecovery.importers.published` and :mod:`modelrecovery.analysis.published`.

Tables go to the Parquet and CSV paths given by ``--out-parquet`` and ``--out-csv``
(NAME=PATH each, any of :data:`TABLES`, the same names in both); with ``--our-curves``
the comparison figure goes to ``--out-png`` and ``--out-svg``.
"""

from __future__ import annotations

import argparse
import logging

from ..errors import InputError
from .args import named_values, save_figures

log = logging.getLogger("modelrecovery")

TABLES = ["published_scores", "published_outcomes", "published_curves",
          "published_recovery"]
FIGURES = ["published_comparison"]


def _table_paths(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """The tables asked for: known names, the same in --out-parquet and --out-csv."""
    parquet = named_values(args.out_parquet, "--out-parquet")
    csv = named_values(args.out_csv, "--out-csv")
    for flag, given in (("--out-parquet", parquet), ("--out-csv", csv)):
        unknown = sorted(set(given) - set(TABLES))
        if unknown:
            raise InputError(f"{flag}: unknown table(s) {unknown}; the tables are {TABLES}")
    if set(parquet) != set(csv):
        raise InputError(f"--out-parquet names {sorted(parquet)} but --out-csv names "
                         f"{sorted(csv)}; give both paths of every table")
    return parquet, csv


def _check_figure_flags(args: argparse.Namespace) -> bool:
    """Whether the comparison figure is asked for: --our-curves with --out-png and
    --out-svg, all three or none."""
    given = [bool(args.our_curves), bool(args.out_png), bool(args.out_svg)]
    if any(given) and not all(given):
        raise InputError("--our-curves, --out-png and --out-svg go together: the figure "
                         "compares this study's curves with the published ones")
    if all(given):
        for flag, items in (("--out-png", args.out_png), ("--out-svg", args.out_svg)):
            if set(named_values(items, flag)) != set(FIGURES):
                raise InputError(f"{flag}: needs one NAME=PATH for {FIGURES}")
    return all(given)


def _our_curves(paths: list[str]):
    """This study's generator_curves tables, concatenated."""
    from .. import io
    from ..analysis.published import OUR_CURVE_COLUMNS

    def check(frame, path) -> None:
        io.require_columns(list(frame.columns), path, list(OUR_CURVE_COLUMNS),
                           "generator_curves")
        if frame.empty:
            raise InputError(f"{path}: generator_curves table has no rows")

    return io.read_tables(paths, check)


def cmd_import_published(args: argparse.Namespace) -> None:
    from .. import io
    from ..analysis import published as compare
    from ..importers.published import read_published

    parquet, csv = _table_paths(args)
    figure = _check_figure_flags(args)
    if not parquet and not figure:
        raise InputError("nothing to write: name tables with --out-parquet/--out-csv or "
                         "the figure with --our-curves, --out-png and --out-svg")
    result = read_published(args.database)
    curves, pooled = compare.published_curves(result.outcomes)
    ours = _our_curves(args.our_curves) if figure else None
    tables = {"published_scores": result.scores, "published_outcomes": result.outcomes,
              "published_curves": curves, "published_recovery": pooled}
    for name in parquet:
        io.write_parquet(tables[name], parquet[name])
        io.write_csv(tables[name], csv[name])
    if figure:
        models = compare.shared_models(ours, curves)
        for key, names in models.items():
            log.info("generators %s: %s", key.replace("_", " "), ", ".join(names) or "none")
        save_figures(args, {"published_comparison":
                            lambda: compare.comparison_figure(ours, curves)})
    for _, r in pooled.iterrows():
        log.info("%s (%s) N = %6d  recovery %.3f [%.3f, %.3f] over %d datasets",
                 r["experiment"], r["method"], r["n_train"], r["recovery"], r["ci_low"],
                 r["ci_high"], r["datasets"])


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``import-published`` to the main parser."""
    p = sub.add_parser("import-published",
                       help="the published study's results database as tables, and its "
                            "curves beside this study's")
    p.add_argument("--database", required=True,
                   help="a results .db file of the published study (read-only)")
    p.add_argument("--out-parquet", nargs="+", default=[], metavar="NAME=PATH",
                   help=f"where each table goes as Parquet (any of {', '.join(TABLES)})")
    p.add_argument("--out-csv", nargs="+", default=[], metavar="NAME=PATH",
                   help="where each table goes as CSV (the same names)")
    p.add_argument("--our-curves", nargs="+", default=[], metavar="PARQUET",
                   help="this study's generator_curves tables (random design)")
    p.add_argument("--out-png", nargs="+", default=[], metavar="NAME=PATH",
                   help="where the figure goes as PNG (published_comparison)")
    p.add_argument("--out-svg", nargs="+", default=[], metavar="NAME=PATH",
                   help="where the figure goes as SVG (published_comparison)")
    p.set_defaults(func=cmd_import_published)
