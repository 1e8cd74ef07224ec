"""Every rule's wall time and peak memory in a finished run, from Snakemake's benchmark
files, as a Markdown table.

    python benchmarks/rule_times.py WORKDIR

WORKDIR is the folder Snakemake ran in (it holds ``logs/benchmarks/``). One row per rule
and experiment (per training size N for ``recover``): jobs, median and largest wall
time, largest peak resident memory (``max_rss``), and, where the fitting jobs ran on
CUDA, the largest peak of torch's CUDA allocator from each job's last log line.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

# Stages whose jobs are one per model, generator or dataset: their log names are
# wildcards, not parts of the stage (analyse/ranking, design/compare, ... are).
PER_JOB_STAGES = {"align", "calibrate", "borrow", "recover", "simulate"}


def job_rows(workdir: Path) -> pd.DataFrame:
    """One row per benchmark file under ``workdir/logs/benchmarks``: rule (the stage and,
    where the stage runs several rules, the job's name), experiment, N, seconds, peak
    RSS (GB) and peak CUDA allocation (GB, NaN where none was logged)."""
    root = workdir / "logs" / "benchmarks"
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        bench = pd.read_csv(tsv, sep="\t").iloc[-1]
        if len(rel.parts) == 3:  # <experiment>/<stage>/<job>.tsv
            experiment, stage = rel.parts[0], rel.parts[1]
        else:  # data/<job>.tsv, comparison/<job>.tsv
            experiment, stage = rel.parts[0], ""
        name = tsv.stem
        first = name.split(".")[0]
        rule = (stage if stage in PER_JOB_STAGES or first == stage
                else " ".join(filter(None, [stage, first])))
        n = re.search(r"\.n(\d+)\.", name) if stage == "recover" else None
        log = workdir / "logs" / rel.with_suffix(".log")
        cuda = re.findall(r"([\d.]+) GiB allocated on", log.read_text()) if log.exists() else []
        rows.append({"rule": rule, "experiment": experiment,
                     "N": int(n.group(1)) if n else None, "s": float(bench["s"]),
                     "rss_gb": float(bench["max_rss"]) / 1024,
                     "cuda_gb": float(cuda[-1]) if cuda else float("nan")})
    return pd.DataFrame(rows)


def summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule, experiment and N: jobs, median and max seconds, max RSS and CUDA GB."""
    keys = ["rule", "experiment", "N"]
    return (jobs.groupby(keys, dropna=False, sort=True)
            .agg(jobs=("s", "size"), median_s=("s", "median"), max_s=("s", "max"),
                 max_rss_gb=("rss_gb", "max"), max_cuda_gb=("cuda_gb", "max"))
            .reset_index())


def markdown(table: pd.DataFrame) -> str:
    """The summary as a Markdown table (the CUDA column only where a job logged one)."""
    cuda = table["max_cuda_gb"].notna().any()
    head = ["rule", "experiment", "N", "jobs", "median s", "max s", "max RSS (GB)"]
    head += ["max CUDA (GB)"] if cuda else []
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * (len(head) - 2)]
    for r in table.itertuples():
        cells = [r.rule, r.experiment, "" if pd.isna(r.N) else f"{int(r.N)}", str(r.jobs),
                 f"{r.median_s:.1f}", f"{r.max_s:.1f}", f"{r.max_rss_gb:.2f}"]
        cells += ([f"{r.max_cuda_gb:.2f}" if pd.notna(r.max_cuda_gb) else ""]
                  if cuda else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workdir", type=Path)
    args = ap.parse_args(argv)
    jobs = job_rows(args.workdir)
    if jobs.empty:
        print(f"rule_times: no benchmark files under {args.workdir / 'logs' / 'benchmarks'}",
              file=sys.stderr)
        return 1
    print(markdown(summary(jobs)))
    print(f"\n{len(jobs)} jobs, {jobs['s'].sum() / 60:.1f} min of job wall time in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
