"""Benchmark the batched kernel against one-fit-at-a-time L-BFGS, and its scaling.

    python benchmarks/kernel_benchmark.py            # CPU, ~3.5 minutes on 2 cores
    python benchmarks/kernel_benchmark.py --device cuda --scaling full

Part 1 (comparison, benchmarks/recovery_jobs.py): the default synthetic world's recovery
jobs for one generator and seed (every training size of config/config.yaml; 6 candidates ×
3 folds × 5 λ each), fitted by the kernel and, one fit at a time, by the two baselines of
``baseline.py`` (torch.optim.LBFGS at the published code's settings, and at settings that
converge), in this process, on the same data and threads, the sides alternating, each
timed as the best of --repeats runs. The verdict is measured with the threads the recover
rule uses (the config's fitting.threads); --also-threads repeats the converged comparison
at other counts. Reports each speedup, the largest relative differences in final
regularised loss and held-out NLL, and how far each side stops from a converged reference
(the same fits run to a gradient of 1e-13).

Part 2 (scaling, torch's default threads): seconds per L-BFGS iteration and per
objective evaluation against triplets, objects, feature dimension and batch size, each point in its own subprocess so
its peak memory (RSS on CPU, allocator peak on CUDA) is its own.

Part 3 (the published study): seconds per iteration of one fit at that study's shape
(865 objects per fold, d = --study-dim, 1e3 … 4.2e6 triplets), and from them an estimate
of the device-hours of the published full experiment; then one fit at the GPU target's
shape (1,854 objects, 4.2M triplets, d = 1,024), timed.

Writes benchmarks/results/{comparison,scaling,study}-<device>.csv, target-<device>.csv
and scaling-<device>.png.
The last line printed is the verdict:
``speedup R.Rx over one-fit-at-a-time at max relative loss difference D (threads T)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import recovery_jobs as rj  # noqa: E402

from modelrecovery import fitting, simulate  # noqa: E402
from modelrecovery.allocator import keep_freed_memory  # noqa: E402
from modelrecovery.oddoneout import similarity  # noqa: E402

RESULTS = HERE / "results"
Jobs, default_jobs, kernel_options = rj.Jobs, rj.default_jobs, rj.kernel_options


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


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


GRIDS = {
    "quick": {"base": (1854, 64, 100_000, 1),
              "n_triplets": [1_000, 10_000, 100_000, 1_000_000, 4_200_000],
              "n_objects": [300, 1854, 20_000],
              "dim": [64, 256, 1024, 2048],
              "batch": [1, 4, 16, 64]},
}
GRIDS["full"] = GRIDS["quick"]


def _in_subprocess(flag: str, values: list, device: str, iters: int) -> dict | None:
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
    Python so that its peak memory is its own; points that fail are reported and left out."""
    rows = []
    for n, d, t, b, axis in points:
        row = _in_subprocess("--point", [n, d, t, b], device, iters)
        if row is None:
            continue
        row["axis"] = axis
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
    from modelrecovery.calibrate import calibrate_temperature
    from modelrecovery.oddoneout import pair_logits

    gen = np.random.default_rng(0)
    x = (gen.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    sim = similarity(x, np.eye(d) + gen.standard_normal((d, d)) / np.sqrt(d))
    objects = np.arange(n)
    temp = calibrate_temperature(pair_logits(sim, simulate.sample_triplets(
        objects, 5000, gen, n)), 0.678)
    trip = simulate.sample_choices(sim, simulate.sample_triplets(objects, n_trip, gen, n),
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


def report_speed(comp: pd.DataFrame, role: str) -> None:
    """The speedup over the converged baseline at one thread count, and over the sizes
    where the two agree to equal loss; for ``role="verdict"`` the last line is the
    verdict."""
    threads = int(comp["threads"].iloc[0])
    loss = comp["max_rel_loss_diff_converged"].max()
    nll = comp["max_rel_test_nll_diff_converged"].max()
    within = rj.counted(comp)
    sizes = ", ".join(str(n) for n in within["n_train"])
    print(f"threads {threads}: fits per second baseline "
          f"{comp['fits'].sum() / comp['converged_seconds'].sum():.1f}, kernel "
          f"{comp['fits'].sum() / comp['kernel_seconds'].sum():.1f}; over the sizes at equal "
          f"loss (N = {sizes or 'none'}): speedup "
          f"{rj.speedup(within) if len(within) else float('nan'):.1f}x", flush=True)
    if max(loss, nll) > rj.EQUAL_LOSS:
        print(f"  WARNING: a difference above {rj.EQUAL_LOSS:g} (loss {loss:.1e}, held-out NLL "
              f"{nll:.1e}): those sizes' speed does not count; the converged baseline's own "
              f"held-out NLL is up to {comp['converged_rel_test_nll_from_optimum'].max():.1e} "
              f"from the optimum, the kernel's up to "
              f"{comp['kernel_rel_test_nll_from_optimum'].max():.1e}")
    line = (f"speedup {rj.speedup(comp):.1f}x over one-fit-at-a-time at max relative loss "
            f"difference {loss:.1e} (threads {threads})")
    print(line if role == "verdict" else f"  {line}", flush=True)


def report_published(comp: pd.DataFrame) -> None:
    """The kernel against the published code's solver settings: time, and how far that
    solver stops from the converged optimum."""
    print(f"published settings (torch LBFGS max_iter 150, max_eval 450, tolerance_change "
          f"1e-4, at most 100 outer steps), threads {int(comp['threads'].iloc[0])}: "
          f"kernel {rj.speedup(comp, 'published'):.1f}x faster; it stops up to "
          f"{comp['published_rel_loss_above_optimum'].max():.1e} above the converged "
          f"objective, held-out NLL up to {comp['published_rel_test_nll_from_optimum'].max():.1e}"
          f" from the optimum (kernel: {comp['kernel_rel_loss_above_optimum'].max():.1e} / "
          f"{comp['kernel_rel_test_nll_from_optimum'].max():.1e})", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", default=str(HERE.parent / "config" / "config.yaml"))
    ap.add_argument("--generator", default="linear_a")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of the verdict, for baselines and kernel alike "
                         "(default: the config's fitting.threads, as the recover rule runs)")
    ap.add_argument("--also-threads", type=int, nargs="*", default=[2],
                    help="further thread counts to measure against the converged baseline")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="precision of the comparison (both sides). float32 solutions are "
                         "only determined to ~1e-7 relative loss, so their held-out NLLs can "
                         "differ by more than 1e-4 along flat directions of the objective")
    ap.add_argument("--tolerance", choices=["baseline", "config"], default="baseline",
                    help="the kernel's stopping rule: the baseline's own inner tolerances "
                         "(default), or the config's looser fitting tolerances as the "
                         "recovery rule runs (faster; held-out NLLs then differ by >1e-4)")
    ap.add_argument("--scaling", choices=["quick", "full", "none"], default="quick")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each side per training size; the best time counts (this "
                         "VM's single-run times vary by 15-30 %%)")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per scaling point")
    ap.add_argument("--target", choices=["yes", "no"], default="yes",
                    help="time one fit at the GPU target's shape (1,854 objects, 4.2M "
                         "triplets, d = 1,024, planted data; ~15 s on 2 CPU cores)")
    ap.add_argument("--study-dim", type=int, default=1024,
                    help="feature dimension d assumed for every candidate in the estimate of "
                         "the published full experiment's device-hours")
    ap.add_argument("--study-iterations", type=float, default=None,
                    help="iterations per fit for that estimate (default: the mean of this "
                         "run's recovery jobs, part 1)")
    ap.add_argument("--point", help=argparse.SUPPRESS)
    ap.add_argument("--target-point", help=argparse.SUPPRESS)
    args = ap.parse_args()
    # As the workflow's fitting jobs run (modelrecovery.allocator); both sides share it.
    allocator = "glibc, freed memory kept" if keep_freed_memory() else "system default"
    if args.point:
        n, d, t, b = json.loads(args.point)
        print(json.dumps(scaling_point(n, d, t, b, args.device, args.iters)))
        return 0
    if args.target_point:
        n, d, t, lam = json.loads(args.target_point)
        print(json.dumps(target_fit(n, d, t, args.device, lam)))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = args.device.replace(":", "")
    print(f"machine: {machine()}; allocator: {allocator}")
    jobs = rj.default_jobs(Path(args.config), args.generator)
    verdict_threads = args.threads or int(jobs.cfg["fitting"]["threads"])
    parts = []
    for threads in dict.fromkeys([verdict_threads, *args.also_threads]):
        torch.set_num_threads(threads)
        baselines = ("converged", "published") if threads == verdict_threads else ("converged",)
        parts.append(rj.comparison(jobs, args.device, args.dtype, args.tolerance,
                                   max(1, args.repeats), baselines))
    torch.set_num_threads(verdict_threads)
    table = pd.concat(parts, ignore_index=True)
    table.insert(1, "dtype", args.dtype)
    table.insert(0, "machine", machine())
    table.to_csv(RESULTS / f"comparison-{tag}.csv", index=False)
    comp = parts[0]
    if args.scaling != "none":
        print("scaling (one subprocess per point, torch's default threads):")
        scal = scaling(args.device, args.scaling, args.iters)
        study = study_points(args.device, args.study_dim, max(args.iters, 10))
        table = pd.concat([scal, study], ignore_index=True)
        table.insert(0, "machine", machine())
        table.to_csv(RESULTS / f"scaling-{tag}.csv", index=False)
        if len(scal):
            plot_scaling(scal, RESULTS / f"scaling-{tag}.png", f"kernel scaling: {machine()}")
        if len(study):
            iterations = (args.study_iterations if args.study_iterations is not None
                          else float(np.average(comp["kernel_mean_iterations"],
                                                weights=comp["fits"])))
            est = study_estimate(study, iterations)
            est.insert(0, "dim", args.study_dim)
            est.insert(0, "machine", machine())
            est.to_csv(RESULTS / f"study-{tag}.csv", index=False)
            hours = est["device_hours"].sum()
            top = est.nlargest(3, "n_train")["device_hours"].sum() / hours
            print(f"published full experiment ({PUBLISHED['generators']} generators × "
                  f"{len(PUBLISHED_SIZES)} sizes {PUBLISHED_SIZES[0]}…{PUBLISHED_SIZES[-1]:,} × "
                  f"{PUBLISHED['simulations']} simulations × {PUBLISHED['candidates']} "
                  f"candidates × {PUBLISHED['lambdas']} λ × {PUBLISHED['folds']} folds = "
                  f"{int(est['fits'].sum()):,} fits, d = {args.study_dim}, {FOLD_OBJECTS} "
                  f"objects per fold): about {hours:,.0f} hours of one {args.device} device "
                  f"as measured here, at {iterations:.0f} iterations per fit (the mean of "
                  f"part 1's jobs), {top:.0%} of them in the three largest sizes", flush=True)
    if args.target == "yes":
        tgt = _in_subprocess("--target-point", [1854, 1024, 4_200_000, 1e-3], args.device,
                             args.iters)
        if tgt is not None:
            pd.DataFrame([{"machine": machine(), **tgt}]).to_csv(
                RESULTS / f"target-{tag}.csv", index=False)
            print(f"target fit (1,854 objects, {tgt['n_triplets']:,} triplets, d = 1,024, "
                  f"λ = 1e-3): {tgt['seconds']:.2f} s, {tgt['iterations']} iterations "
                  f"({tgt['status']}), peak {tgt['peak_memory_mb']:,.0f} MB "
                  f"(estimate {tgt['estimated_memory_mb']:,.0f})", flush=True)
    for part in parts[1:]:
        report_speed(part, "also")
    report_published(comp)
    report_speed(comp, "verdict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
