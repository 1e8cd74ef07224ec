"""Shared helpers for the modelrecovery test suite.

Every random draw in the suite comes from an explicit, fixed-seed generator; every test
builds its own small data under ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

# One thread: the suite is meant for 2 cores and must not oversubscribe them.
torch.set_num_threads(1)


def tool_env() -> dict[str, str]:
    """Environment whose PATH starts with this interpreter's bin dir (CLI + snakemake)."""
    env = dict(os.environ)
    # As users run it: Python writes its bytecode cache (a file name it cannot marshal
    # fails only then), whatever this machine's environment says.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    # Keep every subprocess single-threaded: the suite must be quick on 2 cores.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    return env


def cli_path(name: str) -> str:
    """Absolute path of a console script installed beside this interpreter."""
    path = Path(os.path.dirname(sys.executable)) / name
    assert path.exists(), f"{path} is not installed in this environment"
    return str(path)


def copy_workflow(dest: Path, config: dict) -> Path:
    """Copy the top-level Snakefile, workflow/, profiles/, envs/ and src/ (the rules read
    the fitting settings' list from the package's source) into ``dest``; write the
    config.

    The config becomes ``dest/config/config.yaml`` (the Snakefile's default configfile),
    so nothing of the repository's default study is merged into it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("workflow", "profiles", "envs", "src"):
        if (REPO / folder).exists():
            shutil.copytree(REPO / folder, dest / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    (dest / "config").mkdir(exist_ok=True)
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def fresh_clone(dest: Path) -> Path:
    """The repository's files as a clone has them (tracked, plus new files not ignored):
    no virtual environment, no results, no .snakemake."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: float = 300
                  ) -> subprocess.CompletedProcess[str]:
    """Run snakemake in ``workdir`` with 2 cores and the venv's tools on PATH."""
    cmd = [cli_path("snakemake"), "--cores", "2", "--nocolor", *args]
    return subprocess.run(cmd, cwd=workdir, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)



def planned_jobs(workdir: Path, *args: str) -> Counter:
    """Jobs per rule that a dry run plans in ``workdir`` (the target rule `all`, which
    has no command, left out); empty when there is nothing to be done."""
    proc = run_snakemake(workdir, "-n", *args, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "Job stats:" not in proc.stdout:
        assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
        return Counter()
    table = proc.stdout.split("Job stats:")[1].split("\ntotal")[0]
    jobs = Counter({m.group(1): int(m.group(2))
                    for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)})
    jobs.pop("all", None)
    return jobs

TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def base_config(**overrides) -> dict:
    """The test study, .test/config/config.yaml (a small but complete synthetic world),
    read afresh on every call; ``overrides`` replace top-level keys."""
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg.update(overrides)
    return cfg


def mtimes(*folders: Path) -> dict[Path, int]:
    """Every file below ``folders`` with its modification time in ns."""
    return {p: p.stat().st_mtime_ns for folder in folders for p in files_in(folder)}


def files_in(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` (hidden temporaries included); [] if absent."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    """The test study (.test/config/config.yaml), run to the end once per test run in a
    temporary copy of the workflow: (its folder, its config)."""
    cfg = base_config()
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny"), cfg)
    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return workdir, cfg
