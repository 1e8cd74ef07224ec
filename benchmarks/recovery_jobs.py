"""Part 1 of the kernel benchmark: the default world's recovery jobs, fitted by the kernel
and by the one-fit-at-a-time baselines (``baseline.py``) on the same data and threads.

For each training size, every side is timed as the best of ``repeats`` runs, the sides
alternating so that all see the same drift of the machine's speed. Each fit's final
regularised loss and held-out NLL are compared with the converged baseline's (equal loss
is what makes a time comparable) and with a converged reference (the same fits run to a
gradient of 1e-13), which says how far each side stops from the optimum.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import baseline
import numpy as np
import pandas as pd
import torch
import yaml

from modelrecovery import fitting, sampling, settings, simulate
from modelrecovery.cli import args as cli_args
from modelrecovery.fitting.allocator import keep_freed_memory
from modelrecovery.oddoneout import similarity
from modelrecovery.recover import refit
from modelrecovery.seeds import rng_for
from modelrecovery.world import synthetic

# A speedup counts at a training size only where the kernel's and the converged
# baseline's losses and held-out NLLs agree to this relative difference.
EQUAL_LOSS = 1e-4


def options_from_config(fitting_cfg: dict, experiment: dict | None = None,
                        **overrides) -> fitting.FitOptions:
    """The options a workflow run fits with, by the rules' own route: the config's
    ``fitting`` section and experiment (default: full W under eye_distance) as the
    recover rule's flags (:func:`modelrecovery.settings.cli_flags`), parsed by the CLI;
    ``overrides`` replace any field."""
    flags = settings.cli_flags(fitting_cfg, {"lambdas": [1.0], **(experiment or {})})
    args = cli_args.fit_parent().parse_args(flags)
    return dataclasses.replace(cli_args.fit_options(args), **overrides)


def recovery_fits(shard: pd.DataFrame, n_train: int, candidates: dict[str, np.ndarray],
                  lambdas: list[float], options: fitting.FitOptions, *, eval_fraction: float,
                  labels: dict[str, object]) -> pd.DataFrame:
    """One dataset's recovery rows (:func:`modelrecovery.recover.refit.recovery_rows`):
    every fit in one batched kernel call, as the recover job fits a seed's datasets."""
    return recovery_fits_many([shard], n_train, candidates, lambdas, options,
                              eval_fraction=eval_fraction, labels=[labels])[0]


def recovery_fits_many(shards: list[pd.DataFrame], n_train: int,
                       candidates: dict[str, np.ndarray], lambdas: list[float],
                       options: fitting.FitOptions, *, eval_fraction: float,
                       labels: list[dict[str, object]]) -> list[pd.DataFrame]:
    """:func:`recovery_fits` for each of ``shards`` (with its ``labels``), every dataset's
    fits in one kernel call (:func:`modelrecovery.recover.refit.fit_datasets`)."""
    every = refit.fit_datasets(shards, n_train, candidates, lambdas, options,
                               eval_fraction=eval_fraction)
    return [refit.recovery_rows(fits, n_train, lab) for fits, lab in zip(every, labels)]


def kernel_options(cfg: dict, device: str, dtype: str, tolerance: str) -> fitting.FitOptions:
    """The kernel as the recovery rule runs it (the config's ``fitting`` section), for
    the baseline's full W under eye_distance, in the comparison's device and dtype.
    ``tolerance="baseline"`` instead stops on the converged baseline's inner rule
    (torch's defaults: largest gradient entry ≤ 1e-7 or a loss change ≤ 1e-9)."""
    opts = dict(device=device, dtype=dtype)
    if tolerance == "baseline":
        opts.update(grad_tol=1e-7, loss_tol=1e-9)
    return options_from_config(cfg["fitting"], **opts)


@dataclasses.dataclass
class Jobs:
    """The default world's recovery jobs for one generator and seed: every candidate's
    features, one simulated shard, and per job (training size) the fits' order."""

    cfg: dict
    names: list[str]
    feats: list[np.ndarray]
    shard: pd.DataFrame
    folds: list[int]
    lambdas: list[float]
    sizes: list[int]
    generator: str = ""
    temperature: float = 1.0
    # The converged reference fits per (N, device, dtype): the same at every thread count.
    references: dict = dataclasses.field(default_factory=dict)

    def sets(self, n_train: int, split: str = "train") -> list[np.ndarray]:
        """Each fold's first ``n_train`` training triplets (``split="test"``: the
        job's test triplets)."""
        if split == "test":
            n_train = simulate.eval_size(n_train, self.cfg["simulation"]["eval_fraction"])
        return [simulate.subset(self.shard, f, split, n_train) for f in self.folds]

    def shards(self, count: int) -> list[pd.DataFrame]:
        """``count`` simulated datasets of the generator (seeds 0, 1, …; seed 0 is
        :attr:`shard`), as a recover job of ``count`` designs × seeds fits them."""
        cfg, sim = self.cfg, similarity(self.feats[self.names.index(self.generator)])
        return [self.shard] + [
            simulate.simulate_dataset(sim, self.temperature, max(self.sizes),
                                      n_folds=cfg["simulation"]["folds"],
                                      val_fraction=cfg["simulation"]["val_fraction"],
                                      eval_fraction=cfg["simulation"]["eval_fraction"],
                                      rng=rng_for(seed, "bench", self.generator))
            for seed in range(1, count)]

    def order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per fit, in the baseline's loop order (candidates × folds × λ): its features,
        its set and its λ."""
        n_c, n_f, n_l = len(self.names), len(self.folds), len(self.lambdas)
        return (np.repeat(np.arange(n_c), n_f * n_l),
                np.tile(np.repeat(np.arange(n_f), n_l), n_c),
                np.tile(self.lambdas, n_c * n_f))


def default_jobs(config: Path, generator: str) -> Jobs:
    """The recovery jobs of ``generator`` (seed 0) in the config's synthetic world."""
    cfg = yaml.safe_load(config.read_text())
    world = synthetic.make_world(cfg["world"]["synthetic"], cfg["study_seed"],
                                 cfg["noise_ceiling"])
    lambdas = [float(v) for v in next(iter(cfg["experiments"].values()))["lambdas"]]
    sizes = sorted(cfg["simulation"]["training_sizes"])
    sim = similarity(world.features[generator])
    # A generator at the noise ceiling, as the workflow's calibrate step would give.
    from modelrecovery.oddoneout import calibrate_temperature, pair_logits
    probe_trip = sampling.sample_triplets(np.arange(sim.shape[0]), 5000,
                                          rng_for(0, "bench", "calib"), sim.shape[0])
    temp = calibrate_temperature(pair_logits(sim, probe_trip), cfg["noise_ceiling"])
    shard = simulate.simulate_dataset(sim, temp, max(sizes), n_folds=cfg["simulation"]["folds"],
                                      val_fraction=cfg["simulation"]["val_fraction"],
                                      eval_fraction=cfg["simulation"]["eval_fraction"],
                                      rng=rng_for(0, "bench", generator))
    names = list(world.features)
    return Jobs(cfg, names, [world.features[n] for n in names], shard,
                sorted(shard["fold"].unique()), lambdas, sizes, generator, temp)


def add_job_arguments(ap: argparse.ArgumentParser) -> None:
    """``--config`` and ``--generator``: whose default-world jobs a script fits."""
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent
                    / "config" / "config.yaml")
    ap.add_argument("--generator", default="linear_a")


def as_the_rule_runs(args: argparse.Namespace) -> tuple[Jobs, fitting.FitOptions]:
    """The jobs of ``args.config`` and ``args.generator`` and the options the recover rule
    fits them with on CPU (the config's fitting section), with torch at the rule's
    threads and the workflow's allocator setting."""
    keep_freed_memory()
    jobs = default_jobs(args.config, args.generator)
    torch.set_num_threads(int(jobs.cfg["fitting"]["threads"]))
    return jobs, options_from_config(jobs.cfg["fitting"], device="cpu")


def _padded(ws: list[torch.Tensor], dmax: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(len(ws), dmax, dmax, dtype=dtype)
    for i, w in enumerate(ws):
        out[i, : w.shape[0], : w.shape[1]] = w
    return out


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def comparison(jobs: Jobs, device: str, dtype: str, tolerance: str, repeats: int,
               baselines: tuple[str, ...] = ("converged", "published")) -> pd.DataFrame:
    """One row per training size at the current torch threads: each side's best time,
    the speedup over each baseline, and each side's distance from the converged optimum
    (relative final loss above it; relative held-out NLL difference from it)."""
    cfg, names, feats, lambdas = jobs.cfg, jobs.names, jobs.feats, jobs.lambdas
    pf, ps, pl = jobs.order()
    tdt = torch.float64 if dtype == "float64" else torch.float32
    opts = kernel_options(cfg, device, dtype, tolerance)
    rows = []
    for n_train in jobs.sizes:
        train, test = jobs.sets(n_train), jobs.sets(n_train, "test")
        sets = fitting.TripletSets.from_arrays(train, dtype=tdt)
        test_sets = fitting.TripletSets.from_arrays(test, dtype=tdt)
        secs = {name: float("inf") for name in (*baselines, "kernel")}
        records = {}
        for _ in range(repeats):
            for name in baselines:
                records[name], t = baseline.run(dict(zip(names, feats)), train, lambdas, tdt,
                                                baseline.BASELINES[name])
                secs[name] = min(secs[name], t)
            start = time.perf_counter()
            res = fitting.fit(feats, sets, ps, pl, opts, problem_features=pf)
            if res.weights.is_cuda:
                torch.cuda.synchronize()
            secs["kernel"] = min(secs["kernel"], time.perf_counter() - start)
        dmax = res.weights.shape[-1]
        # Where every side should be: the same fits run far past any stopping rule (cold
        # from W = I, like the baselines), untimed.
        key = (n_train, device, dtype)
        if key not in jobs.references:
            ref = fitting.fit(feats, sets, ps, pl, fitting.FitOptions(
                device=device, dtype=dtype, grad_tol=1e-13, loss_tol=0.0, max_iter=20_000,
                history=opts.history, warm_start=False), problem_features=pf)
            _, r_nll = fitting.evaluate(feats, ref.weights, test_sets, ps, problem_features=pf)
            jobs.references[key] = (ref.objective.double().cpu().numpy(), r_nll,
                                    float(ref.converged.float().mean()))
        r_obj, r_nll, r_converged = jobs.references[key]
        objective = {"kernel": res.objective.double().cpu().numpy()}
        _, k_nll = fitting.evaluate(feats, res.weights, test_sets, ps, problem_features=pf)
        nll = {"kernel": k_nll}
        for name in baselines:
            objective[name] = np.array([r["objective"] for r in records[name]])
            w = _padded([r["weights"] for r in records[name]], dmax, tdt)
            _, nll[name] = fitting.evaluate(feats, w, test_sets, ps, problem_features=pf)
        row = {"threads": torch.get_num_threads(), "n_train": n_train, "fits": len(pl),
               "kernel_seconds": secs["kernel"], "kernel_mode": res.mode,
               "kernel_evaluations": res.evaluations,
               "kernel_mean_iterations": float(res.iterations.double().mean()),
               "kernel_converged": float(res.converged.float().mean()),
               "reference_converged": r_converged}
        for name in ("kernel", *baselines):
            row[f"{name}_rel_loss_above_optimum"] = float(np.max((objective[name] - r_obj)
                                                                 / np.abs(r_obj)))
            row[f"{name}_rel_test_nll_from_optimum"] = _max_rel(nll[name], r_nll)
        for name in baselines:
            row[f"{name}_seconds"] = secs[name]
            row[f"speedup_{name}"] = secs[name] / secs["kernel"]
            row[f"max_rel_loss_diff_{name}"] = _max_rel(objective["kernel"], objective[name])
            row[f"max_rel_test_nll_diff_{name}"] = _max_rel(nll["kernel"], nll[name])
        rows.append(row)
        print_row(row, baselines)
    return pd.DataFrame(rows)


def print_row(r: dict, baselines: tuple[str, ...]) -> None:
    print(f"threads {r['threads']}  N={r['n_train']:6d}  {r['fits']} fits  kernel "
          f"{r['kernel_seconds']:6.2f} s", flush=True)
    for name in baselines:
        print(f"{'':10s}{name:9s} {r[f'{name}_seconds']:7.2f} s  speedup "
              f"{r[f'speedup_{name}']:5.1f}x  max rel loss diff "
              f"{r[f'max_rel_loss_diff_{name}']:.1e}  max rel test-NLL diff "
              f"{r[f'max_rel_test_nll_diff_{name}']:.1e}", flush=True)
    stops = "; ".join(f"{name} {r[f'{name}_rel_loss_above_optimum']:.1e} / "
                      f"{r[f'{name}_rel_test_nll_from_optimum']:.1e}"
                      for name in ("kernel", *baselines))
    print(f"{'':10s}from the converged optimum (loss above / test NLL off): {stops}",
          flush=True)


def counted(comp: pd.DataFrame, name: str = "converged") -> pd.DataFrame:
    """The training sizes at which the kernel and baseline ``name`` agree to
    :data:`EQUAL_LOSS` in loss and held-out NLL."""
    diff = comp[[f"max_rel_loss_diff_{name}", f"max_rel_test_nll_diff_{name}"]].max(axis=1)
    return comp[diff <= EQUAL_LOSS]


def speedup(comp: pd.DataFrame, name: str = "converged") -> float:
    """Total baseline time over total kernel time."""
    return float(comp[f"{name}_seconds"].sum() / comp["kernel_seconds"].sum())


def whole_jobs(jobs: Jobs, comp: pd.DataFrame, count: int, device: str, dtype: str,
               tolerance: str, repeats: int) -> pd.DataFrame:
    """The kernel on a recover job as the rule runs it: ``count`` datasets of each size
    in one call (:func:`modelrecovery.recover.refit.fit_datasets`' problem layout), timed as
    the best of ``repeats``, against the converged baseline's time per fit in ``comp``
    (:func:`comparison` at the same threads; the baseline fits one at a time, so its
    time per fit does not depend on how many datasets a job holds). The first dataset
    is the comparison's own: its objectives are checked against a call of its own."""
    tdt = torch.float64 if dtype == "float64" else torch.float32
    opts = kernel_options(jobs.cfg, device, dtype, tolerance)
    shards = jobs.shards(count)
    pf1, ps1, pl1 = jobs.order()
    n_sets = len(jobs.folds)
    pf = np.tile(pf1, count)
    ps = np.concatenate([ps1 + i * n_sets for i in range(count)])
    pl = np.tile(pl1, count)
    rows = []
    for _, part in comp.iterrows():
        n_train = int(part["n_train"])
        sets = fitting.TripletSets.from_arrays(
            [simulate.subset(sh, f, "train", n_train) for sh in shards for f in jobs.folds],
            dtype=tdt)
        best = float("inf")
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            res = fitting.fit(jobs.feats, sets, ps, pl, opts, problem_features=pf)
            best = min(best, time.perf_counter() - start)
        alone = fitting.fit(jobs.feats, fitting.TripletSets.from_arrays(
            jobs.sets(n_train), dtype=tdt), ps1, pl1, opts, problem_features=pf1)
        first = res.objective[: len(pl1)].double().cpu().numpy()
        baseline_per_fit = part["converged_seconds"] / part["fits"]
        rows.append({"threads": torch.get_num_threads(), "n_train": n_train,
                     "datasets": count, "fits": len(pl), "kernel_seconds": best,
                     "baseline_seconds_per_fit": baseline_per_fit,
                     "speedup": baseline_per_fit * len(pl) / best,
                     "max_rel_diff_to_own_call": _max_rel(
                         first, alone.objective.double().cpu().numpy())})
        print(f"threads {rows[-1]['threads']}  N={n_train:6d}  recover job of {count} "
              f"datasets ({len(pl)} fits) in one call: kernel {best:6.2f} s, "
              f"{len(pl) / best:6.1f} fits/s against the converged baseline's "
              f"{1 / baseline_per_fit:5.1f}: {rows[-1]['speedup']:5.1f}x  (first dataset "
              f"within {rows[-1]['max_rel_diff_to_own_call']:.1e} of its own call)",
              flush=True)
    return pd.DataFrame(rows)
