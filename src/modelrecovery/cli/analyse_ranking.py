"""``modelrecovery analyse-ranking | compare-regularisers``: the published study's
ranking analyses of one experiment (the area under each generator's recovery curve,
precision and recall at every k, the false rank and its agreement with external
rankings) and the equivalence of regularisers across experiments
(workflow/rules/analyse.smk), with :mod:`modelrecovery.analysis.ranking` and
:mod:`modelrecovery.analysis.equivalence`.

Every table goes to the Parquet and CSV paths given by ``--out-parquet`` and
``--out-csv`` (NAME=PATH each).
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from .. import io
from ..errors import InputError
from ..seeds import rng_for
from .args import add_table_outputs, check_outputs, write_tables

log = logging.getLogger("modelrecovery")

RANKING_TABLES = ["recovery_auc", "precision_recall_at_k", "false_rank",
                  "false_rank_correlation"]
EQUIVALENCE_TABLES = ["regulariser_equivalence"]


def _read(path: str, what: str, columns: list[str]) -> pd.DataFrame:
    """A Parquet table with at least ``columns``, refused in one line naming the file."""
    table = io.open_parquet(path, what)
    io.require_columns(table.column_names, path, columns, what)
    return table.to_pandas()


def cmd_analyse_ranking(args: argparse.Namespace) -> None:
    from ..analysis import aggregate, ranking

    check_outputs(args, tables=RANKING_TABLES)
    if args.n_boot < 10:
        raise InputError(f"--n-boot: needs at least 10 resamples, got {args.n_boot}")
    scores = _read(args.scores, "scores", list(ranking.SCORE_COLUMNS))
    ranking.check_scores(scores, args.scores)
    unknown = sorted(set(scores["experiment"]) - {args.experiment})
    if unknown:
        raise InputError(f"{args.scores}: holds experiment(s) {unknown}, expected only "
                         f"{args.experiment!r}")
    external = (_read(args.external, "external scores", list(io.EXTERNAL_SCORE_COLUMNS))
                if args.external else None)
    outcomes = aggregate.dataset_outcomes(scores)
    ranks = ranking.false_rank(scores, args.n_boot,
                               rng_for(args.study_seed, "false_rank", args.experiment))
    tables = {
        "recovery_auc": ranking.recovery_auc(
            outcomes, args.n_boot, rng_for(args.study_seed, "recovery_auc", args.experiment)),
        "precision_recall_at_k": ranking.precision_recall_at_k(scores),
        "false_rank": ranks,
        "false_rank_correlation": ranking.false_rank_correlation(
            ranks, external, args.n_boot,
            rng_for(args.study_seed, "false_rank_correlation", args.experiment)),
    }
    write_tables(args, tables)
    pooled = tables["recovery_auc"]
    for _, r in pooled[pooled["generator"] == ranking.POOLED].iterrows():
        log.info("%s: area under the recovery curve %.3f [%.3f, %.3f]", r["experiment"],
                 r["auc"], r["ci_low"], r["ci_high"])


def cmd_compare_regularisers(args: argparse.Namespace) -> None:
    from ..analysis import equivalence

    check_outputs(args, tables=EQUIVALENCE_TABLES)
    lists = {"--experiments": args.experiments, "--methods": args.methods,
             "--regularisers": args.regularisers, "--alignment": args.alignment,
             "--generator-curves": args.generator_curves}
    if len({len(v) for v in lists.values()}) != 1:
        raise InputError("needs one entry per experiment in each of "
                         + ", ".join(f"{k} ({len(v)})" for k, v in lists.items()))
    if len(set(args.experiments)) != len(args.experiments):
        raise InputError(f"--experiments: an experiment is named twice: {args.experiments}")
    bad = sorted(set(args.regularisers) - set(equivalence.REGULARISER_ORDER))
    if bad:
        raise InputError(f"--regularisers: unknown {bad}; expected one of "
                         f"{list(equivalence.REGULARISER_ORDER)}")
    if not args.margin > 0 or not 0 < args.alpha < 0.5:
        raise InputError(f"--margin must be > 0 and --alpha in (0, 0.5); got "
                         f"{args.margin} and {args.alpha}")
    alignment = pd.concat([_read(p, "alignment", ["model", "probed_test_acc"])
                           .assign(experiment=e)
                           for p, e in zip(args.alignment, args.experiments)],
                          ignore_index=True)
    curves = []
    for path, exp in zip(args.generator_curves, args.experiments):
        curve = _read(path, "generator curves", ["experiment", "generator", "n_train",
                                                 "recovery"])
        if set(curve["experiment"]) - {exp}:
            raise InputError(f"{path}: holds experiment(s) "
                             f"{sorted(set(curve['experiment']) - {exp})}, expected {exp!r}")
        curves.append(curve)
    similarities = args.similarities or ["dot"] * len(args.experiments)
    if len(similarities) != len(args.experiments):
        raise InputError(f"--similarities: needs one entry per experiment "
                         f"({len(args.experiments)}), got {len(similarities)}")
    # Experiments of one method compare regularisers only at one similarity.
    labels = [m if sim == "dot" else f"{m} ({sim})"
              for m, sim in zip(args.methods, similarities)]
    experiments = dict(zip(args.experiments, zip(labels, args.regularisers)))
    table = equivalence.regulariser_equivalence(
        experiments, alignment, pd.concat(curves, ignore_index=True), args.margin,
        args.alpha)
    write_tables(args, {"regulariser_equivalence": table})
    for _, r in table.iterrows():
        log.info("%s %s vs %s (%s): difference %+.4f, p_TOST %.3g, %s", r["quantity"],
                 r["experiment_a"], r["experiment_b"], r["method"], r["difference"],
                 r["p_tost"], "equivalent" if r["equivalent"] else "not shown equivalent")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``analyse-ranking`` and ``compare-regularisers`` to the main parser."""
    p = sub.add_parser("analyse-ranking",
                       help="recovery AUC, precision/recall at k, false rank")
    p.add_argument("--scores", required=True, help="the aggregate step's scores table")
    p.add_argument("--experiment", required=True)
    p.add_argument("--external", help="external scores (import-scores' Parquet)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--study-seed", type=int, required=True)
    add_table_outputs(p, RANKING_TABLES)
    p.set_defaults(func=cmd_analyse_ranking)

    p = sub.add_parser("compare-regularisers",
                       help="equivalence (TOST) of regularisers within each method")
    for name in ("experiments", "methods", "regularisers", "alignment",
                 "generator_curves"):
        p.add_argument("--" + name.replace("_", "-"), nargs="+", required=True)
    p.add_argument("--similarities", nargs="*", default=[],
                   help="each experiment's similarity (default: dot for every one)")
    p.add_argument("--margin", type=float, default=0.05,
                   help="equivalence margin, a fraction (config analysis.equivalence_margin)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="family-wise level, divided over the pairs of each quantity")
    add_table_outputs(p, EQUIVALENCE_TABLES)
    p.set_defaults(func=cmd_compare_regularisers)
