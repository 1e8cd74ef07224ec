"""``modelrecovery design <static|adaptive|export|next|mimic|divergence>``: triplet designs
on the command line (``mimic`` and ``divergence`` in :mod:`.design_mimic`).

- ``static``: rank pool triplets by their information about the calibrated generators,
  per fold and split, before any response exists (one design per seed);
- ``adaptive``: a simulated study collected in rounds under the fitted candidates;
- ``export``: a design as the table to show people (names, 1-based THINGS indices),
  and a summary of it whose size does not grow with the design (what the report shows);
- ``next``: for an experiment in progress, the next batch from the responses so far.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import pandas as pd

from .. import io, settings
from ..design.export import design_summary, export_table
from ..errors import InputError
from ..seeds import rng_for
from .args import (adaptive_options, add_figure_outputs, add_protocol_arguments,
                   add_table_outputs, check_outputs, criterion_prior, design_options,
                   excluded_keys, named_values, save_figures, write_tables)

log = logging.getLogger("modelrecovery")


def cmd_static(args: argparse.Namespace) -> None:
    from ..design.information import pool_information
    from ..design.static import design_folds, split_sizes, static_design
    from ..fitting import resolve_device

    n = len(io.read_objects(args.objects))
    feats = {m: io.read_features(p, n) for m, p in named_values(args.features, "--features").items()}
    generators = named_values(args.generators, "--generators")
    if set(feats) != set(generators):
        raise InputError(f"--features names {sorted(feats)} and --generators names "
                         f"{sorted(generators)} must be the same models")
    gens = {m: io.read_generator(p, feats[m].shape[1]) for m, p in generators.items()}
    names = list(gens)
    pair = args.pair
    if args.pair_from_confusion:
        from ..analysis.designs import most_confused_pair

        pair = list(most_confused_pair(pd.read_parquet(args.pair_from_confusion), names))
        log.info("pairwise criterion: %s and %s (most confused by the random design)", *pair)
    prior = criterion_prior(names, args.prior, pair)
    device = str(resolve_device(args.device))
    scored = [0]

    def score(pool: np.ndarray) -> np.ndarray:
        scored[0] += len(pool)
        if args.uniform:
            return np.zeros(len(pool))
        return pool_information([feats[m] for m in names], [gens[m].weights for m in names],
                                [gens[m].temperature for m in names], pool, prior=prior,
                                device=device, max_memory_gb=args.max_memory_gb,
                                similarity=[gens[m].similarity for m in names])

    folds = design_folds(n, args.folds, args.val_fraction, args.study_seed,
                         args.experiment, args.seed)
    start = time.perf_counter()
    frame, records = static_design(folds, split_sizes(args.n_train_max, args.eval_fraction),
                                   n, score, rng_for(args.study_seed, "design pool",
                                                     args.experiment, args.seed),
                                   design_options(args), excluded_keys(args.exclude, n))
    seconds = time.perf_counter() - start
    flat = any(r["uninformative"] for r in records) and not args.uniform
    if flat:
        log.warning("no pool triplet carries information about the models (they predict "
                    "alike): those splits' designs are uniform")
    meta = {"design": "uniform" if args.uniform else "static", "seed": args.seed,
            "models": names, "prior": dict(zip(names, prior.tolist())),
            "options": vars(design_options(args)), "splits": records, "uninformative": flat,
            "scored_triplets": scored[0],
            "folds": [{s: getattr(f, s).tolist() for s in ("train", "val", "test")}
                      for f in folds]}
    io.write_parquet(frame, args.out)
    io.write_json(meta, args.out_json)
    # Timings go to the log only: the design's files are the same bytes on every rerun.
    log.info("design %s, seed %d: %d triplets scored and ranked in %.2f s (%.3g per second)",
             meta["design"], args.seed, scored[0], seconds, scored[0] / max(seconds, 1e-9))


def _folds_from_meta(meta: dict, path: str):
    from ..simulate import FoldObjects

    try:
        return [FoldObjects(**{s: np.asarray(f[s], dtype=np.int64)
                               for s in ("train", "val", "test")}) for f in meta["folds"]]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: design record lacks its folds ({exc})") from exc


def cmd_adaptive(args: argparse.Namespace) -> None:
    from ..design.adaptive import adaptive_dataset
    from ..fitting import resolve_device
    from ..sampling import sample_judgements
    from .args import fit_options, fitting_process

    fitting_process(args)
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    generator = io.read_generator(args.generator_file, x.shape[1])
    sim, temperature = generator.similarities(x), generator.temperature
    candidates = {m: io.read_features(p, n)
                  for m, p in named_values(args.candidates, "--candidates").items()}
    first = pd.read_parquet(args.first) if args.first else None
    folds = _folds_from_meta(io.read_json(args.first_json), args.first_json)
    job = (args.experiment, "adaptive", args.generator, args.seed)

    # Each round's responses and pool come from streams of their own, so a round's
    # triplets depend on earlier rounds' responses only.
    def respond(trip: np.ndarray, round_: int) -> tuple[np.ndarray, np.ndarray]:
        return sample_judgements(sim, trip, temperature,
                                 rng_for(args.study_seed, "simulate", *job, round_),
                                 args.participants)

    def pool_rng(round_: int) -> np.random.Generator:
        return rng_for(args.study_seed, "design pool", *job, round_)

    options = fit_options(args)
    shard, records = adaptive_dataset(
        folds, args.sizes, args.eval_fraction, n, respond, candidates, args.lambdas,
        options, design_options(args), adaptive_options(args), pool_rng, first=first,
        exclude=excluded_keys(args.exclude, n), device=str(resolve_device(options.device)))
    io.write_parquet(shard, args.out)
    io.write_json({"design": "adaptive", "generator": args.generator, "seed": args.seed,
                   "rounds": records}, args.out_json)
    for r in records:
        top = max(r["weights"], key=r["weights"].get)
        log.info("round %d (N = %d): leading candidate %s (weight %.3f)", r["round"],
                 r["n_train"], top, r["weights"][top])


def cmd_export(args: argparse.Namespace) -> None:
    from ..design.static import split_sizes

    names = io.read_objects(args.objects)["name"].tolist()
    design = io.open_parquet(args.design, "design").to_pandas()
    if args.n_train is not None:
        want = split_sizes(args.n_train, args.eval_fraction)
        design = design[design["position"] < design["split"].map(want)]
    design = design.sort_values(["fold", "split", "position"], kind="stable")
    io.write_csv(export_table(design, names), args.out)
    meta = io.read_json(args.design_json)
    folds = _folds_from_meta(meta, args.design_json)
    rows = []
    for f, fold in enumerate(folds):
        for split in ("train", "val", "test"):
            for obj in getattr(fold, split):
                rows.append({"fold": f, "split": split, "image": int(obj) + 1,
                             "object": names[int(obj)]})
    io.write_csv(pd.DataFrame(rows), args.out_folds)
    if args.out_summary:
        file = args.file_label or os.path.relpath(
            os.path.abspath(args.out), os.path.dirname(os.path.abspath(args.out_summary)))
        summary = design_summary(design, folds, len(names), meta.get("splits", []),
                                 float(meta.get("options", {}).get("random_fraction", 0.0)),
                                 file.replace(os.sep, "/"), os.path.getsize(args.out))
        io.write_csv(summary, args.out_summary)


COMPARE_TABLES = ["design_curves", "design_confusion", "design_savings"]


def cmd_compare(args: argparse.Namespace) -> None:
    from ..analysis import aggregate, designs, plots

    check_outputs(args, tables=COMPARE_TABLES, figures=["design_curves"])
    fits = io.read_tables(args.fits, aggregate.check_recovery_rows)
    outcomes = designs.design_outcomes(fits)
    curves = designs.design_curves(outcomes)
    confusion = designs.design_confusion(fits)
    random = curves[curves["design"] == "random"]
    if random.empty:
        raise InputError("--fits: the random design's rows are needed as the reference")
    largest = random.loc[random["n_train"].idxmax()]
    targets = {"random_at_largest_n": float(largest["recovery"]),
               "fixed": float(args.target)}
    boots = designs.bootstrap_curves(outcomes, args.n_boot,
                                     rng_for(args.study_seed, "design savings",
                                             args.experiment))
    savings = designs.savings(outcomes, targets, args.n_boot, None, boots=boots)
    curves = curves.merge(designs.equal_n_differences(outcomes, boots),
                          on=["design", "n_train"], how="left")
    write_tables(args, {"design_curves": curves, "design_confusion": confusion,
                        "design_savings": savings})
    n_cands = fits["candidate"].nunique()
    save_figures(args, {"design_curves": lambda: plots.design_figure(
        curves, confusion, n_cands, f"Designs: {args.experiment}")})
    log.info("%s", designs.headline_details(savings))
    log.info("%s", designs.headline(savings))


def register(sub: argparse._SubParsersAction, fit: argparse.ArgumentParser) -> None:
    """Add ``design`` and its subcommands to the main parser."""
    from .design_mimic import add_mimic_parsers
    from .design_next import add_next_parser

    common = argparse.ArgumentParser(add_help=False)
    settings.add_design_arguments(common.add_argument_group("design"), "design")
    adaptive = argparse.ArgumentParser(add_help=False)
    settings.add_design_arguments(adaptive.add_argument_group("adaptive design"),
                                  "adaptive")
    design = sub.add_parser("design", help="choose triplets that discriminate the models")
    dsub = design.add_subparsers(dest="design_command", required=True)

    p = dsub.add_parser("static", parents=[common],
                        help="rank pool triplets under the calibrated generators")
    for name in ("objects", "experiment", "out", "out_json"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--generators", nargs="+", required=True, metavar="NAME=NPZ")
    p.add_argument("--prior", nargs="*", default=[], metavar="NAME=WEIGHT")
    p.add_argument("--pair", nargs=2, default=None, metavar=("A", "B"))
    p.add_argument("--pair-from-confusion", default=None, metavar="PARQUET",
                   help="the pair the random design confuses most (its confusion table)")
    p.add_argument("--uniform", action="store_true", help="no scoring: a uniform design")
    p.add_argument("--seed", type=int, required=True)
    add_protocol_arguments(p)
    p.add_argument("--exclude", nargs="*", default=[], help="triplet files never to draw")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-memory-gb", type=float, default=2.0)
    p.set_defaults(func=cmd_static)

    p = dsub.add_parser("adaptive", parents=[fit, common, adaptive],
                        help="simulate a study collected in rounds (fitted candidates)")
    for name in ("objects", "features", "generator_file", "first_json", "experiment",
                 "generator", "out", "out_json"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--first", default=None, help="a static design: round 0's triplets")
    p.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--sizes", type=int, nargs="+", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--exclude", nargs="*", default=[])
    p.add_argument("--participants", type=int, default=1,
                   help="simulated people answering each triplet (multinomial counts)")
    p.set_defaults(func=cmd_adaptive)

    p = dsub.add_parser("export", help="a design as the table of triplets to show people")
    for name in ("design", "design_json", "objects", "out", "out_folds"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--n-train", type=int, default=None,
                   help="only the first N training triplets per fold (and their val/test)")
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--out-summary", default=None,
                   help="a summary of the design whose size does not grow with it (CSV)")
    p.add_argument("--file-label", default=None, metavar="PATH",
                   help="how the summary names the triplets file (default: its path "
                        "relative to the summary's folder)")
    p.set_defaults(func=cmd_export)

    p = dsub.add_parser("compare", help="recovery per design and the triplets saved")
    p.add_argument("--experiment", required=True)
    add_table_outputs(p, COMPARE_TABLES)
    add_figure_outputs(p, ["design_curves"])
    p.add_argument("--fits", nargs="+", required=True, help="recovery rows of every design")
    p.add_argument("--target", type=float, default=0.9,
                   help="a recovery to reach (besides random's at its largest N)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--study-seed", type=int, required=True)
    p.set_defaults(func=cmd_compare)

    add_next_parser(dsub, fit, common, adaptive)
    add_mimic_parsers(dsub, fit, common)
