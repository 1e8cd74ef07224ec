"""Importers: THINGS behaviour file, older triplet arrays, object lists, feature files.

Every input is built here in the published layout: the THINGS file as written by its
preprocessing script (TAB-separated, header ``image1 image2 image3 choice RT
noise_ceiling subject_id HIT_nr trial_nr age gender date time dataset``), the older
``trainset.txt``/``testset*.txt`` arrays, and thingsvision's ``save_features`` outputs
(written exactly as ``thingsvision.utils.storing.store_features`` writes them).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from modelrecovery import io
from modelrecovery.errors import InputError
from modelrecovery.importers import (import_features, import_objects, import_things,
                                     preprocess, read_features_file, read_object_names,
                                     read_things_triplets, read_triplet_array)
from things_files import HEADER, N_OBJ
from things_files import things_rows as make_things_rows
from things_files import write_table


def _expected(rows):
    """Independent conversion: k = the image at position `choice`, i, j the others."""
    out = []
    for row in rows:
        images = [int(v) - 1 for v in row[:3]]
        pos = int(row[3]) - 1
        others = [im for q, im in enumerate(images) if q != pos]
        out.append((others[0], others[1], images[pos], row[6], int(row[5])))
    return pd.DataFrame(out, columns=["i", "j", "k", "subject", "split"])


@pytest.fixture(scope="module")
def things_rows():
    return make_things_rows()


@pytest.fixture()
def small_rows(things_rows):
    return [list(r) for r in things_rows[:10]]


# --------------------------------------------------------------------------- THINGS file


def test_read_things_published_tab_format(tmp_path, things_rows):
    path = write_table(tmp_path / "triplets_large_final_correctednc_correctedorder.csv",
                        things_rows)
    got = read_things_triplets(path)
    want = _expected(things_rows)
    assert len(got) == len(things_rows) > 2500
    for col in ("i", "j", "k", "split"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy())
    assert got["subject"].tolist() == want["subject"].tolist()
    assert got["i"].dtype == np.int32 and got["k"].dtype == np.int32
    assert "00042" in set(got["subject"])  # kept as a string, leading zeros and all
    # row 1 is image1=1, image2=1854, image3=17 with choice 2: image2 is the odd one
    assert got.loc[0, ["i", "j", "k"]].tolist() == [0, 16, 1853]


def test_choice_positions_map_to_k(tmp_path, small_rows):
    for pos, want in ((1, (20, 30, 10)), (2, (10, 30, 20)), (3, (10, 20, 30))):
        small_rows[0][:4] = ["11", "21", "31", str(pos)]
        path = write_table(tmp_path / f"c{pos}.csv", small_rows)
        assert tuple(read_things_triplets(path).loc[0, ["i", "j", "k"]]) == want


def test_comma_separated_crlf_with_unknown_columns(tmp_path, things_rows):
    header = ["rank", *HEADER, "session"]
    rows = [[str(n), *r, "s1"] for n, r in enumerate(things_rows)]
    path = write_table(tmp_path / "things_comma.csv", rows, header=header, sep=",",
                        newline="\r\n")
    tab = write_table(tmp_path / "things_tab.csv", things_rows)
    pd.testing.assert_frame_equal(read_things_triplets(path), read_things_triplets(tab))


def test_import_things_splits_and_summary(tmp_path, things_rows):
    src = write_table(tmp_path / "things.csv", things_rows)
    out = tmp_path / "human"
    summary = import_things(src, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "summary.json", "test1.parquet", "test2.parquet", "test3.parquet", "train.parquet"]
    assert json.loads((out / "summary.json").read_text()) == summary
    want = _expected(things_rows)
    for name, value in (("train", 0), ("test1", 1), ("test2", 2), ("test3", 3)):
        part = want[want["split"] == value]
        t, extra = io.read_triplets(out / f"{name}.parquet", N_OBJ, columns=["subject"])
        np.testing.assert_array_equal(t, part[["i", "j", "k"]].to_numpy())
        assert extra["subject"].tolist() == part["subject"].tolist()
        triples = {frozenset(r) for r in part[["i", "j", "k"]].itertuples(index=False)}
        objects = set(part[["i", "j", "k"]].to_numpy().ravel().tolist())
        assert summary["splits"][name] == {
            "file": f"{name}.parquet", "noise_ceiling": value, "rows": len(part),
            "unique_triplets": len(triples), "objects": len(objects),
            "subjects": part["subject"].nunique()}
    assert summary["splits"]["train"]["rows"] == 2400
    assert summary["splits"]["test1"]["unique_triplets"] == 25
    assert summary["splits"]["test2"]["unique_triplets"] == 20
    assert summary["splits"]["test3"]["unique_triplets"] == 20
    assert summary["rows"] == len(things_rows)


def test_import_things_writes_only_present_splits(tmp_path, small_rows):
    small_rows[3][5] = "2"
    summary = import_things(write_table(tmp_path / "t.csv", small_rows), tmp_path / "o")
    assert sorted(summary["splits"]) == ["test2", "train"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "summary.json", "test2.parquet", "train.parquet"]


def _bad(small_rows, row, col, value):
    small_rows[row][HEADER.index(col)] = value
    return small_rows


@pytest.mark.parametrize("row, col, value, message", [
    (6, "choice", "4", "data row 7 (line 8): choice = 4 must be 1, 2 or 3 (the position "
                       "of the odd one out among image1..image3)"),
    (2, "image2", "0", "data row 3 (line 4): image2 = 0 is outside 1..1854 (THINGS "
                       "indices are 1-based)"),
    (4, "image3", "1855", "data row 5 (line 6): image3 = 1855 is outside 1..1854 (THINGS "
                          "indices are 1-based)"),
    (1, "image1", "abc", "data row 2 (line 3): column 'image1' must be a number, found "
                         "'abc'"),
    (8, "choice", "2.5", "data row 9 (line 10): column 'choice' must be an integer, found "
                         "2.5"),
    (5, "subject_id", "", "data row 6 (line 7): missing value in column 'subject_id'"),
    (3, "noise_ceiling", "", "data row 4 (line 5): missing value in column "
                             "'noise_ceiling'"),
    (0, "noise_ceiling", "7", "data row 1 (line 2): noise_ceiling = 7 must be 0 "
                              "(training) or 1, 2, 3 (repeated test sets)"),
])
def test_things_refusals(tmp_path, small_rows, row, col, value, message):
    path = write_table(tmp_path / "bad.csv", _bad(small_rows, row, col, value))
    with pytest.raises(InputError) as err:
        read_things_triplets(path)
    assert str(err.value) == f"{path}: {message}"
    out = tmp_path / "out"
    with pytest.raises(InputError):
        import_things(path, out)
    assert not out.exists()


def test_things_refuses_repeated_object(tmp_path, small_rows):
    small_rows[6][:3] = ["5", "9", "5"]
    path = write_table(tmp_path / "rep.csv", small_rows)
    with pytest.raises(InputError) as err:
        import_things(path, tmp_path / "out")
    assert str(err.value) == (f"{path}: data row 7 (line 8): (image1, image2, image3) = "
                              f"(5, 9, 5) repeats an object; a triplet needs three "
                              f"distinct objects")
    assert not (tmp_path / "out").exists()


def test_things_counts_all_bad_rows(tmp_path, small_rows):
    small_rows[2][3] = "0"
    small_rows[7][3] = "9"
    path = write_table(tmp_path / "two.csv", small_rows)
    with pytest.raises(InputError, match=r"data row 3 \(line 4\): choice = 0 .* \(2 such "
                                         r"rows\)$"):
        read_things_triplets(path)


def test_things_refuses_missing_column(tmp_path, small_rows):
    header = [h for h in HEADER if h != "choice"]
    rows = [r[:3] + r[4:] for r in small_rows]
    path = write_table(tmp_path / "nochoice.csv", rows, header=header)
    with pytest.raises(InputError) as err:
        import_things(path, tmp_path / "out")
    assert str(err.value) == (f"{path}: THINGS triplet file lacks required column(s) "
                              f"['choice'] (header line 1 read as TAB-separated: {header})")
    assert not (tmp_path / "out").exists()


def test_things_refuses_empty_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError) as err:
        import_things(empty, tmp_path / "out")
    assert str(err.value) == f"{empty}: THINGS triplet file is empty"
    header_only = write_table(tmp_path / "header.csv", [])
    with pytest.raises(InputError) as err:
        read_things_triplets(header_only)
    assert str(err.value) == (f"{header_only}: THINGS triplet file has a header but no "
                              f"data rows")
    with pytest.raises(InputError, match="does not exist"):
        read_things_triplets(tmp_path / "missing.csv")
    assert not (tmp_path / "out").exists()


def test_things_blank_line_is_named(tmp_path, small_rows):
    path = tmp_path / "blank.csv"
    text = write_table(path, small_rows).read_text().splitlines(keepends=True)
    path.write_text("".join(text[:4] + ["\n"] + text[4:]))
    with pytest.raises(InputError) as err:
        read_things_triplets(path)
    assert str(err.value) == f"{path}: data row 4 (line 5): missing value in column 'image1'"


# --------------------------------------------------------------------------- older arrays


def test_triplet_array_text_and_npy(tmp_path):
    rng = np.random.default_rng(3)
    t = np.array([rng.choice(40, size=3, replace=False) for _ in range(200)])
    txt = tmp_path / "testset1.txt"
    txt.write_text("".join(f"{a} {b} {c}\n" for a, b, c in t))  # as the THINGS script
    np.testing.assert_array_equal(read_triplet_array(txt, 40), t)
    npy = tmp_path / "trainset.npy"
    np.save(npy, t)
    got = read_triplet_array(npy, 40)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, t)
    floats = tmp_path / "savetxt.txt"
    np.savetxt(floats, t)  # default fmt writes 1.000000000000000000e+00
    np.testing.assert_array_equal(read_triplet_array(floats, 40), t)


@pytest.mark.parametrize("text, message", [
    ("0 1 2\n3 4 5 6\n", "line 2 has 4 values, expected 3"),
    ("0 1 2\n3 x 5\n", "line 2, value 2: 'x' is not a number"),
    ("0 1 2\n\n3 4 5\n", "line 2 is empty"),
    ("0 1 2\n3 4 40\n", "line 2: (3, 4, 40) has an index outside 0..39 (indices are "
                        "0-based)"),
    ("0 1 2\n3 4 -1\n", "line 2: (3, 4, -1) has an index outside 0..39 (indices are "
                        "0-based)"),
    ("0 1 2\n7 4 7\n", "line 2: (7, 4, 7) repeats an object; a triplet needs three "
                       "distinct objects"),
    ("0 1 2\n3 4.5 6\n", "line 2: (3.0, 4.5, 6.0) are not all integers"),
    ("", "triplet array file is empty"),
])
def test_triplet_array_refusals(tmp_path, text, message):
    path = tmp_path / "testset.txt"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_triplet_array(path, 40)
    assert str(err.value) == f"{path}: {message}"


def test_triplet_array_npy_refusals(tmp_path):
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(InputError) as err:
        read_triplet_array(wide, 40)
    assert str(err.value) == f"{wide}: triplet array must have shape (N, 3), found (4, 4)"
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([[0, 1, {"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError) as err:
        read_triplet_array(obj, 40)
    assert str(err.value) == (f"{obj}: holds a Python object array, which would have to "
                              f"be unpickled; refused (save a numeric array)")
    far = tmp_path / "far.npy"
    np.save(far, np.array([[0, 1, 2], [3, 4, 99]]))
    with pytest.raises(InputError) as err:
        read_triplet_array(far, 40)
    assert str(err.value) == (f"{far}: row 2 (1-based): (3, 4, 99) has an index outside "
                              f"0..39 (indices are 0-based)")


def npy_claiming(path, shape, data: bytes, dtype="<f8", version=(1, 0)):
    """A .npy file whose header declares ``shape`` of ``dtype`` before ``data``."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header) if version == (1, 0) else \
            np.lib.format.write_array_header_2_0(fh, header)
        fh.write(data)
    return path


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
@pytest.mark.parametrize("shape", [(2_000_000, 3), (40, 3), (10**12, 10**3)])
def test_an_npy_header_that_promises_other_data_than_the_file_holds_is_refused(
        tmp_path, shape, version):
    # Before any allocation: a header may claim terabytes over a few bytes of data (or a
    # file cut short in a copy), and numpy would allocate the claim first.
    data = np.arange(30, dtype="<f8").tobytes()  # 10 rows of 3
    path = npy_claiming(tmp_path / "claims.npy", shape, data, version=version)
    for read in (lambda: read_triplet_array(path, 40), lambda: read_features_file(path)):
        with pytest.raises(InputError) as err:
            read()
        assert str(err.value).startswith(f"{path}: the .npy header declares shape {shape}")
        assert "240 bytes of data" in str(err.value)
    exact = npy_claiming(tmp_path / "exact.npy", (10, 3), data, version=version)
    assert read_features_file(exact).shape == (10, 3)


# --------------------------------------------------------------------------- object names


def test_object_names(tmp_path):
    path = tmp_path / "unique_id.txt"
    path.write_text("aardvark\nabacus\r\n  accordion \nacorn\n")
    assert read_object_names(path) == ["aardvark", "abacus", "accordion", "acorn"]
    assert read_object_names(path, n_objects=4) == ["aardvark", "abacus", "accordion",
                                                    "acorn"]
    out = tmp_path / "objects.parquet"
    import_objects(path, out)
    assert io.read_objects(out)["name"].tolist() == ["aardvark", "abacus", "accordion",
                                                     "acorn"]


@pytest.mark.parametrize("text, message", [
    ("aardvark\nabacus\naardvark\n", "line 3: name 'aardvark' duplicates line 1"),
    ("aardvark\n\nabacus\n", "line 2 is empty; the object list needs one name per line"),
    ("aardvark\nabacus\n\n", "line 3 is empty; the object list needs one name per line"),
    ("aardvark\tAardvark\n", "line 1 holds a TAB ('aardvark\\tAardvark'); expected one "
                             "name per line, not a table"),
    ("", "object list file is empty"),
])
def test_object_names_refusals(tmp_path, text, message):
    path = tmp_path / "names.txt"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_object_names(path)
    assert str(err.value) == f"{path}: {message}"
    with pytest.raises(InputError):
        import_objects(path, tmp_path / "objects.parquet")
    assert not (tmp_path / "objects.parquet").exists()


def test_object_names_count(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("a\nb\n")
    with pytest.raises(InputError) as err:
        read_object_names(path, n_objects=3)
    assert str(err.value) == f"{path}: object list has 2 names, expected 3"


# --------------------------------------------------------------------------- features


@pytest.fixture()
def feats():
    return np.random.default_rng(5).normal(size=(12, 7)).astype(np.float32)


def _thingsvision_save(features: np.ndarray, root, file_format: str):
    """What thingsvision.utils.storing.store_features writes for each format."""
    root.mkdir(parents=True, exist_ok=True)
    if file_format == "npy":
        with open(root / "features.npy", "wb") as f:
            np.save(f, features)
    elif file_format == "pt":
        torch.save(torch.from_numpy(features), root / "features.pt")
    elif file_format == "hdf5":
        import h5py

        h5f = h5py.File(root / "features.hdf5", "w")
        h5f.create_dataset("features", data=features)
        h5f.close()
    elif file_format == "txt":
        np.savetxt(root / "features.txt", features)
    return root / f"features.{file_format}"


@pytest.mark.parametrize("file_format", ["npy", "txt", "hdf5", "pt"])
def test_thingsvision_outputs(tmp_path, feats, file_format):
    path = _thingsvision_save(feats, tmp_path / "tv", file_format)
    for source in (path, tmp_path / "tv"):  # the file, or thingsvision's out_path folder
        got = read_features_file(source, n_objects=12)
        assert got.dtype == np.float32 and got.shape == (12, 7)
        np.testing.assert_allclose(got, feats, rtol=1e-6)


def test_thingsvision_split_outputs(tmp_path, feats):
    import h5py

    with h5py.File(tmp_path / "features.hdf5", "w") as h5f:  # split_features' layout
        for n, (a, b) in enumerate(((0, 5), (5, 9), (9, 12)), 1):
            h5f.create_dataset(f"features_{n:02d}", data=feats[a:b])
    np.testing.assert_array_equal(read_features_file(tmp_path / "features.hdf5", 12), feats)
    folder = tmp_path / "npysplit"
    folder.mkdir()
    for n, (a, b) in enumerate(((0, 4), (4, 8), (8, 12)), 1):
        np.save(folder / f"features_{n:02d}.npy", feats[a:b])
    np.testing.assert_array_equal(read_features_file(folder, 12), feats)


def test_thingsvision_mat(tmp_path, feats):
    from scipy.io import savemat

    names = [f"img_{r:03d}.jpg" for r in range(12)]
    (tmp_path / "file_names.txt").write_text("\n".join(names) + "\n")
    savemat(tmp_path / "features.mat",
            {n[:-4]: f for n, f in zip(names[::-1], feats[::-1])})  # key order irrelevant
    np.testing.assert_array_equal(read_features_file(tmp_path / "features.mat", 12), feats)
    savemat(tmp_path / "plain.mat", {"features": feats})
    np.testing.assert_array_equal(read_features_file(tmp_path / "plain.mat", 12), feats)


def test_hdf5_without_features_dataset(tmp_path, feats):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5f:
        h5f.create_dataset("activations", data=feats)
    with pytest.raises(InputError) as err:
        read_features_file(path)
    assert str(err.value) == (f"{path}: no dataset named 'features' (thingsvision's "
                              f"layout); the file has ['activations']")


def test_torch_files(tmp_path, feats):
    t = torch.from_numpy(feats)
    cases = {"tensor.pt": t, "features.pth": {"features": t, "names": torch.arange(12)},
             "emb.pt": {"embeddings": t.double()}, "single.pt": {"w": t, "b": t[0]},
             "bf16.pt": t.to(torch.bfloat16)}
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
        got = read_features_file(tmp_path / name, n_objects=12)
        tol = 1e-2 if name == "bf16.pt" else 1e-6
        np.testing.assert_allclose(got, feats, rtol=tol, atol=tol)
    torch.save({"a": t, "b": t}, tmp_path / "two.pt")
    with pytest.raises(InputError) as err:
        read_features_file(tmp_path / "two.pt")
    assert str(err.value) == (f"{tmp_path / 'two.pt'}: holds a dict with keys ['a', 'b']; "
                              f"expected a key 'features' or 'embeddings', or exactly one "
                              f"2-D tensor (found 2)")
    torch.save([t], tmp_path / "list.pt")
    with pytest.raises(InputError) as err:
        read_features_file(tmp_path / "list.pt")
    assert str(err.value) == (f"{tmp_path / 'list.pt'}: holds a list, expected a tensor or "
                              f"a dict of tensors")


class _Payload:
    """Unpickling this would create a file: proof of whether any code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_torch_pickled_object_is_refused_without_running_code(tmp_path, feats):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pt"
    torch.save({"features": torch.from_numpy(feats), "extra": _Payload(marker)}, path)
    with pytest.raises(InputError) as err:
        read_features_file(path, n_objects=12)
    assert str(err.value).startswith(f"{path}: refused: it holds objects other than "
                                     f"tensors, which torch.load(weights_only=True) will "
                                     f"not unpickle")
    assert not marker.exists()
    with pytest.raises(InputError):
        import_features(path, tmp_path / "out.parquet")
    assert not marker.exists() and not (tmp_path / "out.parquet").exists()
    # the payload is live: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_csv_features(tmp_path, feats):
    cols = [f"f{c}" for c in range(7)]
    with_header = tmp_path / "named.csv"
    pd.DataFrame(feats, columns=cols).to_csv(with_header, index=False)
    np.testing.assert_allclose(read_features_file(with_header, 12), feats, rtol=1e-6)
    order = np.random.default_rng(1).permutation(12)
    shuffled = tmp_path / "ids.csv"
    frame = pd.DataFrame(feats[order], columns=cols)
    frame.insert(0, "object_id", order)
    frame.to_csv(shuffled, index=False)
    np.testing.assert_allclose(read_features_file(shuffled, 12), feats, rtol=1e-6)
    bare = tmp_path / "bare.csv"
    np.savetxt(bare, feats, delimiter=",")
    np.testing.assert_allclose(read_features_file(bare, 12), feats, rtol=1e-6)
    pandas_default = tmp_path / "pandas.csv"
    pd.DataFrame(feats).to_csv(pandas_default, index=False)  # header "0,1,...,6"
    np.testing.assert_allclose(read_features_file(pandas_default, 12), feats, rtol=1e-6)


def test_csv_refusals(tmp_path, feats):
    cols = [f"f{c}" for c in range(7)]
    frame = pd.DataFrame(feats, columns=cols).astype(object)
    frame.iloc[4, 2] = "oops"
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        read_features_file(path)
    assert str(err.value) == (f"{path}: data row 5 (line 6): column 'f2' must be a number, "
                              f"found 'oops'")
    frame = pd.DataFrame(feats, columns=cols)
    frame.insert(0, "object_id", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3])
    dup = tmp_path / "dup.csv"
    frame.to_csv(dup, index=False)
    with pytest.raises(InputError) as err:
        read_features_file(dup, 12)
    assert str(err.value) == (f"{dup}: data row 12 (line 13): object_id 3 repeats data row 4 "
                              f"(line 5)")
    indexed = tmp_path / "indexed.csv"
    pd.DataFrame(feats, columns=cols).to_csv(indexed)  # index=True: unnamed first column
    with pytest.raises(InputError) as err:
        read_features_file(indexed)
    assert str(err.value) == (f"{indexed}: column 1 of the header has no name (a saved "
                              f"DataFrame index?); name it object_id or drop it")
    missing = tmp_path / "missing.csv"
    missing.write_text("a,b\n1,2\n3,\n")
    with pytest.raises(InputError) as err:
        read_features_file(missing)
    assert str(err.value) == (f"{missing}: non-finite value (missing or NaN) at data row 2 "
                              f"(line 3), column 'b'; 1 non-finite value(s) in all")


def test_parquet_features(tmp_path, feats):
    path = tmp_path / "model.parquet"
    io.write_features(path, feats)
    np.testing.assert_array_equal(read_features_file(path, 12), feats)
    with pytest.raises(InputError, match="object id"):
        read_features_file(path, 13)


def test_feature_refusals(tmp_path, feats):
    bad = feats.copy()
    bad[3, 5] = np.nan
    npy = tmp_path / "nan.npy"
    np.save(npy, bad)
    with pytest.raises(InputError) as err:
        read_features_file(npy)
    assert str(err.value) == (f"{npy}: non-finite value (missing or NaN) at row 3 (0-based "
                              f"object index), dimension 5 (0-based); 1 non-finite value(s) "
                              f"in all")
    bad = feats.astype(np.float64)
    bad[7, 0] = np.inf
    txt = tmp_path / "inf.txt"
    np.savetxt(txt, bad)
    with pytest.raises(InputError) as err:
        read_features_file(txt)
    assert str(err.value) == (f"{txt}: non-finite value (inf) at line 8, value 1 (object "
                              f"row 7, dimension 0, 0-based); 1 non-finite value(s) in all")
    huge = tmp_path / "huge.npy"
    big = feats.astype(np.float64)
    big[2, 1] = 1e300
    np.save(huge, big)
    with pytest.raises(InputError, match=r"value 1e\+300 at row 2 .* overflows float32"):
        read_features_file(huge)
    rows = tmp_path / "rows.npy"
    np.save(rows, feats)
    with pytest.raises(InputError) as err:
        read_features_file(rows, n_objects=1854)
    assert str(err.value) == f"{rows}: features have 12 rows, expected 1854 (one per object)"
    maps = tmp_path / "maps.npy"
    np.save(maps, np.zeros((12, 3, 2, 2), dtype=np.float32))
    with pytest.raises(InputError) as err:
        read_features_file(maps)
    assert str(err.value) == (f"{maps}: features must be a 2-D array (objects × "
                              f"dimensions), found shape (12, 3, 2, 2) (for thingsvision, "
                              f"extract with flatten_acts=True or pool the feature maps)")
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([[1.0, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="object array"):
        read_features_file(obj)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("1 2 3\n4 5\n")
    with pytest.raises(InputError) as err:
        read_features_file(ragged)
    assert str(err.value) == f"{ragged}: line 2 has 2 values, expected 3 (as many as line 1)"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputError) as err:
        read_features_file(empty)
    assert str(err.value) == f"{empty}: features file is empty"
    odd = tmp_path / "feats.xyz"
    odd.write_text("1 2\n")
    with pytest.raises(InputError, match=r"unknown feature file type '\.xyz'"):
        read_features_file(odd)
    np.testing.assert_array_equal(read_features_file(odd, fmt="txt"), [[1, 2]])


def test_missing_h5py_gives_install_hint(tmp_path, feats, monkeypatch):
    import builtins

    path = _thingsvision_save(feats, tmp_path, "hdf5")
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(InputError) as err:
        read_features_file(path)
    assert str(err.value) == (f"{path}: reading HDF5 features needs the h5py package, which "
                              f"is not installed: pip install h5py")


# --------------------------------------------------------------------------- preprocess


def test_preprocess_steps(feats):
    x = feats.astype(np.float64) + 3.0
    same, rec = preprocess(x)
    np.testing.assert_array_equal(same, x.astype(np.float32))
    assert rec["steps"] == [] and rec["output_shape"] == [12, 7]
    centered, rec = preprocess(x, center=True)
    np.testing.assert_allclose(centered.mean(axis=0), 0, atol=1e-6)
    assert rec["input_mean_norm"] == pytest.approx(np.linalg.norm(x.mean(axis=0)))
    unit, rec = preprocess(x, center=True, unit_norm=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-6)
    assert rec["steps"] == ["center", "unit_norm"]


def test_preprocess_pca(feats):
    x = feats.astype(np.float64)
    y, rec = preprocess(x, pca=3)
    assert y.shape == (12, 3) and y.dtype == np.float32
    xc = x - x.mean(axis=0)
    evals, evecs = np.linalg.eigh(xc.T @ xc)
    top = evecs[:, ::-1][:, :3]
    for c in range(3):  # same subspace and direction, sign rule applied
        comp = top[:, c] * np.sign(top[np.argmax(np.abs(top[:, c])), c])
        np.testing.assert_allclose(y[:, c], xc @ comp, rtol=1e-4, atol=1e-5)
    ratio = evals[::-1][:3] / evals.sum()
    assert rec["pca_explained_variance_ratio"] == pytest.approx(ratio.tolist())
    assert rec["pca_explained_variance_ratio_sum"] == pytest.approx(ratio.sum())
    y2, _ = preprocess(-x * 1.0, pca=3)  # a sign flip of the data flips the scores back
    np.testing.assert_allclose(y2, -y, rtol=1e-5, atol=1e-6)
    again, rec2 = preprocess(x, pca=3)
    assert again.tobytes() == y.tobytes() and rec2 == rec
    full, rec = preprocess(x, pca=7)
    assert rec["pca_explained_variance_ratio_sum"] == pytest.approx(1.0)


def test_preprocess_refusals(feats):
    x = feats.astype(np.float64)
    x[4] = 0.0
    with pytest.raises(InputError) as err:
        preprocess(x, unit_norm=True)
    assert str(err.value) == ("preprocess: row 4 (0-based object index) has zero norm; "
                              "cannot scale it to unit length (1 such row(s))")
    with pytest.raises(InputError) as err:
        preprocess(feats, pca=8)
    assert str(err.value) == ("preprocess: pca = 8 must be an integer in 1..min(n, d) = "
                              "1..7 for features of shape (12, 7)")
    with pytest.raises(InputError):
        preprocess(feats, pca=0)


def test_import_features_writes_parquet_and_sidecar(tmp_path, feats):
    src = _thingsvision_save(feats, tmp_path / "tv", "npy")
    out = tmp_path / "features" / "alexnet.parquet"
    meta = import_features(src, out, n_objects=12, center=True, pca=4)
    back = io.read_features(out, 12)
    assert back.shape == (12, 4)
    assert json.loads(out.with_suffix(".json").read_text()) == meta
    assert meta["preprocessing"]["steps"] == ["center", "pca"]
    with pytest.raises(InputError):
        import_features(src, tmp_path / "bad.parquet", n_objects=13)
    assert not (tmp_path / "bad.parquet").exists()
    assert not (tmp_path / "bad.json").exists()


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("row, col, value, message", [
    (1, "image2", "1e23", "data row 2 (line 3): image2 = 1e+23 is outside 1..1854 (THINGS "
                          "indices are 1-based)"),
    (3, "image1", "-9e18", "data row 4 (line 5): image1 = -9e+18 is outside 1..1854 "
                           "(THINGS indices are 1-based)"),
    (2, "choice", "4.0", "data row 3 (line 4): choice = 4 must be 1, 2 or 3 (the position "
                         "of the odd one out among image1..image3)"),
    (5, "noise_ceiling", "1e300", "data row 6 (line 7): noise_ceiling = 1e+300 must be 0 "
                                  "(training) or 1, 2, 3 (repeated test sets)"),
    (4, "choice", "True", "data row 5 (line 6): column 'choice' must be a number, found "
                          "'True'"),
])
def test_things_values_are_shown_as_in_the_file(tmp_path, small_rows, row, col, value,
                                                message):
    path = write_table(tmp_path / "bad.csv", _bad(small_rows, row, col, value))
    with pytest.raises(InputError) as err:
        read_things_triplets(path)
    assert str(err.value) == f"{path}: {message}"


def test_things_file_that_is_not_utf8_names_the_line(tmp_path, small_rows):
    path = write_table(tmp_path / "latin1.csv", small_rows)
    data = path.read_bytes().split(b"\n")
    data[4] = data[4].replace(b"\t", b"\t\xe9", 1)
    path.write_bytes(b"\n".join(data))
    with pytest.raises(InputError) as err:
        read_things_triplets(path)
    column = data[4].index(b"\xe9") + 1
    assert str(err.value) == (f"{path}: line 5, byte {column}: THINGS triplet file is not "
                              f"UTF-8 text (byte 0xe9: invalid continuation byte); save it "
                              f"as UTF-8")


def test_triplet_array_indices_are_shown_as_in_the_file(tmp_path):
    txt = tmp_path / "testset.txt"
    txt.write_text("0 1 2\n3 4 1e23\n")
    with pytest.raises(InputError) as err:
        read_triplet_array(txt, 40)
    assert str(err.value) == (f"{txt}: line 2: (3, 4, 1e+23) has an index outside 0..39 "
                              f"(indices are 0-based)")
    npy = tmp_path / "trainset.npy"
    np.save(npy, np.array([[0, 1, 2], [2**64 - 1, 4, 5]], dtype=np.uint64))
    with pytest.raises(InputError) as err:
        read_triplet_array(npy, 40)
    assert str(err.value) == (f"{npy}: row 2 (1-based): (18446744073709551615, 4, 5) has "
                              f"an index outside 0..39 (indices are 0-based)")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf0 1 2\r\n3 4 5\r\n")
    np.testing.assert_array_equal(read_triplet_array(bom, 40), [[0, 1, 2], [3, 4, 5]])


def test_object_names_with_control_characters_or_bad_bytes(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("aardvark\nbee\x00\ncat\n")
    with pytest.raises(InputError) as err:
        read_object_names(path)
    assert str(err.value) == (f"{path}: line 2: name 'bee\\x00' holds a control character "
                              f"'\\x00'")
    path.write_bytes(b"aardvark\nabacus\n\xff\xfeacorn\n")
    with pytest.raises(InputError) as err:
        read_object_names(path)
    assert str(err.value) == (f"{path}: line 3, byte 1: object list file is not UTF-8 text "
                              f"(byte 0xff: invalid start byte); save it as UTF-8")
    path.write_bytes(b"aardvark\rabacus\racorn\r")  # old Mac line ends
    assert read_object_names(path) == ["aardvark", "abacus", "acorn"]


def test_csv_object_ids_and_headers_that_are_malformed(tmp_path, feats):
    cols = [f"f{c}" for c in range(7)]
    frame = pd.DataFrame(feats, columns=cols)
    frame.insert(0, "object_id", np.arange(12.0))
    frame.loc[3, "object_id"] = 1e23
    huge = tmp_path / "huge.csv"
    frame.to_csv(huge, index=False)
    with pytest.raises(InputError) as err:
        read_features_file(huge, 12)
    assert str(err.value) == (f"{huge}: data row 4 (line 5): object_id 1e+23 is outside "
                              f"0..11")
    twice = tmp_path / "twice.csv"
    twice.write_text("object_id,a,b,a\n0,1,2,3\n1,4,5,6\n")
    with pytest.raises(InputError) as err:
        read_features_file(twice)
    assert str(err.value) == f"{twice}: header line 1 names column(s) ['a'] more than once"
    flags = tmp_path / "flags.csv"
    flags.write_text("a,b\n1,True\n2,False\n")
    with pytest.raises(InputError) as err:
        read_features_file(flags)
    assert str(err.value) == (f"{flags}: data row 1 (line 2): column 'b' must be a number, "
                              f"found 'True' (2 such rows)")


def test_feature_files_that_are_malformed(tmp_path, feats):
    import h5py

    junk = tmp_path / "junk.mat"
    junk.write_text("not a MATLAB file")
    with pytest.raises(InputError, match=r"junk.mat: cannot be read as a MATLAB file: "):
        read_features_file(junk)
    group = tmp_path / "group.h5"
    with h5py.File(group, "w") as f:
        f.create_group("features_01")
    with pytest.raises(InputError) as err:
        read_features_file(group)
    assert str(err.value) == f"{group}: 'features_01' is an HDF5 group, expected a dataset"
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("features", data=h5py.Empty("f4"))
    with pytest.raises(InputError) as err:
        read_features_file(empty)
    assert str(err.value) == f"{empty}: dataset 'features' is empty (it holds no array)"
    gap = tmp_path / "gap.h5"
    with h5py.File(gap, "w") as f:
        f.create_dataset("features_01", data=feats[:6])
        f.create_dataset("features_03", data=feats[6:])
    with pytest.raises(InputError) as err:
        read_features_file(gap)
    assert str(err.value) == (f"{gap}: split parts ['features_01', 'features_03'] are not "
                              f"numbered 1, 2, 3, ...: part 2 is missing (found features_03)")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"1 2\n3 4\n5 \xb56\n")
    with pytest.raises(InputError) as err:
        read_features_file(latin)
    assert str(err.value) == (f"{latin}: line 3, byte 3: features file is not UTF-8 text "
                              f"(byte 0xb5: invalid start byte); save it as UTF-8")
    fifo = tmp_path / "features.npy"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as err:
        read_features_file(fifo)
    assert str(err.value) == (f"{fifo}: is not a regular file (a FIFO, socket or device), "
                              f"expected a features file")


@pytest.mark.parametrize("file_format", ["npy", "txt", "hdf5", "pt"])
def test_thingsvision_outputs_too_large_or_constant_are_refused(tmp_path, feats, file_format):
    path = _thingsvision_save(feats * np.float32(1e19), tmp_path / "big", file_format)
    with pytest.raises(InputError, match=r"has squared norm .* above 1\.15e\+18, the most "
                                         r"the float32 fit can take") as err:
        read_features_file(tmp_path / "big", 12)
    assert str(err.value).startswith(f"{path}: ")
    path = _thingsvision_save(np.zeros_like(feats), tmp_path / "zero", file_format)
    with pytest.raises(InputError, match=r"every object has the same embedding \(all zero"):
        read_features_file(path, 12)


def test_preprocess_refusals_name_the_source(feats, monkeypatch):
    x = feats.astype(np.float64)
    x[4] = 0.0
    with pytest.raises(InputError) as err:
        preprocess(x, unit_norm=True, source="tv/features.npy")
    assert str(err.value) == ("tv/features.npy: row 4 (0-based object index) has zero norm; "
                              "cannot scale it to unit length (1 such row(s))")

    def no_convergence(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", no_convergence)
    with pytest.raises(InputError) as err:
        preprocess(feats, pca=2, source="f.npy")
    assert str(err.value) == ("f.npy: PCA failed, the SVD of the centred features (shape "
                              "(12, 7)) did not converge: SVD did not converge")


def test_import_features_checks_the_values_it_stores(tmp_path):
    src = tmp_path / "scaled.npy"
    np.save(src, np.arange(1.0, 13.0)[:, None] * np.array([[3.0, 4.0]]))
    out = tmp_path / "features" / "m.parquet"
    assert import_features(src, out, n_objects=12)["preprocessing"]["steps"] == []
    with pytest.raises(InputError) as err:
        import_features(src, tmp_path / "unit.parquet", n_objects=12, unit_norm=True)
    assert str(err.value) == (f"{src}: after unit_norm: every object has the same embedding "
                              f"(every row is [0.6, 0.8] in float32, all 12 rows); no linear "
                              f"probe can rank a triplet (x_iᵀ M x_j is the same for every "
                              f"pair), and a candidate must distinguish objects")
    with pytest.raises(InputError) as err:
        import_features(src, tmp_path / "pca.parquet", n_objects=12, pca=5)
    assert str(err.value).startswith(f"{src}: pca = 5 must be an integer in 1..min(n, d)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "scaled.npy"]
