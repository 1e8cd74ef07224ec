"""The SLURM path, against a real (local, one-node) SLURM cluster.

Bring the cluster up first: ``sudo scripts/slurm-local.sh up`` (CI does). These tests fail,
not skip, when it is not reachable; deselect them with ``-m "not slurm"`` where there is
no cluster. The documented setup step, ``make slurm-profile``, installs the profile
``slurm`` into an empty HOME once per session; ``test_the_users_command_from_a_fresh_clone``
then runs the user's literal ``snakemake --profile slurm``. The other calls add
``profiles/slurm-ci`` on top (fast polls, SLURM logs kept, no retries) to keep the suite
quick; Snakemake applies the workflow profile, ``profiles/default``, under all of them.

The tests share one tiny study and run in file order: each leaves the study in the state
the next one starts from. Every call has a timeout, so a hang fails instead of blocking CI.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import (REPO, base_config, cli_path, copy_workflow, files_in, fresh_clone,
                      mtimes, planned_jobs, run_snakemake, tool_env)

pytestmark = pytest.mark.slurm

PROFILES = ["--profile", "slurm", "--profile", str(REPO / "profiles" / "slurm-ci")]
# The HOME into which `make slurm-profile` installed the profile `slurm` (set once per
# session by the `slurm_cluster` fixture): every snakemake call here runs with it.
USER_HOME: list[Path] = []
CALL_TIMEOUT = 240          # seconds for one snakemake call (a DAG level costs ~12 s here)
EXP = "tiny"
TABLES = ["scores", "outcomes", "recovery_curve", "generator_curves", "confusion",
          "summary", "alignment"]
# Wall-clock columns: the only values that may differ between two runs of the same study.
TIMING_COLUMNS = {"seconds", "fit_seconds"}


# ----------------------------------------------------------------- running snakemake


@dataclass
class Run:
    """One snakemake call through the SLURM executor, and what its output says."""

    args: tuple[str, ...]
    returncode: int
    output: str
    seconds: float
    uuid: str = ""
    submissions: list[str] = field(default_factory=list)   # one SLURM id per sbatch
    finished: Counter = field(default_factory=Counter)     # rule -> jobs finished
    local_rules: set[str] = field(default_factory=set)      # ran in the main process

    def __post_init__(self) -> None:
        found = re.search(r"SLURM run ID: (\S+)", self.output)
        self.uuid = found.group(1) if found else ""
        # The plugin logs each sbatch: single and group jobs, then array jobs.
        self.submissions = re.findall(r"submitted with SLURM jobid (\d+)", self.output)
        self.submissions += re.findall(
            r"Submitted array job with Snakemake IDs [\d,]+ and SLURM job ID (\d+)",
            self.output)
        # Count the main process's lines only: failed jobs' logs (show-failed-logs) are
        # pasted between ===== lines and hold the job step's own "Finished" lines.
        main_lines = re.sub(r"^Logfile [^\n]*:\n={40,}\n.*?^={40,}$", "", self.output,
                            flags=re.S | re.M)
        self.finished = Counter(
            rule for rule in re.findall(r"Finished jobid: \S+ \(Rule: (\w+)\)", main_lines)
            if rule != "all")
        self.local_rules = set(re.findall(r"^localrule (\w+):", self.output, re.M))

    @property
    def remote_finished(self) -> int:
        """Jobs that ran as SLURM jobs (a workflow may keep light rules local)."""
        return sum(n for rule, n in self.finished.items() if rule not in self.local_rules)

    def tail(self, n: int = 6000) -> str:
        return f"snakemake {' '.join(self.args)} (rc={self.returncode}):\n" + \
            self.output[-n:]

    def records(self) -> list[dict[str, str]]:
        """SLURM's own record of this run's jobs (one row per job or array task)."""
        return squeue_records(self.uuid) if self.uuid else []


def user_env(home: Path | None = None) -> dict[str, str]:
    """The tools' environment with HOME the user's (the profile `slurm` installed there)
    and no XDG_CONFIG_HOME, so Snakemake finds the profile where a user's would be."""
    env = tool_env()
    env["HOME"] = str(home or USER_HOME[0])
    env.pop("XDG_CONFIG_HOME", None)
    return env


def slurm_snakemake(workdir: Path, *args: str, timeout: float = CALL_TIMEOUT,
                    profiles: list[str] = PROFILES, env: dict[str, str] | None = None,
                    command: list[str] | None = None) -> Run:
    """``snakemake --profile slurm ...`` in ``workdir``; a hang fails the test."""
    cmd = command or [cli_path("snakemake"), *profiles, "--nocolor", *args]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env or user_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        run = Run(tuple(args), -9, output, time.monotonic() - start)
        if run.uuid:  # leave nothing of the hung run in the queue
            subprocess.run(["scancel", "--name", run.uuid], timeout=30, check=False)
        pytest.fail(f"snakemake did not finish within {timeout} s\n{run.tail()}")
    return Run(tuple(args), proc.returncode, output, time.monotonic() - start)


def run_ok(workdir: Path, *args: str, **kwargs) -> Run:
    run = slurm_snakemake(workdir, *args, **kwargs)
    assert run.returncode == 0, run.tail()
    return run


def slurm(*cmd: str) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stderr}"
    return proc.stdout


def squeue_records(name: str) -> list[dict[str, str]]:
    """Jobs named ``name`` in any state. The local cluster keeps finished jobs for an hour
    (MinJobAge=3600); a cluster with accounting would answer the same with sacct."""
    out = slurm("squeue", "--states=all", "--noheader", f"--name={name}",
                "--format=%F|%i|%T|%l|%m")
    keys = ["array_id", "job_id", "state", "time_limit", "min_memory"]
    return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]


def show_job(job_id: str) -> str:
    return slurm("scontrol", "show", "job", job_id)


def gpus_requested(detail: str) -> int:
    """GPUs a job asked for, from `scontrol show job` (TresPerJob=gres:gpu:1 in 22.05,
    gres/gpu=1 in later versions)."""
    found = re.search(r"TresPerJob=\S*gpu[:=](\d+)", detail)
    return int(found.group(1)) if found else 0


def memory_mb(value: str) -> float:
    """squeue's %m (e.g. 4001M, 8G) in MB."""
    return float(value[:-1]) * {"M": 1, "G": 1024, "T": 1024 ** 2}[value[-1]]


# ----------------------------------------------------------------- the cluster


def install_profile(checkout: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The documented setup step, run in ``checkout`` as a user types it."""
    return subprocess.run(["make", "slurm-profile"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> str:
    """The local cluster must answer and have a usable node; otherwise FAIL (CI must not
    pass silently without it). Installs the profile `slurm` into an empty HOME."""
    hint = "bring it up with `sudo scripts/slurm-local.sh up` (or deselect: -m 'not slurm')"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is not installed in this environment")
    if shutil.which("sinfo") is None:
        pytest.fail(f"no SLURM client (sinfo) on PATH: {hint}")
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%N %T %G"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"sinfo did not answer within 20 s: {hint}")
    states = proc.stdout.split()
    if proc.returncode != 0 or not re.search(r"\b(idle|mixed|allocated)\b", proc.stdout):
        pytest.fail(f"no usable SLURM node (sinfo: {proc.stdout.strip() or proc.stderr.strip()}):"
                    f" {hint}")
    if "gpu" not in proc.stdout:
        pytest.fail(f"the SLURM node has no gpu GRES (sinfo: {' '.join(states)}): {hint}")
    # profiles/slurm-ci polls squeue, which sees finished jobs only for MinJobAge seconds.
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                            timeout=20).stdout
    age = re.search(r"^MinJobAge\s*=\s*(\d+)", config, re.M)
    if not age or int(age.group(1)) < 600:
        pytest.fail(f"MinJobAge is {age.group(1) if age else '?'} s; the tests need >= 600 "
                    f"(squeue status polling and job records): {hint}")
    home = tmp_path_factory.mktemp("home")
    installed = install_profile(REPO, user_env(home))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    USER_HOME[:] = [home]
    return proc.stdout


# ----------------------------------------------------------------- the tiny study


def slurm_config() -> dict:
    """The suite's tiny config, smaller still: 2 models x 2 sizes x 1 seed = 4 recover
    jobs. ``device: auto`` as users run it: SLURM assigns a GPU, the
    CPU build of torch finds none and the code says so in the log. A kernel budget of
    3 GiB: each fitting job asks SLURM for 4,096 MB (the budget and 1 GiB)."""
    cfg = base_config()
    cfg["world"]["synthetic"]["models"] = cfg["world"]["synthetic"]["models"][:2]
    cfg["simulation"]["seeds"] = 1
    cfg["fitting"]["device"] = "auto"
    cfg["fitting"]["max_memory_gb"] = 3
    return cfg


def rule_graph(workdir: Path) -> dict[str, set[str]]:
    """rule -> the rules that consume its outputs, from `snakemake --rulegraph`."""
    cmd = [cli_path("snakemake"), "--forceall", "--rulegraph"]
    proc = subprocess.run(cmd, cwd=workdir, env=tool_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", proc.stdout, re.M))
    graph: dict[str, set[str]] = {name: set() for name in names.values()}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", proc.stdout, re.M):
        graph[names[a]].add(names[b])
    return graph


@dataclass
class Study:
    slurm_dir: Path
    local_dir: Path
    cfg: dict
    main: Run
    planned: Counter                 # what the dry run said the main run would do
    graph: dict[str, set[str]]

    def downstream(self, rule: str) -> set[str]:
        """Every rule that (transitively) consumes ``rule``'s outputs, `all` left out."""
        found, todo = set(), [rule]
        while todo:
            for nxt in self.graph.get(todo.pop(), ()):
                if nxt not in found:
                    found.add(nxt)
                    todo.append(nxt)
        return found - {"all"}

    def rerun_of(self, rule: str, jobs: int) -> Counter:
        """``jobs`` jobs of ``rule`` and, one experiment here, one job per downstream rule."""
        return Counter({rule: jobs, **{r: 1 for r in self.downstream(rule)}})

    def exp(self, root: Path | None = None) -> Path:
        return (root or self.slurm_dir) / "results" / EXP

    def recovery(self, generator: str, n: int, seed: int = 0) -> Path:
        return (self.exp() / "recovery" / "random" / generator / f"n{n}"
                / f"seed{seed}.parquet")


@pytest.fixture(scope="module")
def study(slurm_cluster, tmp_path_factory) -> Study:
    cfg = slurm_config()
    root = tmp_path_factory.mktemp("slurm")
    local_dir = copy_workflow(root / "local", cfg)
    slurm_dir = copy_workflow(root / "slurm", cfg)
    planned, graph = planned_jobs(slurm_dir), rule_graph(slurm_dir)
    # The local reference run (profiles/default, as `make run` does) runs alongside: the
    # SLURM run spends most of its time waiting for status polls.
    with ThreadPoolExecutor(max_workers=1) as pool:
        local = pool.submit(run_snakemake, local_dir, timeout=CALL_TIMEOUT)
        main = slurm_snakemake(slurm_dir, timeout=2 * CALL_TIMEOUT)
        local_proc = local.result()
    assert local_proc.returncode == 0, local_proc.stderr[-4000:]
    assert main.returncode == 0, main.tail()
    return Study(slurm_dir, local_dir, cfg, main, planned, graph)


def strip_timing(path: Path) -> str:
    """A CSV's rows without the wall-clock columns; every other field kept byte for byte."""
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS]
    return "\n".join(",".join(row[i] for i in keep) for row in rows)


def assert_same_study(study: Study) -> None:
    """Tables and recovery rows of the SLURM run equal those of the local run."""
    ours, ref = study.exp(), study.exp(study.local_dir)
    # Every table: results/<exp>/tables/*.csv (and the cross-experiment comparison).
    tables = sorted(p.relative_to(study.local_dir) for p in
                    [*(ref / "tables").glob("*.csv"),
                     *(study.local_dir / "results" / "comparison").rglob("*.csv")])
    assert len(tables) >= len(TABLES), tables
    assert tables == sorted(p.relative_to(study.slurm_dir) for p in
                            [*(ours / "tables").glob("*.csv"),
                             *(study.slurm_dir / "results" / "comparison").rglob("*.csv")])
    for rel in tables:
        assert strip_timing(study.slurm_dir / rel) == strip_timing(study.local_dir / rel), rel
    fits = sorted(p.relative_to(ref) for p in (ref / "recovery").rglob("*.parquet"))
    assert fits == sorted(p.relative_to(ours) for p in (ours / "recovery").rglob("*.parquet"))
    assert len(fits) == 4
    for rel in fits:
        a, b = pd.read_parquet(ours / rel), pd.read_parquet(ref / rel)
        assert list(a.columns) == list(b.columns)
        pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"),
                                      check_exact=True, obj=str(rel))


def slurm_logs(study: Study) -> Path:
    return study.slurm_dir / ".snakemake" / "slurm_logs"


# ----------------------------------------------------------------- end to end


def test_slurm_run_equals_local_run(study):
    # Same config, same seeds, same threads: every table is identical once the wall-clock
    # columns (`seconds`, `fit_seconds`) are dropped, and so is every recovery Parquet.
    assert study.main.finished == study.planned, study.main.tail()
    assert study.planned["recover"] == 4 and study.planned["aggregate"] == 1
    assert_same_study(study)
    for stem in ("recovery_curve", "confusion"):
        assert (study.exp() / "figures" / f"{stem}.png").stat().st_size > 1000


def test_jobs_went_through_slurm(study, capsys):
    main = study.main
    assert main.uuid, main.tail()
    records = main.records()
    # SLURM knows every submission of this run, and every job completed.
    assert sorted(r["job_id"] for r in records) == sorted(main.submissions), records
    assert {r["state"] for r in records} == {"COMPLETED"}, records
    # The plugin's per-job SLURM logs are named by job id (kept by profiles/slurm-ci), in
    # a folder per rule or group: rule_<rule>/<wildcards>/<id>.log, group_<group>.../<id>.log.
    kind = {p.stem: p.relative_to(slurm_logs(study)).parts[0] for p in
            slurm_logs(study).rglob("*.log")}
    assert set(main.submissions) <= set(kind), (main.submissions, kind)
    # The profile packs the recover jobs of each training size into one group (up to 8):
    # 2 sizes x 2 generators here, so 2 submissions for the 4 fits ...
    groups = [r for r in records if kind[r["job_id"]].startswith("group_recover_n")]
    sizes = study.cfg["simulation"]["training_sizes"]
    assert len(groups) == len(sizes), records
    assert len(records) == main.remote_finished - main.finished["recover"] + len(groups)
    # ... each asking for one GPU and the members' runtimes one after another (2 x 60 min);
    # align asks for one GPU and 60 min; the light rules for no GPU.
    for record in records:
        detail = show_job(record["job_id"])
        if record in groups:
            assert gpus_requested(detail) == 1 and "TimeLimit=02:00:00" in detail, detail
            assert "NumCPUs=1" in detail, detail
        elif kind[record["job_id"]] == "rule_align":
            assert gpus_requested(detail) == 1 and "TimeLimit=01:00:00" in detail, detail
        else:
            assert gpus_requested(detail) == 0, detail
    # SLURM gave each fit a device (CUDA_VISIBLE_DEVICES), and `device: auto` logged that
    # it fell back to the CPU (this torch build has no CUDA).
    recover_logs = sorted((study.slurm_dir / "logs" / EXP / "recover").glob("*.log"))
    assert len(recover_logs) == 4
    for log in recover_logs:
        assert re.search(r"CUDA_VISIBLE_DEVICES=\d", log.read_text()), log.read_text()
    with capsys.disabled():
        print(f"\n[slurm] tiny study: {main.remote_finished} SLURM jobs in "
              f"{len(main.submissions)} sbatch submissions (4 fits in {len(groups)} groups); "
              f"{main.seconds:.0f} s")


# ----------------------------------------------------------------- rerunning rules


def test_forcerun_aggregate_reruns_only_aggregation(study):
    dry = run_ok(study.slurm_dir, "-n")
    assert "Nothing to be done" in dry.output, dry.tail()
    before = mtimes(study.exp() / "recovery", study.exp() / "simulated",
                    study.exp() / "generators")
    run = run_ok(study.slurm_dir, "--forcerun", "aggregate")
    assert run.finished == study.rerun_of("aggregate", 1), run.tail()
    assert "plot" in study.downstream("aggregate")
    assert len(run.submissions) == run.remote_finished
    assert mtimes(study.exp() / "recovery", study.exp() / "simulated",
                  study.exp() / "generators") == before
    assert_same_study(study)


def test_deleted_recovery_output_reruns_exactly_that_job(study):
    victim = study.recovery("rel", 120)
    others = {p: t for p, t in mtimes(study.exp() / "recovery", study.exp() / "simulated").items()
              if p != victim}
    victim.unlink()
    # A missing intermediate whose downstream tables are up to date is not rebuilt by
    # itself: name it as a target next to the default target, as users do.
    run = run_ok(study.slurm_dir, str(victim.relative_to(study.slurm_dir)), "all")
    assert run.finished == study.rerun_of("recover", 1), run.tail()
    assert mtimes(study.exp() / "recovery", study.exp() / "simulated") | {victim: 0} == \
        others | {victim: 0}
    assert_same_study(study)


def default_study_submissions(workdir: Path) -> tuple[Counter, int]:
    """The repository's default study (config/config.yaml), dry-run through the SLURM
    profile: SLURM jobs per rule (local rules never go to SLURM) and the number of group
    jobs the profile's grouping makes of them."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    workdir = copy_workflow(workdir, cfg)
    jobs = planned_jobs(workdir, "--forceall")
    workflow = REPO / "workflow"
    for path in [workflow / "Snakefile", *sorted((workflow / "rules").glob("*.smk"))]:
        for names in re.findall(r"^localrules:\s*(.+)$", path.read_text(), re.M):
            for name in names.split(","):
                jobs.pop(name.strip(), None)
    cmd = [cli_path("snakemake"), "-n", "--forceall", *PROFILES, "--nocolor"]
    proc = subprocess.run(cmd, cwd=workdir, env=user_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = len(re.findall(r"Group job \S+ \(jobs in", proc.stdout + proc.stderr))
    return jobs, groups


def test_job_arrays_and_submission_counts(study, capsys, tmp_path):
    # A user's copy of the profile with job arrays instead of groups for recover.
    profile = yaml.safe_load((USER_HOME[0] / ".config" / "snakemake" / "slurm" /
                              "config.yaml").read_text())
    for key in ("groups", "group-components"):
        profile.pop(key)
    profile["slurm-array-jobs"] = "recover"
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "config.yaml").write_text(yaml.safe_dump(profile))
    profiles = ["--profile", str(tmp_path / "arrays"), "--profile",
                str(REPO / "profiles" / "slurm-ci")]
    victims = [study.recovery(g, 40) for g in ("lin", "rel")]
    saved = {v: pd.read_parquet(v) for v in victims}
    for v in victims:
        v.unlink()
    # --latency-wait 30: each array task waits for the *first* task's output (plugin issue
    # #447, see the profile); the two tasks here end within seconds of each other.
    run = run_ok(study.slurm_dir, *[str(v.relative_to(study.slurm_dir)) for v in victims],
                 "--latency-wait", "30", profiles=profiles)
    # Both fits in one sbatch --array: two tasks, one GPU and 60 min each.
    assert run.finished == {"recover": 2}, run.tail()
    assert len(run.submissions) == 1, run.tail()
    tasks = run.records()
    assert len(tasks) == 2 and all("_" in t["job_id"] for t in tasks), tasks
    for task in tasks:
        detail = show_job(task["job_id"])
        assert gpus_requested(detail) == 1 and "TimeLimit=01:00:00" in detail, detail
    for v in victims:
        pd.testing.assert_frame_equal(pd.read_parquet(v).drop(columns="seconds"),
                                      saved[v].drop(columns="seconds"), check_exact=True)

    # Submissions of the default study (config/config.yaml): one per job; with the
    # profile's groups, one per group of up to 8 fits of a training size (counted by a dry
    # run through the profile); with arrays, one per batch of recover jobs that become
    # ready together (timing-dependent: only a real run tells).
    jobs, groups = default_study_submissions(tmp_path / "default")
    sizes = len(yaml.safe_load((REPO / "config" / "config.yaml").read_text())
                ["simulation"]["training_sizes"])
    assert groups == sizes * math.ceil(jobs["recover"] / sizes / 8), (groups, jobs)
    plain = sum(jobs.values())
    others = plain - jobs["recover"]
    with capsys.disabled():
        print(f"\n[slurm] sbatch submissions for the default study ({plain} SLURM jobs, "
              f"{jobs['recover']} of them recover): {plain} one job each; {others + groups} "
              f"with the profile's groups ({groups} groups of up to 8 fits); {others} + one "
              f"per batch of recover jobs ready together with arrays")


def test_until_stops_after_calibrate(study):
    later = mtimes(study.exp() / "simulated", study.exp() / "recovery", study.exp() / "tables")
    run = run_ok(study.slurm_dir, "--forcerun", "calibrate", "--until", "calibrate")
    assert run.finished == {"calibrate": 2}, run.tail()
    assert mtimes(study.exp() / "simulated", study.exp() / "recovery",
                  study.exp() / "tables") == later
    # --until held back what depends on the new calibration: the generators' sidecars
    # changed (they record the fit), so aggregation and what follows it are due. (The
    # weights are the same bytes, so Snakemake's checksum test spares the simulations.)
    held_back = planned_jobs(study.slurm_dir)
    assert held_back and set(held_back) <= study.downstream("calibrate"), held_back


def test_target_for_one_dataset_builds_only_that(study):
    target = study.recovery("lin", 120)
    shard = study.exp() / "simulated" / "random" / "lin" / "seed0.parquet"
    target.unlink()
    shard.unlink()
    rest = mtimes(study.exp() / "simulated", study.exp() / "recovery", study.exp() / "tables")
    assert set(planned_jobs(study.slurm_dir)) - {"simulate", "recover"}  # more is due
    run = run_ok(study.slurm_dir, str(target.relative_to(study.slurm_dir)))
    # The target and the shard it needs; nothing else, although aggregation is due.
    assert run.finished == {"simulate": 1, "recover": 1}, run.tail()
    assert target.exists() and shard.exists()
    assert mtimes(study.exp() / "simulated", study.exp() / "recovery",
                  study.exp() / "tables") == rest | {target: target.stat().st_mtime_ns,
                                                     shard: shard.stat().st_mtime_ns}


# ----------------------------------------------------------------- a failing job


def test_failed_job_is_reported_and_rerun_alone(study, capsys):
    shard = study.exp() / "simulated" / "random" / "lin" / "seed0.parquet"
    good = shard.read_bytes()
    shard.write_bytes(b"not a parquet file\n" * 64)  # garbage, and newer than its outputs
    # An independent job that is due as well: simulating the other generator again.
    other = study.exp() / "simulated" / "random" / "rel" / "seed0.parquet"
    other.unlink()
    recovery, tables = study.exp() / "recovery", mtimes(study.exp() / "tables")

    # The lin fits read the bad shard and fail. The profile packs each training size's
    # fits into one group, so the rel fits (due after their new simulation) share a group
    # with a failing fit and fail with it: the documented price of grouping. --keep-going
    # lets the independent simulation finish. --retries 1: each failed group is resubmitted
    # once with twice the runtime and memory (recover's resources: 60 * attempt minutes
    # and (fitting.max_memory_gb + 1 GiB) * attempt = 4096 * attempt MB per fit; a group
    # asks for the sum of its members' runtimes).
    run = slurm_snakemake(study.slurm_dir, str(other.relative_to(study.slurm_dir)), "all",
                          "--keep-going", "--retries", "1")
    assert run.returncode != 0, run.tail()
    assert run.finished == {"simulate": 1} and other.exists(), run.tail()
    errors = run.output[run.output.index("Error in "):]
    assert "Error in group recover_n40" in errors and "Error in group recover_n120" in errors
    failed_outputs = set(re.findall(r"output: (\S+/recovery/[^\s,]+)", errors))
    assert failed_outputs == {str(study.recovery(g, n).relative_to(study.slurm_dir))
                              for g in ("lin", "rel") for n in (40, 120)}, run.tail()
    # SLURM's record: 2 groups x 2 attempts failed, the second attempts with more of both.
    records = run.records()
    failed = [r for r in records if r["state"] == "FAILED"]
    assert len(failed) == 4, records
    assert sorted(r["time_limit"] for r in failed) == ["2:00:00"] * 2 + ["4:00:00"] * 2, failed
    memory = sorted(memory_mb(r["min_memory"]) for r in failed)
    assert memory[2] >= 2 * 4096 > memory[1] >= 4096, failed
    assert {r["state"] for r in records} == {"FAILED", "COMPLETED"}, records
    # No partial output survives; nothing was aggregated; the log says what was wrong.
    assert files_in(recovery) == [], files_in(recovery)
    assert files_in(study.exp() / "parameters") == []
    assert mtimes(study.exp() / "tables") == tables
    log = (study.slurm_dir / "logs" / EXP / "recover" / "lin.n40.seed0.log").read_text()
    assert str(shard.relative_to(study.slurm_dir)) in log, log[-2000:]

    # Fix the input: the rerun redoes exactly what failed (the 4 fits), then aggregates.
    shard.write_bytes(good)
    simulated = mtimes(study.exp() / "simulated")
    again = run_ok(study.slurm_dir)
    assert again.finished == study.rerun_of("recover", 4), again.tail()
    assert mtimes(study.exp() / "simulated") == simulated
    assert_same_study(study)
    with capsys.disabled():
        print(f"\n[slurm] failing run {run.seconds:.0f} s, fixed rerun {again.seconds:.0f} s")


def test_cores_under_the_cluster_executor_is_refused_before_submitting(slurm_cluster, tmp_path):
    # --cores over a cluster executor would cap the threads of all running cluster jobs
    # together at that number: the workflow stops with the fix, having submitted nothing.
    work = copy_workflow(tmp_path / "cores", slurm_config())
    run = slurm_snakemake(work, "--cores", "2")
    assert run.returncode != 0, run.tail()
    assert "--cores is set" in run.output and "Remove `cores:`" in run.output
    assert run.submissions == [] and not (work / "results").exists()


# ----------------------------------------------------------------- the user's command


def recording_sbatch(folder: Path, record: Path) -> Path:
    """An ``sbatch`` that writes each call's arguments to ``record``, then runs the real
    one unchanged (the local cluster has a gpu GRES, so GPU requests are scheduled)."""
    real = shutil.which("sbatch")
    assert real, "no sbatch on PATH"
    folder.mkdir(parents=True)
    wrapper = folder / "sbatch"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return folder


def submitted(record: Path) -> list[dict[str, str]]:
    """Each recorded sbatch call: the rule or group it submitted (from its SLURM log
    path: rule_<rule>/... or group_<group>...), its time limit and GPU request."""
    calls = []
    for line in record.read_text().splitlines():
        log = re.search(r"--output \S*slurm_logs/(?:rule_(?P<rule>\w+?)/|group_(?P<group>[a-z]+)_n)",
                        line)
        kind = "?" if not log else (f"rule_{log['rule']}" if log["rule"]
                                    else f"group_{log['group']}")
        calls.append({"kind": kind,
                      "time": (re.search(r" -t '?(\d+)'?", line) or [None, ""])[1],
                      "gpus": (re.search(r"--gpus=(\S+)", line) or [None, ""])[1],
                      "line": line})
    return calls


def test_the_users_command_from_a_fresh_clone(slurm_cluster, tmp_path, capsys):
    # A user's first day: a clone, the study's config edited (here: the tiny study), an
    # empty HOME, the one documented setup step, then the words of the design card.
    clone = fresh_clone(tmp_path / "clone")
    (clone / "config" / "config.yaml").write_text(yaml.safe_dump(slurm_config()))
    home = tmp_path / "home"
    home.mkdir()
    record = tmp_path / "sbatch-calls.txt"
    env = user_env(home)
    env["PATH"] = str(recording_sbatch(tmp_path / "bin", record)) + os.pathsep + env["PATH"]

    installed = install_profile(clone, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    profile = home / ".config" / "snakemake" / "slurm" / "config.yaml"
    assert profile.is_file() and "executor: slurm" in profile.read_text()
    # This cluster keeps no accounting database: the installed copy polls squeue.
    assert "slurm-status-command: squeue" in profile.read_text()
    again = install_profile(clone, env)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    # A different profile of that name is never replaced silently.
    mine = profile.read_text() + "jobs: 7\n"
    profile.write_text(mine)
    refused = install_profile(clone, env)
    assert refused.returncode != 0 and "FORCE=1" in refused.stderr, refused.stderr
    assert profile.read_text() == mine
    profile.write_text(mine[: -len("jobs: 7\n")])

    run = slurm_snakemake(clone, env=env, timeout=1500,
                          command=["snakemake", "--profile", "slurm"])
    assert run.returncode == 0, run.tail()
    exp = clone / "results" / EXP
    assert (exp / "tables" / "summary.csv").is_file()
    assert (exp / "figures" / "recovery_curve.png").stat().st_size > 1000
    calls = submitted(record)
    assert len(calls) == len(run.submissions) > 0, calls
    by_kind = Counter(c["kind"] for c in calls)
    assert by_kind["rule_align"] == 2 and by_kind["group_recover"] == 2, by_kind
    for call in calls:
        torch_rule = call["kind"] in ("rule_align", "group_recover")
        assert (call["gpus"] == "1") == torch_rule, call["line"]

    # A user's override of another resource keeps the GPU request of the rule: first one
    # deleted fit (its group alone), then align forced and stopped after (--until holds
    # back everything downstream, so the two cannot share one call).
    target = exp / "recovery" / "random" / "lin" / "n40" / "seed0.parquet"
    target.unlink()
    # The target goes first: --set-resources and --until take every word that follows.
    # These reruns are about resources, not the first day: the suite's polling profile
    # (profiles/slurm-ci, top-level scalars only) layers on, so they cost seconds.
    override = [*PROFILES, "--set-resources", "recover:runtime=120", "align:runtime=30"]
    seconds = 0.0
    for command, expected in (
            [["snakemake", str(target.relative_to(clone)), *override], {"group_recover": 1}],
            [["snakemake", *override, "--forcerun", "align", "--until", "align"],
             {"rule_align": 2}]):
        record.write_text("")
        rerun = slurm_snakemake(clone, env=env, timeout=600, command=command)
        assert rerun.returncode == 0, rerun.tail()
        seconds += rerun.seconds
        calls = submitted(record)
        assert Counter(c["kind"] for c in calls) == expected, calls
        for call in calls:
            assert call["gpus"] == "1", call["line"]
            assert call["time"] == ("30" if call["kind"] == "rule_align" else "120"), \
                call["line"]
    assert target.is_file()
    with capsys.disabled():
        print(f"\n[slurm] `snakemake --profile slurm` from a fresh clone: "
              f"{len(run.submissions)} sbatch calls, {run.seconds:.0f} s; override reruns "
              f"{seconds:.0f} s")


def test_a_site_profile_with_only_the_essentials_runs(slurm_cluster, tmp_path):
    # A site's own `slurm` profile in its config folder (/etc/xdg/snakemake, here the
    # first of XDG_CONFIG_DIRS): the executor, the jobs limit Snakemake requires of any
    # remote executor, partition and account; no recover packing, no resources. The
    # torch rules still ask for their GPU, from the rules themselves.
    clone = fresh_clone(tmp_path / "clone")
    (clone / "config" / "config.yaml").write_text(yaml.safe_dump(slurm_config()))
    site = tmp_path / "xdg" / "snakemake" / "slurm"
    site.mkdir(parents=True)
    (site / "config.yaml").write_text(textwrap.dedent("""\
        executor: slurm
        jobs: 50
        default-resources:
          slurm_partition: local
          slurm_account: ""
        # This test cluster's own lines: no accounting database, one local filesystem.
        slurm-status-command: squeue
        slurm-init-seconds-before-status-checks: 1
        seconds-between-status-checks: 1
        """))
    home = tmp_path / "home"
    home.mkdir()
    record = tmp_path / "sbatch-calls.txt"
    env = user_env(home)
    env["XDG_CONFIG_DIRS"] = str(tmp_path / "xdg")
    env["PATH"] = str(recording_sbatch(tmp_path / "bin", record)) + os.pathsep + env["PATH"]
    target = Path("results", EXP, "recovery", "random", "lin", "n40", "seed0.parquet")
    run = slurm_snakemake(clone, env=env, timeout=900,
                          command=["snakemake", str(target), "--profile", "slurm"])
    assert run.returncode == 0, run.tail()
    assert "Using profiles slurm" in run.output and (clone / target).is_file()
    calls = submitted(record)
    kinds = Counter(c["kind"] for c in calls)
    assert kinds["rule_recover"] == 1 and kinds["rule_align"] == 1, kinds
    for call in calls:
        assert (call["gpus"] == "1") == (call["kind"] in ("rule_align", "rule_recover")), \
            call["line"]
