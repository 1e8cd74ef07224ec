"""Shared helpers for the modelrecovery test suite.

Every random draw in the suite comes from an explicit, fixed-seed generator; every test
builds its own small data under ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

# One thread: the suite is meant for 2 cores and must not oversubscribe them.
torch.set_num_threads(1)


def tool_env() -> dict[str, str]:
    """Environment whose PATH starts with this interpreter's bin dir (CLI + snakemake)."""
    env = dict(os.environ)
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
    """Copy Snakefile, workflow/, profiles/ and envs/ into ``dest``; write the config.

    The config becomes ``dest/config/config.yaml`` (the Snakefile's default configfile),
    so nothing of the repository's default study is merged into it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "profiles", "envs"):
        if (REPO / folder).exists():
            shutil.copytree(REPO / folder, dest / folder)
    (dest / "config").mkdir(exist_ok=True)
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: float = 300
                  ) -> subprocess.CompletedProcess[str]:
    """Run snakemake in ``workdir`` with 2 cores and the venv's tools on PATH."""
    cmd = [cli_path("snakemake"), "--cores", "2", "--nocolor", *args]
    return subprocess.run(cmd, cwd=workdir, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)


def base_config(**overrides) -> dict:
    """A small but complete config (synthetic world); ``overrides`` replace top-level keys."""
    cfg = {
        "study_seed": 11,
        "noise_ceiling": 0.678,
        "results": "results",
        "world": {
            "source": "synthetic",
            "synthetic": {
                "n_objects": 60,
                "latent_dim": 4,
                "density": 0.5,
                "human_train_triplets": 600,
                "human_test_triplets": 100,
                "models": [
                    {"name": "lin", "transform": "linear", "dim": 5, "noise": 0.2},
                    {"name": "rel", "transform": "relu", "dim": 5, "noise": 0.2},
                    {"name": "unr", "transform": "unrelated", "dim": 4},
                ],
            },
        },
        "experiments": {
            "tiny": {"method": "full", "regulariser": "eye_distance",
                     "lambdas": [0.01, 1.0]},
        },
        "simulation": {
            "training_sizes": [40, 120],
            "seeds": 2,
            "folds": 3,
            "val_fraction": 0.3,
            "eval_fraction": 0.125,
            "exclude_human_triplets": False,
        },
        "alignment": {"cv_folds": 2},
        "fitting": {
            "dtype": "float64",
            "device": "cpu",
            "allow_tf32": False,
            "max_iter": 200,
            "history": 10,
            "grad_tol": 1.0e-6,
            "loss_tol": 1.0e-9,
            "threads": 1,
        },
    }
    cfg.update(overrides)
    return cfg


def files_in(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` (hidden temporaries included); [] if absent."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())
