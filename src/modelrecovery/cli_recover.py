"""``modelrecovery recover``: every candidate refitted to the simulated datasets of one
generator and training size (workflow/rules/recover.smk), with
:mod:`modelrecovery.recover`."""

from __future__ import annotations

import argparse
import logging

from . import io
from .cli_args import fit_options, fitting_process, named_values
from .errors import InputError

log = logging.getLogger("modelrecovery")


def cmd_recover(args: argparse.Namespace) -> None:
    """Every design's and seed's dataset of one generator and training size, one after
    the other in one process (one kernel call each: the rows are those of one job per
    dataset), so the candidates are read and the process started once per size."""
    from .recover import recovery_fits

    designs = args.design * len(args.shard) if len(args.design) == 1 else args.design
    if not len(args.shard) == len(args.seed) == len(args.out) == len(designs):
        raise InputError(f"--shard, --seed, --out and --design need one entry per dataset "
                         f"(--design may be one for all); got {len(args.shard)}, "
                         f"{len(args.seed)}, {len(args.out)} and {len(args.design)}")
    fitting_process(args)
    n = len(io.read_objects(args.objects))
    candidates = {name: io.read_features(path, n)
                  for name, path in named_values(args.candidates, "--candidates").items()}
    for shard_path, seed, out, design in zip(args.shard, args.seed, args.out, designs):
        shard = io.open_parquet(shard_path, "simulated shard").to_pandas()
        missing = {"fold", "split", "position", "i", "j", "k"} - set(shard.columns)
        if missing:
            raise InputError(f"{shard_path}: simulated shard lacks column(s) "
                             f"{sorted(missing)}")
        rows = recovery_fits(shard, args.n_train, candidates, args.lambdas,
                             fit_options(args), eval_fraction=args.eval_fraction,
                             labels={"experiment": args.experiment, "design": design,
                                     "generator": args.generator, "seed": seed})
        io.write_parquet(rows, out)
        unconverged = int((~rows["converged"]).sum())
        if unconverged:
            log.warning("seed %d: %d of %d fits did not meet the tolerance (see 'status')",
                        seed, unconverged, len(rows))


def register(sub: argparse._SubParsersAction, fit: argparse.ArgumentParser) -> None:
    """Add ``recover`` to the main parser."""
    p = sub.add_parser("recover", parents=[fit],
                       help="refit every candidate to datasets of one training size")
    for name in ("objects", "experiment", "generator"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--shard", nargs="+", required=True, help="simulated datasets")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one per --shard")
    p.add_argument("--out", nargs="+", required=True, help="one per --shard")
    p.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--n-train", type=int, required=True)
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--design", nargs="+", default=["random"],
                   help="per --shard (or one for all), the dataset's design (a label)")
    p.set_defaults(func=cmd_recover)
