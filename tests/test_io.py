"""Parquet round trips and the data contracts checked on read."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrecovery import io
from modelrecovery.errors import InputError


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
    assert io.read_json(tmp_path / "g.json") == {"model": "m", "temperature": 0.25}


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
