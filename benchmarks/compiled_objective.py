"""Does ``torch.compile`` on the objective pay? The benchmark's jobs, eager and compiled.

    python benchmarks/compiled_objective.py            # ~3 minutes on 2 cores

The kernel's per-evaluation work (``fitting.evaluation.Problems.__call__``: the gather
mode's logits, log-softmax, gradient, penalty) is fused by ``torch.compile`` (inductor,
``dynamic=True``, as the batch shrinks while fits converge) and the default world's
recovery jobs of kernel_benchmark.py's part 1 are fitted both ways at the recover rule's
threads and settings. Prints per training size the eager time, the compiled time of the
first call (with compilation) and of the best later call, and the largest relative
objective difference; the last line is the ratio of the best compiled to eager times.
The kernel stays eager while that ratio is not clearly below 1 with compilation paid
once per job (each recover job is a fresh process).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import recovery_jobs as rj  # noqa: E402

from modelrecovery import fitting

# The module, not fitting.objective (the function the package exports under that name).
objective_module = importlib.import_module("modelrecovery.fitting.evaluation")


def timed(jobs: rj.Jobs, n_train: int, opts: fitting.FitOptions
          ) -> tuple[float, np.ndarray]:
    pf, ps, pl = jobs.order()
    sets = fitting.TripletSets.from_arrays(jobs.sets(n_train), dtype=opts.torch_dtype)
    start = time.perf_counter()
    res = fitting.fit(jobs.feats, sets, ps, pl, opts, problem_features=pf)
    return time.perf_counter() - start, res.objective.double().numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    rj.add_job_arguments(ap)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="*", help="default: the config's")
    args = ap.parse_args(argv)
    jobs, opts = rj.as_the_rule_runs(args)
    threads = torch.get_num_threads()
    eager_call = objective_module.Problems.__call__
    compiled_call = torch.compile(eager_call, dynamic=True)
    totals = {"eager": 0.0, "compiled": 0.0}
    print(f"threads {threads}, {opts.dtype}, torch {torch.__version__}")
    for n_train in args.sizes or jobs.sizes:
        objective_module.Problems.__call__ = eager_call
        eager = [timed(jobs, n_train, opts) for _ in range(args.repeats)]
        objective_module.Problems.__call__ = compiled_call
        try:
            compiled = [timed(jobs, n_train, opts) for _ in range(args.repeats)]
        finally:
            objective_module.Problems.__call__ = eager_call
        e_best = min(t for t, _ in eager)
        c_first, c_best = compiled[0][0], min(t for t, _ in compiled[1:] or compiled)
        diff = float(np.max(np.abs(compiled[-1][1] - eager[-1][1]) / np.abs(eager[-1][1])))
        totals["eager"] += e_best
        totals["compiled"] += c_best
        print(f"N={n_train:6d}  eager {e_best:6.2f} s  compiled first {c_first:6.2f} s, "
              f"later {c_best:6.2f} s  max rel objective diff {diff:.1e}", flush=True)
    print(f"compiled objective takes {totals['compiled'] / totals['eager']:.3f} of the eager "
          f"time, compilation excluded (threads {threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
