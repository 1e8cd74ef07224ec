"""Designs end to end: a tiny study with all four designs, and `design next` on files in
the layout a real experiment keeps."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import base_config, cli_path, copy_workflow, run_snakemake, tool_env
from modelrecovery import io
from modelrecovery.oddoneout import similarity
from modelrecovery.sampling import triplet_keys
from modelrecovery.seeds import rng_for
from modelrecovery.simulate import SPLITS, simulate_dataset

pytestmark = pytest.mark.workflow
DESIGNS = ["random", "static", "adaptive", "mimic"]


@pytest.fixture(scope="module")
def designed(tmp_path_factory) -> tuple[Path, dict]:
    cfg = base_config(designs=DESIGNS, design={"pool_factor": 10, "n_boot": 50})
    cfg["simulation"].update(training_sizes=[40, 120], seeds=2)
    workdir = copy_workflow(tmp_path_factory.mktemp("designed"), cfg)
    proc = run_snakemake(workdir, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return workdir, cfg


def keys_by_split(frame: pd.DataFrame, n: int) -> dict:
    return {key: set(triplet_keys(g[["i", "j", "k"]].to_numpy(), n).tolist())
            for key, g in frame.groupby(["fold", "split"])}


def test_the_designs_are_compared_by_recovery(designed):
    workdir, cfg = designed
    tables = workdir / "results" / "tiny" / "tables"
    curves = pd.read_csv(tables / "design_curves.csv")
    assert sorted(curves["design"].unique()) == sorted(DESIGNS)
    assert (curves.groupby("design").size() == 2).all()
    assert (curves["datasets"] == 3 * 2).all()
    assert curves["ci_low"].le(curves["recovery"]).all()
    savings = pd.read_csv(tables / "design_savings.csv")
    assert set(savings["design"]) == set(DESIGNS)
    assert np.allclose(savings.loc[savings["design"] == "random", "savings"], 1.0)
    log = (workdir / "logs" / "tiny" / "design" / "compare.log").read_text()
    assert re.search(r"design saves \d+\.\dx triplets over random at recovery \d\.\d{3} "
                     r"\(random N=\d+, best design N=(\d+|not reached)\)", log), log
    assert (workdir / "results" / "tiny" / "figures" / "design_curves.svg").stat().st_size


def test_random_is_the_uniform_sampling_bit_for_bit(designed):
    workdir, cfg = designed
    world = workdir / "results" / "world"
    n = cfg["world"]["synthetic"]["n_objects"]
    x = io.read_features(world / "features" / "rel.parquet", n)
    w, t = io.load_generator(workdir / "results" / "tiny" / "generators" / "rel.npz")
    sim = cfg["simulation"]
    expected = simulate_dataset(similarity(x, w), t, max(sim["training_sizes"]),
                                n_folds=sim["folds"], val_fraction=sim["val_fraction"],
                                eval_fraction=sim["eval_fraction"],
                                rng=rng_for(cfg["study_seed"], "simulate", "tiny", "rel", 1))
    got = pd.read_parquet(workdir / "results" / "tiny" / "simulated" / "random" / "rel"
                          / "seed1.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_the_static_design_is_shared_and_answered_by_every_generator(designed):
    workdir, cfg = designed
    n = cfg["world"]["synthetic"]["n_objects"]
    exp = workdir / "results" / "tiny"
    design = pd.read_parquet(exp / "design" / "static" / "seed0.parquet")
    wanted = keys_by_split(design, n)
    answers = []
    for gen in ("lin", "rel", "unr"):
        shard = pd.read_parquet(exp / "simulated" / "static" / gen / "seed0.parquet")
        assert keys_by_split(shard, n) == wanted  # the same triplets, whoever answers
        answers.append(shard.sort_values(["fold", "split", "position"])["k"].to_numpy())
    assert not np.array_equal(answers[0], answers[1])  # the responses differ
    meta = io.read_json(exp / "design" / "static" / "seed0.json")
    for f, fold in enumerate(meta["folds"]):
        for split in SPLITS:
            rows = design[(design["fold"] == f) & (design["split"] == split)]
            assert set(np.unique(rows[["i", "j", "k"]])) <= set(fold[split])


def test_the_mimic_design_and_its_divergences(designed):
    # Every generator against every other candidate's mimic, per fold and split; the
    # design's triplets separate the pairs better than uniform ones on average, and the
    # table turns the divergences into Stein's estimate beside the measured confusion.
    workdir, cfg = designed
    exp = workdir / "results" / "tiny"
    meta = io.read_json(exp / "design" / "mimic" / "seed0.json")
    models = [m["name"] for m in cfg["world"]["synthetic"]["models"]]
    assert {(p["generator"], p["candidate"]) for p in meta["pairs"]} == {
        (g, c) for g in models for c in models if c != g}
    assert len(meta["splits"]) == cfg["simulation"]["folds"] * 3
    table = pd.read_csv(exp / "tables" / "mimic_divergence.csv")
    assert len(table) == len(models) * (len(models) - 1)
    assert (table["divergence_uniform"] > 0).all()
    assert table["divergence_design"].sum() > table["divergence_uniform"].sum()
    np.testing.assert_allclose(table["triplets_needed_design"] * table["divergence_design"],
                               np.log(20))
    assert table["won_random"].between(0, 1).all() and table["won_mimic"].between(0, 1).all()
    # The ceiling holds for every design, the mimic's included.
    rules = pd.read_csv(exp / "tables" / "decision_rules.csv")
    assert set(rules["design"]) == set(DESIGNS)
    wide = rules.pivot_table(index=["design", "n_train"], columns="rule",
                             values=["recovery", "ci_high"])
    assert (wide[("ci_high", "oracle")] >= wide[("recovery", "best_fit")]).all(), wide


def test_the_tables_to_show_people(designed):
    workdir, cfg = designed
    exp = workdir / "results" / "tiny"
    names = io.read_objects(workdir / "results" / "world" / "objects.parquet")["name"]
    for design in DESIGNS:
        table = pd.read_csv(exp / "design" / design / "triplets.csv")
        folds = pd.read_csv(exp / "design" / design / "folds.csv")
        assert list(table.columns) == ["fold", "split", "position", "image1", "image2",
                                       "image3", "object1", "object2", "object3", "utility"]
        for c in (1, 2, 3):
            assert (names.to_numpy()[table[f"image{c}"] - 1] == table[f"object{c}"]).all()
        home = {(r.fold, r.image): r.split for r in folds.itertuples()}
        for r in table.itertuples():
            assert {home[(r.fold, r.image1)], home[(r.fold, r.image2)],
                    home[(r.fold, r.image3)]} == {r.split}
        per_fold = table[table["split"] == "train"].groupby("fold").size()
        first = cfg["simulation"]["training_sizes"][0]
        assert (per_fold == (first if design == "adaptive" else 120)).all(), design
    static = pd.read_csv(exp / "design" / "static" / "triplets.csv")
    assert static["utility"].mean() > 0
    assert (pd.read_csv(exp / "design" / "random" / "triplets.csv")["utility"] == 0).all()


def test_rerunning_a_design_gives_the_same_bytes(designed):
    workdir, _ = designed
    exp = workdir / "results" / "tiny"
    victims = [exp / "design" / "static" / "seed1.parquet",
               exp / "design" / "static" / "seed1.json",
               exp / "design" / "mimic" / "seed1.parquet",
               exp / "design" / "mimic" / "seed1.json",
               exp / "simulated" / "adaptive" / "unr" / "seed1.parquet",
               exp / "simulated" / "adaptive" / "unr" / "seed1.json"]
    before = [v.read_bytes() for v in victims]
    for v in victims:
        v.unlink()
    proc = run_snakemake(workdir, *(str(v.relative_to(workdir)) for v in victims))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [v.read_bytes() for v in victims] == before


# ----------------------------------------------------------------- design next


def run_cli(*args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli_path("modelrecovery"), *map(str, args)], env=tool_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """An experiment in progress as its files: objects, features, the exported design's
    triplets and folds, and people's answers (the odd one out under a latent similarity).
    Returns the folder, the `design next` arguments (without --out) and the answers."""
    tmp_path = tmp_path_factory.mktemp("next")
    rng = np.random.default_rng(8)
    n = 40
    io.write_objects(tmp_path / "objects.parquet", [f"thing{i}" for i in range(n)])
    latent = rng.normal(size=(n, 3))
    feats = {"a": latent @ rng.normal(size=(3, 4)), "b": np.tanh(latent),
             "c": rng.normal(size=(n, 3))}
    for m, x in feats.items():
        io.write_features(tmp_path / f"{m}.parquet", x)
        io.save_generator(tmp_path / f"{m}.npz", tmp_path / f"{m}.json",
                          np.eye(x.shape[1]), 1.0, {"model": m})
    base = ["--objects", tmp_path / "objects.parquet"]
    named = lambda suffix: [f"{m}={tmp_path / f'{m}.{suffix}'}" for m in feats]
    assert run_cli("design", "static", *base, "--features", *named("parquet"),
                   "--generators", *named("npz"), "--uniform", "--experiment", "x",
                   "--seed", 0, "--study-seed", 1, "--n-train-max", 60,
                   "--out", tmp_path / "d.parquet", "--out-json",
                   tmp_path / "d.json").returncode == 0
    assert run_cli("design", "export", "--design", tmp_path / "d.parquet", "--design-json",
                   tmp_path / "d.json", *base, "--out", tmp_path / "triplets.csv",
                   "--out-folds", tmp_path / "folds.csv").returncode == 0
    shown = pd.read_csv(tmp_path / "triplets.csv")
    # People answer: the odd one out under the latent similarity (1-based position).
    sim = similarity(latent)
    idx = shown[["image1", "image2", "image3"]].to_numpy() - 1
    pairs = np.stack([sim[idx[:, 1], idx[:, 2]], sim[idx[:, 0], idx[:, 2]],
                      sim[idx[:, 0], idx[:, 1]]], axis=1)  # pair without image c
    shown["choice"] = np.argmax(pairs, axis=1) + 1
    shown.to_csv(tmp_path / "responses.csv", index=False)
    args = ["design", "next", *base, "--folds", tmp_path / "folds.csv", "--responses",
            tmp_path / "responses.csv", "--candidates", *named("parquet"),
            "--batch", 30, "--lambdas", 0.01, 1.0, "--dtype", "float64", "--device", "cpu"]
    return tmp_path, args, shown


def test_design_next_continues_an_experiment_from_its_files(experiment):
    tmp_path, args, shown = experiment
    proc = run_cli(*args, "--out", tmp_path / "next.csv")
    assert proc.returncode == 0, proc.stderr
    nxt = pd.read_csv(tmp_path / "next.csv")
    assert list(nxt.columns) == list(shown.columns[:-1])
    counts = nxt.groupby(["fold", "split"]).size()
    assert (counts.xs("train", level="split") == 30).all()
    assert (counts.xs("val", level="split") == 4).all()  # ceil(90/8) − ceil(60/8)
    done = {(r.fold, r.split, frozenset((r.image1, r.image2, r.image3)))
            for r in shown.itertuples()}
    new = {(r.fold, r.split, frozenset((r.image1, r.image2, r.image3)))
           for r in nxt.itertuples()}
    assert not done & new and len(new) == len(nxt)
    train = nxt[nxt["split"] == "train"]
    assert train["position"].min() == 60 and (nxt["utility"] > 0).mean() > 0.5
    again = run_cli(*args, "--out", tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "next.csv").read_bytes()
    assert "candidate a: weight" in again.stdout


def shown_with(shown: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    bad = shown.copy()
    for column, value in values.items():
        bad.loc[row, column] = value
    return bad


def a_train_object_of_another_fold(shown: pd.DataFrame, folds: pd.DataFrame) -> int:
    own = set(folds[(folds["fold"] == 0) & (folds["split"] == "train")]["image"])
    return int(next(i for i in folds["image"] if i not in own))


@pytest.mark.parametrize("case", ["choice", "repeated", "fold", "outside", "negative",
                                  "folds_twice"])
def test_bad_experiment_files_are_one_line_naming_file_row_and_problem(experiment, case):
    # What a researcher's own files can get wrong, each refused before any fit with the
    # file, the data row and the problem, values as they wrote them.
    tmp_path, args, shown = experiment
    folds = pd.read_csv(tmp_path / "folds.csv")
    row = int(np.flatnonzero((shown["fold"] == 0) & (shown["split"] == "train"))[5])
    responses, folds_file = tmp_path / f"{case}.csv", tmp_path / "folds.csv"
    if case == "choice":
        bad, expect = shown_with(shown, row, choice=4), ["choice = 4", "1..3"]
    elif case == "repeated":
        bad = shown_with(shown, row, image2=shown.loc[row, "image1"])
        expect = ["image1 and image2 are both", "three different objects"]
    elif case == "fold":
        bad, expect = shown_with(shown, row, fold=7), ["fold 7 is not in the folds table",
                                                       "folds.csv"]
    elif case == "outside":
        other = a_train_object_of_another_fold(shown, folds)
        bad = shown_with(shown, row, image3=other)
        expect = [f"image {other} is not a train object of fold 0", "folds.csv"]
    elif case == "negative":
        bad, expect = shown_with(shown, row, fold=-1), ["fold = -1 must be an integer"]
    else:  # an object in two splits of one fold
        bad = shown
        twice = pd.concat([folds, folds[folds["split"] == "train"].head(1).assign(
            split="test")], ignore_index=True)
        folds_file = tmp_path / "folds_listing_an_object_twice.csv"
        twice.to_csv(folds_file, index=False)
        row = len(twice) - 1
        expect = ["is listed already in data row", "within a fold an object belongs"]
    bad.to_csv(responses, index=False)
    argv = [str(a) for a in args]
    argv[argv.index("--responses") + 1] = str(responses)
    argv[argv.index("--folds") + 1] = str(folds_file)
    proc = run_cli(*argv, "--out", tmp_path / f"{case}.out.csv")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    named = folds_file if case == "folds_twice" else responses
    assert f"{named}: data row {row + 1}:" in line, line
    assert all(e in line for e in expect), line
    assert "np.int64" not in line and not (tmp_path / f"{case}.out.csv").exists()
