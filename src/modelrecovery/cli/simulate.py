"""``modelrecovery simulate``: a calibrated generator's datasets, one per seed
(workflow/rules/simulate.smk), with :mod:`modelrecovery.simulate`."""

from __future__ import annotations

import argparse

import numpy as np

from .. import io
from ..errors import InputError
from ..seeds import rng_for
from ..simulate import PROTOCOLS
from .args import add_protocol_arguments


def cmd_simulate(args: argparse.Namespace) -> None:
    """One generator's datasets, one per seed (``--seed``/``--out``, and ``--design-file``
    for a designed dataset), each from its own random stream."""
    from ..sampling import triplet_keys
    from ..simulate import simulate_dataset, simulate_design, simulate_subsets

    designs = args.design_file or [None] * len(args.seed)
    if not len(args.seed) == len(args.out) == len(designs):
        raise InputError(f"--seed, --out (and --design-file) need one entry per dataset; "
                         f"got {len(args.seed)}, {len(args.out)} and {len(designs)}")
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    generator = io.read_generator(args.generator_file, x.shape[1])
    sim, temperature = generator.similarities(x), generator.temperature
    exclude = None
    if args.exclude and not args.design_file:
        exclude = np.concatenate([triplet_keys(io.read_triplets(p, n)[0], n)
                                  for p in args.exclude])
    for seed, out, design_file in zip(args.seed, args.out, designs):
        if design_file:
            # A designed dataset: the design fixed the triplets (and exclusions); only
            # the responses are drawn, from a stream of the design's own.
            design = io.open_parquet(design_file, "design").to_pandas()
            rng = rng_for(args.study_seed, "simulate", args.experiment, args.design,
                          args.generator, seed)
            io.write_parquet(simulate_design(sim, temperature, design, rng, args.participants),
                             out)
            continue
        rng = rng_for(args.study_seed, "simulate", args.experiment, args.generator, seed)
        if args.protocol == "subsets":
            shard = simulate_subsets(sim, temperature, args.n_train_max, n_folds=args.folds,
                                     eval_fraction=args.eval_fraction, rng=rng,
                                     exclude=exclude, participants=args.participants)
        else:
            shard = simulate_dataset(sim, temperature, args.n_train_max,
                                     n_folds=args.folds, val_fraction=args.val_fraction,
                                     eval_fraction=args.eval_fraction, rng=rng,
                                     exclude=exclude, participants=args.participants)
        io.write_parquet(shard, out)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate`` to the main parser."""
    p = sub.add_parser("simulate", help="simulate datasets from a calibrated generator")
    for name in ("objects", "features", "generator_file", "experiment", "generator"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one per dataset")
    p.add_argument("--out", nargs="+", required=True, help="one per --seed")
    add_protocol_arguments(p)
    p.add_argument("--exclude", nargs="*", default=[], help="triplet files not to redraw")
    p.add_argument("--design", default="random", help="the design's name (a label)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="folds",
                   help="the fold layout (subsets: the published simplified protocol)")
    p.add_argument("--participants", type=int, default=1,
                   help="simulated people answering each triplet (multinomial counts)")
    p.add_argument("--design-file", nargs="*", default=[],
                   help="per --seed, a design's triplets to answer (else uniform draws)")
    p.set_defaults(func=cmd_simulate)
