"""Failures as a user meets them through snakemake: the job's log holds one line naming
the file or setting, snakemake shows it, and the job leaves no output behind."""

from __future__ import annotations

import subprocess

import pytest
from test_things_workflow import build_inputs

from conftest import base_config, copy_workflow, files_in, run_snakemake
from things_files import things_rows_without_test2

pytestmark = pytest.mark.workflow


def failed_log_line(log) -> str:
    text = log.read_text()
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, text
    return errors[0]


def test_a_full_disk_under_results(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)],
                   check=True)
    try:
        cfg = base_config(results=str(disk / "results"))
        cfg.pop("external_scores")  # the world's job alone writes to the disk
        cfg["world"]["synthetic"]["n_objects"] = 2000  # features larger than the disk
        workdir = copy_workflow(tmp_path / "wf", cfg)
        proc = run_snakemake(workdir, "--show-failed-logs")
        assert proc.returncode != 0
        line = failed_log_line(workdir / "logs" / "data" / "synthesize_world.log")
        assert "no space left" in line and str(disk / "results" / "world") in line
        assert line in proc.stdout + proc.stderr
        assert files_in(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_memory_limit_the_fit_cannot_meet(tmp_path):
    cfg = base_config()
    cfg["fitting"]["max_memory_gb"] = 1e-7
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir, "--show-failed-logs", "--keep-going")
    assert proc.returncode != 0
    logs = sorted((workdir / "logs" / "tiny" / "align").glob("*.log"))
    assert len(logs) == 3
    for log in logs:
        assert "fitting.max_memory_gb" in failed_log_line(log)
    assert files_in(workdir / "results" / "tiny") == []


def test_a_things_file_without_the_configured_test_split(tmp_path):
    cfg = build_inputs(tmp_path)
    things_rows_without_test2(tmp_path / "data" / "things" / "triplets.csv")
    cfg["world"]["things"]["n_objects"] = 90
    workdir = copy_workflow(tmp_path, cfg)
    proc = run_snakemake(workdir, "--show-failed-logs", "results/world/human/train.parquet")
    assert proc.returncode != 0
    line = failed_log_line(workdir / "logs" / "data" / "import_things.log")
    assert "triplets.csv" in line and "test split 2" in line
    assert line in proc.stdout + proc.stderr
    assert files_in(workdir / "results" / "world" / "human") == []
