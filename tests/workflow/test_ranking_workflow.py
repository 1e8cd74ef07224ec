"""The published study's ranking and equivalence analyses are in the workflow's DAG: a
dry run of the test study with two experiments of one method that differ in
regulariser plans analyse_ranking per experiment and one compare_regularisers."""

from __future__ import annotations

import pytest

from conftest import base_config, copy_workflow, planned_jobs, run_snakemake

pytestmark = pytest.mark.workflow


def test_the_dry_run_plans_the_ranking_and_equivalence_rules(tmp_path):
    cfg = base_config()
    (name,) = cfg["experiments"]
    spec = cfg["experiments"][name]
    cfg["experiments"] = {name: spec, f"{name}_l2": {**spec, "regulariser": "l2"}}
    cfg["analysis"] = {"equivalence_margin": 0.02}
    workdir = copy_workflow(tmp_path / "study", cfg)
    jobs = planned_jobs(workdir)
    assert jobs["analyse_ranking"] == 2 and jobs["compare_regularisers"] == 1, jobs
    assert jobs["compare_methods"] == 1 and jobs["aggregate"] == 2, jobs
    proc = run_snakemake(workdir, "-n", "-p", "--forcerun", "compare_regularisers",
                         "--until", "compare_regularisers", "analyse_ranking", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout
    assert "modelrecovery compare-regularisers --experiments tiny tiny_l2" in shown, shown
    assert "--regularisers eye_distance l2 --similarities dot dot" in shown, shown
    assert "--margin 0.02" in shown, shown
    assert "modelrecovery analyse-ranking --scores results/tiny/tables/scores.parquet" \
        in shown and "--external results/world/external_scores.parquet" in shown, shown
