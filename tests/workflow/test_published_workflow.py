"""Config key ``published_results``: with it the dry run plans the comparison rule and
the report's figure; without it the rule is absent; a missing file is refused in one
line naming the key."""

from __future__ import annotations

import pytest
import yaml

from conftest import base_config, copy_workflow, planned_jobs, run_snakemake
from published_db import write_db

pytestmark = pytest.mark.workflow


def test_the_rule_runs_only_when_published_results_is_set(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", base_config())
    without = planned_jobs(workdir)
    assert without["aggregate"] >= 1           # the control: the study itself is planned
    assert "published_comparison" not in without

    (workdir / "downloads").mkdir()
    write_db(workdir / "downloads" / "full_W.db")
    config = workdir / "config" / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(published_results="downloads/full_W.db"),
                                     sort_keys=False))
    assert planned_jobs(workdir)["published_comparison"] == 1
    proc = run_snakemake(workdir, "-n", "-p", "published_comparison", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = " ".join(proc.stdout.split())
    assert "modelrecovery import-published --database downloads/full_W.db" in command
    assert "published_curves=results/comparison/tables/published_curves.parquet" in command
    assert "published_comparison=results/comparison/figures/published_comparison.png" \
        in command


def test_a_missing_database_is_refused_before_any_job(tmp_path):
    cfg = base_config(published_results="downloads/absent.db")
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir, "-n", timeout=120)
    assert proc.returncode == 2
    assert ("config key 'published_results': downloads/absent.db does not exist"
            in proc.stderr), proc.stderr[-3000:]
    assert not (workdir / "results").exists()
