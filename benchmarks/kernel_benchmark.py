"""Benchmark the batched kernel against one-fit-at-a-time L-BFGS, its scaling, and the
kernel at the published study's shape, in one run.

    python benchmarks/kernel_benchmark.py            # CPU, under 10 minutes on 2 cores
    python benchmarks/kernel_benchmark.py --device cuda --scaling full --study-shape no

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

Part 2 (scaling, torch's default threads; benchmarks/scaling.py): seconds per L-BFGS
iteration and per objective evaluation against triplets, objects, feature dimension and
batch size, each point in its own subprocess so its peak memory (RSS on CPU, allocator
peak on CUDA) is its own.

Part 3 (the published study; benchmarks/scaling.py): seconds per iteration of one fit at
that study's shape (865 objects per fold, d = --study-dim, 1e3 … 4.2e6 triplets), and
from them an estimate of the device-hours of the published full experiment; then one fit
at the GPU target's shape (1,854 objects, 4.2M triplets, d = 1,024), timed.

Part 4 (the study's shape, CPU; benchmarks/study_shape.py): 1,854 objects in the
published protocol's folds, d = 64 and 256, the 11-λ grid, N = 10³, 10⁴, 10⁵: the kernel
against the converged baseline (timed on a sample of the fits) at the verdict's threads,
and the kernel's share of the machine's matmul rate.

Writes benchmarks/results/{comparison,scaling,study,study-shape}-<device>.csv,
target-<device>.csv and scaling-<device>.png.
The last line printed is the verdict:
``speedup R.Rx over one-fit-at-a-time at max relative loss difference D (threads T)``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import recovery_jobs as rj  # noqa: E402
import scaling as sc  # noqa: E402
import study_shape  # noqa: E402

from modelrecovery.fitting.allocator import keep_freed_memory

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


def _job_speedup(whole: pd.DataFrame) -> float:
    """Baseline time for a table's job fits (its time per fit × fits) over the kernel's."""
    if not len(whole):
        return float("nan")
    return float((whole["baseline_seconds_per_fit"] * whole["fits"]).sum()
                 / whole["kernel_seconds"].sum())


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
    rj.add_job_arguments(ap)
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
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each side per training size; the best time counts (this "
                         "VM's single-run times vary by 15-30 %%)")
    ap.add_argument("--job-datasets", type=int, default=9,
                    help="datasets of the recover job timed as the rule fits it, in one "
                         "call (the default config's designs × seeds)")
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
    ap.add_argument("--study-shape", choices=["yes", "no"], default="yes",
                    help="part 4: the kernel at the published study's shape on CPU "
                         "(~3 minutes on 2 cores)")
    args = ap.parse_args()
    started = time.perf_counter()
    # As the workflow's fitting jobs run (modelrecovery.fitting.allocator); both sides share it.
    allocator = "glibc, freed memory kept" if keep_freed_memory() else "system default"
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = args.device.replace(":", "")
    print(f"machine: {machine()}; allocator: {allocator}")
    jobs = rj.default_jobs(args.config, args.generator)
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
    whole = None
    if args.job_datasets > 1:
        whole = rj.whole_jobs(jobs, comp, args.job_datasets, args.device, args.dtype,
                              args.tolerance, max(1, args.repeats))
        whole.insert(0, "machine", machine())
        whole.to_csv(RESULTS / f"jobs-{tag}.csv", index=False)
    print(f"part 1 done at {time.perf_counter() - started:.0f} s", flush=True)
    if args.scaling != "none":
        print("scaling (one subprocess per point, torch's default threads):")
        scal = sc.scaling(args.device, args.scaling, args.iters)
        study = sc.study_points(args.device, args.study_dim, max(args.iters, 10))
        table = pd.concat([scal, study], ignore_index=True)
        table.insert(0, "machine", machine())
        table.to_csv(RESULTS / f"scaling-{tag}.csv", index=False)
        if len(scal):
            sc.plot_scaling(scal, RESULTS / f"scaling-{tag}.png", f"kernel scaling: {machine()}")
        if len(study):
            iterations = (args.study_iterations if args.study_iterations is not None
                          else float(np.average(comp["kernel_mean_iterations"],
                                                weights=comp["fits"])))
            est = sc.study_estimate(study, iterations)
            est.insert(0, "dim", args.study_dim)
            est.insert(0, "machine", machine())
            est.to_csv(RESULTS / f"study-{tag}.csv", index=False)
            hours = est["device_hours"].sum()
            top = est.nlargest(3, "n_train")["device_hours"].sum() / hours
            pub, sizes = sc.PUBLISHED, sc.PUBLISHED_SIZES
            print(f"published full experiment ({pub['generators']} generators × "
                  f"{len(sizes)} sizes {sizes[0]}…{sizes[-1]:,} × "
                  f"{pub['simulations']} simulations × {pub['candidates']} "
                  f"candidates × {pub['lambdas']} λ × {pub['folds']} folds = "
                  f"{int(est['fits'].sum()):,} fits, d = {args.study_dim}, {sc.FOLD_OBJECTS} "
                  f"objects per fold): about {hours:,.0f} hours of one {args.device} device "
                  f"as measured here, at {iterations:.0f} iterations per fit (the mean of "
                  f"part 1's jobs), {top:.0%} of them in the three largest sizes", flush=True)
    if args.target == "yes":
        tgt = sc.in_subprocess("--target-point", [1854, 1024, 4_200_000, 1e-3], args.device,
                             args.iters)
        if tgt is not None:
            pd.DataFrame([{"machine": machine(), **tgt}]).to_csv(
                RESULTS / f"target-{tag}.csv", index=False)
            print(f"target fit (1,854 objects, {tgt['n_triplets']:,} triplets, d = 1,024, "
                  f"λ = 1e-3): {tgt['seconds']:.2f} s, {tgt['iterations']} iterations "
                  f"({tgt['status']}), peak {tgt['peak_memory_mb']:,.0f} MB "
                  f"(estimate {tgt['estimated_memory_mb']:,.0f})", flush=True)
    print(f"parts 2-3 done at {time.perf_counter() - started:.0f} s", flush=True)
    if args.study_shape == "yes":
        shape = study_shape.run(study_shape.DIMS, study_shape.SIZES, study_shape.SAMPLE,
                                verdict_threads)
        shape.insert(0, "machine", machine())
        shape.to_csv(RESULTS / "study-shape-cpu.csv", index=False)
        print(study_shape.summary(shape, study_shape.SAMPLE), flush=True)
        print(f"part 4 done at {time.perf_counter() - started:.0f} s", flush=True)
    for part in parts[1:]:
        report_speed(part, "also")
    if whole is not None:
        within = whole[whole["n_train"].isin(rj.counted(comp)["n_train"])]
        rate = whole["fits"].sum() / whole["kernel_seconds"].sum()
        print(f"recover jobs as the rule runs them ({args.job_datasets} datasets in one call, "
              f"threads {verdict_threads}): {rate:.1f} fits/s, speedup "
              f"{_job_speedup(whole):.1f}x over the converged baseline's fits/s"
              f" ({_job_speedup(within):.1f}x over the sizes at equal loss)", flush=True)
    report_published(comp)
    report_speed(comp, "verdict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
