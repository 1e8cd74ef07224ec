"""The kernel's scaling and the published study's cost (kernel_benchmark.py, parts 2-3).

Part 2 (torch's default threads): seconds per L-BFGS iteration and per objective
evaluation against triplets, objects, feature dimension and batch size, each point in
its own subprocess (``python benchmarks/scaling.py --point '[n, d, N, B]'``) so that its
peak memory (RSS on CPU, allocator peak on CUDA) is its own.

Part 3: seconds per iteration of one fit at the published study's shape (865 objects
per fold, 1e3 … 4.2e6 triplets), and from them an estimate of the device-hours of the
published full experiment; then one fit at the GPU target's shape (1,854 objects, 4.2M
triplets, d = 1,024), timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modelrecovery import fitting, sampling
from modelrecovery.fitting.allocator import keep_freed_memory
from modelrecovery.oddoneout import similarity

# ------------------------------------------------------------------ part 2: scaling


def measured_fit(x: np.ndarray, sets: fitting.TripletSets, ps: np.ndarray, lams: np.ndarray,
                 opts: fitting.FitOptions) -> tuple[fitting.FitResult, float, int]:
    """One fit after a one-iteration warm-up on the same data (CUDA context, BLAS handles):
    its result, wall seconds and peak memory in bytes (the allocator's peak during the fit
    on CUDA, the process's peak RSS on CPU)."""
    fitting.fit(x, sets, ps, lams, dataclasses.replace(opts, max_iter=1))
    cuda = opts.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    res = fitting.fit(x, sets, ps, lams, opts)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return res, seconds, peak


def scaling_point(n: int, d: int, n_trip: int, batch: int, device: str, iters: int) -> dict:
    """Time `iters` L-BFGS iterations (after one warm-up fit) of `batch` random problems."""
    gen = np.random.default_rng(0)
    x = (gen.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    trip = np.stack([gen.choice(n, 3, replace=False) for _ in range(min(n_trip, 2000))])
    if n_trip > len(trip):
        # Fast draw for large N: rows with a repeat are rejected, then topped up.
        t = gen.integers(0, n, size=(int(n_trip * 1.1), 3))
        t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])]
        trip = t[:n_trip]
    sets = fitting.TripletSets.from_arrays([trip])
    opts = fitting.FitOptions(device=device, max_iter=iters, warm_start=False,
                              grad_tol=0.0, loss_tol=0.0, max_memory_gb=1e9)
    lam = np.geomspace(1e-3, 1.0, batch)
    res, _, peak = measured_fit(x, sets, np.zeros(batch, dtype=np.int64), lam, opts)
    it = int(res.iterations.max())
    return {"n_objects": n, "dim": d, "n_triplets": int(len(trip)), "batch": batch,
            "mode": res.mode, "iterations": it, "evaluations": res.evaluations,
            "seconds": res.seconds, "seconds_per_iteration": res.seconds / max(it, 1),
            "seconds_per_iteration_per_fit": res.seconds / max(it, 1) / batch,
            "peak_memory_mb": peak / 2**20,
            "estimated_memory_mb": fitting.memory_estimate(n, len(trip), d, batch, opts,
                                                           res.mode) / 2**20}


# quick leaves out the two slowest points of full (20,000 objects; d = 2,048: ~40 s on
# 2 CPU cores) so that the benchmark's one run stays within 10 minutes.
GRIDS = {
    "full": {"base": (1854, 64, 100_000, 1),
             "n_triplets": [1_000, 10_000, 100_000, 1_000_000, 4_200_000],
             "n_objects": [300, 1854, 20_000],
             "dim": [64, 256, 1024, 2048],
             "batch": [1, 4, 16, 64]},
}
GRIDS["quick"] = {**GRIDS["full"], "n_objects": [300, 1854], "dim": [64, 256, 1024]}


def in_subprocess(flag: str, values: list, device: str, iters: int) -> dict | None:
    """This file's ``flag`` (``--point`` or ``--target-point``) for ``values``, run in a
    fresh Python: its JSON row, or None (reported) if it failed."""
    cmd = [sys.executable, __file__, flag, json.dumps(values), "--device", device,
           "--iters", str(iters)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"  {flag[2:]} {values} failed: {out.stderr.strip()[-300:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling(device: str, grid: str, iters: int) -> pd.DataFrame:
    g = GRIDS[grid]
    n0, d0, t0, b0 = g["base"]
    return measure([(n0, d0, t, b0, "n_triplets") for t in g["n_triplets"]]
                   + [(n, d0, t0, b0, "n_objects") for n in g["n_objects"]]
                   + [(n0, d, t0, b0, "dim") for d in g["dim"]]
                   + [(300, d0, 10_000, b, "batch") for b in g["batch"]], device, iters)


def measure(points: list[tuple[int, int, int, int, str]], device: str, iters: int
            ) -> pd.DataFrame:
    """:func:`scaling_point` for each (objects, d, triplets, batch, axis), each in a fresh
    Python so that its peak memory is its own; a point on several axes (the grid's base)
    is measured once; points that fail are reported and left out."""
    rows, seen = [], {}
    for n, d, t, b, axis in points:
        key = (n, d, t, b)
        if key not in seen:
            seen[key] = in_subprocess("--point", [n, d, t, b], device, iters)
        if seen[key] is None:
            continue
        row = {**seen[key], "axis": axis}
        rows.append(row)
        print(f"  {axis:10s} n={n:6d} d={d:5d} N={t:8d} B={b:3d} {row['mode']:10s} "
              f"{row['seconds_per_iteration'] * 1e3:9.2f} ms/iteration  "
              f"peak {row['peak_memory_mb']:8.0f} MB (estimate {row['estimated_memory_mb']:.0f})",
              flush=True)
    return pd.DataFrame(rows)


def plot_scaling(frame: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_spec = [("n_triplets", "training triplets"), ("n_objects", "objects"),
                 ("dim", "feature dimension d"), ("batch", "simultaneous fits B")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    for ax, (axis, label) in zip(axes, axes_spec):
        sub = frame[frame["axis"] == axis].sort_values(axis if axis != "batch" else "batch")
        key = {"n_triplets": "n_triplets", "n_objects": "n_objects", "dim": "dim",
               "batch": "batch"}[axis]
        y = sub["seconds_per_iteration_per_fit"] if axis == "batch" else sub[
            "seconds_per_iteration"]
        ax.loglog(sub[key], y, "o-")
        ax.set_xlabel(label)
        ax.set_ylabel("s per iteration" + (" per fit" if axis == "batch" else ""))
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


# ------------------------------------------------------------------ part 3: the published study

# The published full experiment (docs/study.md): every generator × training size ×
# simulated dataset is one recovery job of candidates × λ × folds fits. Its 18 training
# sizes run from 50 to 4.2M triplets; their exact values are not to hand, so they are
# taken as geometrically spaced (the cost is dominated by the largest sizes either way).
PUBLISHED = {"generators": 20, "simulations": 30, "candidates": 20, "lambdas": 11, "folds": 3}
PUBLISHED_SIZES = np.geomspace(50, 4.2e6, 18).round().astype(np.int64)
# A fold's fits see only its training objects: of the 1,854 THINGS objects, the two
# thirds outside the fold's test third, 70 % of them (the rest is validation).
FOLD_OBJECTS = round(1854 * 2 / 3 * 0.7)
STUDY_TRIPLETS = [1_000, 10_000, 100_000, 1_000_000, 4_200_000]


def study_points(device: str, dim: int, iters: int) -> pd.DataFrame:
    """Seconds per iteration of one fit at the study's shape (FOLD_OBJECTS objects, d =
    ``dim``) for each of STUDY_TRIPLETS."""
    return measure([(FOLD_OBJECTS, dim, t, 1, "study") for t in STUDY_TRIPLETS], device, iters)


def study_estimate(points: pd.DataFrame, iterations_per_fit: float) -> pd.DataFrame:
    """Device-hours of the published full experiment, by training size.

    points: measured ``n_triplets`` and ``seconds_per_iteration`` of one fit at the study's
    shape. Seconds per iteration at each published size are interpolated linearly in
    log N and log seconds between the measured points, and held at the nearest measured
    value outside them (below 1,000 triplets a fit costs what it costs at 1,000: the fixed
    per-iteration cost dominates there). Each size has generators × simulations ×
    candidates × λ × folds fits of ``iterations_per_fit`` iterations, one fit at a time
    (batching only helps the small sizes, which cost little). Returns one row per size.
    """
    pts = points.sort_values("n_triplets")
    per_iter = np.exp(np.interp(np.log(PUBLISHED_SIZES), np.log(pts["n_triplets"]),
                                np.log(pts["seconds_per_iteration"])))
    fits = int(np.prod(list(PUBLISHED.values())))
    return pd.DataFrame({"n_train": PUBLISHED_SIZES, "fits": fits,
                         "seconds_per_iteration": per_iter,
                         "iterations_per_fit": iterations_per_fit,
                         "device_hours": fits * iterations_per_fit * per_iter / 3600})


def target_fit(n: int, d: int, n_trip: int, device: str, lam: float) -> dict:
    """One fit at the GPU target's shape (issue: 4.2M triplets, 1,854 objects, d = 1,024 in
    under a second), on planted data, as the recovery rule runs it (config tolerances,
    float32, from W = I): features X (n, d) and a true W* = I + G/√d, choices sampled at the
    temperature that puts the generator at the THINGS noise ceiling. Timed by
    :func:`measured_fit`."""
    from modelrecovery.oddoneout import calibrate_temperature, pair_logits

    gen = np.random.default_rng(0)
    x = (gen.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    sim = similarity(x, np.eye(d) + gen.standard_normal((d, d)) / np.sqrt(d))
    objects = np.arange(n)
    temp = calibrate_temperature(pair_logits(sim, sampling.sample_triplets(
        objects, 5000, gen, n)), 0.678)
    trip = sampling.sample_choices(sim, sampling.sample_triplets(objects, n_trip, gen, n),
                                   temp, gen)
    del sim
    sets = fitting.TripletSets.from_arrays([trip])
    opts = fitting.FitOptions(device=device, max_memory_gb=16.0)
    res, seconds, peak = measured_fit(x, sets, np.zeros(1, dtype=np.int64), np.array([lam]),
                                      opts)
    return {"n_objects": n, "dim": d, "n_triplets": int(len(trip)), "lambda": lam,
            "seconds": seconds, "iterations": int(res.iterations[0]),
            "evaluations": res.evaluations, "status": res.status[0],
            "train_nll": float(res.train_nll[0]), "mode": res.mode,
            "peak_memory_mb": peak / 2**20,
            "estimated_memory_mb": fitting.memory_estimate(n, len(trip), d, 1, opts,
                                                           res.mode) / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one scaling or target point, as JSON")
    ap.add_argument("--point")
    ap.add_argument("--target-point")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args(argv)
    keep_freed_memory()  # as the workflow's fitting jobs run
    if args.point:
        n, d, t, b = json.loads(args.point)
        print(json.dumps(scaling_point(n, d, t, b, args.device, args.iters)))
    if args.target_point:
        n, d, t, lam = json.loads(args.target_point)
        print(json.dumps(target_fit(n, d, t, args.device, lam)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
