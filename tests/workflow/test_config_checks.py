"""The start-up checks of the config: one line naming the key, before any job runs."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import yaml

from modelrecovery import io

from conftest import REPO, base_config, copy_workflow, run_snakemake

sys.path.insert(0, str(REPO / "workflow" / "lib"))
import config_checks  # noqa: E402

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def models(c):
    return c["world"]["synthetic"]["models"]


# (mutation, the key the message must name, a phrase of the message)
BAD = {
    "empty_results": (lambda c: c.update(results=""), "'results'", "path"),
    "newline_in_results": (lambda c: c.update(results="res\nults"), "'results'", "path"),
    "trailing_newline": (lambda c: c.update(results="results\n"), "'results'", "path"),
    "results_option": (lambda c: c.update(results="-rf"), "'results'", "'-'"),
    "results_braces": (lambda c: c.update(results="r{x}"), "'results'", "wildcards"),
    "model_dotdot": (lambda c: models(c)[1].update(name=".."), "models.1.name", "'..'"),
    "model_dot": (lambda c: models(c)[0].update(name="."), "models.0.name", "'.'"),
    "model_option": (lambda c: models(c)[2].update(name="-h"), "models.2.name", "-h"),
    "model_slash": (lambda c: models(c)[2].update(name="a/b"), "models.2.name", "a/b"),
    "model_duplicate": (lambda c: models(c)[2].update(name="lin"), "models.2.name",
                        "repeats entry 0"),
    "experiment_option": (lambda c: c.update(experiments={"-x": c["experiments"]["tiny"]}),
                          "'experiments'", "'-x'"),
    "lambda_nan": (lambda c: c["experiments"]["tiny"].update(lambdas=[0.1, float("nan")]),
                   "experiments.tiny.lambdas.1", "finite"),
    "lambda_inf": (lambda c: c["experiments"]["tiny"].update(lambdas=[float("inf")]),
                   "experiments.tiny.lambdas.0", "finite"),
    "ceiling_nan": (lambda c: c.update(noise_ceiling=float("nan")), "'noise_ceiling'",
                    "finite"),
    "ceiling_auto_synthetic": (lambda c: c.update(noise_ceiling="auto"), "'noise_ceiling'",
                               "things"),
    "tolerance_inf": (lambda c: c["fitting"].update(grad_tol=float("inf")),
                      "fitting.grad_tol", "finite"),
    "seed_float": (lambda c: c.update(study_seed=3.0), "'study_seed'", "integer"),
    "seeds_float": (lambda c: c["simulation"].update(seeds=2.0), "simulation.seeds",
                    "integer"),
    "seed_bool": (lambda c: c.update(study_seed=True), "'study_seed'", "integer"),
    "cv_folds_beyond_data": (lambda c: c["alignment"].update(cv_folds=601),
                             "alignment.cv_folds", "600"),
    "unknown_generator": (lambda c: c.update(generators=["lin", "nope"]), "'generators'",
                          "nope"),
    "generator_not_candidate": (lambda c: c.update(candidates=["rel", "unr"]),
                                "'candidates'", "lin"),
    "duplicate_candidates": (lambda c: c.update(candidates=["lin", "lin"]), "candidates",
                             "non-unique"),
    "unknown_key": (lambda c: c["simulation"].update(foldz=3), "foldz", "unknown"),
    "designs_without_random": (lambda c: c.update(designs=["static"]), "'designs'",
                               "contain"),
    "unknown_design": (lambda c: c.update(designs=["random", "clever"]), "designs.1",
                       "clever"),
    "prior_not_a_generator": (lambda c: c.update(design={"prior": {"nope": 1.0}}),
                              "design.prior", "nope"),
    "pair_not_generators": (lambda c: c.update(design={"pair": ["lin", "zzz"]}),
                            "design.pair", "zzz"),
    "prior_all_zero": (lambda c: c.update(design={"prior": {"lin": 0.0}}), "design.prior",
                       "every weight is 0"),
    "misrepresents_too_many": (
        lambda c: c["world"]["synthetic"]["models"][0].update(misrepresents=10**6),
        "world.synthetic.models.0.misrepresents", "at most half"),
    "analysis_prior_not_a_generator": (
        lambda c: c.update(analysis={"prior": {"nope": 1.0}}), "analysis.prior", "nope"),
    "analysis_prior_all_zero": (lambda c: c.update(analysis={"prior": {"lin": 0.0}}),
                                "analysis.prior", "every weight is 0"),
    "random_fraction_above_1": (lambda c: c.update(design={"random_fraction": 1.5}),
                                "design.random_fraction", "1.5"),
    "generators_from_unknown": (
        lambda c: c["experiments"]["tiny"].update(generators_from="nope"),
        "experiments.tiny.generators_from", "'nope' is not an experiment"),
    "generators_from_itself": (
        lambda c: c["experiments"]["tiny"].update(generators_from="tiny"),
        "experiments.tiny.generators_from", "from itself"),
    "generators_from_a_borrower": (
        lambda c: c["experiments"].update(
            a={**c["experiments"]["tiny"], "generators_from": "tiny"},
            b={**c["experiments"]["tiny"], "generators_from": "a"}),
        "experiments.b.generators_from", "name that experiment instead"),
    "subsets_with_two_folds": (
        lambda c: c["simulation"].update(protocol="subsets", folds=2),
        "simulation.folds", "at least 3"),
    "subsets_with_designs": (
        lambda c: (c["simulation"].update(protocol="subsets"),
                   c.update(designs=["random", "static"])),
        "designs", "['static']"),
    "participants_zero": (lambda c: c["simulation"].update(participants=0),
                          "simulation.participants", "0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_value_is_refused_naming_its_key(case):
    mutate, key, phrase = BAD[case]
    cfg = copy.deepcopy(base_config())
    mutate(cfg)
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.check(cfg, SCHEMA, [])
    message = str(info.value)
    assert "\n" not in message.strip("'\n") or case.startswith(("newline", "trailing"))
    assert key in message and phrase in message, message


def test_the_valid_configs_pass():
    config_checks.check(base_config(), SCHEMA, [])
    default = REPO / "config" / "config.yaml"
    config_checks.check(yaml.safe_load(default.read_text()), SCHEMA, [default])


def test_files_world_paths_must_exist_and_cv_folds_fit_their_rows(tmp_path):
    data = tmp_path
    io.write_objects(data / "objects.parquet", [f"o{i}" for i in range(6)])
    for m in ("a", "b"):
        io.write_features(data / f"{m}.parquet", np.arange(12.0).reshape(6, 2) ** (m == "b"))
    io.write_triplets(data / "train.parquet", np.array([[0, 1, 2], [3, 4, 5], [0, 2, 4]]))
    io.write_triplets(data / "test.parquet", np.array([[0, 1, 2]]))
    cfg = base_config()
    cfg.pop("external_scores")  # simulated scores are for the synthetic world
    cfg["world"] = {"source": "files", "files": {
        "objects": str(data / "objects.parquet"),
        "features": {"a": str(data / "a.parquet"), "b": str(data / "b.parquet")},
        "human_train": str(data / "train.parquet"), "human_test": str(data / "test.parquet")}}
    cfg["alignment"]["cv_folds"] = 3
    config_checks.check(cfg, SCHEMA, [])
    cfg["alignment"]["cv_folds"] = 4
    with pytest.raises(config_checks.ConfigError, match=r"'alignment.cv_folds'.*has 3"):
        config_checks.check(cfg, SCHEMA, [])
    cfg["alignment"]["cv_folds"] = 2
    cfg["world"]["files"]["features"]["b"] = str(data / "missing.parquet")
    with pytest.raises(config_checks.ConfigError,
                       match=r"'world.files.features.b'.*missing.parquet does not exist"):
        config_checks.check(cfg, SCHEMA, [])


def test_a_key_repeated_in_the_yaml_file_is_refused_with_its_lines(tmp_path):
    path = tmp_path / "study.yaml"
    text = yaml.safe_dump(base_config(), sort_keys=False)
    path.write_text(text.replace("simulation:\n", "simulation:\n  seeds: 9\n", 1))
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.check_config_files([path])
    assert str(path) in str(info.value) and "'seeds'" in str(info.value)
    assert "first at line" in str(info.value)
    path.write_text("")
    with pytest.raises(config_checks.ConfigError, match="is empty"):
        config_checks.check_config_files([path])
    path.write_text("study_seed: [1\n")
    with pytest.raises(config_checks.ConfigError, match="not valid YAML"):
        config_checks.check_config_files([path])


@pytest.mark.workflow
@pytest.mark.parametrize("case", ["lambda_nan", "model_dotdot", "seed_float",
                                  "cv_folds_beyond_data"])
def test_snakemake_refuses_before_any_job_in_one_line(tmp_path, case):
    mutate, key, phrase = BAD[case]
    cfg = copy.deepcopy(base_config())
    mutate(cfg)
    workdir = copy_workflow(tmp_path / "wf", cfg)
    proc = run_snakemake(workdir)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and key in errors[0] and phrase in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()


@pytest.mark.workflow
def test_snakemake_refuses_a_config_file_with_a_repeated_key(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", base_config())
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text() + "study_seed: 12\n")
    proc = run_snakemake(workdir, "-n")
    assert proc.returncode == 2
    assert "'study_seed' appears again" in proc.stderr and "config.yaml" in proc.stderr
    # An empty user config file is refused (by Snakemake's loader), not replaced by the
    # embedded default.
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    proc = run_snakemake(workdir, "-n", "--configfile", str(empty))
    assert proc.returncode != 0 and "keys at top level" in proc.stdout + proc.stderr


def generated_things(**changes) -> dict:
    """The test study on a generated THINGS-like world (nothing on disk yet)."""
    cfg = copy.deepcopy(base_config(noise_ceiling="auto", external_scores={}))
    models = {"a": {"dim": 4}, "b": {"dim": 6}, "c": {"dim": 5}}
    cfg["world"] = {"source": "things", "things": {
        "triplets": "gen/t.tsv", "objects": "gen/o.txt", "n_objects": 30,
        "generate": {"seed": 1, "models": models},
        "features": {m: {"path": f"gen/{m}/features.npy"} for m in models}}}
    for mutate in changes.values():
        mutate(cfg["world"]["things"])
    return cfg


def test_a_generated_things_world_needs_no_files_on_disk():
    config_checks.check(generated_things(), SCHEMA, [])


@pytest.mark.parametrize("mutate,key,phrase", [
    (lambda t: t["generate"]["models"].pop("c"), "world.things.generate.models",
     "list the same models in both"),
    (lambda t: t["features"]["a"].update(path="gen/a.pt"), "world.things.features.a.path",
     "thingsvision .npy"),
    (lambda t: t["generate"]["models"]["b"].update(twin_of="zzz"),
     "world.things.generate.models.b.twin_of", "'zzz'"),
    (lambda t: t.update(format="arrays", train="x", test="y"), "world.things.format",
     "things_csv"),
])
def test_a_bad_generated_world_is_refused_naming_its_key(mutate, key, phrase):
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.check(generated_things(bad=mutate), SCHEMA, [])
    assert key in str(info.value) and phrase in str(info.value), str(info.value)
