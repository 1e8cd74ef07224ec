"""The published study's options end to end in one tiny study: generators aligned under
one probe and candidates refitted under another (experiments.<name>.generators_from),
the orthogonal probe under Euclidean similarity, several simulated participants per
triplet, and the published simplified protocol (simulation.protocol: subsets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import base_config, copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow
PARTICIPANTS, FOLDS = 3, 4


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict]:
    cfg = base_config()
    cfg["experiments"] = {
        "zs": {"method": "zero_shot", "regulariser": "eye_distance", "lambdas": [1.0]},
        "flex": {"method": "full", "regulariser": "eye_distance", "lambdas": [0.01, 1.0],
                 "generators_from": "zs"},
        "orth": {"method": "orthogonal", "similarity": "euclidean",
                 "regulariser": "eye_distance", "lambdas": [0.01, 1.0]},
    }
    cfg["simulation"].update(participants=PARTICIPANTS, protocol="subsets", folds=FOLDS,
                             seeds=1)
    workdir = copy_workflow(tmp_path_factory.mktemp("published"), cfg)
    proc = run_snakemake(workdir, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return workdir, cfg


def test_candidates_are_refitted_under_their_probe_on_the_other_probes_generators(study):
    workdir, cfg = study
    results = workdir / "results"
    for model in ("lin", "rel", "unr"):
        source = results / "zs" / "generators" / model
        copy = results / "flex" / "generators" / model
        for ext in ("npz", "json"):
            assert (copy.with_suffix(f".{ext}").read_bytes()
                    == source.with_suffix(f".{ext}").read_bytes())
        assert json.loads(copy.with_suffix(".json").read_text())["method"] == "zero_shot"
        # flex's own alignment of the model is under its own probe.
        aligned = json.loads((results / "flex" / "aligned" / f"{model}.json").read_text())
        assert aligned["method"] == "full"
    rows = pd.concat(pd.read_parquet(p) for p in
                     (results / "flex" / "recovery").rglob("*.parquet"))
    assert set(rows["lambda"][rows["status"] != "refit"]) == {0.01, 1.0}
    zs = pd.concat(pd.read_parquet(p) for p in (results / "zs" / "recovery").rglob("*.parquet"))
    assert set(zs["lambda"]) == {0.0}
    for exp in ("zs", "flex", "orth"):
        curve = pd.read_csv(results / exp / "tables" / "recovery_curve.csv")
        assert len(curve) == len(cfg["simulation"]["training_sizes"])
        assert curve["recovery"].between(0, 1).all()


def test_each_triplet_has_several_participants_in_the_published_layout(study):
    workdir, cfg = study
    shard = pd.read_parquet(workdir / "results" / "flex" / "simulated" / "random" / "lin"
                            / "seed0.parquet")
    per = shard.groupby(["fold", "split", "position"]).size()
    assert (per == PARTICIPANTS).all()
    assert sorted(shard["fold"].unique()) == list(range(FOLDS))
    for f in range(FOLDS):
        val = shard[(shard["fold"] == f) & (shard["split"] == "val")]
        test = shard[(shard["fold"] == (f + 1) % FOLDS) & (shard["split"] == "test")]
        np.testing.assert_array_equal(val[["position", "i", "j", "k"]].to_numpy(),
                                      test[["position", "i", "j", "k"]].to_numpy())


def test_every_fold_is_refitted_at_its_own_lambda(study):
    workdir, cfg = study
    n = max(cfg["simulation"]["training_sizes"])
    rows = pd.read_parquet(workdir / "results" / "flex" / "recovery" / "random" / "rel"
                           / f"n{n}" / "seed0.parquet")
    ref = rows[rows["status"] == "refit"]
    assert len(ref) == 3 * FOLDS
    assert set(ref.groupby(["candidate", "fold"]).size()) == {1}
    grid = rows[rows["status"] != "refit"]
    for _, r in ref.iterrows():
        mine = grid[(grid["candidate"] == r["candidate"]) & (grid["fold"] == r["fold"])]
        assert r["lambda"] == mine.loc[mine["val_acc"] == mine["val_acc"].max(),
                                       "lambda"].min()
    scores = pd.read_parquet(workdir / "results" / "flex" / "tables" / "scores.parquet")
    mine = scores[(scores["generator"] == "rel") & (scores["n_train"] == n)
                  & (scores["seed"] == 0)].set_index("candidate")
    means = ref.groupby("candidate")["test_acc"].mean()
    np.testing.assert_allclose(mine.loc[means.index, "test_acc"], means)


def test_the_orthogonal_euclidean_generators_simulate_under_their_own_similarity(study):
    workdir, cfg = study
    from modelrecovery import io

    gen = workdir / "results" / "orth" / "generators" / "lin"
    meta = json.loads(gen.with_suffix(".json").read_text())
    assert meta["method"] == "orthogonal" and meta["similarity"] == "euclidean"
    w = io.load_generator(gen.with_suffix(".npz"))[0]
    # W = diag(e^a)·Q: its rows' norms are the scales and W Wᵀ is diagonal.
    ww = w @ w.T
    np.testing.assert_allclose(ww - np.diag(np.diag(ww)), 0.0, atol=1e-8)
    rows = pd.concat(pd.read_parquet(p) for p in
                     (workdir / "results" / "orth" / "recovery").rglob("*.parquet"))
    assert rows["converged"].mean() > 0.9
