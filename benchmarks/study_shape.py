"""The kernel at the published study's shape, against the converged baseline at equal loss.

    python benchmarks/study_shape.py      # CPU, ~3 minutes on 2 cores

Part 4 of kernel_benchmark.py, which runs it at the verdict's threads.

1,854 objects split as the published protocol splits one fold (concept-disjoint, 3 folds,
30 % of the rest to validation: 865 training, 371 validation, 618 test objects);
candidates with d ∈ --dims (64 and 256), built from one latent geometry; the published
11-λ grid (1e-6 … 1e4); N ∈ --sizes training triplets of the fold, simulated from a
planted generator at the THINGS noise ceiling. At each N the kernel fits every candidate
× λ of the fold in one call, as a recovery job does (float64, stopping on the converged
baseline's tolerances, warm starts along λ, at the recover rule's 1 thread). The
converged baseline (``baseline.py``) fits --sample of each candidate's λ one at a time,
and its time for a candidate's other fits is that sample's mean (said so in the output);
equal loss is checked on the sampled fits.

Reported per N: both times, the speedup, the largest relative loss difference on the
sample, and the kernel's arithmetic rate: the matrix-product FLOPs of its evaluations
(:func:`evaluation_flops`, over the objects the triplets hold), per second, and as a share of this
machine's float64 matmul rate measured at the same threads (the limit for this shape).
Writes benchmarks/results/study-shape-cpu.csv (--out).
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

import baseline  # noqa: E402
import recovery_jobs as rj  # noqa: E402

from modelrecovery import fitting, sampling, simulate
from modelrecovery.fitting.allocator import keep_freed_memory
from modelrecovery.oddoneout import calibrate_temperature, pair_logits, similarity

N_OBJECTS = 1854
LAMBDAS = [float(v) for v in np.logspace(-6, 4, 11)]
# Baseline fits timed per candidate and N: one fit at N = 10⁵ takes ~45 s on this VM.
SAMPLE = 1
DIMS, SIZES = [64, 256], [1_000, 10_000, 100_000]


def world(dims: list[int], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Candidate features (N_OBJECTS, d) for each d, sharing a 32-dimensional latent
    geometry plus their own noise, and the generator's similarity (the first candidate
    under a planted W* = I + G/√d)."""
    gen = np.random.default_rng(seed)
    latent = gen.standard_normal((N_OBJECTS, 32))
    feats = []
    for d in dims:
        x = latent @ gen.standard_normal((32, d)) / np.sqrt(32)
        x += 0.5 * gen.standard_normal((N_OBJECTS, d))
        feats.append(x / np.sqrt(d))
    d0 = dims[0]
    sim = similarity(feats[0], np.eye(d0) + gen.standard_normal((d0, d0)) / np.sqrt(d0))
    return feats, sim


def matmul_rate(dtype: torch.dtype, size: int = 1024, repeats: int = 5) -> float:
    """This machine's matrix-product rate in FLOP/s at the current threads (best of
    ``repeats`` square products of ``size``)."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def evaluation_flops(mode: str, n: int, d: int, n_triplets: int) -> float:
    """Multiply-add FLOPs of one problem evaluation over n objects: Z = X W and its
    gradient (4·n·d²), then either S = Z Zᵀ and its gradient (similarity mode, 4·n²·d)
    or the triplets' three row products and their gradients (rows and pairs, 12·N·d)."""
    pairs = 4.0 * n * n * d if mode == "similarity" else 12.0 * n_triplets * d
    return 4.0 * n * d * d + pairs


def run(dims: list[int], sizes: list[int], sample: int, threads: int) -> pd.DataFrame:
    """The study-shape comparison at ``threads`` torch threads: one row per N (see the
    module's docstring), each printed as it is measured."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(dims, sizes, sample, threads)
    finally:
        torch.set_num_threads(before)


def _run(dims: list[int], sizes: list[int], sample: int, threads: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    feats, sim = world(dims)
    fold = simulate.concept_folds(N_OBJECTS, 3, 0.3, rng)[0]
    temp = calibrate_temperature(pair_logits(sim, sampling.sample_triplets(
        fold.train, 5000, rng, N_OBJECTS)), 0.678)
    trip = sampling.sample_choices(sim, sampling.sample_triplets(
        fold.train, max(sizes), rng, N_OBJECTS), temp, rng)
    rate = matmul_rate(torch.float64)
    print(f"study shape: objects {N_OBJECTS} (fold: {len(fold.train)} train / "
          f"{len(fold.val)} val / {len(fold.test)} test), d = {dims}, {len(LAMBDAS)} λ, "
          f"threads {threads}; float64 matmul rate {rate / 1e9:.1f} GFLOP/s", flush=True)
    n_c, n_l = len(feats), len(LAMBDAS)
    pf, pl = np.repeat(np.arange(n_c), n_l), np.tile(LAMBDAS, n_c)
    ps = np.zeros(len(pl), dtype=np.int64)
    opts = rj.kernel_options({"fitting": {}}, "cpu", "float64", "baseline")
    rows = []
    for n_train in sorted(sizes):
        train = trip[:n_train]
        sets = fitting.TripletSets.from_arrays([train], dtype=torch.float64)
        start = time.perf_counter()
        res = fitting.fit(feats, sets, ps, pl, opts, problem_features=pf)
        k_secs = time.perf_counter() - start
        iters = res.iterations.double().numpy()
        n_local = len(np.unique(train))
        per_iteration = res.problem_evaluations / iters.sum()
        modes = res.mode.split("+")  # one per dimension, ascending, where they differ
        mode_of = dict(zip(sorted(set(dims)), modes * len(dims)))
        flops = sum(it * per_iteration * evaluation_flops(mode_of[dims[c]], n_local,
                                                          dims[c], n_train)
                    for it, c in zip(iters, pf))
        # Per candidate, `sample` of its λ at random; its other fits take their mean.
        pick_rng = np.random.default_rng(n_train)
        b_secs, diffs, b_total = [], [], 0.0
        for c in range(n_c):
            secs = []
            for i in c * n_l + pick_rng.choice(n_l, sample, replace=False):
                t0 = time.perf_counter()
                rec = baseline.fit_one(feats[c], train, float(pl[i]), torch.float64)
                secs.append(time.perf_counter() - t0)
                diffs.append(abs(float(res.objective[i]) - rec["objective"])
                             / abs(rec["objective"]))
            b_secs += secs
            b_total += float(np.mean(secs)) * n_l
        row = {"n_train": n_train, "fits": len(pl), "kernel_seconds": k_secs,
               "kernel_mode": res.mode, "kernel_mean_iterations": float(iters.mean()),
               "baseline_sampled_fits": len(b_secs),
               "baseline_seconds_per_fit": float(np.mean(b_secs)),
               "baseline_seconds_estimated": b_total, "speedup": b_total / k_secs,
               "max_rel_loss_diff_sampled": float(max(diffs)),
               "kernel_gflops": flops / k_secs / 1e9,
               "share_of_matmul_rate": flops / k_secs / rate, "threads": threads}
        rows.append(row)
        print(f"  N={n_train:7d}  {len(pl)} fits  kernel {k_secs:7.2f} s ({res.mode}, "
              f"{iters.mean():.0f} iterations/fit)  baseline {np.mean(b_secs):6.2f} s/fit "
              f"on {len(b_secs)} sampled fits → {b_total:7.1f} s for all  speedup "
              f"{row['speedup']:5.1f}x  max rel loss diff {row['max_rel_loss_diff_sampled']:.1e}"
              f"  kernel {row['kernel_gflops']:.1f} GFLOP/s = "
              f"{row['share_of_matmul_rate']:.0%} of matmul", flush=True)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, sample: int) -> str:
    """The part's one-line result."""
    loss = table["max_rel_loss_diff_sampled"].max()
    speed = table["baseline_seconds_estimated"].sum() / table["kernel_seconds"].sum()
    return (f"study shape: speedup {speed:.1f}x over the converged baseline (timed on "
            f"{sample} fits per candidate and N, extrapolated) at max relative loss "
            f"difference {loss:.1e}"
            + ("" if loss <= rj.EQUAL_LOSS else " (above 1e-4: the speed does not count)"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=DIMS)
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    ap.add_argument("--sample", type=int, default=SAMPLE,
                    help="baseline fits timed per candidate and N (the rest take their mean)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the recover rule's)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "study-shape-cpu.csv")
    args = ap.parse_args(argv)
    keep_freed_memory()
    table = run(args.dims, args.sizes, args.sample, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(summary(table, args.sample))
    return 0


if __name__ == "__main__":
    sys.exit(main())
