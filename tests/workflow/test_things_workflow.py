"""The THINGS path end to end: files in the published formats → a short study."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import copy_workflow, run_snakemake
from modelrecovery import io
from modelrecovery.oddoneout import similarity
from modelrecovery.sampling import sample_choices

pytestmark = pytest.mark.workflow

N_OBJ = 90
# The published file's header (TAB-separated; `choice` is the 1-based position of the odd
# one out; noise_ceiling 0 = training, 1-3 = repeated test sets); extra columns are ignored.
HEADER = ["image1", "image2", "image3", "choice", "RT", "noise_ceiling", "subject_id",
          "HIT_nr", "trial_nr", "age", "gender", "date", "time"]


def things_file(path: Path, rng: np.random.Generator, latent: np.ndarray,
                bad_choice_row: int | None = None) -> None:
    sim = similarity(latent)
    rows = []

    def add(trips: np.ndarray, split: int) -> None:
        odd_last = sample_choices(sim, trips, 0.5, rng)
        for shown, chosen in zip(trips, odd_last):
            position = int(np.flatnonzero(shown == chosen[2])[0]) + 1
            rows.append([*(shown + 1), position, rng.integers(500, 3000), split,
                         f"s{rng.integers(0, 40)}", 7, len(rows), "NaN", "female",
                         "2019-05-01", "12:00:00"])

    train = np.stack([rng.choice(N_OBJ, 3, replace=False) for _ in range(2500)])
    add(train, 0)
    repeated = np.stack([rng.choice(N_OBJ, 3, replace=False) for _ in range(40)])
    add(np.repeat(repeated, 12, axis=0), 2)
    add(np.stack([rng.choice(N_OBJ, 3, replace=False) for _ in range(200)]), 1)
    if bad_choice_row is not None:
        rows[bad_choice_row][3] = 4
    lines = ["\t".join(HEADER)] + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def build_inputs(root: Path, bad_choice_row: int | None = None) -> dict:
    rng = np.random.default_rng(5)
    data = root / "data"
    (data / "things").mkdir(parents=True)
    (data / "things" / "unique_id.txt").write_text(
        "\n".join(f"concept_{i:03d}" for i in range(N_OBJ)) + "\n")
    latent = np.abs(rng.standard_normal((N_OBJ, 5)))
    things_file(data / "things" / "triplets.csv", rng, latent, bad_choice_row)
    feats = {
        "lin": latent @ rng.standard_normal((5, 6)),
        "tanh": np.tanh(latent @ rng.standard_normal((5, 6))),
        "unr": rng.standard_normal((N_OBJ, 5)),
    }
    # thingsvision's save_features output folder (npy), a torch tensor, and an HDF5 file.
    (data / "features" / "lin").mkdir(parents=True)
    np.save(data / "features" / "lin" / "features.npy", feats["lin"].astype(np.float32))
    torch.save(torch.as_tensor(feats["tanh"], dtype=torch.float32), data / "tanh.pt")
    with h5py.File(data / "unr.hdf5", "w") as fh:
        fh.create_dataset("features", data=feats["unr"].astype(np.float32))
    cfg = yaml.safe_load((Path(__file__).parents[2] / "config" / "things.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["results"] = "results"
    things = cfg["world"]["things"]
    things.update({"triplets": "data/things/triplets.csv", "objects":
                   "data/things/unique_id.txt", "n_objects": N_OBJ})
    things["features"] = {
        "lin": {"path": "data/features/lin", "center": True},
        "tanh": {"path": "data/tanh.pt", "unit_norm": True},
        "unr": {"path": "data/unr.hdf5", "pca": 4},
    }
    cfg["experiments"] = {
        "zero_shot": {"method": "zero_shot", "regulariser": "eye_distance", "lambdas": [0.0]},
        "full": {"method": "full", "regulariser": "eye_distance", "lambdas": [0.01, 1.0]},
    }
    cfg["simulation"].update({"training_sizes": [80], "seeds": 1,
                              "exclude_human_triplets": True})
    cfg["fitting"].update({"threads": 1, "max_memory_gb": 2})
    return cfg


@pytest.fixture(scope="module")
def things_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("things")
    cfg = build_inputs(root)
    workdir = copy_workflow(root, cfg)
    return workdir, cfg


def test_things_config_passes_schema_and_dry_run_lists_the_jobs(things_study):
    workdir, _ = things_study
    proc = run_snakemake(workdir, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 3 models; 2 experiments; 1 size × 1 seed.
    assert counts["import_objects"] == 1 and counts["import_things"] == 1
    assert counts["import_features"] == 3
    assert counts["align"] == 6 and counts["calibrate"] == 6
    assert counts["simulate"] == 6 and counts["recover"] == 6
    assert counts["aggregate"] == 2 and counts["plot"] == 2


def test_things_study_runs_with_the_computed_noise_ceiling(things_study):
    workdir, _ = things_study
    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-5000:]
    human = workdir / "results" / "world" / "human"
    ceiling = io.read_json(human / "ceiling.json")
    assert ceiling["test_split"] == "test2" and 1 / 3 < ceiling["ceiling"] < 1
    assert ceiling["ceiling"] == ceiling["splits"]["test2"]["ceiling"]
    assert ceiling["splits"]["test2"]["triplets"] == 40  # 40 triplets × 12 responses
    # Each split names its origin in the user's file, not the importer's scratch folder.
    assert ceiling["splits"]["test2"]["file"].endswith(" (noise_ceiling = 2)")
    assert "things-splits." not in json.dumps(ceiling)
    train, _ = io.read_triplets(human / "train.parquet", N_OBJ)
    test, _ = io.read_triplets(human / "test.parquet", N_OBJ)
    assert len(train) == 2500 and len(test) == 480
    for exp in ("zero_shot", "full"):
        gen = io.read_json(workdir / "results" / exp / "generators" / "lin.json")
        assert gen["noise_ceiling_target"] == pytest.approx(ceiling["ceiling"])
        assert gen["expected_accuracy"] == pytest.approx(ceiling["ceiling"], abs=2e-3)
        align = pd.read_csv(workdir / "results" / exp / "tables" / "alignment.csv")
        assert set(align["model"]) == {"lin", "tanh", "unr"}
    x = io.read_features(workdir / "results" / "world" / "features" / "unr.parquet", N_OBJ)
    assert x.shape == (N_OBJ, 4)


def test_a_bad_things_file_is_refused_with_no_output(tmp_path):
    cfg = build_inputs(tmp_path, bad_choice_row=7)
    workdir = copy_workflow(tmp_path, cfg)
    proc = run_snakemake(workdir, "results/world/human/train.parquet")
    assert proc.returncode != 0
    log = (workdir / "logs" / "data" / "import_things.log").read_text()
    assert "triplets.csv" in log and "choice" in log and "data row 8" in log
    assert not (workdir / "results" / "world" / "human" / "train.parquet").exists()
    assert not (workdir / "results" / "world" / "human" / "splits").exists()
