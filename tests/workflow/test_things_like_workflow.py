"""A THINGS-like world through the THINGS path (world.source: things with
world.things.generate): the generated files in the published formats are read by the
same importers as the real files, and the study runs on them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import base_config, copy_workflow, planned_jobs, run_snakemake
from modelrecovery import io

pytestmark = pytest.mark.workflow
MODELS = {"m_small": {"dim": 6, "family": "a", "signal": 0.3},
          "m_large": {"dim": 24, "family": "b", "signal": 1.0},
          "m_twin": {"twin_of": "m_large", "nuisance": 2}}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> tuple[Path, dict]:
    cfg = base_config(noise_ceiling="auto", external_scores={})
    cfg["world"] = {"source": "things", "things": {
        "format": "things_csv", "triplets": "data/tl/triplets.tsv",
        "objects": "data/tl/unique_id.txt", "n_objects": 60, "test_split": 2,
        "generate": {"seed": 3, "human_dim": 6, "density": 0.4, "train_triplets": 1500,
                     "test_triplets": 60, "test_repeats": 8, "models": MODELS},
        "features": {m: {"path": f"data/tl/features/{m}/features.npy", "center": True}
                     for m in MODELS}}}
    workdir = copy_workflow(tmp_path_factory.mktemp("things_like"), cfg)
    proc = run_snakemake(workdir, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return workdir, cfg


def test_the_generated_world_goes_through_the_things_importers(rehearsal):
    workdir, cfg = rehearsal
    world = workdir / "results" / "world"
    summary = io.read_json(world / "things_like.json")
    assert summary["rows"] == {"0": 1500, "1": 480, "2": 480, "3": 480}
    assert summary["dims"] == {"m_small": 6, "m_large": 24, "m_twin": 26}
    ceiling = io.read_json(world / "human" / "ceiling.json")
    assert 0.5 < ceiling["ceiling"] < 0.85
    assert ceiling["splits"]["test2"]["file"] == "data/tl/triplets.tsv (noise_ceiling = 2)"
    train, _ = io.read_triplets(world / "human" / "train.parquet", 60)
    assert len(train) == 1500
    for m in MODELS:
        meta = json.loads((world / "features" / f"{m}.json").read_text())
        assert meta["source"].endswith(f"{m}/features.npy")
        assert io.read_features(world / "features" / f"{m}.parquet", 60).shape == (
            60, summary["dims"][m])
        gen = io.read_json(workdir / "results" / "tiny" / "generators" / f"{m}.json")
        assert gen["noise_ceiling_target"] == pytest.approx(ceiling["ceiling"])
    curve = pd.read_csv(workdir / "results" / "tiny" / "tables" / "recovery_curve.csv")
    assert len(curve) == len(cfg["simulation"]["training_sizes"])


def test_the_generated_files_are_not_rebuilt_and_rebuild_to_the_same_bytes(rehearsal):
    workdir, _ = rehearsal
    assert planned_jobs(workdir) == {}
    tsv = workdir / "data" / "tl" / "triplets.tsv"
    before = tsv.read_bytes()
    proc = run_snakemake(workdir, "--forcerun", "things_like_world", "--until",
                         "things_like_world", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tsv.read_bytes() == before
