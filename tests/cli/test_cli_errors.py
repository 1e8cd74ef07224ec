"""Bad input through the real CLI entry point: exit 2, a message naming the file and the
problem, and nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrecovery import io

from conftest import cli_path, files_in, tool_env

N_OBJ, DIM = 12, 3


def good_inputs(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(42)
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / f"{name}.parquet" for name in ("objects", "a", "b", "train", "test")}
    io.write_objects(paths["objects"], [f"obj{i}" for i in range(N_OBJ)])
    io.write_features(paths["a"], rng.normal(size=(N_OBJ, DIM)))
    io.write_features(paths["b"], rng.normal(size=(N_OBJ, DIM + 1)))
    trip = np.array([rng.choice(N_OBJ, size=3, replace=False) for _ in range(30)])
    io.write_triplets(paths["train"], trip[:20])
    io.write_triplets(paths["test"], trip[20:])
    return paths


def features_table(ids: np.ndarray, x: np.ndarray) -> pa.Table:
    x = np.asarray(x, dtype=np.float32)
    return pa.table({
        "object_id": pa.array(np.asarray(ids, dtype=np.int32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]),
    })


def run_import(paths: dict[str, Path], out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [cli_path("modelrecovery"), "import", "--objects", str(paths["objects"]),
           "--features", f"a={paths['a']}", f"b={paths['b']}",
           "--train", str(paths["train"]), "--test", str(paths["test"]),
           "--out-dir", str(out)]
    return subprocess.run(cmd, env=tool_env(), capture_output=True, text=True, timeout=120)


# Each case: (which input to break, how, the phrase the message must contain).
def _nan(path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(N_OBJ, DIM))
    x[4, 1] = np.nan
    pq.write_table(features_table(np.arange(N_OBJ), x), path)


def _inf(path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(N_OBJ, DIM + 1))
    x[7, 0] = -np.inf
    pq.write_table(features_table(np.arange(N_OBJ), x), path)


def _duplicate(path: Path) -> None:
    ids = np.arange(N_OBJ)
    ids[5] = 3  # object 3 twice (and 5 absent)
    pq.write_table(features_table(ids, np.ones((N_OBJ, DIM))), path)


def _missing(path: Path) -> None:
    ids = np.delete(np.arange(N_OBJ), 6)
    pq.write_table(features_table(ids, np.ones((N_OBJ - 1, DIM))), path)


def _out_of_range(path: Path) -> None:
    io.write_triplets(path, np.array([[0, 1, 2], [3, 4, N_OBJ], [5, 6, 7]]))


def _repeats(path: Path) -> None:
    io.write_triplets(path, np.array([[0, 1, 2], [3, 4, 3], [5, 6, 7]]))


def _empty(path: Path) -> None:
    io.write_triplets(path, np.empty((0, 3), dtype=np.int64))


CASES = {
    "nan_features": ("a", _nan, "non-finite"),
    "inf_features": ("b", _inf, "non-finite"),
    "duplicate_ids": ("a", _duplicate, "more than once"),
    "missing_ids": ("b", _missing, "missing"),
    "index_out_of_range": ("train", _out_of_range, "outside"),
    "repeated_object": ("test", _repeats, "repeats an object"),
    "empty_triplets": ("train", _empty, "empty"),
}


def test_valid_inputs_are_imported(tmp_path):
    paths = good_inputs(tmp_path / "in")
    out = tmp_path / "out"
    proc = run_import(paths, out)
    assert proc.returncode == 0, proc.stderr
    produced = {p.relative_to(out).as_posix() for p in files_in(out)}
    assert produced == {"objects.parquet", "features/a.parquet", "features/b.parquet",
                        "human/train.parquet", "human/test.parquet", "world.json"}
    assert io.read_features(out / "features" / "b.parquet", N_OBJ).shape == (N_OBJ, DIM + 1)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_without_output(tmp_path, case):
    which, breaker, phrase = CASES[case]
    paths = good_inputs(tmp_path / "in")
    breaker(paths[which])
    out = tmp_path / "out"
    proc = run_import(paths, out)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert str(paths[which]) in errors[0]
    assert phrase in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert files_in(out) == []


def geometry_outputs(out: Path) -> list[str]:
    """analyse-geometry's output flags: its four tables and its figure under ``out``."""
    tables = ("geometry", "rsa", "mds", "rsa_human")
    return ["--out-parquet", *(f"{t}={out / 'tables' / t}.parquet" for t in tables),
            "--out-csv", *(f"{t}={out / 'tables' / t}.csv" for t in tables),
            "--out-png", f"geometry={out / 'figures' / 'geometry.png'}",
            "--out-svg", f"geometry={out / 'figures' / 'geometry.svg'}"]


def test_a_model_aligned_to_chance_is_refused_by_calibrate_and_geometry(tmp_path):
    # A model whose fit to the humans is no better than chance is returned as W = 0
    # (fitting.fit): it has no temperature and no aligned geometry. Both steps say so,
    # naming the aligned file, and write nothing.
    paths = good_inputs(tmp_path / "in")
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    io.save_generator(aligned / "a.npz", aligned / "a.json", np.zeros((DIM, DIM)), 1.0,
                      {"model": "a", "lambda": 1.0})
    io.save_generator(aligned / "b.npz", aligned / "b.json", np.eye(DIM + 1), 1.0,
                      {"model": "b", "lambda": 1.0})
    out = tmp_path / "out"
    calibrate = [cli_path("modelrecovery"), "calibrate", "--objects", str(paths["objects"]),
                 "--features", str(paths["a"]), "--aligned", str(aligned / "a.npz"),
                 "--aligned-json", str(aligned / "a.json"), "--triplets", str(paths["train"]),
                 "--target", "0.6", "--out-npz", str(out / "a.npz"),
                 "--out-json", str(out / "a.json")]
    geometry = [cli_path("modelrecovery"), "analyse-geometry", "--objects",
                str(paths["objects"]), "--human-train", str(paths["train"]),
                "--experiment", "x", *geometry_outputs(out),
                "--features", f"a={paths['a']}", f"b={paths['b']}",
                "--generators", f"a={aligned / 'a.npz'}", f"b={aligned / 'b.npz'}"]
    for cmd, phrase in ((calibrate, "predicts the humans no better than chance"),
                        (geometry, "aligned transform is W = 0")):
        proc = subprocess.run(cmd, env=tool_env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and str(aligned / "a.npz") in errors[0], proc.stderr
        assert phrase in errors[0], errors[0]
        assert not out.exists() or files_in(out) == []


def ceiling_outputs(out: Path) -> list[str]:
    """analyse-ceiling's output flags: its tables and figures under ``out``."""
    tables = ("identifiability_ceiling", "decision_rules", "inversion", "decomposition")
    figures = ("identifiability_ceiling", "inversion")
    return ["--out-parquet", *(f"{t}={out / t}.parquet" for t in tables),
            "--out-csv", *(f"{t}={out / t}.csv" for t in tables),
            "--out-png", *(f"{f}={out / f}.png" for f in figures),
            "--out-svg", *(f"{f}={out / f}.svg" for f in figures)]


@pytest.mark.parametrize("case", ["labels", "generator", "shard", "mismatch", "prior",
                                  "instance", "penalty"])
def test_the_ceiling_refuses_datasets_it_cannot_score_in_one_line(tmp_path, case):
    # Every dataset needs its labels, a generator to score it under, a readable shard,
    # and each generator a W that fits its features; each gap is one line naming the
    # flag or the file, and nothing is written.
    paths = good_inputs(tmp_path / "in")
    gens = tmp_path / "gens"
    gens.mkdir()
    for m, d in (("a", DIM), ("b", DIM if case == "mismatch" else DIM + 1)):
        io.save_generator(gens / f"{m}.npz", gens / f"{m}.json", np.eye(d), 1.0,
                          {"model": m})
    shard = tmp_path / "shard.parquet"
    if case == "shard":
        pq.write_table(pa.table({"fold": [0], "split": ["train"]}), shard)
    labels = {"labels": ["--design", "random", "random", "--generator", "a",
                         "--seed", "0"],
              "generator": ["--design", "random", "--generator", "c", "--seed", "0"],
              "shard": ["--design", "random", "--generator", "a", "--seed", "0"],
              "mismatch": ["--design", "random", "--generator", "a", "--seed", "0"],
              "prior": ["--design", "random", "--generator", "a", "--seed", "0",
                        "--prior", "a=1", "c=2"],
              "instance": ["--design", "random", "--generator", "a", "--seed", "0",
                           "--instances", f"c={gens / 'a.npz'}"],
              "penalty": ["--design", "random", "--generator", "a", "--seed", "0",
                          "--rule-l2", "-1"]}[case]
    out = tmp_path / "out"
    cmd = [cli_path("modelrecovery"), "analyse-ceiling", "--objects", str(paths["objects"]),
           "--experiment", "x", "--features", f"a={paths['a']}", f"b={paths['b']}",
           "--generators", f"a={gens / 'a.npz'}", f"b={gens / 'b.npz'}",
           "--shard", str(shard), *labels, "--sizes", "10", "--fits", str(shard),
           *ceiling_outputs(out)]
    proc = subprocess.run(cmd, env=tool_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    expected = {"labels": "one entry per dataset", "generator": "have no --generators",
                "shard": f"{shard}: simulated shard lacks column(s)",
                "mismatch": f"{gens / 'b.npz'}: W has {DIM} rows but the features it "
                            f"transforms have {DIM + 1} dimensions",
                "prior": "--prior: unknown model(s) ['c']",
                "instance": "--instances: 'c=",
                "penalty": "--rule-l2: the learned rule's penalty must be > 0"}[case]
    assert expected in errors[0], errors[0]
    assert not out.exists() or files_in(out) == []


@pytest.mark.parametrize("case", ["not_a_candidate", "mismatch", "record"])
def test_the_mimic_design_and_its_divergences_refuse_bad_input_in_one_line(tmp_path, case):
    # A generator without a candidate of its own, a generator whose W does not fit its
    # candidate's features, and a design record that is not one: one line each, naming
    # the flag or the file, and nothing written.
    paths = good_inputs(tmp_path / "in")
    gens = tmp_path / "gens"
    gens.mkdir()
    io.save_generator(gens / "a.npz", gens / "a.json",
                      np.eye(DIM + 1 if case == "mismatch" else DIM), 1.0, {"model": "a"})
    out = tmp_path / "out"
    if case == "record":
        bad = tmp_path / "seed0.json"
        bad.write_text('{"pairs": [], "splits": [{"divergence": [{"pair": 3}]}]}')
        conf = tmp_path / "conf.parquet"
        pq.write_table(pa.table({"n_train": [10]}), conf)
        cmd = [cli_path("modelrecovery"), "design", "divergence", "--designs", str(bad),
               "--confusion", str(conf), "--experiment", "x",
               "--out-parquet", f"mimic_divergence={out / 'm.parquet'}",
               "--out-csv", f"mimic_divergence={out / 'm.csv'}"]
        expected = f"{bad}: not a mimic design record"
    else:
        cands = [f"a={paths['a']}"] if case == "mismatch" else [f"b={paths['b']}"]
        cmd = [cli_path("modelrecovery"), "design", "mimic", "--objects",
               str(paths["objects"]), "--experiment", "x", "--candidates", *cands,
               f"b={paths['b']}" if case == "mismatch" else f"c={paths['a']}",
               "--generators", f"a={gens / 'a.npz'}", "--seed", "0", "--study-seed", "1",
               "--n-train-max", "10", "--lambdas", "1", "--device", "cpu",
               "--out", str(out / "d.parquet"), "--out-json", str(out / "d.json")]
        expected = {"not_a_candidate": "--generators: ['a'] are not among --candidates",
                    "mismatch": f"{gens / 'a.npz'}: W has {DIM + 1} rows"}[case]
    proc = subprocess.run(cmd, env=tool_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert expected in errors[0], errors[0]
    assert not out.exists() or files_in(out) == []
