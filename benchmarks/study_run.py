"""Run a study's workflow in a temporary copy of this repository and read its tables:
the benchmarks that measure recovery in the loop (design_benchmark.py,
identifiability_benchmark.py) share it."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def run_study(config: Path, cores: int, seeds: int | None, tables: list[str],
              recovery: bool = False) -> dict[str, pd.DataFrame]:
    """``tables`` (names under results/<experiment>/tables/) of the study ``config``'s
    first experiment, run with ``cores`` cores and, when given, ``seeds`` simulated
    datasets per generator, and with ``recovery`` every recovery row (key
    ``recovery``); exits with the run's stderr if it fails."""
    cfg = yaml.safe_load(config.read_text())
    if seeds is not None:
        cfg["simulation"]["seeds"] = seeds
    cfg["results"] = "results"
    with tempfile.TemporaryDirectory(prefix="study-benchmark-") as tmp:
        work = Path(tmp)
        # The rules read the package's settings list from src/ as well.
        for folder in ("workflow", "profiles", "envs", "src"):
            shutil.copytree(REPO / folder, work / folder,
                            ignore=shutil.ignore_patterns("__pycache__"))
        (work / "config").mkdir()
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        (exp,) = list(cfg["experiments"])[:1]
        targets = [f"results/{exp}/tables/{t}.csv" for t in tables]
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ.get('PATH', '')}")
        start = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores",
                               str(cores), *targets], cwd=work, env=env,
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"the study failed:\n{proc.stderr[-4000:]}")
        print(f"study: {time.perf_counter() - start:.0f} s on {cores} cores "
              f"({cfg['simulation']['seeds']} seeds, sizes "
              f"{cfg['simulation']['training_sizes']}, designs {cfg.get('designs')})")
        out = {t: pd.read_csv(work / "results" / exp / "tables" / f"{t}.csv")
               for t in tables}
        if recovery:
            rows = sorted((work / "results" / exp / "recovery").rglob("*.parquet"))
            out["recovery"] = pd.concat([pd.read_parquet(p) for p in rows],
                                        ignore_index=True)
        return out


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--seeds`` and ``--cores``: the study :func:`run_study` runs."""
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--seeds", type=int, default=None,
                        help="simulated datasets per generator (default: the config's)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
