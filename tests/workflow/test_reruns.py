"""What a change of the config reruns: only what the change can alter.

Each test runs the test study once in its own folder, changes the config as a user
would (more seeds, reordered keys), and counts the jobs a dry run plans under the
workflow profile's rerun triggers (profiles/default: mtime, params, input,
software-env, code), then checks the rerun itself where the count alone could hide
redone work.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import base_config, copy_workflow, mtimes, planned_jobs, run_snakemake

pytestmark = pytest.mark.workflow


def write_config(workdir: Path, cfg: dict) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict]:
    cfg = base_config()
    workdir = copy_workflow(tmp_path_factory.mktemp("reruns"), cfg)
    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert planned_jobs(workdir) == Counter()
    return workdir, cfg


def test_reordered_score_groups_rerun_nothing(study):
    workdir, cfg = study
    groups = cfg["external_scores"]["synthetic"]
    assert len(groups) > 1
    reordered = dict(reversed(list(groups.items())))
    assert list(reordered) != list(groups)
    write_config(workdir, {**cfg, "external_scores": {**cfg["external_scores"],
                                                      "synthetic": reordered}})
    try:
        assert planned_jobs(workdir) == Counter()
    finally:
        write_config(workdir, cfg)


def test_settings_that_change_no_value_rerun_nothing(study):
    # Threads and the GPU request are resources, not params: changing them plans no job.
    # The fit they change the running of gives the same values (wall-clock columns aside),
    # checked here by rerunning one recover job with the new threads.
    workdir, cfg = study
    exp = workdir / "results" / next(iter(cfg["experiments"]))
    table = next(iter(sorted((exp / "recovery").rglob("seed0.parquet"))))
    before = pd.read_parquet(table)
    changed = {**cfg, "fitting": {**cfg["fitting"], "threads": 2},
               "gpu": {"count": 0, "model": "h100"}}
    write_config(workdir, changed)
    try:
        assert planned_jobs(workdir) == Counter()
        target = str(table.relative_to(workdir))
        proc = run_snakemake(workdir, "--force", target)
        assert proc.returncode == 0, proc.stderr[-6000:]
        assert "--threads 2" in proc.stderr, proc.stderr[-3000:]
        after = pd.read_parquet(table)
        timing = [c for c in ("seconds", "fit_seconds") if c in before]
        pd.testing.assert_frame_equal(after.drop(columns=timing),
                                      before.drop(columns=timing), check_exact=True)
    finally:
        write_config(workdir, cfg)
        # The rerun fit is newer than the tables built from it: bring them up to date,
        # so the next test starts from a finished study.
        assert run_snakemake(workdir).returncode == 0
        assert planned_jobs(workdir) == Counter()


def test_a_new_memory_cap_reruns_the_fits_unless_told_otherwise(study):
    # The cap splits a kernel call's batch, which moves the fits' last bits: every job
    # that fits (align, recover) is planned again, and what is built from them. With
    # params left out of the triggers, as after raising the cap for a job that ran out
    # of memory, nothing finished is planned.
    workdir, cfg = study
    write_config(workdir, {**cfg, "fitting": {**cfg["fitting"], "max_memory_gb": 3}})
    try:
        planned = planned_jobs(workdir)
        sizes, seeds = len(cfg["simulation"]["training_sizes"]), cfg["simulation"]["seeds"]
        generators = len(cfg["world"]["synthetic"]["models"])
        assert planned["align"] == generators * len(cfg["experiments"]), planned
        assert planned["recover"] == generators * sizes * seeds * len(cfg["experiments"])
        assert planned_jobs(workdir, "--rerun-triggers", "mtime", "input") == Counter()
    finally:
        write_config(workdir, cfg)


def test_one_more_seed_computes_only_the_new_seed(study):
    # Raising simulation.seeds adds the new seed's simulations and fits (one recover job
    # per generator x size, for the new seed only) and redoes the aggregation; the
    # finished seeds' datasets and fits are not touched, so their compute is not redone.
    workdir, cfg = study
    seeds = cfg["simulation"]["seeds"]
    generators = len(cfg["world"]["synthetic"]["models"])
    sizes = len(cfg["simulation"]["training_sizes"])
    exp = workdir / "results" / next(iter(cfg["experiments"]))
    before = mtimes(exp / "recovery", exp / "simulated", exp / "parameters")
    assert len([p for p in before if "/recovery/" in str(p)]) == generators * sizes * seeds

    more = {**cfg, "simulation": {**cfg["simulation"], "seeds": seeds + 1}}
    write_config(workdir, more)
    try:
        planned = planned_jobs(workdir)
        assert planned["recover"] == generators * sizes, planned
        assert planned["simulate"] == generators, planned
        for upstream in ("synthesize_world", "align", "calibrate"):
            assert planned[upstream] == 0, planned
        proc = run_snakemake(workdir)
        assert proc.returncode == 0, proc.stderr[-6000:]
        after = mtimes(exp / "recovery", exp / "simulated", exp / "parameters")
        assert {p: after[p] for p in before} == before
        new = sorted(set(after) - set(before))
        assert new and all(f"seed{seeds}" in p.name for p in new), new
        # The new seed's fits: one benchmark record per recover job that ran.
        bench = sorted((workdir / "logs" / "benchmarks").rglob(f"*.seed{seeds}.tsv"))
        assert len([b for b in bench if "/recover/" in str(b)]) == generators * sizes
    finally:
        write_config(workdir, cfg)
