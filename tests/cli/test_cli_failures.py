"""Failures of a command as a whole: one line, a non-zero exit, and no output left behind
(the environment failing, a refusal after some files were written, a wrong target)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_path, files_in, tool_env
from modelrecovery import io
from modelrecovery.cli import main, report
from modelrecovery.io import outputs
from test_cli_errors import DIM, geometry_outputs, good_inputs
from things_files import things_rows_without_test2


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli_path("modelrecovery"), *map(str, args)], env=tool_env(),
                          capture_output=True, text=True, timeout=180)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ----------------------------------------------------------------- all or nothing


def test_a_failed_block_removes_its_files_and_the_folders_made_for_them(tmp_path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("before")
    with pytest.raises(KeyboardInterrupt):
        with outputs.all_or_nothing():
            io.write_json({"a": 1}, tmp_path / "kept" / "new.json")
            with outputs.all_or_nothing():  # an inner block that succeeds
                io.write_json({"b": 2}, tmp_path / "deep" / "er" / "inner.json")
            raise KeyboardInterrupt
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "kept", "kept/old.txt"]
    with outputs.all_or_nothing():
        io.write_json({"a": 1}, tmp_path / "kept" / "new.json")
    assert (tmp_path / "kept" / "new.json").exists()


def test_a_things_file_without_the_configured_test_split_leaves_nothing(tmp_path):
    objects = tmp_path / "objects.parquet"
    io.write_objects(objects, [f"c{i}" for i in range(6)])
    source = things_rows_without_test2(tmp_path / "triplets.tsv")
    out = tmp_path / "human"
    proc = run_cli("import-things", "--triplets", source, "--objects", objects,
                   "--test-split", 2, "--out-dir", out)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(source) in line and "test split 2" in line and "test1" in line
    assert files_in(out) == [] and not out.exists()


# ----------------------------------------------------------------- the environment


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB filesystem (tmpfs; the suite runs as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, tiny_disk):
    paths = good_inputs(tmp_path / "in")
    rng = np.random.default_rng(3)
    # Features larger than the disk: the import fails while writing, after other files.
    io.write_features(paths["b"], rng.normal(size=(12, 4000)))
    out = tiny_disk / "world"
    proc = run_cli("import", "--objects", paths["objects"], "--features",
                   f"a={paths['a']}", f"b={paths['b']}", "--train", paths["train"],
                   "--test", paths["test"], "--out-dir", out)
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc)
    assert "no space left" in line and str(out / "features" / "b.parquet") in line, line
    assert files_in(tiny_disk) == [] and not out.exists()


def align(paths: dict, out: Path, *options: object) -> subprocess.CompletedProcess:
    """``modelrecovery align`` of model a on the good inputs into ``out``, with
    ``options`` (λ 0.1 and 2 folds unless they say otherwise)."""
    return run_cli("align", "--objects", paths["objects"], "--features", paths["a"],
                   "--train", paths["train"], "--test", paths["test"], "--model", "a",
                   "--experiment", "x", "--study-seed", 1, "--lambdas", 0.1,
                   "--out-weights", out / "a.npz", "--out-json", out / "a.json",
                   "--out-cv", out / "a.cv.parquet", "--cv-folds", 2, *options)


def test_a_fit_over_the_memory_limit_is_one_line_naming_the_setting(tmp_path):
    paths = good_inputs(tmp_path / "in")
    out = tmp_path / "out"
    proc = align(paths, out, "--max-memory-gb", 1e-7)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "fitting.max_memory_gb" in line and "GiB" in line
    assert files_in(out) == []
    assert "peak memory" not in proc.stderr  # a failed job's log ends with its error


def test_a_fitting_job_ends_its_log_with_its_peak_memory(tmp_path):
    # What a job's memory request and fitting.max_memory_gb are sized by, from the job
    # itself: the process's peak resident memory (and on CUDA the allocator's peak).
    paths = good_inputs(tmp_path / "in")
    out = tmp_path / "out"
    proc = align(paths, out, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    peak = re.search(r"peak memory: ([\d.]+) GiB resident$", last)
    assert peak and 0.05 < float(peak.group(1)) < 4, last


def test_an_unexpected_failure_is_one_line_with_its_place(monkeypatch, capsys, tmp_path):
    def broken(args):
        io.write_json({}, tmp_path / "partial.json")
        return {}["missing"]

    monkeypatch.setattr(report, "cmd_plot", broken)
    status = main.main(["plot", "--curve", "c", "--generator-curves", "g", "--confusion",
                       "f", "--experiment", "e", "--out-png", "recovery_curve=o.png",
                       "confusion=p.png", "--out-svg", "recovery_curve=o.svg",
                       "confusion=p.svg"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if "error:" in ln]
    assert "unexpected KeyError" in line and "test_cli_failures.py" in line
    assert not (tmp_path / "partial.json").exists()


# ----------------------------------------------------------------- the target and folds


def calibrate(paths: dict, tmp_path: Path, target: str) -> subprocess.CompletedProcess:
    aligned = tmp_path / "aligned"
    io.save_generator(aligned / "a.npz", aligned / "a.json", np.eye(DIM), 1.0,
                      {"model": "a", "lambda": 1.0})
    out = tmp_path / "out"
    return run_cli("calibrate", "--objects", paths["objects"], "--features", paths["a"],
                   "--aligned", aligned / "a.npz", "--aligned-json", aligned / "a.json",
                   "--triplets", paths["train"], "--target", target,
                   "--out-npz", out / "a.npz", "--out-json", out / "a.json")


@pytest.mark.parametrize("target", ["nan", "0.25", "1.0", "inf", "ceiling=0.25",
                                    "ceiling=nan"])
def test_calibrate_blames_an_invalid_target_not_the_model(tmp_path, target):
    paths = good_inputs(tmp_path / "in")
    shown = target
    if target.startswith("ceiling="):
        value = float(target.split("=")[1])
        shown = tmp_path / "ceiling.json"
        io.write_json({"ceiling": value}, shown)
    proc = calibrate(paths, tmp_path, str(shown))
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "calibration target" in line and str(shown) in line, line
    assert "noise_ceiling" in line and "no better than chance" not in line
    assert files_in(tmp_path / "out") == []


def test_calibrate_accepts_a_valid_target(tmp_path):
    paths = good_inputs(tmp_path / "in")
    proc = calibrate(paths, tmp_path, "0.6")
    assert proc.returncode == 0, proc.stderr
    assert io.read_json(tmp_path / "out" / "a.json")["noise_ceiling_target"] == 0.6


def test_align_refuses_more_folds_than_triplets(tmp_path):
    paths = good_inputs(tmp_path / "in")  # 20 training triplets
    out = tmp_path / "out"
    proc = align(paths, out, "--cv-folds", 21)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(paths["train"]) in line and "alignment.cv_folds" in line and "21" in line
    assert files_in(out) == []


def test_correlation_geometry_of_a_constant_row_names_the_model_and_the_fix(tmp_path):
    # A ReLU model can give an object all-zero features; its correlation distance to
    # anything is undefined. The geometry analysis says so and names the euclidean metric.
    paths = good_inputs(tmp_path / "in")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, DIM))
    x[4] = 0.0
    io.write_features(paths["a"], x)
    aligned = tmp_path / "aligned"
    for m, d in (("a", DIM), ("b", DIM + 1)):
        io.save_generator(aligned / f"{m}.npz", aligned / f"{m}.json", np.eye(d), 1.0,
                          {"model": m})
    out = tmp_path / "out"
    args = ["analyse-geometry", "--objects", paths["objects"], "--human-train",
            paths["train"], "--experiment", "x", *geometry_outputs(out),
            "--features", f"a={paths['a']}",
            f"b={paths['b']}", "--generators", f"a={aligned / 'a.npz'}",
            f"b={aligned / 'b.npz'}"]
    proc = run_cli(*args)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(paths["a"]) in line and "object row 4" in line and "euclidean" in line
    assert files_in(out) == []
    assert run_cli(*args, "--metric", "euclidean").returncode == 0
