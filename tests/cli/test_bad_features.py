"""Malformed and numerically unusable inputs through the real CLI: every one is refused
with exit status 2 and one ``error:`` line naming the user's file, the place in it and
the value as the file holds it; no traceback, and the output folder stays empty."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import cli_path, files_in, tool_env
from modelrecovery import io
from modelrecovery.io import checks

N_OBJ, DIM = 12, 3


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli_path("modelrecovery"), *map(str, args)], env=tool_env(),
                          capture_output=True, text=True, timeout=180)


def refusal(proc: subprocess.CompletedProcess[str], bad: Path, *phrases: str) -> str:
    """The single error line of a refused command; checks status, path and phrases."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert str(bad) in errors[0], errors[0]
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


def features(seed: int = 0, d: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N_OBJ, d))


def good_world(root: Path) -> dict[str, Path]:
    """objects, features a, train and test triplets: a valid ``import``."""
    rng = np.random.default_rng(42)
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / f"{name}.parquet" for name in ("objects", "a", "train", "test")}
    io.write_objects(paths["objects"], [f"obj{i}" for i in range(N_OBJ)])
    io.write_features(paths["a"], features())
    trip = np.array([rng.choice(N_OBJ, size=3, replace=False) for _ in range(30)])
    io.write_triplets(paths["train"], trip[:20])
    io.write_triplets(paths["test"], trip[20:])
    return paths


def run_import(paths: dict[str, Path], out: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("import", "--objects", paths["objects"], "--features", f"a={paths['a']}",
                   "--train", paths["train"], "--test", paths["test"], "--out-dir", out)


def list_table(rows: list, value_type: pa.DataType = pa.float64(),
               ids: pa.Array | None = None) -> pa.Table:
    ids = pa.array(range(len(rows)), pa.int32()) if ids is None else ids
    return pa.table({"object_id": ids, "embedding": pa.array(rows, pa.list_(value_type))})


def fixed_table(x: np.ndarray) -> pa.Table:
    return pa.table({
        "object_id": pa.array(np.arange(len(x), dtype=np.int32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]),
    })


def random_rows() -> list[list[float]]:
    return features(1).tolist()


# ----------------------------------------------------------------- objects.parquet

def _objects(**columns) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        table = {"object_id": pa.array(np.arange(N_OBJ, dtype=np.int32)),
                 "name": [f"obj{i}" for i in range(N_OBJ)]}
        table.update(columns)
        pq.write_table(pa.table(table), path)
    return write


def _names(change: dict[int, object]) -> list:
    names: list = [f"obj{i}" for i in range(N_OBJ)]
    for row, name in change.items():
        names[row] = name
    return names


OBJECT_CASES = {
    "integer_names": (_objects(name=pa.array(np.arange(N_OBJ))),
                      ["column 'name' must be a string type, found int64"]),
    "null_name": (_objects(name=pa.array(_names({4: None}), pa.string())),
                  ["row 4 (object_id 4): name is null"]),
    "empty_name": (_objects(name=_names({2: ""})), ["row 2 (object_id 2): name '' is empty"]),
    "blank_name": (_objects(name=_names({5: "  \t "})),
                   ["row 5 (object_id 5): name '  \\t ' is blank"]),
    "duplicate_names": (_objects(name=_names({9: "obj3"})),
                        ["rows 3 and 9 (object_id 3 and 9)", "same name 'obj3'"]),
    "newline_in_name": (_objects(name=_names({1: "a\nb"})),
                        ["row 1 (object_id 1): name 'a\\nb' holds a control character"]),
    "uint64_id": (_objects(object_id=pa.array(list(range(N_OBJ - 1)) + [2**64 - 1],
                                              pa.uint64())),
                  [f"18446744073709551615 at row {N_OBJ - 1}"]),
    "float_ids": (_objects(object_id=pa.array(np.arange(N_OBJ, dtype=np.float64))),
                  ["column 'object_id' must be an integer type, found double"]),
}


@pytest.mark.parametrize("case", list(OBJECT_CASES))
def test_bad_objects_file_is_refused(tmp_path, case):
    breaker, phrases = OBJECT_CASES[case]
    paths = good_world(tmp_path / "in")
    breaker(paths["objects"])
    out = tmp_path / "out"
    refusal(run_import(paths, out), paths["objects"], *phrases)
    assert files_in(out) == []


# ----------------------------------------------------------------- features.parquet


def _null_list(path: Path) -> None:
    rows: list = random_rows()
    rows[3] = None
    rows[7] = rows[7][:2]  # a length difference too: the null is reported first
    pq.write_table(list_table(rows), path)


def _null_value(path: Path) -> None:
    rows = random_rows()
    rows[6][2] = None
    pq.write_table(list_table(rows), path)


def _values_of(value_type: pa.DataType, make: Callable[[int, int], object]
               ) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        rows = [[make(r, c) for c in range(DIM)] for r in range(N_OBJ)]
        pq.write_table(list_table(rows, value_type), path)
    return write


def _beyond_float32(path: Path) -> None:
    x = features(2)
    x[3, 1] = 1e39
    pq.write_table(list_table(x.tolist()), path)


def _scaled(factor: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        pq.write_table(fixed_table((features(3) * factor).astype(np.float32)), path)
    return write


def _constant(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        pq.write_table(fixed_table(np.full((N_OBJ, DIM), value, dtype=np.float32)), path)
    return write


def _folder(path: Path) -> None:
    path.mkdir()
    pq.write_table(fixed_table(features().astype(np.float32)), path / "part-0.parquet")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


FEATURE_CASES = {
    "all_lists_empty": (lambda p: pq.write_table(list_table([[]] * N_OBJ), p),
                        ["embeddings have length 0"]),
    "fixed_size_list_of_0": (
        lambda p: pq.write_table(pa.table({
            "object_id": pa.array(np.arange(N_OBJ, dtype=np.int32)),
            "embedding": pa.array([[]] * N_OBJ, pa.list_(pa.float32(), 0))}), p),
        ["embeddings have length 0"]),
    "null_list": (_null_list, ["row 3 (object_id 3): embedding is null"]),
    "null_value_in_list": (_null_value,
                           ["row 6 (object_id 6), dimension 2: embedding value is null"]),
    "bool_values": (_values_of(pa.bool_(), lambda r, c: bool((r + c) % 2)),
                    ["embedding values must be numbers", "found bool"]),
    "string_values": (_values_of(pa.string(), lambda r, c: str(r)),
                      ["embedding values must be numbers", "found string"]),
    "struct_values": (_values_of(pa.struct([("v", pa.float64())]),
                                 lambda r, c: {"v": float(r)}),
                      ["embedding values must be numbers", "found struct"]),
    "value_beyond_float32": (_beyond_float32,
                             ["value 1e+39 at row 3 (object_id 3), dimension 1",
                              "outside its range"]),
    "uint64_object_id": (
        lambda p: pq.write_table(list_table(
            random_rows(), ids=pa.array(list(range(N_OBJ - 1)) + [2**64 - 1],
                                        pa.uint64())), p),
        [f"18446744073709551615 at row {N_OBJ - 1}"]),
    "scaled_1e19": (_scaled(1e19), ["has squared norm", "largest value", "overflow"]),
    "scaled_1e30": (_scaled(1e30), ["has squared norm", "largest value", "overflow"]),
    "all_zero": (_constant(0.0), ["every object has the same embedding (all zero"]),
    "all_the_same": (_constant(2.5), ["every object has the same embedding",
                                      "every row is [2.5, 2.5, 2.5]"]),
    "folder": (_folder, ["is a folder, expected a Parquet file"]),
    "not_parquet": (lambda p: p.write_text("object_id,embedding\n0,1\n"),
                    ["cannot be read as Parquet"]),
    "fifo": (_fifo, ["is not a regular file"]),
}


@pytest.mark.parametrize("case", list(FEATURE_CASES))
def test_bad_features_parquet_is_refused(tmp_path, case):
    breaker, phrases = FEATURE_CASES[case]
    paths = good_world(tmp_path / "in")
    paths["a"].unlink()
    breaker(paths["a"])
    out = tmp_path / "out"
    refusal(run_import(paths, out), paths["a"], *phrases)
    assert files_in(out) == []


def test_a_folder_of_parquet_parts_is_no_objects_file(tmp_path):
    paths = good_world(tmp_path / "in")
    paths["objects"].unlink()
    paths["objects"].mkdir()
    io.write_objects(paths["objects"] / "part.parquet", ["a"] * 2)
    out = tmp_path / "out"
    refusal(run_import(paths, out), paths["objects"], "is a folder, expected a Parquet file")
    assert files_in(out) == []


def align_cmd(paths: dict[str, Path], out: Path) -> list[object]:
    return ["align", "--objects", paths["objects"], "--features", paths["a"],
            "--train", paths["train"], "--test", paths["test"], "--model", "a",
            "--experiment", "x", "--out-weights", out / "a.npz", "--out-json",
            out / "a.json", "--out-cv", out / "cv.parquet", "--lambdas", "0.01", "1",
            "--cv-folds", "2", "--study-seed", "1", "--dtype", "float32", "--device", "cpu"]


def test_align_refuses_features_that_would_overflow_its_fit(tmp_path):
    # ×1e19 features overflow float32 in the fit's squared norms: align refuses them by
    # name instead of failing inside linalg.
    paths = good_world(tmp_path / "in")
    _scaled(1e19)(paths["a"])
    out = tmp_path / "out"
    refusal(run_cli(*align_cmd(paths, out)), paths["a"], "has squared norm")
    assert files_in(out) == []


def test_features_just_inside_the_norm_bound_align_without_overflow(tmp_path):
    paths = good_world(tmp_path / "in")
    x = features(3)
    x *= np.sqrt(checks.MAX_SQUARED_NORM / 2 / (x ** 2).sum(axis=1).max())
    io.write_features(paths["a"], x)
    out = tmp_path / "out"
    proc = run_cli(*align_cmd(paths, out))
    assert proc.returncode == 0, proc.stderr
    w, _ = io.load_generator(out / "a.npz")
    assert np.isfinite(w).all()


# ----------------------------------------------------------------- import-features


def objects_file(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "objects.parquet"
    io.write_objects(path, [f"obj{i}" for i in range(N_OBJ)])
    return path


def run_import_features(objects: Path, source: Path, out: Path, *flags: str
                        ) -> subprocess.CompletedProcess[str]:
    return run_cli("import-features", "--path", source, "--objects", objects,
                   "--out", out / "a.parquet", *flags)


def _save(x: np.ndarray, path: Path) -> None:
    """Write ``x`` (n, d) in the format of ``path``'s suffix."""
    suffix = path.suffix
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".pt":
        torch.save(torch.from_numpy(x), path)
    elif suffix == ".txt":
        np.savetxt(path, x)
    elif suffix == ".csv":
        np.savetxt(path, x, delimiter=",")
    elif suffix == ".hdf5":
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("features", data=x)
    elif suffix == ".mat":
        from scipy.io import savemat

        savemat(path, {"features": x})
    else:
        raise AssertionError(suffix)


FORMATS = [".npy", ".pt", ".txt", ".csv", ".hdf5", ".mat"]


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype, factor", [(np.float32, 1e19), (np.float32, 1e30),
                                           (np.float64, 1e25)])
def test_import_features_refuses_features_too_large_for_the_fit(tmp_path, suffix, dtype,
                                                                factor):
    objects = objects_file(tmp_path / "in")
    x = (features(4) * factor).astype(dtype)
    source = tmp_path / "in" / f"features{suffix}"
    _save(x, source)
    out = tmp_path / "out"
    line = refusal(run_import_features(objects, source, out), source, "has squared norm")
    assert "row 0" in line or "line 1" in line, line
    assert "e+" in line.split("largest value ")[1].split()[0]  # the value, not inf
    assert files_in(out) == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_import_features_refuses_identical_embeddings(tmp_path, suffix):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / f"features{suffix}"
    _save(np.zeros((N_OBJ, DIM), dtype=np.float32), source)
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out), source,
            "every object has the same embedding (all zero",
            "a candidate must distinguish objects")
    assert files_in(out) == []


def test_values_that_differ_only_beyond_float32_are_the_same_embedding(tmp_path):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / "features.npy"
    x = np.ones((N_OBJ, DIM)) + np.arange(N_OBJ)[:, None] * 1e-12  # float32: all 1.0
    np.save(source, x)
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out), source,
            "every object has the same embedding (every row is [1.0, 1.0, 1.0] in float32")
    assert files_in(out) == []


def test_a_float64_value_beyond_float32_is_shown_as_in_the_file(tmp_path):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / "features.csv"
    x = features(5)
    x[4, 2] = -3e38 * 10
    np.savetxt(source, x, delimiter=",")
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out), source,
            "value -3e+39 at line 5, column 'column 3' overflows float32")
    assert files_in(out) == []


def test_rows_that_become_identical_after_unit_norm_are_refused_naming_the_step(tmp_path):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / "features.npy"
    np.save(source, np.arange(1, N_OBJ + 1)[:, None] * np.array([[1.0, 2.0, 2.0]]))
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out, "--unit-norm"), source,
            "after unit_norm: every object has the same embedding")
    assert files_in(out) == []


@pytest.mark.parametrize("flags, phrase", [
    (["--pca", "7"], "pca = 7 must be an integer in 1..min(n, d) = 1..3"),
    (["--center", "--unit-norm"], "row 2 (0-based object index) has zero norm after "
                                  "centering"),
])
def test_preprocessing_refusals_name_the_source_file(tmp_path, flags, phrase):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / "features.npy"
    x = np.random.default_rng(6).integers(-5, 5, size=(N_OBJ, DIM)).astype(np.float32)
    x[2] = 0.0
    x[-1] = -x[:-1].sum(axis=0)  # row 2 is the mean of all rows: zero once centred
    np.save(source, x)
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out, *flags), source, phrase)
    assert files_in(out) == []


def test_a_thingsvision_folder_with_bad_features_names_its_file(tmp_path):
    objects = objects_file(tmp_path / "in")
    folder = tmp_path / "in" / "alexnet"
    folder.mkdir()
    x = features(7).astype(np.float32)
    x[5, 0] = np.float32(2e19)
    np.save(folder / "features.npy", x)
    out = tmp_path / "out"
    refusal(run_import_features(objects, folder, out), folder / "features.npy",
            "row 5 (0-based object index) has squared norm",
            "largest value 2e+19 at row 5 (0-based object index), dimension 0")
    assert files_in(out) == []


def test_a_split_folder_with_a_missing_part_is_refused(tmp_path):
    objects = objects_file(tmp_path / "in")
    folder = tmp_path / "in" / "split"
    folder.mkdir()
    x = features(8)
    np.save(folder / "features_01.npy", x[:6])
    np.save(folder / "features_03.npy", x[6:])
    out = tmp_path / "out"
    refusal(run_import_features(objects, folder, out), folder, "part 2 is missing")
    assert files_in(out) == []


@pytest.mark.parametrize("name, content, phrase", [
    ("features.mat", b"MATLAB? no", "cannot be read as a MATLAB file"),
    ("features.txt", b"1 2 3\n4 \xe95 6\n", "line 2, byte 3: features file is not UTF-8"),
    ("features.csv", b"a,b,a\n1,2,3\n", "names column(s) ['a'] more than once"),
    ("features.csv", b"a,b\n1,True\n2,False\n", "column 'b' must be a number, found 'True'"),
    ("features.txt", b"1_0 2 3\n", "line 1, value 1: '1_0' is not a number"),
])
def test_unreadable_feature_files_are_one_line(tmp_path, name, content, phrase):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / name
    source.write_bytes(content)
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out), source, phrase)
    assert files_in(out) == []


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_a_quantized_tensor_is_refused(tmp_path):
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / "features.pt"
    torch.save(torch.quantize_per_tensor(torch.rand(N_OBJ, DIM), 0.1, 0, torch.quint8),
               source)
    out = tmp_path / "out"
    refusal(run_import_features(objects, source, out), source, "quantized tensor")
    assert files_in(out) == []


def test_one_dimensional_features_are_accepted(tmp_path):
    # d = 1 aligns, calibrates, simulates and recovers (only the correlation geometry of
    # analyse-geometry is undefined for it), so import keeps it.
    objects = objects_file(tmp_path / "in")
    source = tmp_path / "in" / "features.npy"
    np.save(source, features(9, d=1))
    out = tmp_path / "out"
    proc = run_import_features(objects, source, out)
    assert proc.returncode == 0, proc.stderr
    assert io.read_features(out / "a.parquet", N_OBJ).shape == (N_OBJ, 1)


# ----------------------------------------------------------------- other importers


def test_import_objects_refuses_a_control_character(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("aardvark\nbee\x0bhive\ncat\n")
    out = tmp_path / "out"
    refusal(run_cli("import-objects", "--names", names, "--out", out / "objects.parquet"),
            names, "line 2: name 'bee\\x0bhive' holds a control character")
    assert files_in(out) == []


def test_import_objects_names_the_line_that_is_not_utf8(tmp_path):
    names = tmp_path / "names.txt"
    names.write_bytes(b"aardvark\nb\xe9e\n")
    out = tmp_path / "out"
    refusal(run_cli("import-objects", "--names", names, "--out", out / "objects.parquet"),
            names, "line 2, byte 2: object list file is not UTF-8")
    assert files_in(out) == []


def test_import_things_shows_a_huge_index_as_in_the_file(tmp_path):
    objects = objects_file(tmp_path / "in")
    things = tmp_path / "in" / "things.tsv"
    header = "image1\timage2\timage3\tchoice\tsubject_id\tnoise_ceiling"
    rows = ["1\t2\t3\t1\ts1\t0", "4\t1e23\t6\t2\ts1\t0", "1\t5\t6\t1\ts2\t2"]
    things.write_text("\n".join([header, *rows]) + "\n")
    out = tmp_path / "out"
    refusal(run_cli("import-things", "--triplets", things, "--objects", objects,
                    "--out-dir", out),
            things, f"data row 2 (line 3): image2 = 1e+23 is outside 1..{N_OBJ}")
    assert files_in(out) == []


@pytest.mark.parametrize("which, write, phrase", [
    ("train", lambda p: p.write_text("0 1 2\n3 4 1e23\n"),
     "line 2: (3, 4, 1e+23) has an index outside"),
    ("test", lambda p: np.save(p, np.array([[0, 1, 2], [3, 4, 2**64 - 1]], np.uint64)),
     "row 2 (1-based): (3, 4, 18446744073709551615) has an index outside"),
])
def test_import_arrays_shows_huge_indices_as_in_the_file(tmp_path, which, write, phrase):
    objects = objects_file(tmp_path / "in")
    arrays = {"train": tmp_path / "in" / "trainset.txt",
              "test": tmp_path / "in" / "testset.npy"}
    arrays["train"].write_text("0 1 2\n3 4 5\n6 7 8\n")
    np.save(arrays["test"], np.array([[0, 1, 2], [3, 4, 5]]))
    arrays[which].unlink()
    write(arrays[which])
    out = tmp_path / "out"
    refusal(run_cli("import-arrays", "--train", arrays["train"], "--test", arrays["test"],
                    "--objects", objects, "--out-dir", out), arrays[which], phrase)
    assert files_in(out) == []
