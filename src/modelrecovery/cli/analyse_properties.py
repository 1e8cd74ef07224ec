"""``modelrecovery analyse-properties``: the model-properties table and the published
model-properties regression (workflow/rules/analyse.smk, rule analyse_properties), with
:mod:`modelrecovery.analysis.properties`; and ``--model-info``, the model metadata
(config key ``model_info``) that the commands drawing models take for labels and groups.

Every table goes to the Parquet and CSV paths given by ``--out-parquet`` and
``--out-csv`` (NAME=PATH each).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from ..seeds import rng_for
from .args import add_table_outputs, check_outputs, named_paths, named_values, write_tables

log = logging.getLogger("modelrecovery")

PROPERTY_TABLES = ["model_properties", "properties_regression"]
_SCORE_COLUMNS = ["experiment", "generator", "n_train", "seed", "candidate", "test_acc"]
_GEOMETRY_COLUMNS = ["model", "geometry_shift", "pr_raw", "pr_aligned"]


def add_model_info(p: argparse.ArgumentParser) -> None:
    """``--model-info JSON``: model → {label, objective, architecture, parameters,
    embedding_dim}, every field optional (the workflow passes config key model_info)."""
    p.add_argument("--model-info", default="{}", metavar="JSON",
                   help="model metadata as JSON: {model: {label, objective, architecture, "
                        "parameters, embedding_dim}}")


def model_info(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The validated ``--model-info`` of a command that took :func:`add_model_info`."""
    from ..analysis.properties import read_model_info

    return read_model_info(args.model_info, "--model-info")


def _read_table(path: str, columns: list[str], what: str) -> pd.DataFrame:
    frame = io.open_parquet(path, what).to_pandas()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column(s) {missing}")
    return frame


def cmd_analyse_properties(args: argparse.Namespace) -> None:
    from ..analysis import properties

    check_outputs(args, tables=PROPERTY_TABLES)
    info = model_info(args)
    n = len(io.read_objects(args.objects))
    paths = named_values(args.features, "--features")
    feats = {m: io.read_features(p, n) for m, p in paths.items()}
    aligned = named_paths(args.generators, "--generators", list(feats))
    weights = {m: io.load_generator(p, feats[m].shape[1])[0] for m, p in aligned.items()}
    geometry = _read_table(args.geometry, _GEOMETRY_COLUMNS, "geometry table")
    unknown = sorted(set(geometry["model"]) - set(feats))
    if unknown:
        raise InputError(f"{args.geometry}: model(s) {unknown} have no --features entry")
    table = properties.model_properties(geometry, feats, weights, info)
    scores = _read_table(args.scores, _SCORE_COLUMNS, "candidate scores")
    rng = rng_for(args.study_seed, "properties_regression", args.experiment)
    reg = properties.properties_regression(scores, table, args.predictors, args.outcome,
                                           args.n_boot, rng, args.correction)
    write_tables(args, {"model_properties": table.assign(experiment=args.experiment),
                        "properties_regression": reg})
    last = reg[reg["n_train"] == reg["n_train"].max()]
    fitted = last[last["note"] == ""]
    for _, r in fitted.iterrows():
        log.info("N = %6d  %-28s std coef %+.3f [%+.3f, %+.3f]  p %.3g (%s %.3g)",
                 r["n_train"], r["term"], r["std_coef"], r["std_ci_low"], r["std_ci_high"],
                 r["p_value"], r["correction"], r["p_adjusted"])
    for note in dict.fromkeys(last.loc[last["note"] != "", "note"]):
        log.info("%s", note)
    if not np.isfinite(fitted["coef"].to_numpy(dtype=float)).any():
        log.warning("no property could be fitted at the largest N (see the table's note)")


# The analysis' choices (analysis.properties and analysis.pvalues, whose scipy imports
# every command would pay for at start-up; a test holds them equal).
DEFAULT_PREDICTORS = ("parameters", "embedding_dim", "geometry_shift", "ed_pre", "ed_post")
OUTCOMES = ("accuracy_difference", "misidentification")
CORRECTIONS = ("bonferroni", "holm", "bh")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``analyse-properties`` to the main parser."""
    p = sub.add_parser("analyse-properties",
                       help="model properties and the published model-properties regression")
    for name in ("objects", "geometry", "scores", "experiment"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--generators", nargs="+", required=True, metavar="NAME=NPZ",
                   help="each model's aligned W")
    p.add_argument("--predictors", nargs="+", default=list(DEFAULT_PREDICTORS),
                   help="model properties regressed on (each enters for the generator "
                        "and for the candidate)")
    p.add_argument("--outcome", choices=OUTCOMES, default=OUTCOMES[0])
    p.add_argument("--correction", choices=CORRECTIONS, default="bonferroni")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--study-seed", type=int, required=True)
    add_model_info(p)
    add_table_outputs(p, PROPERTY_TABLES)
    p.set_defaults(func=cmd_analyse_properties)
