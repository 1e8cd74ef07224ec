"""``modelrecovery analyse-properties`` as the workflow calls it, in process: the two
tables from real files, and a bad --model-info refused in one line, leaving nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import files_in
from modelrecovery import io
from modelrecovery.cli import main

MODELS = ["m0", "m1", "m2", "m3", "m4", "m5"]


def inputs(root: Path) -> list[str]:
    """Objects, features, aligned transforms, a geometry table and candidate scores of
    six models, as the command's arguments."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    n = 40
    io.write_objects(root / "objects.parquet", [f"o{i}" for i in range(n)])
    args = ["--objects", str(root / "objects.parquet"), "--features"]
    aligned = []
    for k, m in enumerate(MODELS):
        d = 3 + k
        io.write_features(root / f"{m}.parquet", rng.normal(size=(n, d)))
        io.save_generator(root / f"{m}.npz", root / f"{m}.json", np.eye(d) * (1 + k), 1.0,
                          {"model": m})
        args.append(f"{m}={root / f'{m}.parquet'}")
        aligned.append(f"{m}={root / f'{m}.npz'}")
    geometry = pd.DataFrame({"model": MODELS, "geometry_shift": rng.uniform(size=6),
                             "pr_raw": rng.uniform(1, 3, 6), "pr_aligned": rng.uniform(1, 3, 6),
                             "dim": [3 + k for k in range(6)]})
    geometry.to_parquet(root / "geometry.parquet")
    scores = pd.DataFrame([{"experiment": "x", "generator": g, "n_train": 50, "seed": s,
                            "candidate": c, "test_acc": rng.uniform(0.4, 0.6)}
                           for g in MODELS for s in range(2) for c in MODELS])
    scores.to_parquet(root / "scores.parquet")
    return [*args, "--generators", *aligned, "--geometry", str(root / "geometry.parquet"),
            "--scores", str(root / "scores.parquet"), "--experiment", "x",
            "--study-seed", "3", "--n-boot", "20", "--predictors", "embedding_dim",
            "geometry_shift"]


def outputs(out: Path) -> list[str]:
    tables = ("model_properties", "properties_regression")
    return ["--out-parquet", *(f"{t}={out / t}.parquet" for t in tables),
            "--out-csv", *(f"{t}={out / t}.csv" for t in tables)]


def test_analyse_properties_writes_both_tables(tmp_path):
    out = tmp_path / "out"
    info = json.dumps({"m0": {"label": "Zero $0$", "objective": "supervised",
                              "parameters": 10.0}})
    code = main.main(["analyse-properties", *inputs(tmp_path / "in"), *outputs(out),
                      "--model-info", info, "--correction", "holm"])
    assert code == 0
    props = pd.read_parquet(out / "model_properties.parquet").set_index("model")
    assert props.loc["m0", "label"] == "Zero $0$" and props.loc["m1", "label"] == "m1"
    assert props.loc["m0", "objective"] == "supervised"
    assert props["embedding_dim"].tolist() == [3, 4, 5, 6, 7, 8]
    assert (props["experiment"] == "x").all()
    reg = pd.read_parquet(out / "properties_regression.parquet")
    assert reg["term"].tolist() == ["embedding_dim_generator", "embedding_dim_candidate",
                                    "geometry_shift_generator", "geometry_shift_candidate"]
    assert (reg["correction"] == "holm").all() and (reg["n_groups"] == 6).all()
    assert pd.read_csv(out / "properties_regression.csv").shape == reg.shape


def test_a_bad_model_info_is_one_line_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main.main(["analyse-properties", *inputs(tmp_path / "in"), *outputs(out),
                      "--model-info", json.dumps({"m0": {"parameters": "many"}})])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model_info.m0.parameters" in err[0], err
    assert files_in(out) == []
