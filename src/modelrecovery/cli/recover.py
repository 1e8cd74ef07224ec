"""``modelrecovery recover``: every candidate refitted to the simulated datasets of one
generator and training size (workflow/rules/recover.smk), with
:mod:`modelrecovery.recover.refit`."""

from __future__ import annotations

import argparse
import logging

from .. import io
from ..errors import InputError
from ..simulate import PROTOCOLS
from .args import fit_options, fitting_process, named_values

log = logging.getLogger("modelrecovery")


# A recover job fits its datasets together, in groups of at most this many training
# triplets: small datasets share the solver's per-iteration cost (9 datasets of the
# default world in one call take a fraction of 9 calls' time), large ones gain nothing
# from it, as their fits are bound by arithmetic, and would hold every dataset's
# triplets on the device at once.
TRIPLETS_PER_CALL = 2**20


def cmd_recover(args: argparse.Namespace) -> None:
    """Every design's and seed's dataset of one generator and training size in one
    process, fitted together (:func:`~modelrecovery.recover.refit.fit_datasets`) in
    groups of at most :data:`TRIPLETS_PER_CALL` training triplets, so the candidates are read, the process
    started and the solver's per-iteration cost paid once for many datasets. With
    ``--out-parameters``, each dataset's parameter recovery beside its rows."""
    from ..recover.refit import (fit_datasets, generator_parameters, recovery_rows,
                                 refit_chosen)

    designs = args.design * len(args.shard) if len(args.design) == 1 else args.design
    if not len(args.shard) == len(args.seed) == len(args.out) == len(designs):
        raise InputError(f"--shard, --seed, --out and --design need one entry per dataset "
                         f"(--design may be one for all); got {len(args.shard)}, "
                         f"{len(args.seed)}, {len(args.out)} and {len(args.design)}")
    if args.out_parameters and (len(args.out_parameters) != len(args.shard)
                                or not args.generator_file):
        raise InputError(f"--out-parameters needs one entry per --shard and a "
                         f"--generator-file; got {len(args.out_parameters)} for "
                         f"{len(args.shard)} shards")
    fitting_process(args)
    n = len(io.read_objects(args.objects))
    candidates = {name: io.read_features(path, n)
                  for name, path in named_values(args.candidates, "--candidates").items()}
    shards = [io.read_shard(path) for path in args.shard]
    labels = [{"experiment": args.experiment, "design": design, "generator": args.generator,
               "seed": seed} for seed, design in zip(args.seed, designs)]
    own = candidates.get(args.generator)
    generating = (io.read_generator(args.generator_file,
                                    None if own is None else own.shape[1])
                  if args.out_parameters else None)
    per_call = max(1, TRIPLETS_PER_CALL // max(1, args.n_train * _folds(shards)))
    for lo in range(0, len(shards), per_call):
        group = range(lo, min(len(shards), lo + per_call))
        every = fit_datasets([shards[i] for i in group], args.n_train, candidates,
                             args.lambdas, fit_options(args), eval_fraction=args.eval_fraction)
        if args.protocol == "subsets":
            refit_chosen([shards[i] for i in group], every, args.n_train, candidates,
                         fit_options(args))
        for i, fits in zip(group, every):
            lab = labels[i]
            rows = recovery_rows(fits, args.n_train, lab)
            io.write_parquet(rows, args.out[i])
            if generating is not None:
                io.write_parquet(generator_parameters(
                    fits, rows, shards[i], args.generator, candidates.get(args.generator),
                    generating.weights, generating.temperature,
                    {**lab, "n_train": args.n_train}, similarity=generating.similarity),
                    args.out_parameters[i])
            unconverged = int((~rows["converged"]).sum())
            if unconverged:
                log.warning("%s seed %d: %d of %d fits did not meet the tolerance (see "
                            "'status')", lab["design"], lab["seed"], unconverged, len(rows))


def _folds(shards: list) -> int:
    return max(int(shard["fold"].nunique()) for shard in shards)


def register(sub: argparse._SubParsersAction, fit: argparse.ArgumentParser) -> None:
    """Add ``recover`` to the main parser."""
    p = sub.add_parser("recover", parents=[fit],
                       help="refit every candidate to datasets of one training size")
    for name in ("objects", "experiment", "generator"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--shard", nargs="+", required=True, help="simulated datasets")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one per --shard")
    p.add_argument("--out", nargs="+", required=True, help="one per --shard")
    p.add_argument("--generator-file", help="the generator's W and T (for --out-parameters)")
    p.add_argument("--out-parameters", nargs="*", default=[],
                   help="one per --shard: the generator's refitted transform and its "
                        "parameter recovery")
    p.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--n-train", type=int, required=True)
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--protocol", choices=PROTOCOLS, default="folds",
                   help="subsets: also refit each candidate on training + validation at "
                        "each fold's chosen λ (the published simplified protocol)")
    p.add_argument("--design", nargs="+", default=["random"],
                   help="per --shard (or one for all), the dataset's design (a label)")
    p.set_defaults(func=cmd_recover)
