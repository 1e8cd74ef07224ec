"""A recover job's datasets fitted in one kernel call against one call per dataset.

    python benchmarks/datasets_per_call.py            # ~2 minutes on 2 cores

The recover rule fits every design's and seed's dataset of one generator and training
size (the config's designs × seeds; 9 in the default config) in one process. This times
both ways of doing so on the default world's data, exactly as the rule runs (the
config's fitting section, float32, at the config's fitting.threads):
``recovery_jobs.recovery_fits`` once per dataset, and ``recovery_jobs.recovery_fits_many`` over all
of them, the two alternating, each the best of --repeats. Prints per training size both
times, their ratio, and how the rows differ: the largest relative difference of the
objectives, the largest test-accuracy difference, and whether every dataset's chosen
λ and best candidate are the same. The last line is the time ratio over all sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import recovery_jobs as rj  # noqa: E402

from modelrecovery.analysis import aggregate
from modelrecovery.recover import selection


def outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    """Each dataset's chosen λ per candidate and its winner."""
    scores = selection.candidate_scores(rows)
    return aggregate.dataset_outcomes(scores)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    rj.add_job_arguments(ap)
    ap.add_argument("--datasets", type=int, default=9, help="datasets per job")
    ap.add_argument("--sizes", type=int, nargs="*", help="default: the config's")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    jobs, opts = rj.as_the_rule_runs(args)
    cfg, threads = jobs.cfg, torch.get_num_threads()
    shards = jobs.shards(args.datasets)
    labels = [{"experiment": "bench", "generator": args.generator, "seed": s}
              for s in range(len(shards))]
    kw = dict(eval_fraction=cfg["simulation"]["eval_fraction"])
    total = {"apart": 0.0, "together": 0.0}
    print(f"{len(shards)} datasets per job, {len(jobs.names)} candidates × "
          f"{len(jobs.folds)} folds × {len(jobs.lambdas)} λ each, {opts.dtype}, threads "
          f"{threads}")
    for n_train in args.sizes or jobs.sizes:
        best = {"apart": np.inf, "together": np.inf}
        for _ in range(max(1, args.repeats)):
            start = time.perf_counter()
            apart = [rj.recovery_fits(s, n_train, dict(zip(jobs.names, jobs.feats)),
                                   jobs.lambdas, opts, labels=lab, **kw)
                     for s, lab in zip(shards, labels)]
            best["apart"] = min(best["apart"], time.perf_counter() - start)
            start = time.perf_counter()
            together = rj.recovery_fits_many(shards, n_train, dict(zip(jobs.names, jobs.feats)),
                                          jobs.lambdas, opts, labels=labels, **kw)
            best["together"] = min(best["together"], time.perf_counter() - start)
        a, b = pd.concat(apart, ignore_index=True), pd.concat(together, ignore_index=True)
        rel = float(np.max(np.abs(a["objective"] - b["objective"]) / np.abs(a["objective"])))
        acc = float(np.max(np.abs(a["test_acc"] - b["test_acc"])))
        same = outcomes(a).equals(outcomes(b))
        for key in total:
            total[key] += best[key]
        print(f"N={n_train:6d}  one call per dataset {best['apart']:7.2f} s  one call "
              f"{best['together']:7.2f} s  ratio {best['together'] / best['apart']:.3f}  "
              f"max rel objective diff {rel:.1e}  max test acc diff {acc:.1e}  "
              f"outcomes {'equal' if same else 'DIFFER'}", flush=True)
    print(f"one call for the job's datasets takes {total['together'] / total['apart']:.3f} "
          f"of the time of one call per dataset (threads {threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
