"""The kernel benchmark's parts (benchmarks/kernel_benchmark.py and the modules it runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import kernel_ab  # noqa: E402
import scaling  # noqa: E402


def test_study_estimate_interpolates_measured_scaling_and_counts_the_published_fits():
    # A power law in N is a straight line in log-log: interpolation must reproduce it
    # exactly between the measured points, and hold the end values outside them.
    measured = np.array(scaling.STUDY_TRIPLETS, dtype=float)
    points = pd.DataFrame({"n_triplets": measured[::-1],
                           "seconds_per_iteration": 3e-7 * measured[::-1] ** 0.9})
    est = scaling.study_estimate(points, iterations_per_fit=40.0)
    sizes = scaling.PUBLISHED_SIZES
    assert len(sizes) == 18 and sizes[0] == 50 and sizes[-1] == 4_200_000
    expected = 3e-7 * np.clip(sizes, measured.min(), measured.max()) ** 0.9
    np.testing.assert_allclose(est["seconds_per_iteration"], expected, rtol=1e-12)
    fits_per_size = 20 * 30 * 20 * 11 * 3
    assert (est["fits"] == fits_per_size).all()
    assert int(est["fits"].sum()) == 7_128_000  # "millions of sequential solver runs"
    np.testing.assert_allclose(est["device_hours"], fits_per_size * 40.0 * expected / 3600,
                               rtol=1e-12)


def test_target_fit_runs_in_its_own_process_and_learns_the_planted_transform():
    # The GPU target's code path at a small shape, through the same subprocess call the
    # benchmark makes (its peak memory is then its own).
    row = scaling.in_subprocess("--target-point", [120, 8, 5000, 1e-3], "cpu", 3)
    assert row is not None
    assert row["n_objects"] == 120 and row["dim"] == 8 and row["n_triplets"] == 5000
    assert row["status"] in ("gradient", "loss") and row["iterations"] > 0
    # Planted at the THINGS noise ceiling: well below chance (log 3 ≈ 1.099).
    assert row["train_nll"] < np.log(3) - 0.1
    assert row["seconds"] > 0 and row["peak_memory_mb"] > 0


def test_kernel_ab_fits_the_jobs_with_a_commits_kernel_beside_this_one(tmp_path, capsys):
    # The A/B tool imports another commit's package under another name, beside the
    # checkout's own (which it must not shadow), and fits the same jobs with both.
    old = kernel_ab.kernel_at("HEAD", tmp_path / "head")
    assert old.__name__.startswith("modelrecovery_")
    assert old.__name__.endswith((".fitting", ".probe"))
    assert Path(old.__file__).is_relative_to(tmp_path / "head")
    assert kernel_ab.fitting.__name__ == "modelrecovery.fitting"
    # A commit that predates the fitting package: its kernel is the probe module.
    single = kernel_ab.kernel_at("eb495fe", tmp_path / "single")
    assert single.__name__.endswith(".probe")
    assert all(hasattr(single, name) for name in ("FitOptions", "TripletSets", "fit"))
    assert kernel_ab.main(["--against", "HEAD", "--rounds", "1", "--sizes", "100"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    job = [ln for ln in lines if ln.startswith("N=   100")]
    assert len(job) == 1 and "ratio" in job[0], lines
    # Against HEAD both fit the same problems: the objectives agree to the tolerances.
    assert float(job[0].split("max rel. objective diff")[1]) < 1e-6
    assert lines[-1].startswith("this checkout takes ")


def test_the_published_solver_stops_at_or_above_the_converged_one():
    # The published settings end an inner loop on an absolute loss change of 1e-4: on a
    # small problem their fit may stop short of the converged baseline's, never below it.
    import baseline
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    t = np.array([rng.choice(30, 3, replace=False) for _ in range(200)])
    conv = baseline.fit_one(x, t, 1e-3, torch.float64, baseline.CONVERGED)
    pub = baseline.fit_one(x, t, 1e-3, torch.float64, baseline.PUBLISHED)
    assert pub["objective"] >= conv["objective"] * (1 - 1e-9)
    assert pub["outer_steps"] <= baseline.PUBLISHED.max_outer
    assert conv["objective"] < np.log(3)


def test_the_comparison_reports_every_side_against_the_converged_optimum():
    # Part 1 on the test study's world: each side's time, its speedup over each
    # baseline and its distance from the reference optimum, at the threads it ran with.
    import recovery_jobs as rj
    import torch

    jobs = rj.default_jobs(Path(__file__).resolve().parents[1] / ".test" / "config"
                           / "config.yaml", "lin")
    jobs.sizes = jobs.sizes[:1]
    comp = rj.comparison(jobs, "cpu", "float64", "baseline", repeats=1)
    row = comp.iloc[0]
    assert row["threads"] == torch.get_num_threads() and row["fits"] == 3 * 3 * 2
    for name in ("converged", "published"):
        assert row[f"{name}_seconds"] > 0 and row[f"speedup_{name}"] > 0
        # No side ends below the optimum the reference found (to float64 round-off).
        assert row[f"{name}_rel_loss_above_optimum"] > -1e-9
    assert row["kernel_rel_loss_above_optimum"] > -1e-9
    # At the converged baseline's tolerances the kernel reaches the same optimum.
    assert row["max_rel_loss_diff_converged"] < 1e-6
    assert len(rj.counted(comp)) in (0, 1)
    assert rj.speedup(comp) == row["converged_seconds"] / row["kernel_seconds"]


def test_the_study_shape_part_fits_every_candidate_and_lambda_and_agrees_with_the_baseline(
        tmp_path, capsys):
    # The study-shape benchmark at a small shape: every candidate × λ fitted by the
    # kernel in one call, the sampled baseline fits at equal loss, a FLOP rate > 0.
    import study_shape

    out = tmp_path / "shape.csv"
    assert study_shape.main(["--dims", "4", "8", "--sizes", "300", "--sample", "1",
                             "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["fits"] == 2 * len(study_shape.LAMBDAS)
    assert row["baseline_sampled_fits"] == 2
    assert row["max_rel_loss_diff_sampled"] < 1e-4
    assert row["kernel_gflops"] > 0 and 0 < row["share_of_matmul_rate"]
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("study shape: speedup")


def test_a_recover_job_of_several_datasets_is_timed_in_one_call():
    # The workflow's recover job (several datasets in one kernel call) against the
    # comparison's baseline time per fit; the first dataset is the comparison's own.
    import recovery_jobs as rj

    jobs = rj.default_jobs(Path(__file__).resolve().parents[1] / ".test" / "config"
                           / "config.yaml", "lin")
    jobs.sizes = jobs.sizes[:1]
    comp = rj.comparison(jobs, "cpu", "float64", "baseline", repeats=1,
                         baselines=("converged",))
    shards = jobs.shards(3)
    assert shards[0] is jobs.shard and not shards[1].equals(shards[2])
    whole = rj.whole_jobs(jobs, comp, 3, "cpu", "float64", "baseline", repeats=1)
    row = whole.iloc[0]
    assert row["datasets"] == 3 and row["fits"] == 3 * comp.iloc[0]["fits"]
    assert row["max_rel_diff_to_own_call"] < 1e-8
    per_fit = comp.iloc[0]["converged_seconds"] / comp.iloc[0]["fits"]
    assert row["speedup"] == per_fit * row["fits"] / row["kernel_seconds"]


def test_study_cost_multiplies_the_runs_seconds_per_fit_by_the_studys_fits(tmp_path):
    # A run of two candidates, 3 folds and 4 λ (24 fits per recover job) whose jobs took
    # 240 s at N = 1,000 and 480 s at 10,000: 10 and 20 s per fit. A study of 11 λ (66
    # fits per job), one generator and two seeds costs 2 × 66 × those seconds per size;
    # between them log-log interpolated, above them grown as the kernel measured.
    import study_cost

    for n, seconds in ((1000, 240.0), (10_000, 480.0)):
        tsv = tmp_path / "logs" / "benchmarks" / "full" / "recover" / f"a.n{n}.seed0.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:04:00\t1024\n")
    world = {"source": "synthetic", "synthetic": {"models": [{"name": "a"}, {"name": "b"}]}}
    run_cfg = {"world": world, "simulation": {"folds": 3}, "fitting": {"threads": 2},
               "experiments": {"full": {"method": "full", "lambdas": [1, 2, 3, 4]}}}
    per_fit = study_cost.seconds_per_fit(tmp_path, run_cfg)
    np.testing.assert_allclose(per_fit["per_fit"], [10.0, 20.0])
    study = {**run_cfg, "generators": ["a"],
             "simulation": {"folds": 3, "seeds": 2,
                            "training_sizes": [1000, 3162, 10_000, 100_000]},
             "experiments": {"full": {"method": "full", "lambdas": list(range(11))}}}
    plan = study_cost.study_plan(study)
    assert plan[0]["fits"] == 66 and plan[0]["jobs"] == 2
    table = study_cost.projection(per_fit, plan, dim=256, run_dim=256)
    points = pd.read_csv(study_cost.KERNEL_POINTS[256][0]).set_index("n_triplets")
    grown = 20.0 * (points.loc[100_000, "seconds_per_iteration"]
                    / points.loc[10_000, "seconds_per_iteration"])
    expected = np.array([10.0, 10.0 * (20.0 / 10.0) ** np.log10(3.162), 20.0, grown])
    np.testing.assert_allclose(table["job_hours"], 2 * 66 * expected / 3600, rtol=1e-9)
    # At d = 1,024 each size costs what the kernel measured at d = 1,024 over d = 256.
    wide = study_cost.projection(per_fit, plan, dim=1024, run_dim=256)
    scaling_pts = pd.read_csv(study_cost.SCALING)
    at_1024 = scaling_pts[scaling_pts["axis"] == "study"].set_index("n_triplets")
    ratio = (at_1024.loc[10_000, "seconds_per_iteration"]
             / points.loc[10_000, "seconds_per_iteration"])
    assert wide["job_hours"].iloc[2] == pytest.approx(ratio * table["job_hours"].iloc[2])
    assert (wide["job_hours"] > table["job_hours"]).all()
