"""The THINGS-like world: the published file formats, read back by the THINGS importer,
with the statistics it is built to have, the same bytes from the same seed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli_path, tool_env
from modelrecovery import io, oddoneout
from modelrecovery.importers import import_objects, import_things
from modelrecovery.world.ceiling import ceiling_by_split
from modelrecovery.world.things_like import (BEHAVIOUR_COLUMNS, ModelSpec, ThingsLike,
                                             write_things_like)

N = 60
MODELS = {"small": ModelSpec(dim=8, family="a", signal=0.4),
          "large": ModelSpec(dim=40, family="b", signal=1.0),
          "large_twin": ModelSpec(twin_of="large", nuisance=3)}
WORLD = ThingsLike(n_objects=N, human_dim=6, density=0.4, train_triplets=3000,
                   test_triplets=150, test_repeats=12, models=MODELS)


def written(folder: Path, seed: int = 1, world: ThingsLike = WORLD) -> dict:
    paths = {"triplets": folder / "triplets.tsv", "objects": folder / "unique_id.txt",
             "features": {m: folder / "features" / m / "features.npy" for m in world.models}}
    summary = write_things_like(world, paths["triplets"], paths["objects"],
                                paths["features"], np.random.default_rng(seed))
    return {**paths, "summary": summary}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return written(tmp_path_factory.mktemp("things_like"))


def test_the_behaviour_file_is_laid_out_as_things(world):
    lines = world["triplets"].read_text().splitlines()
    assert lines[0].split("\t") == list(BEHAVIOUR_COLUMNS)
    rows = pd.read_csv(world["triplets"], sep="\t")
    images = rows[["image1", "image2", "image3"]].to_numpy()
    assert images.min() == 1 and images.max() == N  # 1-based
    assert (np.sort(images, axis=1)[:, 1:] != np.sort(images, axis=1)[:, :-1]).all()
    assert set(rows["choice"]) == {1, 2, 3}
    counts = rows["noise_ceiling"].value_counts().to_dict()
    assert counts == {0: 3000, 1: 150 * 12, 2: 150 * 12, 3: 150 * 12}
    assert world["summary"]["rows"] == {"0": 3000, "1": 1800, "2": 1800, "3": 1800}
    # Test set 3 repeats test set 2's triplets, within subjects; test set 1 between them.
    key = lambda r: frozenset(r)  # noqa: E731
    t2 = {key(r) for r in images[rows["noise_ceiling"] == 2]}
    assert {key(r) for r in images[rows["noise_ceiling"] == 3]} == t2
    per = rows[rows["noise_ceiling"] == 1].assign(t=[key(r) for r in images[
        rows["noise_ceiling"] == 1]]).groupby("t")["subject_id"].nunique()
    assert (per == 12).all()
    per3 = rows[rows["noise_ceiling"] == 3].assign(t=[key(r) for r in images[
        rows["noise_ceiling"] == 3]]).groupby("t")["subject_id"].nunique()
    assert (per3 == 1).all()
    assert len(world["objects"].read_text().splitlines()) == N


def test_the_things_importer_reads_the_choices_as_written(world, tmp_path):
    objects = tmp_path / "objects.parquet"
    import_objects(world["objects"], objects, n_objects=N)
    summary = import_things(world["triplets"], tmp_path / "human", n_objects=N)
    assert summary["splits"]["train"]["rows"] == 3000
    train, _ = io.read_triplets(tmp_path / "human" / "train.parquet", N)
    rows = pd.read_csv(world["triplets"], sep="\t")
    rows = rows[rows["noise_ceiling"] == 0]
    shown = rows[["image1", "image2", "image3"]].to_numpy() - 1
    odd = shown[np.arange(len(shown)), rows["choice"].to_numpy() - 1]
    # The importer's odd one out (k) is the displayed image at the choice's position.
    np.testing.assert_array_equal(train[:, 2], odd)
    np.testing.assert_array_equal(np.sort(train, axis=1), np.sort(shown, axis=1))


def test_the_responses_reach_the_target_noise_ceiling(tmp_path):
    # The responses are drawn at the temperature whose expected accuracy is the target;
    # the importer's ceiling from the repeats tracks it (300 triplets × 20 repeats: its
    # standard error is about 0.01).
    got = {}
    for target in (0.5, 0.68):
        world = ThingsLike(n_objects=N, human_dim=6, density=0.4, train_triplets=100,
                           test_triplets=300, test_repeats=20, ceiling=target,
                           models=MODELS)
        files = written(tmp_path / str(target), world=world)
        import_things(files["triplets"], tmp_path / f"h{target}", n_objects=N)
        got[target] = ceiling_by_split(
            {"test2": tmp_path / f"h{target}" / "test2.parquet"}, N)["test2"]["ceiling"]
    assert abs(got[0.68] - 0.68) < 0.05 and abs(got[0.5] - 0.5) < 0.05, got


def test_models_share_structure_and_a_twin_extends_its_model(world):
    feats = {m: np.load(p) for m, p in world["features"].items()}
    assert feats["small"].shape == (N, 8) and feats["large"].shape == (N, 40)
    assert feats["small"].dtype == np.float32
    np.testing.assert_array_equal(feats["large_twin"][:, :40], feats["large"])
    assert feats["large_twin"].shape == (N, 43)
    # The feature spectrum decays: the leading PCA variances fall steeply.
    x = feats["large"] - feats["large"].mean(0)
    ev = np.linalg.svd(x, compute_uv=False) ** 2
    assert ev[0] > 3 * ev[9] > 3 * ev[-1]


def test_the_model_with_more_human_signal_predicts_humans_better(world, tmp_path):
    import_things(world["triplets"], tmp_path / "human", n_objects=N)
    train, _ = io.read_triplets(tmp_path / "human" / "train.parquet", N)
    acc = {m: oddoneout.accuracy(oddoneout.similarity(np.load(p).astype(float)), train)
           for m, p in world["features"].items()}
    assert acc["large"] > acc["small"] + 0.05 and acc["large"] > 0.45, acc


def test_the_same_seed_gives_the_same_bytes(world, tmp_path):
    again = written(tmp_path / "again")
    other = written(tmp_path / "other", seed=2)
    for a, b, c in ((world["triplets"], again["triplets"], other["triplets"]),
                    *((world["features"][m], again["features"][m], other["features"][m])
                      for m in MODELS)):
        assert a.read_bytes() == b.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("spec,phrase", [
    ({"models": {"a": {"dim": 4}, "b": {"twin_of": "zzz"}}}, "twin_of 'zzz'"),
    ({"models": {"a": {"dim": 4}, "b": {"dim": 4}}, "colour": 1}, "unknown key(s) ['colour']"),
    ({"models": {"a": {"dim": "big"}, "b": {"dim": 4}}}, "generate.models.a.dim"),
])
def test_the_command_refuses_a_bad_spec_in_one_line(tmp_path, spec, phrase):
    feats = [f"{m}={tmp_path / m / 'features.npy'}" for m in spec["models"]]
    proc = subprocess.run(
        [cli_path("modelrecovery"), "things-like", "--spec", json.dumps(spec), "--seed", "1",
         "--n-objects", "30", "--out-triplets", str(tmp_path / "t.tsv"),
         "--out-objects", str(tmp_path / "o.txt"), "--features", *feats,
         "--out-summary", str(tmp_path / "s.json")],
        env=tool_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and phrase in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
