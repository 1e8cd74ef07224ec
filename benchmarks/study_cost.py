"""The CPU time of a study, projected from a measured run of the workflow.

    python benchmarks/study_cost.py --run WORKDIR --run-config CONFIG [--config STUDY | --published]

WORKDIR is a finished run (its ``logs/benchmarks/``, e.g. the THINGS rehearsal) and
CONFIG its config. Its recover and align jobs give the wall seconds per fit at each
measured training size N (a job's time over its fits: candidates × folds × λ, one λ
for zero_shot), per experiment's method. The projection of a study (``--config``, or
``--published``: the published full experiment, 20 generators × 30 simulations × 18
training sizes from 50 to 4.2M × 20 candidates × 11 λ × 3 folds) multiplies its jobs'
fits by those seconds:

- the run's fits are taken as of d = ``--run-dim`` (256: the rehearsal's candidates are
  PCA'd to at most 256 dimensions);
- at the run's sizes, its seconds per fit (log-log interpolated between them; below the
  smallest, the smallest's) times the kernel's time per iteration at (d, N) over that at
  (run's d, N);
- above the largest measured size N₀, the seconds per fit at N₀ times the kernel's time
  per iteration at (d, N) over that at (run's d, N₀).

The kernel's times per iteration are measured at the study's shape (865 objects, one
fit) for d = 256 (benchmarks/results/study-points-d256-cpu.csv) and d = 1,024
(scaling-cpu.csv, axis ``study``), N = 10³ to 4.2M, log-log interpolated in N and d
(held at the ends). The two differ most at small N (7× at 10⁵) and hardly at 4.2M
(0.61 against 0.59 s), where the gathers, whose cost does not depend on d, dominate.

Methods the run did not measure are costed as ``full`` (an upper bound for diagonal
and low_rank) and marked so. Every figure is wall time of a job on the run's machine at
the run's ``fitting.threads`` (job-hours; core-hours are that times the threads); the
iterations a fit takes are the run's (its data's). Align, simulation and analysis jobs
are left out: they do not multiply with generators, seeds and sizes (the published
shape has 20 align jobs beside 10,800 recover jobs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rule_times import job_rows  # noqa: E402
from scaling import PUBLISHED, PUBLISHED_SIZES  # noqa: E402

SCALING = HERE / "results" / "scaling-cpu.csv"
# The kernel's time per iteration against N at the study's shape, by feature dimension.
KERNEL_POINTS = {256: (HERE / "results" / "study-points-d256-cpu.csv", None),
                 1024: (SCALING, "study")}


def fits_per_job(experiment: dict, cfg: dict, n_candidates: int) -> int:
    """Fits of one recover job: candidates × folds × λ (zero_shot: one λ) × designs."""
    lambdas = 1 if experiment["method"] == "zero_shot" else len(experiment["lambdas"])
    designs = len(cfg.get("designs") or ["random"])
    return n_candidates * cfg["simulation"]["folds"] * lambdas * designs


def models(cfg: dict) -> list[str]:
    """The config's candidate models (a THINGS or file world's features, or synthetic)."""
    world = cfg["world"]
    source = world["source"]
    if source == "synthetic":
        return [m["name"] for m in world["synthetic"]["models"]]
    return list(world[source]["features"])


def seconds_per_fit(run: Path, run_cfg: dict) -> pd.DataFrame:
    """Measured recover seconds per fit by method and N (median over the run's jobs)."""
    jobs = job_rows(run)
    jobs = jobs[jobs["rule"] == "recover"].copy()
    n_cand = len(models(run_cfg))
    method = {name: e["method"] for name, e in run_cfg["experiments"].items()}
    fits = {name: fits_per_job(e, run_cfg, n_cand) for name, e in run_cfg["experiments"].items()}
    jobs["method"] = jobs["experiment"].map(method)
    jobs["per_fit"] = jobs["s"] / jobs["experiment"].map(fits)
    return jobs.groupby(["method", "N"])["per_fit"].median().reset_index()


def iteration_seconds(dim: float, sizes: np.ndarray) -> np.ndarray:
    """The kernel's measured seconds per iteration of one fit at the study's shape, for
    feature dimension ``dim`` and training sizes ``sizes`` (log-log interpolation in N
    along each measured d, then in d between them; held beyond the ends)."""
    dims = sorted(KERNEL_POINTS)
    logs = []
    for d in dims:
        path, axis = KERNEL_POINTS[d]
        pts = pd.read_csv(path)
        pts = (pts if axis is None else pts[pts["axis"] == axis]).sort_values("n_triplets")
        logs.append(np.interp(np.log(sizes), np.log(pts["n_triplets"].to_numpy(float)),
                              np.log(pts["seconds_per_iteration"].to_numpy(float))))
    share = np.clip((np.log(dim) - np.log(dims[0])) / (np.log(dims[1]) - np.log(dims[0])),
                    0.0, 1.0)
    return np.exp((1 - share) * logs[0] + share * logs[1])


def per_fit_at(measured: pd.DataFrame, sizes: np.ndarray, dim: float, run_dim: float
               ) -> np.ndarray:
    """Seconds per fit at ``sizes`` for features of dimension ``dim``, from one method's
    measured (N, per_fit) points of a run at ``run_dim`` (see the module's text)."""
    n, s = measured["N"].to_numpy(float), measured["per_fit"].to_numpy(float)
    anchor = np.minimum(sizes, n.max())
    at_anchor = np.exp(np.interp(np.log(anchor), np.log(n), np.log(s)))
    return at_anchor * iteration_seconds(dim, sizes) / iteration_seconds(run_dim, anchor)


def study_plan(cfg: dict | None) -> list[dict]:
    """One entry per experiment: method, λ count and the jobs of each training size."""
    if cfg is None:
        jobs = PUBLISHED["generators"] * PUBLISHED["simulations"]
        return [{"experiment": "full (published)", "method": "full",
                 "fits": PUBLISHED["candidates"] * PUBLISHED["lambdas"] * PUBLISHED["folds"],
                 "sizes": PUBLISHED_SIZES.astype(float), "jobs": jobs}]
    names = models(cfg)
    generators = cfg.get("generators") or names
    return [{"experiment": name, "method": e["method"].split(":")[0],
             "fits": fits_per_job(e, cfg, len(names)),
             "sizes": np.asarray(cfg["simulation"]["training_sizes"], dtype=float),
             "jobs": len(generators) * cfg["simulation"]["seeds"]}
            for name, e in cfg["experiments"].items()]


def projection(per_fit: pd.DataFrame, plan: list[dict], dim: float, run_dim: float
               ) -> pd.DataFrame:
    """Job-hours by experiment and N for a study of feature dimension ``dim`` from a
    run at ``run_dim`` (zero_shot's fits, which have no D × D work, scale with N alone)."""
    rows = []
    for exp in plan:
        measured = per_fit[per_fit["method"] == exp["method"]]
        stand_in = measured.empty
        if stand_in:
            measured = per_fit[per_fit["method"] == "full"]
        own_dim = run_dim if exp["method"] == "zero_shot" else dim
        seconds = per_fit_at(measured, exp["sizes"], own_dim, run_dim)
        for n, s in zip(exp["sizes"], seconds):
            rows.append({"experiment": exp["experiment"], "method": exp["method"],
                         "costed_as": "full" if stand_in else exp["method"], "N": int(n),
                         "jobs": exp["jobs"], "fits_per_job": exp["fits"],
                         "hours_per_job": s * exp["fits"] / 3600,
                         "job_hours": s * exp["fits"] * exp["jobs"] / 3600})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--run-config", type=Path, required=True)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", type=Path)
    which.add_argument("--published", action="store_true")
    ap.add_argument("--run-dim", type=int, default=256,
                    help="the feature dimension the run's fits are taken as")
    ap.add_argument("--dim", type=int, default=None,
                    help="the study's largest feature dimension (default: the run's)")
    args = ap.parse_args(argv)
    run_cfg = yaml.safe_load(args.run_config.read_text())
    per_fit = seconds_per_fit(args.run, run_cfg)
    plan = study_plan(None if args.published else yaml.safe_load(args.config.read_text()))
    dim = args.dim or args.run_dim
    table = projection(per_fit, plan, dim, args.run_dim)
    print("measured seconds per fit (recover jobs of the run):")
    print(per_fit.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nprojected at d = {dim} from the run's d = {args.run_dim}:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    threads = run_cfg["fitting"]["threads"]
    by_exp = table.groupby("experiment")["job_hours"].sum()
    for name, hours in by_exp.items():
        print(f"{name}: {hours:,.1f} job-hours")
    total = table["job_hours"].sum()
    print(f"total: {total:,.0f} job-hours at the run's {threads} threads per job, "
          f"{total * threads:,.0f} core-hours ({int(table['jobs'].sum()):,} recover jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
