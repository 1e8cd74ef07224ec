"""``modelrecovery design mimic | divergence``: designs aimed at the mimics, and what
their divergences say (workflow/rules/design.smk), with :mod:`modelrecovery.design.mimic`.

- ``mimic``: per seed, fit every candidate's probe to every generator's predictions (the
  mimic that competes at analysis) on each fold's training objects, and rank pool
  triplets by the union bound on mistaking a generator for its mimics;
- ``divergence``: per generator and mimicking candidate, the mean divergence per triplet
  under uniform and designed triplets, the triplets Stein's lemma says separate them,
  beside the measured confusion of the random and the mimic design.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import pandas as pd

from .. import io, settings
from ..errors import InputError
from ..seeds import rng_for
from .args import (add_protocol_arguments, add_table_outputs, check_outputs,
                   criterion_prior, design_options, excluded_keys, fit_options,
                   fitting_process, named_values, write_tables)

log = logging.getLogger("modelrecovery")

DIVERGENCE_TABLES = ["mimic_divergence"]


def cmd_mimic(args: argparse.Namespace) -> None:
    from ..design.mimic import MimicOptions, mimic_design
    from ..design.static import design_folds, split_sizes

    fitting_process(args)
    n = len(io.read_objects(args.objects))
    cands = {m: io.read_features(p, n)
             for m, p in named_values(args.candidates, "--candidates").items()}
    paths = named_values(args.generators, "--generators")
    missing = sorted(set(paths) - set(cands))
    if missing:
        raise InputError(f"--generators: {missing} are not among --candidates (a "
                         "generator's features are its candidate's)")
    names, cand_names = sorted(paths), list(cands)
    gens = []
    for g in names:
        gen = io.read_generator(paths[g], cands[g].shape[1])
        gens.append((cands[g] @ gen.weights, gen.temperature, gen.similarity))
    pair = args.pair
    if args.pair_from_confusion:
        from ..analysis.designs import most_confused_pair

        pair = list(most_confused_pair(pd.read_parquet(args.pair_from_confusion), names))
        log.info("pairwise criterion: %s and %s (most confused by the random design)", *pair)
    prior = criterion_prior(names, args.prior, pair)
    # With a pair, each of the two against the other's mimic only.
    pairs = [(gi, ci) for gi, g in enumerate(names) for ci, c in enumerate(cand_names)
             if c != g and (not pair or (g in pair and c in pair))]
    try:
        mimic = MimicOptions(**settings.design_values(args, "mimic"))
    except ValueError as exc:
        raise InputError(f"design options: {exc}") from exc
    lam = float(min(args.lambdas))
    folds = design_folds(n, args.folds, args.val_fraction, args.study_seed,
                         args.experiment, args.seed)
    start = time.perf_counter()
    frame, records = mimic_design(
        folds, split_sizes(args.n_train_max, args.eval_fraction), n, gens,
        [cands[c] for c in cand_names], pairs, prior[[g for g, _ in pairs]], lam,
        fit_options(args), design_options(args), mimic,
        rng_for(args.study_seed, "mimic design", args.experiment, args.seed),
        excluded_keys(args.exclude, n))
    seconds = time.perf_counter() - start
    flat = any(r["uninformative"] for r in records)
    if flat:
        log.warning("no pool triplet separates any generator from its mimics: those "
                    "splits' designs are uniform")
    meta = {"design": "mimic", "seed": args.seed, "models": names,
            "candidates": cand_names, "lambda": lam,
            "pairs": [{"generator": names[g], "candidate": cand_names[c]}
                      for g, c in pairs],
            "prior": dict(zip(names, prior.tolist())),
            "options": {**vars(design_options(args)), **vars(mimic)}, "splits": records,
            "uninformative": flat,
            "folds": [{s: getattr(f, s).tolist() for s in ("train", "val", "test")}
                      for f in folds]}
    io.write_parquet(frame, args.out)
    io.write_json(meta, args.out_json)
    log.info("mimic design, seed %d: %d mimics fitted and %d triplets ranked in %.2f s",
             args.seed, len(pairs) * len(folds), len(frame), seconds)


def cmd_divergence(args: argparse.Namespace) -> None:
    from ..design.mimic import stein_triplets

    check_outputs(args, tables=DIVERGENCE_TABLES)
    rows = []
    for path in args.designs:
        try:
            meta = json.loads(open(path, encoding="utf-8").read())
            pairs = meta["pairs"]
            for rec in meta["splits"]:
                for d in rec["divergence"]:
                    rows.append({**pairs[d["pair"]], "seed": meta["seed"],
                                 "triplets": rec["triplets"], "pool": d["pool"],
                                 "design": d["design"]})
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise InputError(f"{path}: not a mimic design record ({exc!r})") from exc
    per = pd.DataFrame(rows)
    # Means over every split's triplets, weighted by their number (a dataset's evidence).
    table = (per.assign(pool=per["pool"] * per["triplets"],
                        design=per["design"] * per["triplets"])
             .groupby(["generator", "candidate"], sort=True)[["pool", "design", "triplets"]]
             .sum())
    table = pd.DataFrame({"divergence_uniform": table["pool"] / table["triplets"],
                          "divergence_design": table["design"] / table["triplets"]}
                         ).reset_index()
    per_dataset = args.folds * (1 + 2 * args.eval_fraction)
    for kind in ("uniform", "design"):
        needed = table[f"divergence_{kind}"].map(stein_triplets)
        table[f"triplets_needed_{kind}"] = needed
        table[f"n_train_needed_{kind}"] = needed / per_dataset
    table["design_gain"] = table["divergence_design"] / table["divergence_uniform"]
    conf = pd.read_parquet(args.confusion)
    last = conf[conf["n_train"] == conf["n_train"].max()]
    for design in ("random", "mimic"):
        rate = last[last["design"] == design].rename(columns={"rate": f"won_{design}"})
        table = table.merge(rate[["generator", "candidate", f"won_{design}"]],
                            on=["generator", "candidate"], how="left")
    table.insert(0, "experiment", args.experiment)
    table["n_train_measured"] = int(last["n_train"].max())
    write_tables(args, {"mimic_divergence": table})
    hard = table.sort_values("divergence_uniform").head(3)
    for _, r in hard.iterrows():
        log.info("%s vs mimic %s: %.3g nats/triplet uniform, %.3g designed "
                 "(%.3gx); Stein N ≈ %.3g per fold", r["generator"], r["candidate"],
                 r["divergence_uniform"], r["divergence_design"], r["design_gain"],
                 r["n_train_needed_design"])


def add_mimic_parsers(dsub: argparse._SubParsersAction, fit: argparse.ArgumentParser,
                      common: argparse.ArgumentParser) -> None:
    """Add ``design mimic`` and ``design divergence``."""
    mimic = argparse.ArgumentParser(add_help=False)
    settings.add_design_arguments(mimic.add_argument_group("mimic design"), "mimic")
    p = dsub.add_parser("mimic", parents=[fit, common, mimic],
                        help="rank pool triplets by how well they separate each "
                             "generator from the candidates that imitate it")
    for name in ("objects", "experiment", "out", "out_json"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--generators", nargs="+", required=True, metavar="NAME=NPZ")
    p.add_argument("--prior", nargs="*", default=[], metavar="NAME=WEIGHT")
    p.add_argument("--pair", nargs=2, default=None, metavar=("A", "B"),
                   help="only these two generators, each against the other's mimic")
    p.add_argument("--pair-from-confusion", default=None, metavar="PARQUET",
                   help="the pair the random design confuses most (its confusion table)")
    p.add_argument("--seed", type=int, required=True)
    add_protocol_arguments(p)
    p.add_argument("--exclude", nargs="*", default=[], help="triplet files never to draw")
    p.set_defaults(func=cmd_mimic)

    p = dsub.add_parser("divergence", help="mimic divergences and Stein's estimate")
    p.add_argument("--designs", nargs="+", required=True, help="mimic design records")
    p.add_argument("--confusion", required=True, help="the designs' confusion table")
    p.add_argument("--experiment", required=True)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--eval-fraction", type=float, default=0.125)
    add_table_outputs(p, DIVERGENCE_TABLES)
    p.set_defaults(func=cmd_divergence)
