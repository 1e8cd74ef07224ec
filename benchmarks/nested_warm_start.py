"""Would warm starts along the nested training sizes pay? Cold fits against fits started
from the next smaller size's solutions.

    python benchmarks/nested_warm_start.py            # ~15 s on 2 cores

A training size's triplets extend the next smaller size's (simulate.subset takes each
fold's first N), so the smaller fit's W is a natural start. On the default world's jobs
(kernel_benchmark.py, part 1) each size is fitted as the recover rule fits it (the
config's fitting section: W = I, then warm starts along λ), and again with every
candidate × fold × λ started from its own solution at the next smaller size (no λ
chain, and no rank reduction, which an explicit start does not allow). Prints per size
both times, iterations per fit, the largest relative objective difference and whether
each candidate's chosen λ and the winner agree; the last line is
the time ratio over the sizes that have a smaller one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import recovery_jobs as rj  # noqa: E402

from modelrecovery import fitting


def winners(jobs: rj.Jobs, res: fitting.FitResult, n_train: int) -> tuple:
    """Each candidate's λ of least mean test NLL over folds, and the candidate of least
    NLL at its λ (the recovery analysis's choice, on test rather than validation)."""
    pf, ps, pl = jobs.order()
    test = fitting.TripletSets.from_arrays(jobs.sets(n_train, "test"),
                                           dtype=res.weights.dtype)
    _, nll = fitting.evaluate(jobs.feats, res.weights, test, ps, problem_features=pf)
    frame = pd.DataFrame({"c": pf, "lam": pl, "nll": nll}).groupby(["c", "lam"]).mean()
    best = frame.reset_index().loc[lambda f: f.groupby("c")["nll"].idxmin()]
    return tuple(best["lam"]), int(best.loc[best["nll"].idxmin(), "c"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    rj.add_job_arguments(ap)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    jobs, cold_opts = rj.as_the_rule_runs(args)
    threads = torch.get_num_threads()
    # An explicit start is in the features' coordinates: no rank reduction there.
    warm_opts = dataclasses.replace(cold_opts, warm_start=False, reduce_rank=False)
    pf, ps, pl = jobs.order()
    previous, totals = None, {"cold": 0.0, "warm": 0.0}
    print(f"threads {threads}, {cold_opts.dtype}; the warm side without reduce_rank")
    for n_train in jobs.sizes:
        sets = fitting.TripletSets.from_arrays(jobs.sets(n_train), dtype=cold_opts.torch_dtype)
        runs = {}
        for side, opts, init in (("cold", cold_opts, None), ("warm", warm_opts, previous)):
            if side == "warm" and init is None:
                continue
            best = np.inf
            for _ in range(max(1, args.repeats)):
                start = time.perf_counter()
                res = fitting.fit(jobs.feats, sets, ps, pl, opts, init, problem_features=pf)
                best = min(best, time.perf_counter() - start)
            runs[side] = (best, res)
        cold_s, cold = runs["cold"]
        if "warm" in runs:
            warm_s, warm = runs["warm"]
            rel = float(((warm.objective - cold.objective).abs()
                         / cold.objective.abs()).max())
            same = winners(jobs, cold, n_train) == winners(jobs, warm, n_train)
            totals["cold"] += cold_s
            totals["warm"] += warm_s
            print(f"N={n_train:6d}  cold {cold_s:6.2f} s ({cold.iterations.double().mean():5.1f} "
                  f"iterations/fit)  from N's predecessor {warm_s:6.2f} s "
                  f"({warm.iterations.double().mean():5.1f})  ratio {warm_s / cold_s:.3f}  max "
                  f"rel objective diff {rel:.1e}  chosen λ and winner "
                  f"{'equal' if same else 'DIFFER'}", flush=True)
        else:
            print(f"N={n_train:6d}  cold {cold_s:6.2f} s (the smallest size: no predecessor)")
        previous = cold.weights
    print(f"warm starts along N take {totals['warm'] / totals['cold']:.3f} of the cold fits' "
          f"time (threads {threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
