"""Real snakemake runs on tiny studies in temporary directories."""

from __future__ import annotations

import copy
import re
import shlex
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, base_config, copy_workflow, files_in, run_snakemake
from modelrecovery import io
from modelrecovery.cli import args as cli_args
from modelrecovery.cli import main
from modelrecovery.oddoneout import similarity
from modelrecovery.sampling import triplet_keys
from modelrecovery.seeds import rng_for
from modelrecovery.simulate import simulate_dataset

pytestmark = pytest.mark.workflow

# The columns docs/study.md's data contract requires of every recovery Parquet.
CONTRACT = ["experiment", "generator", "candidate", "n_train", "seed", "fold", "lambda",
            "train_nll", "val_acc", "test_acc", "test_nll", "iterations", "converged",
            "seconds"]
TABLES = ["scores", "outcomes", "recovery_curve", "generator_curves", "confusion",
          "summary", "alignment", "geometry", "rsa", "mds", "rsa_human", "ranks",
          "precision_recall", "misidentification", "identifiability_ceiling",
          "decision_rules", "inversion", "decomposition"]


def run_ok(workdir: Path, *args: str) -> None:
    proc = run_snakemake(workdir, *args)
    assert proc.returncode == 0, proc.stderr[-6000:]


# ----------------------------------------------------------------- a tiny study


# The fixture `tiny` (tests/conftest.py) runs the test study, .test/config/config.yaml.


def exp_dir(workdir: Path, cfg: dict) -> Path:
    (name,) = cfg["experiments"]
    return workdir / cfg["results"] / name


def test_recovery_curve_table(tiny):
    workdir, cfg = tiny
    curve = pd.read_csv(exp_dir(workdir, cfg) / "tables" / "recovery_curve.csv")
    sizes = sorted(cfg["simulation"]["training_sizes"])
    assert sorted(curve["n_train"].tolist()) == sizes  # one row per training size
    n_models = len(cfg["world"]["synthetic"]["models"])
    assert (curve["datasets"] == n_models * cfg["simulation"]["seeds"]).all()
    for col in ("recovery", "ci_low", "ci_high"):
        assert curve[col].between(0.0, 1.0).all(), curve[col]
    assert (curve["ci_low"] <= curve["recovery"]).all()
    assert (curve["recovery"] <= curve["ci_high"]).all()
    assert (curve["ci_high"] - curve["ci_low"] > 0).all()


def test_confusion_and_summary_tables(tiny):
    workdir, cfg = tiny
    tables = exp_dir(workdir, cfg) / "tables"
    conf = pd.read_csv(tables / "confusion.csv")
    sums = conf.groupby(["experiment", "n_train", "generator"])["rate"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-12)
    models = [m["name"] for m in cfg["world"]["synthetic"]["models"]]
    assert len(sums) == len(models) * len(cfg["simulation"]["training_sizes"])
    assert set(conf["candidate"]) == set(models)
    summary = pd.read_csv(tables / "summary.csv")
    assert len(summary) == len(cfg["simulation"]["training_sizes"])
    assert {"recovery", "ci_low", "ci_high", "tie_rate", "mrr", "converged_rate"} <= set(
        summary.columns)
    for name in TABLES:
        assert (tables / f"{name}.csv").stat().st_size > 0
        assert (tables / f"{name}.parquet").stat().st_size > 0
    alignment = pd.read_csv(tables / "alignment.csv")
    assert sorted(alignment["model"]) == sorted(models)


def test_figures_exist(tiny):
    workdir, cfg = tiny
    figures = exp_dir(workdir, cfg) / "figures"
    for stem in ("recovery_curve", "confusion", "identifiability_ceiling", "inversion"):
        png, svg = figures / f"{stem}.png", figures / f"{stem}.svg"
        assert png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert svg.stat().st_size > 1000
        assert "<svg" in svg.read_text()


def test_recovery_parquets_follow_the_contract(tiny):
    workdir, cfg = tiny
    (exp,) = cfg["experiments"]
    models = [m["name"] for m in cfg["world"]["synthetic"]["models"]]
    n_lam = len(cfg["experiments"][exp]["lambdas"])
    folds = cfg["simulation"]["folds"]
    paths = sorted((exp_dir(workdir, cfg) / "recovery").rglob("*.parquet"))
    expected = len(models) * len(cfg["simulation"]["training_sizes"]) * cfg["simulation"][
        "seeds"]
    assert len(paths) == expected
    for path in paths:
        frame = pd.read_parquet(path)
        missing = [c for c in CONTRACT if c not in frame.columns]
        assert not missing, (path, missing)
        generator, n_dir, seed_file = path.parts[-3:]
        assert set(frame["experiment"]) == {exp}
        assert set(frame["generator"]) == {generator}
        assert set(frame["n_train"]) == {int(n_dir[1:])}
        assert set(frame["seed"]) == {int(seed_file[len("seed"):-len(".parquet")])}
        assert len(frame) == len(models) * folds * n_lam
        assert sorted(set(frame["candidate"])) == sorted(models)
        assert frame["val_acc"].between(0, 1).all() and frame["test_acc"].between(0, 1).all()
        assert np.isfinite(frame["test_nll"]).all() and (frame["test_nll"] > 0).all()
        assert frame["converged"].all(), frame[["candidate", "status"]]


def test_generators_are_calibrated_to_the_noise_ceiling(tiny):
    workdir, cfg = tiny
    for m in cfg["world"]["synthetic"]["models"]:
        meta = io.read_json(exp_dir(workdir, cfg) / "generators" / f"{m['name']}.json")
        assert abs(meta["expected_accuracy"] - cfg["noise_ceiling"]) < 0.002
        assert meta["temperature"] > 0
        assert meta["lambda"] in cfg["experiments"]["tiny"]["lambdas"]


def test_simulated_shards_are_concept_disjoint(tiny):
    workdir, cfg = tiny
    n = cfg["world"]["synthetic"]["n_objects"]
    shards = sorted((exp_dir(workdir, cfg) / "simulated").rglob("*.parquet"))
    assert len(shards) == len(cfg["world"]["synthetic"]["models"]) * cfg["simulation"][
        "seeds"]
    for path in shards:
        shard = pd.read_parquet(path)
        assert len(shard[shard["split"] == "train"]) == cfg["simulation"]["folds"] * max(
            cfg["simulation"]["training_sizes"])
        for _, fold in shard.groupby("fold"):
            objs = {s: set(np.unique(g[["i", "j", "k"]].to_numpy()).tolist())
                    for s, g in fold.groupby("split")}
            assert not (objs["train"] & objs["val"]) and not (objs["train"] & objs["test"])
            assert not (objs["val"] & objs["test"])
            for _, g in fold.groupby("split"):
                keys = triplet_keys(g[["i", "j", "k"]].to_numpy(), n)
                assert len(np.unique(keys)) == len(keys)


def test_rerunning_one_recovery_job_reproduces_it(tiny):
    # Deletes one output and reruns snakemake: everything comes back as it was, so the
    # other tests of the shared study see the same files before and after.
    workdir, cfg = tiny
    base = exp_dir(workdir, cfg)
    victim = base / "recovery" / "random" / "rel" / "n120" / "seed1.parquet"
    before = pd.read_parquet(victim)
    tables_before = {name: (base / "tables" / f"{name}.csv").read_bytes() for name in TABLES}
    # The victim's job fits every seed of its generator and size; the other jobs' tables
    # must stay untouched, its siblings come back with the same rows.
    siblings = {p: pd.read_parquet(p) for p in victim.parent.glob("*.parquet") if p != victim}
    others = {p: p.stat().st_mtime_ns for p in (base / "recovery").rglob("*.parquet")
              if p.parent != victim.parent}
    others.update({p: p.stat().st_mtime_ns for p in (base / "simulated").rglob("*.parquet")})
    table_mtime = (base / "tables" / "scores.csv").stat().st_mtime_ns
    victim.unlink()
    # Snakemake does not regenerate a missing intermediate whose downstream outputs are
    # up to date, so name that one job's output as a target next to the default target;
    # the regenerated file then triggers the aggregation.
    run_ok(workdir, str(victim.relative_to(workdir)), "all")
    assert (base / "tables" / "scores.csv").stat().st_mtime_ns > table_mtime  # re-aggregated
    after = pd.read_parquet(victim)
    # Wall time is the one column that cannot repeat; everything else is bit-identical.
    pd.testing.assert_frame_equal(after.drop(columns="seconds"),
                                  before.drop(columns="seconds"), check_exact=True)
    assert list(after.columns) == list(before.columns)
    for name in TABLES:
        now = (base / "tables" / f"{name}.csv").read_bytes()
        if name == "summary":  # holds summed fit seconds
            a = pd.read_csv(base / "tables" / "summary.csv").drop(columns="fit_seconds")
            b = pd.read_csv(BytesIO(tables_before[name])).drop(
                columns="fit_seconds")
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            assert now == tables_before[name], name
    # Only that one job reran: every other recovery table and every shard is untouched.
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert siblings
    for path, rows in siblings.items():
        pd.testing.assert_frame_equal(pd.read_parquet(path).drop(columns="seconds"),
                                      rows.drop(columns="seconds"), check_exact=True)


# ----------------------------------------------------------------- certain recovery


def certain_config() -> dict:
    """Candidates with independent random geometry (transform: unrelated), low dimension,
    and many training triplets per parameter: the generator must always win.

    With d ≤ 5 the generator's own features can express its similarity exactly, while an
    unrelated candidate predicts the simulated choices near chance; with 150 test
    triplets per dataset (3 folds × 50) the accuracy gap (~0.2) is many standard errors.
    """
    cfg = base_config()
    cfg["study_seed"] = 5
    cfg["world"]["synthetic"].update({
        "n_objects": 80,
        "models": [{"name": name, "transform": "unrelated", "dim": d}
                   for name, d in (("ua", 4), ("ub", 5), ("uc", 4))],
    })
    cfg["experiments"] = {"certain": {"method": "full", "regulariser": "eye_distance",
                                      "lambdas": [0.01, 1.0]}}
    # One (large) training size keeps the run short; 2 seeds × 3 generators = 6 datasets.
    # Two instances per generator: seed 1 simulates from each generator's second one.
    cfg["simulation"].update({"training_sizes": [400], "seeds": 2,
                              "generator_instances": 2})
    return cfg


@pytest.fixture(scope="module")
def certain(tmp_path_factory) -> tuple[Path, dict]:
    cfg = certain_config()
    workdir = copy_workflow(tmp_path_factory.mktemp("certain"), cfg)
    run_ok(workdir)
    return workdir, cfg


def test_unrelated_candidates_are_recovered_with_certainty(certain):
    workdir, cfg = certain
    curve = pd.read_csv(exp_dir(workdir, cfg) / "tables" / "recovery_curve.csv")
    largest = curve[curve["n_train"] == max(cfg["simulation"]["training_sizes"])].iloc[0]
    assert largest["recovery"] == 1.0
    assert largest["datasets"] == 3 * cfg["simulation"]["seeds"]
    assert largest["tie_rate"] == 0.0 and largest["mrr"] == 1.0
    conf = pd.read_csv(exp_dir(workdir, cfg) / "tables" / "confusion.csv")
    big = conf[conf["n_train"] == largest["n_train"]]
    diagonal = big[big["generator"] == big["candidate"]]
    assert (diagonal["rate"] == 1.0).all() and len(diagonal) == 3


def test_seed_one_simulates_from_each_generators_second_instance(certain):
    # Instance 1: W refitted at the aligned λ to a bootstrap resample of the human
    # training triplets, calibrated like the generator; seed 1's dataset is drawn from
    # it, bit for bit, and the generator's own refits are scored against it.
    workdir, cfg = certain
    exp, world = exp_dir(workdir, cfg), workdir / "results" / "world"
    n, sim = cfg["world"]["synthetic"]["n_objects"], cfg["simulation"]
    for gen in ("ua", "ub"):
        w0, t0 = io.load_generator(exp / "generators" / f"{gen}.npz")
        w1, t1 = io.load_generator(exp / "generators" / "instances" / gen / "i1.npz")
        meta = io.read_json(exp / "generators" / "instances" / gen / "i1.json")
        assert meta["instance"] == 1
        assert meta["lambda"] == io.read_json(exp / "aligned" / f"{gen}.json")["lambda"]
        assert abs(meta["expected_accuracy"] - cfg["noise_ceiling"]) < 0.002
        assert not np.allclose(w0, w1)  # another resample, another transform
        x = io.read_features(world / "features" / f"{gen}.parquet", n)
        for seed, (w, t) in enumerate(((w0, t0), (w1, t1))):
            expected = simulate_dataset(
                similarity(x, w), t, max(sim["training_sizes"]), n_folds=sim["folds"],
                val_fraction=sim["val_fraction"], eval_fraction=sim["eval_fraction"],
                rng=rng_for(cfg["study_seed"], "simulate", "certain", gen, seed))
            got = pd.read_parquet(exp / "simulated" / "random" / gen / f"seed{seed}.parquet")
            pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_the_ceiling_is_certain_where_the_generators_are_unrelated(certain):
    # Unrelated generators: their own likelihoods always pick the right one, so no
    # failure is the data's; the best fit, certain here too, leaves none to the metric.
    workdir, cfg = certain
    tables = exp_dir(workdir, cfg) / "tables"
    ceiling = pd.read_csv(tables / "identifiability_ceiling.csv")
    assert (ceiling["recovery"] == 1.0).all() and (ceiling["datasets"] == 6).all()
    dec = pd.read_csv(tables / "decomposition.csv")
    assert (dec["data_limited"] == 0.0).all() and (dec["metric_limited"] == 0.0).all()
    # Trained on one seed, the learned rule names the other seed's generators; and a win
    # means its own generator under every rule.
    assert (dec["recovery_learned"] == 1.0).all()
    assert_ceiling_holds(pd.read_csv(tables / "decision_rules.csv"))
    inv = pd.read_csv(tables / "inversion.csv")
    assert set(inv["rule"]) == {"best_fit", "best_fit_nll", "learned", "oracle"}
    own = inv["winner"] == inv["generator"]
    assert (inv.loc[own, "p_generator_given_winner"] == 1.0).all()
    assert (inv.loc[~own, "p_generator_given_winner"] == 0.0).all()


def test_the_ceiling_and_its_split_of_the_tiny_study(tiny):
    workdir, cfg = tiny
    tables = exp_dir(workdir, cfg) / "tables"
    ceiling = pd.read_parquet(tables / "identifiability_ceiling.parquet")
    sizes = sorted(cfg["simulation"]["training_sizes"])
    designs = sorted(cfg.get("designs", ["random"]))  # the schema's default
    assert sorted(set(ceiling["design"])) == designs
    assert len(ceiling) == len(designs) * len(sizes)
    n_gen = len(cfg["world"]["synthetic"]["models"])
    assert (ceiling["datasets"] == n_gen * cfg["simulation"]["seeds"]).all()
    assert ((ceiling["ci_low"] <= ceiling["recovery"])
            & (ceiling["recovery"] <= ceiling["ci_high"])).all()
    dec = pd.read_parquet(tables / "decomposition.parquet")
    np.testing.assert_allclose(dec["data_limited"] + dec["metric_limited"],
                               1.0 - dec["recovery_best_fit"], atol=1e-12)
    # The random design's best fit is the recovery curve of the study's own tables.
    random = dec[dec["design"] == "random"].sort_values("n_train")
    curve = pd.read_parquet(tables / "recovery_curve.parquet").sort_values("n_train")
    np.testing.assert_allclose(random["recovery_best_fit"], curve["recovery"])
    # Every rule on every design and size; the best fit's rows are the decomposition's.
    rules = pd.read_parquet(tables / "decision_rules.parquet")
    assert len(rules) == 4 * len(designs) * len(sizes)
    both = rules[rules["rule"] == "best_fit"].merge(dec, on=["design", "n_train"])
    np.testing.assert_allclose(both["recovery"], both["recovery_best_fit"])
    inv = pd.read_parquet(tables / "inversion.parquet")
    sums = inv.groupby(["design", "rule", "n_train", "winner"])["p_generator_given_winner"]
    np.testing.assert_allclose(sums.sum(), 1.0)
    assert_ceiling_holds(rules)


def assert_ceiling_holds(rules: pd.DataFrame) -> None:
    """The pooled oracle is not below the best fit beyond its interval at any design and
    N (it holds in expectation; a lower point estimate is sampling noise)."""
    wide = rules.pivot_table(index=["design", "n_train"], columns="rule",
                             values=["recovery", "ci_high"])
    assert (wide[("ci_high", "oracle")] >= wide[("recovery", "best_fit")]).all(), wide


# ----------------------------------------------------------------- refusals


def bad_files_config(root: Path) -> tuple[dict, Path]:
    rng = np.random.default_rng(17)
    n = 15
    data = root / "data"
    io.write_objects(data / "objects.parquet", [f"o{i}" for i in range(n)])
    good = rng.normal(size=(n, 3))
    bad = rng.normal(size=(n, 3))
    bad[2, 2] = np.nan
    io.write_features(data / "good.parquet", good)
    # io.write_features refuses NaN: write the user's broken file by hand.
    pq.write_table(pa.table({
        "object_id": pa.array(np.arange(n, dtype=np.int32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(
            bad.astype(np.float32).reshape(-1)), 3)}), data / "bad.parquet")
    trip = np.array([rng.choice(n, size=3, replace=False) for _ in range(40)])
    io.write_triplets(data / "train.parquet", trip[:30])
    io.write_triplets(data / "test.parquet", trip[30:])
    cfg = base_config()
    cfg.pop("external_scores")  # simulated scores are for the synthetic world
    cfg["world"] = {"source": "files", "files": {
        "objects": str(data / "objects.parquet"),
        "features": {"good": str(data / "good.parquet"), "bad": str(data / "bad.parquet")},
        "human_train": str(data / "train.parquet"),
        "human_test": str(data / "test.parquet")}}
    return cfg, data / "bad.parquet"


def test_bad_features_file_stops_the_workflow(tmp_path):
    cfg, bad = bad_files_config(tmp_path)
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir, "--show-failed-logs")
    assert proc.returncode != 0
    log = (workdir / "logs" / "data" / "import_world.log").read_text()
    assert str(bad) in log and "non-finite" in log
    assert str(bad) in proc.stderr + proc.stdout
    assert files_in(workdir / "results" / "world") == []
    assert not (workdir / "results" / "tiny").exists()


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c.update(noise_ceiling=1.5), "noise_ceiling"),
    (lambda c: c.update(bogus_setting=3), "bogus_setting"),
    (lambda c: c["simulation"].update(foldz=3), "foldz"),
], ids=["noise_ceiling_above_1", "unknown_top_level_key", "unknown_nested_key"])
def test_invalid_config_is_refused_before_any_job(tmp_path, mutate, key):
    cfg = copy.deepcopy(base_config())
    mutate(cfg)
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir, "-n")
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert not (workdir / "results").exists()


def test_valid_config_passes_the_dry_run(tmp_path):
    # The control for the refusals above: the config is accepted. Every fitting job
    # asks for the kernel's memory budget and 1 GiB for its process (2.5 GiB + 1 GiB =
    # 3,584 MB), so that SLURM does not kill a job the kernel kept within its budget.
    cfg = base_config()
    cfg["fitting"]["max_memory_gb"] = 2.5
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (workdir / "results").exists()
    jobs = re.findall(r"^rule (\w+):.*?resources: ([^\n]*)", proc.stdout, re.M | re.S)
    memory = {rule: re.search(r"mem_mb=(\d+)", res).group(1) for rule, res in jobs
              if rule in ("align", "recover")}
    assert set(memory) == {"align", "recover"} and set(memory.values()) == {"3584"}, jobs


# ----------------------------------------------------------------- several methods


def test_several_alignment_methods_run_into_their_own_folders(tmp_path):
    cfg = base_config(experiments={
        "zs": {"method": "zero_shot", "regulariser": "eye_distance", "lambdas": [0.01, 1.0]},
        "diag": {"method": "diagonal", "regulariser": "l2", "lambdas": [0.01, 1.0]},
        # (At λ = 0.01 the unrelated model's rank-2 fit collapses to W = 0, no better
        # than chance, and calibrate refuses it: tests/cli/test_cli_errors.py.)
        "lr_l1": {"method": "low_rank:2", "regulariser": "l1", "lambdas": [0.001]},
    })
    cfg["simulation"]["training_sizes"] = [60]
    cfg["simulation"]["seeds"] = 1
    workdir = copy_workflow(tmp_path, cfg)
    run_ok(workdir)
    for name, spec in cfg["experiments"].items():
        tables = workdir / "results" / name / "tables"
        curve = pd.read_csv(tables / "recovery_curve.csv")
        assert curve["recovery"].between(0, 1).all()
        align = pd.read_csv(tables / "alignment.csv")
        assert len(align) == 3 and align["probed_test_acc"].between(0, 1).all()
        meta = io.read_json(workdir / "results" / name / "generators" / "lin.json")
        assert meta["method"] == spec["method"] and meta["regulariser"] == spec["regulariser"]
        w, _ = io.load_generator(workdir / "results" / name / "generators" / "lin.npz")
        k = int(spec["method"].split(":")[1]) if ":" in spec["method"] else 5
        assert w.shape == (5, k)
        if spec["method"] == "zero_shot":
            np.testing.assert_allclose(w, w[0, 0] * np.eye(5))
            # One fit per fold: zero-shot has no λ to choose.
            fits = pd.read_parquet(workdir / "results" / name / "recovery" / "random"
                                   / "lin" / "n60" / "seed0.parquet")
            assert fits.groupby("candidate").size().eq(3).all()
            # Zero-shot human accuracy is the probe's: W = s·I changes no ranking.
            assert np.allclose(align["zero_shot_test_acc"], align["probed_test_acc"])
        if spec["method"] == "diagonal":
            assert np.count_nonzero(w - np.diag(np.diag(w))) == 0


def test_misidentification_analyses(tiny):
    workdir, cfg = tiny
    tables = exp_dir(workdir, cfg) / "tables"
    geom = pd.read_csv(tables / "geometry.csv")
    assert set(geom["model"]) == {"lin", "rel", "unr"}
    assert geom["geometry_shift"].between(0, 2).all() and (geom["pr_raw"] >= 1).all()
    ranks = pd.read_csv(tables / "ranks.csv")
    assert ranks["mrr"].between(0, 1).all() and (ranks["mean_rank"] >= 1).all()
    prf = pd.read_csv(tables / "precision_recall.csv")
    assert prf["f1"].between(0, 1).all()
    # recall is each generator's recovery rate (ties split), from the same outcomes
    gen = pd.read_csv(tables / "generator_curves.csv")
    merged = prf.merge(gen, left_on=["n_train", "model"], right_on=["n_train", "generator"])
    np.testing.assert_allclose(merged["recall"], merged["recovery"])
    comparison = workdir / cfg["results"] / "comparison"
    agreement = pd.read_csv(comparison / "tables" / "metric_agreement.csv")
    assert agreement.shape[0] == agreement.shape[1] - 1  # square, plus the label column
    for fig in ("accuracy_vs_identifiability", "metric_agreement"):
        assert (comparison / "figures" / f"{fig}.png").stat().st_size > 0


def test_scripts_fit_with_the_options_the_recover_rule_passes(tmp_path):
    # benchmarks/solver_sensitivity.py refits a study "as configured" from the config
    # (recovery_jobs.options_from_config); the recover rule passes the same settings as
    # CLI flags.
    # Both routes must give the same options, here with every fitting key off its default.
    cfg = base_config()
    cfg["experiments"]["tiny"].update(method="low_rank:2", regulariser="l2")
    cfg["fitting"].update(dtype="float64", device="cpu", allow_tf32=True, max_iter=321,
                          history=7, grad_tol=3e-7, loss_tol=2e-8, warm_start=False,
                          max_memory_gb=3.5, threads=1)
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir, "-n", "-p", "--workflow-profile", "none", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [ln[ln.index("modelrecovery recover "):] for ln in proc.stdout.splitlines()
                if "modelrecovery recover " in ln]
    assert commands, proc.stdout[-3000:]
    argv = shlex.split(commands[0].split(" 2>")[0])[1:]
    via_cli = cli_args.fit_options(main.build_parser().parse_args(argv))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import recovery_jobs

    via_config = recovery_jobs.options_from_config(cfg["fitting"], cfg["experiments"]["tiny"])
    assert via_cli == via_config
    assert via_config != recovery_jobs.options_from_config({}, cfg["experiments"]["tiny"])


# ----------------------------------------------------------------- external scores


def test_external_scores_join_the_metric_comparison(tiny):
    workdir, cfg = tiny
    comp = workdir / cfg["results"] / "comparison" / "tables"
    table = pd.read_csv(comp / "metrics_by_model.csv")
    external = ["neural_1", "neural_2", "behavioural_1", "behavioural_2"]
    assert all(c in table.columns for c in external)
    assert sorted(table["model"]) == ["lin", "rel", "unr"]
    metrics = [c for c in table.columns if c != "model"]
    pairs = pd.read_csv(comp / "metric_correlations.csv")
    assert len(pairs) == len(metrics) * (len(metrics) - 1) // 2
    summary = pd.read_csv(comp / "metric_agreement_summary.csv")
    assert set(summary["scope"]) == {"all metrics", "aggregated", "external"}
    variance = pd.read_csv(comp / "aggregate_variance.csv")
    groups = variance[variance["level"] == "group"]
    assert set(groups["name"]) == {"neural", "behavioural"}
    assert set(variance["aggregation"]) == {"mean", "zscore", "rank"}
    assert ((variance["explained_variance"] >= 0) & (variance["explained_variance"]
                                                     <= 1 + 1e-12)).all()
    ident = pd.read_csv(comp / "metric_identifiability.csv")
    assert len(ident) == 3 and ident["recovery"].between(0, 1).all()


def test_parameter_recovery_rows_sit_beside_every_recovery_table(tiny):
    workdir, cfg = tiny
    base = exp_dir(workdir, cfg)
    for path in (base / "recovery").rglob("*.parquet"):
        rows = pd.read_parquet(base / "parameters" / path.relative_to(base / "recovery"))
        assert list(rows.columns) == list(io.PARAMETER_COLUMNS)
        assert len(rows) == cfg["simulation"]["folds"]
        d = rows["dim"].iloc[0]
        assert all(len(w) == d * d for w in rows["weights"])
        assert rows["similarity_r"].between(-1, 1).all()
    curves = pd.read_csv(base / "tables" / "parameter_recovery.csv")
    assert len(curves) == 3 * len(cfg["simulation"]["training_sizes"]) * len(
        cfg.get("designs", ["random"]))
    assert (base / "figures" / "parameter_recovery.png").stat().st_size > 0


def test_a_bad_scores_file_stops_the_workflow_before_any_fit(tmp_path):
    bad = tmp_path / "scores.csv"
    bad.write_text("model,v1\nlin,0.3\nalexnet,0.2\n")
    cfg = base_config()
    cfg["external_scores"] = {"files": [{"path": str(bad), "group": "neural"}]}
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir)
    assert proc.returncode != 0
    log = (workdir / "logs" / "data" / "import_external_scores.log").read_text()
    assert f"{bad}: data row 2 (line 3): model 'alexnet' is not one" in log
    assert not list((workdir / "results").rglob("recovery/**/*.parquet"))
    assert not (workdir / "results" / "world" / "external_scores.parquet").exists()
    missing = base_config()
    missing["external_scores"] = {"files": [{"path": str(tmp_path / "none.csv"),
                                             "group": "neural"}]}
    proc = run_snakemake(copy_workflow(tmp_path / "wf2", missing), "-n")
    assert proc.returncode != 0
    assert "external_scores.files.0.path" in proc.stderr + proc.stdout
