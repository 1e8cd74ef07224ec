"""``modelrecovery plot``: the report's recovery-curve and confusion figures
(workflow/rules/report.smk), with :mod:`modelrecovery.analysis.plots`; each figure goes to the
PNG and SVG paths given by ``--out-png`` and ``--out-svg`` (NAME=PATH each)."""

from __future__ import annotations

import argparse

from .analyse_properties import add_model_info, model_info
from .args import add_figure_outputs, check_outputs, save_figures

FIGURES = ["recovery_curve", "confusion"]


def cmd_plot(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..analysis import plots, properties

    check_outputs(args, figures=FIGURES)
    labels = properties.labels(model_info(args))
    curve = pd.read_parquet(args.curve)
    gen = pd.read_parquet(args.generator_curves)
    conf = pd.read_parquet(args.confusion)
    n_cands = conf["candidate"].nunique()
    save_figures(args, {
        "recovery_curve": lambda: plots.recovery_figure(
            curve, gen, n_cands, f"Model recovery: {args.experiment}", labels),
        "confusion": lambda: plots.confusion_figure(
            conf, f"Confusion matrices: {args.experiment}", labels),
    })


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``plot`` to the main parser."""
    p = sub.add_parser("plot", help="recovery curve and confusion figures (PNG + SVG)")
    for name in ("curve", "generator_curves", "confusion", "experiment"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    add_model_info(p)
    add_figure_outputs(p, FIGURES)
    p.set_defaults(func=cmd_plot)
