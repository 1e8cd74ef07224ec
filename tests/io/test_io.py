"""Parquet round trips and the data contracts checked on read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrecovery import io
from modelrecovery.errors import InputError
from modelrecovery.io import checks


def test_features_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(13, 5)).astype(np.float32)
    path = tmp_path / "sub" / "feat.parquet"
    io.write_features(path, x)
    back = io.read_features(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(io.read_features(path, 13), x)
    schema = pq.read_schema(path)
    assert schema.field("object_id").type == pa.int32()
    assert pa.types.is_fixed_size_list(schema.field("embedding").type)
    assert schema.field("embedding").type.list_size == 5
    assert schema.field("embedding").type.value_type == pa.float32()
    assert not [p for p in path.parent.iterdir() if p.name != "feat.parquet"]  # no temp left


def test_read_features_accepts_shuffled_rows(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    order = rng.permutation(20)
    table = pa.table({
        "object_id": pa.array(order.astype(np.int32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x[order].reshape(-1)), 3),
    })
    path = tmp_path / "shuffled.parquet"
    pq.write_table(table, path)
    np.testing.assert_array_equal(io.read_features(path, 20), x)


def test_read_features_accepts_variable_list_type(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    table = pa.table({"object_id": pa.array([3, 1, 0, 2], type=pa.int32()),
                      "embedding": pa.array([x[3].tolist(), x[1].tolist(), x[0].tolist(),
                                             x[2].tolist()], type=pa.list_(pa.float64()))})
    path = tmp_path / "list.parquet"
    pq.write_table(table, path)
    np.testing.assert_array_equal(io.read_features(path, 4), x.astype(np.float32))


def test_triplets_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    trip = np.array([rng.choice(30, size=3, replace=False) for _ in range(50)])
    counts = rng.integers(1, 5, size=50).astype(np.int32)
    path = tmp_path / "trip.parquet"
    io.write_triplets(path, trip, count=counts)
    back, extra = io.read_triplets(path, 30)
    np.testing.assert_array_equal(back, trip)
    np.testing.assert_array_equal(extra["count"].to_numpy(), counts)
    schema = pq.read_schema(path)
    assert [schema.field(c).type for c in "ijk"] == [pa.int32()] * 3
    plain = tmp_path / "plain.parquet"
    io.write_triplets(plain, trip)
    back, extra = io.read_triplets(plain, 30)
    np.testing.assert_array_equal(back, trip)
    assert "count" not in extra.columns
    # Extra columns can be asked for by name.
    subj = tmp_path / "subj.parquet"
    io.write_triplets(subj, trip, subject=np.array([f"s{i % 3}" for i in range(50)]))
    _, extra = io.read_triplets(subj, 30, columns=["subject"])
    assert extra["subject"].tolist() == [f"s{i % 3}" for i in range(50)]


def test_objects_round_trip(tmp_path):
    names = ["aardvark", "bee", "cat", "dög", "e e"]
    path = tmp_path / "objects.parquet"
    io.write_objects(path, names)
    back = io.read_objects(path)
    assert back["object_id"].tolist() == list(range(5))
    assert back["name"].tolist() == names
    assert pq.read_schema(path).field("object_id").type == pa.int32()


def test_generator_round_trip(tmp_path):
    w = np.random.default_rng(3).normal(size=(4, 4))
    io.save_generator(tmp_path / "g.npz", tmp_path / "g.json", w, 0.25, {"model": "m"})
    w2, t = io.load_generator(tmp_path / "g.npz")
    np.testing.assert_array_equal(w2, w)
    assert t == 0.25
    assert io.read_json(tmp_path / "g.json") == {"model": "m", "similarity": "dot",
                                                 "temperature": 0.25}


def test_read_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.parquet"
    with pytest.raises(InputError, match="does not exist") as exc:
        io.read_features(missing)
    assert str(missing) in str(exc.value)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(InputError, match="cannot be read as Parquet"):
        io.read_triplets(junk, 10)
    nocol = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"i": [0], "j": [1]}), nocol)
    with pytest.raises(InputError, match=r"lacks column"):
        io.read_triplets(nocol, 10)
    count0 = tmp_path / "count0.parquet"
    io.write_triplets(count0, np.array([[0, 1, 2], [1, 2, 3]]), count=np.array([1, 0]))
    with pytest.raises(InputError, match="count must be"):
        io.read_triplets(count0, 10)
    badobj = tmp_path / "objects.parquet"
    pq.write_table(pa.table({"object_id": pa.array([0, 2, 1], type=pa.int32()),
                             "name": ["a", "b", "c"]}), badobj)
    with pytest.raises(InputError, match="in order"):
        io.read_objects(badobj)


def test_outputs_get_ordinary_permissions(tmp_path):
    # Written through a private temporary file, results must still be readable by the
    # group and others as the umask allows (shared cluster folders).
    old = os.umask(0o022)
    try:
        io.write_objects(tmp_path / "objects.parquet", ["a", "b"])
    finally:
        os.umask(old)
    assert (tmp_path / "objects.parquet").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- feature values


def test_check_feature_values_returns_float32_up_to_the_norm_bound(tmp_path):
    x = np.random.default_rng(4).normal(size=(6, 3))
    inside = x * np.sqrt(checks.MAX_SQUARED_NORM * 0.99 / (x ** 2).sum(axis=1).max())
    got = checks.check_feature_values(inside, tmp_path / "f.npy")
    assert got.dtype == np.float32 and got.shape == (6, 3)
    np.testing.assert_array_equal(got, inside.astype(np.float32))
    row = int(np.argmax((x ** 2).sum(axis=1)))
    with pytest.raises(InputError, match=rf"row {row} has squared norm 1\.2\de\+18 "
                                         r"\(largest value .* at row \d, dimension \d\), "
                                         r"above 1\.15e\+18"):
        checks.check_feature_values(inside * 1.05, tmp_path / "f.npy")
    # The bound is derived from float32's range: ‖x‖⁴ must stay far below its maximum.
    assert checks.MAX_SQUARED_NORM ** 2 < float(np.finfo(np.float32).max) / 100


@pytest.mark.parametrize("make, message", [
    (lambda x: np.where(np.arange(12).reshape(4, 3) == 5, np.nan, x),
     "non-finite value (NaN) at row 1, dimension 2; 1 non-finite value(s) in all"),
    (lambda x: np.where(np.arange(12).reshape(4, 3) == 1, -np.inf, x),
     "non-finite value (-inf) at row 0, dimension 1; 1 non-finite value(s) in all"),
    (lambda x: np.where(np.arange(12).reshape(4, 3) == 7, 1e39, x),
     "value 1e+39 at row 2, dimension 1 overflows float32 (outside its range "
     "±3.4028235e+38)"),
    (lambda x: np.zeros((4, 3)),
     "every object has the same embedding (all zero in float32, all 4 rows); no linear "
     "probe can rank a triplet (x_iᵀ M x_j is the same for every pair), and a candidate "
     "must distinguish objects"),
    (lambda x: np.tile([1.0, -2.0, 0.5, 3.0, 4.0], (4, 1)),
     "every object has the same embedding (every row is [1.0, -2.0, 0.5, 3.0, ...] in "
     "float32, all 4 rows); no linear probe can rank a triplet (x_iᵀ M x_j is the same for "
     "every pair), and a candidate must distinguish objects"),
    (lambda x: x > 0, "features must be numbers, found dtype bool"),
    (lambda x: x[0], "features must be a 2-D array (objects × dimensions), found shape (3,)"),
    (lambda x: x[:, :0], "features are empty (shape (4, 0))"),
])
def test_check_feature_values_refusals(tmp_path, make, message):
    x = make(np.random.default_rng(5).normal(size=(4, 3)))
    with pytest.raises(InputError) as err:
        checks.check_feature_values(x, tmp_path / "f.npy")
    assert str(err.value) == f"{tmp_path / 'f.npy'}: {message}"


def test_check_feature_values_names_the_place_the_step_and_the_value_as_stored(tmp_path):
    def where(r, c):
        return f"line {r + 1}" if c is None else f"line {r + 1}, value {c + 1}"

    x = np.ones((3, 2), dtype=np.uint64)
    x[1, 1] = 2**63 + 1  # exact in the message, not wrapped to a negative int64
    with pytest.raises(InputError) as err:
        checks.check_feature_values(x, "src.bin", where=where, step="center, pca")
    assert str(err.value).startswith(
        "src.bin: after center, pca: line 2 has squared norm 8.51e+37 (largest value "
        "9223372036854775809 at line 2, value 2), above 1.15e+18")
    half = np.full((2, 2), np.float32(1e30))
    half[0, 0] = np.float32(3e29)
    with pytest.raises(InputError, match=r"largest value 1e\+30 at row 0, dimension 1"):
        checks.check_feature_values(half, "f32")  # float32's own shortest form
    with pytest.raises(InputError, match=r"^f: non-finite value \(missing or NaN\) at"):
        checks.check_feature_values(np.array([[np.nan, 1.0]]), "f", nan_shown="missing or NaN")
    single = checks.check_feature_values(np.array([[1.0, 2.0]]), "one")  # one object: nothing
    np.testing.assert_array_equal(single, [[1.0, 2.0]])               # to compare it with


def test_write_features_refuses_non_finite_values(tmp_path):
    x = np.random.default_rng(6).normal(size=(4, 2))
    for bad in (np.nan, np.inf, 1e39):  # 1e39 would become inf in float32
        y = x.copy()
        y[2, 1] = bad
        with pytest.raises(ValueError, match=r"non-finite float32 value at row 2, "
                                             r"dimension 1"):
            io.write_features(tmp_path / "f.parquet", y)
    with pytest.raises(ValueError, match="n, d ≥ 1"):
        io.write_features(tmp_path / "f.parquet", np.zeros((4, 0)))
    assert not (tmp_path / "f.parquet").exists()


# --------------------------------------------------------------------------- malformed files


def _objects_table(**columns) -> pa.Table:
    table = {"object_id": pa.array(np.arange(4, dtype=np.int32)), "name": list("abcd")}
    table.update(columns)
    return pa.table(table)


@pytest.mark.parametrize("table, message", [
    (_objects_table(name=pa.array([1, 2, 3, 4])),
     "column 'name' must be a string type, found int64"),
    (_objects_table(name=pa.array(["a", "b", None, "d"])),
     "row 2 (object_id 2): name is null"),
    (_objects_table(name=["a", "", "c", "d"]),
     "row 1 (object_id 1): name '' is empty; every object needs a name"),
    (_objects_table(name=["a", "b", "c", " \u3000"]),
     "row 3 (object_id 3): name ' \\u3000' is blank (whitespace only); every object needs "
     "a name"),
    (_objects_table(name=["cat", "dog", "emu", "dog"]),
     "rows 1 and 3 (object_id 1 and 3) have the same name 'dog'; names must be unique"),
    (_objects_table(name=["a", "b\tc", "d", "e"]),
     "row 1 (object_id 1): name 'b\\tc' holds a control character '\\t'"),
    (_objects_table(object_id=pa.array([0, 1, 2, 2**64 - 1], pa.uint64())),
     "column 'object_id' is 18446744073709551615 at row 3, beyond the largest index "
     "(2**63 − 1)"),
    (_objects_table(object_id=pa.array([0, 1, None, 3], pa.int32())),
     "column 'object_id' is null at row 2"),
    (pa.table({"object_id": pa.array([], pa.int32()), "name": pa.array([], pa.string())}),
     "objects file has no rows"),
    (pa.Table.from_arrays([pa.array([0, 1]), pa.array(["a", "b"]), pa.array(["c", "d"])],
                          names=["object_id", "name", "name"]),
     "column 'name' appears 2 times (columns [1, 2] of ['object_id', 'name', 'name']); "
     "keep one"),
])
def test_read_objects_refusals(tmp_path, table, message):
    path = tmp_path / "objects.parquet"
    pq.write_table(table, path)
    with pytest.raises(InputError) as err:
        io.read_objects(path)
    assert str(err.value) == f"{path}: {message}"


def test_read_objects_accepts_categorical_names_and_several_row_groups(tmp_path):
    frame = pd.DataFrame({"object_id": np.arange(5, dtype=np.int32),
                          "name": pd.Categorical(["b", "a", "c", "e", "d"])})
    path = tmp_path / "objects.parquet"
    frame.to_parquet(path, row_group_size=2)
    assert pq.read_schema(path).field("name").type.id == pa.dictionary(
        pa.int8(), pa.string()).id
    assert io.read_objects(path)["name"].tolist() == ["b", "a", "c", "e", "d"]


def _features_table(rows, value_type=pa.float64(), ids=None) -> pa.Table:
    ids = pa.array(range(len(rows)), pa.int32()) if ids is None else ids
    return pa.table({"object_id": ids, "embedding": pa.array(rows, pa.list_(value_type))})


@pytest.mark.parametrize("table, message", [
    (_features_table([[], [], []]),
     "embeddings have length 0 (every list in column 'embedding' is empty); every object "
     "needs at least one feature"),
    (pa.table({"object_id": pa.array([0, 1], pa.int32()),
               "embedding": pa.array([[], []], pa.list_(pa.float32(), 0))}),
     "embeddings have length 0 (column 'embedding' is fixed_size_list<element: float>[0]); "
     "every object needs at least one feature"),
    (_features_table([[1.0, 2.0], None, [1.0]], ids=pa.array([4, 0, 1])),
     "row 1 (object_id 0): embedding is null"),
    (_features_table([[1.0, 2.0], [3.0], [1.0, 5.0]]),
     "embedding lengths differ: row 0 (object_id 0) has 2, row 1 (object_id 1) has 1"),
    (_features_table([[1.0, 2.0], [3.0, None], [1.0, None]]),
     "row 1 (object_id 1), dimension 1: embedding value is null (2 such values)"),
    (_features_table([[True], [False]], pa.bool_()),
     "embedding values must be numbers (integers or floats), found bool"),
    (_features_table([["1"], ["2"]], pa.string()),
     "embedding values must be numbers (integers or floats), found string"),
    (pa.table({"object_id": [0, 1], "embedding": [1.0, 2.0]}),
     "column 'embedding' must be a list of numbers, found double"),
    (_features_table([[1.0, 2.0], [3.0, 1e39], [1.0, 0.0]]),
     "value 1e+39 at row 1 (object_id 1), dimension 1 overflows float32 (outside its range "
     "±3.4028235e+38)"),
    (_features_table([[1.0, 2.0], [3.0, 4.0]], ids=pa.array([0, 2**64 - 1], pa.uint64())),
     "column 'object_id' is 18446744073709551615 at row 1, beyond the largest index "
     "(2**63 − 1)"),
    (_features_table([[0.5, 1.0]] * 3),
     "every object has the same embedding (every row is [0.5, 1.0] in float32, all 3 "
     "rows); no linear probe can rank a triplet (x_iᵀ M x_j is the same for every pair), "
     "and a candidate must distinguish objects"),
])
def test_read_features_refusals(tmp_path, table, message):
    path = tmp_path / "features.parquet"
    pq.write_table(table, path)
    with pytest.raises(InputError) as err:
        io.read_features(path)
    assert str(err.value) == f"{path}: {message}"


def test_read_features_accepts_integer_values_and_several_row_groups(tmp_path):
    rows = [[r, 2 * r + 1, -r] for r in range(7)]
    path = tmp_path / "ints.parquet"
    pq.write_table(_features_table(rows[::-1], pa.int16(),
                                   ids=pa.array(range(6, -1, -1), pa.int64())), path,
                   row_group_size=3)
    got = io.read_features(path, 7)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array(rows, dtype=np.float32))


def test_paths_that_are_not_parquet_files(tmp_path):
    folder = tmp_path / "features.parquet"
    folder.mkdir()
    io.write_features(folder / "part-0.parquet", np.eye(3))
    with pytest.raises(InputError) as err:
        io.read_features(folder)
    assert str(err.value) == f"{folder}: is a folder, expected a Parquet file (features)"
    fifo = tmp_path / "objects.parquet"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as err:
        io.read_objects(fifo)
    assert str(err.value) == (f"{fifo}: is not a regular file (a FIFO, socket or device), "
                              f"expected a Parquet file (objects)")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.parquet: cannot be read as Parquet "
                                         r"\(triplets\): .*\S$"):
        io.read_triplets(empty, 10)


def test_an_unreadable_file_is_refused():
    # Root reads files whatever their mode, so as root (CI) the reader runs as 'nobody'.
    folder = Path(tempfile.mkdtemp(prefix="unreadable-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        path = folder / "objects.parquet"
        io.write_objects(path, ["a", "b"])
        path.chmod(0)
        code = ("import sys; from modelrecovery import io; from modelrecovery.errors import "
                "InputError\ntry:\n    io.read_objects(sys.argv[1])\nexcept InputError as e:"
                "\n    print(e)")
        cmd = [sys.executable, "-c", code, str(path)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.strip() == (f"{path}: cannot open the objects file: Permission "
                                      "denied"), out.stderr
    finally:
        shutil.rmtree(folder)


def test_triplet_indices_beyond_int64_are_shown_as_stored(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({c: pa.array([0, v], pa.uint64())
                             for c, v in zip("ijk", (1, 2, 2**63))}), path)
    with pytest.raises(InputError) as err:
        io.read_triplets(path, 10)
    assert str(err.value) == (f"{path}: column 'k' is 9223372036854775808 at row 1, beyond "
                              f"the largest index (2**63 − 1)")


def test_json_and_generator_files_that_are_malformed(tmp_path):
    latin = tmp_path / "a.json"
    latin.write_bytes(b'{"model": "caf\xe9"}')
    with pytest.raises(InputError, match=r"a.json: cannot read JSON: 'utf-8' codec"):
        io.read_json(latin)
    listed = tmp_path / "b.json"
    listed.write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a JSON object, found list"):
        io.read_json(listed)
    bom = tmp_path / "c.json"
    bom.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert io.read_json(bom) == {"a": 1}
    broken = tmp_path / "g.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(InputError, match="not a valid generator file"):
        io.load_generator(broken)
    low_rank = tmp_path / "h.npz"  # low_rank:k transforms are d × k
    np.savez(low_rank, W=np.ones((3, 2)), T=np.array(1.0))
    assert io.load_generator(low_rank)[0].shape == (3, 2)
    flat = tmp_path / "i.npz"
    np.savez(flat, W=np.ones(3), T=np.array(1.0))
    with pytest.raises(InputError, match=r"W must be a finite matrix \(d, k\), found shape "
                                         r"\(3,\)"):
        io.load_generator(flat)
    broken_w = tmp_path / "j.npz"
    np.savez(broken_w, W=np.array([[1.0, np.nan]]), T=np.array(1.0))
    with pytest.raises(InputError, match="non-finite"):
        io.load_generator(broken_w)


def test_simulated_shards_and_recovery_rows_follow_their_contracts():
    """The column lists in io.contracts are the layouts the jobs write."""
    from modelrecovery import simulate
    from modelrecovery.oddoneout import similarity

    x = np.random.default_rng(0).normal(size=(30, 3))
    shard = simulate.simulate_dataset(similarity(x), 0.5, 6, n_folds=2, val_fraction=0.25,
                                      eval_fraction=0.5, rng=np.random.default_rng(1))
    assert tuple(shard.columns) == io.SHARD_COLUMNS
    assert io.DESIGN_COLUMNS == (*io.SHARD_COLUMNS, "utility")
    assert len(set(io.RECOVERY_COLUMNS)) == len(io.RECOVERY_COLUMNS)
    assert {"val_acc", "test_acc", "test_nll", "lambda", "design"} <= set(io.RECOVERY_COLUMNS)
