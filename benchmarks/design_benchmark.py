"""How many triplets a design saves, proven by recovery in the loop; and how fast pools
are scored.

Part 1 runs the default world (config/config.yaml, or --config) through the workflow with
every design of the config, in a temporary folder, and reads the comparison of designs:
per design the recovery curve with its exact interval, the triplets needed to reach the
random design's recovery at its largest training size and the config's fixed target,
and the savings factor N_random / N_design with its bootstrap interval. It checks that at
every training size each designed curve is not below the random one beyond its interval
(the design's upper bound at or above random's estimate).

Part 2 scores a THINGS-shaped pool: 1,854 objects, 20 generators of 64 dimensions, 10^7
triplets on the CPU (--pool to change; 10^8 with --device cuda), and reports scored
triplets per second.

The last line is the verdict:
``design saves R.Rx triplets over random at recovery X (random N=…, best design N=…)``.

    python benchmarks/design_benchmark.py            # ~6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from study_run import add_study_arguments, run_study


def not_below(curves: pd.DataFrame) -> list[str]:
    """Designs and sizes where a designed curve lies below random beyond its interval."""
    random = curves[curves["design"] == "random"].set_index("n_train")["recovery"]
    bad = []
    for _, r in curves[curves["design"] != "random"].iterrows():
        if r["ci_high"] < random[r["n_train"]]:
            bad.append(f"{r['design']} at N={r['n_train']}: {r['recovery']:.3f} "
                       f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] < random "
                       f"{random[r['n_train']]:.3f}")
    return bad


def scoring_rate(n_pool: int, device: str) -> float:
    """Scored triplets per second at a THINGS shape (1,854 objects, 20 generators)."""
    import torch

    from modelrecovery.design.information import pool_information

    rng = np.random.default_rng(0)
    n, g, d = 1854, 20, 64
    feats = [rng.normal(size=(n, d)).astype(np.float32) for _ in range(g)]
    weights = [np.eye(d) * 0.25 for _ in range(g)]
    pool = rng.integers(0, n, size=(n_pool, 3))
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    info = pool_information(feats, weights, [1.0] * g, pool, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert np.isfinite(info).all()
    return n_pool / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_study_arguments(parser)
    parser.add_argument("--pool", type=float, default=1e7, help="triplets to score")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-study", action="store_true")
    args = parser.parse_args(argv)

    rate = scoring_rate(int(args.pool), args.device)
    print(f"pool scoring: {int(args.pool):,} triplets, 1,854 objects, 20 generators "
          f"(d = 64) on {args.device}: {rate:,.0f} triplets/s")
    if args.skip_study:
        return
    study = run_study(args.config, args.cores, args.seeds,
                      ["design_curves", "design_savings"])
    curves, table = study["design_curves"], study["design_savings"]
    print(curves[["design", "n_train", "datasets", "recovery", "ci_low",
                  "ci_high"]].to_string(index=False))
    print(table[["target", "target_recovery", "design", "n_needed", "at_most", "reached",
                 "savings", "savings_ci_low", "savings_ci_high"]].to_string(index=False))
    bad = not_below(curves)
    print("designed curves never below random beyond their interval" if not bad
          else "below random beyond the interval: " + "; ".join(bad))
    from modelrecovery.analysis.designs import headline, headline_details

    print(headline_details(table))
    print(headline(table))


if __name__ == "__main__":
    main()
