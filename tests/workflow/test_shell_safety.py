"""No value from the config or a file name reaches a shell as code.

Statically: every placeholder of every rule's ``shell:`` is quoted (``{input.x:q}``).
Dynamically: a study whose every path holds a space, ``$(...)``, backticks and ``;``
runs to the end with its files as named, and the commands hidden in the names never run.
"""

from __future__ import annotations

import ast
import re
import shutil
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_things_workflow import N_OBJ, build_inputs

from conftest import REPO, base_config, copy_workflow, files_in, run_snakemake
from modelrecovery import io
from modelrecovery.oddoneout import similarity
from modelrecovery.sampling import sample_choices

# A name that runs `touch MARK` in three ways if it ever reaches a shell unquoted.
HOSTILE = "my data $(touch MARK) `touch MARK`; touch MARK ;x"


def shell_commands() -> dict[str, str]:
    """rule name → its shell command, read from every .smk file (all branches)."""
    commands = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        rule = None
        for pos, line in enumerate(lines):
            found = re.match(r"\s*rule (\w+):", line)
            if found:
                rule = found.group(1)
            if line.strip() == "shell:":
                parts = []
                for follow in lines[pos + 1:]:
                    if not follow.strip().startswith(('"', "'")):
                        break
                    parts.append(follow.strip())
                commands[f"{smk.name}:{rule}"] = ast.literal_eval("(" + " ".join(parts) + ")")
    return commands


def test_every_placeholder_of_every_shell_command_is_quoted():
    commands = shell_commands()
    rules = {m.group(1) for smk in (REPO / "workflow" / "rules").glob("*.smk")
             for m in re.finditer(r"^\s*rule (\w+):", smk.read_text(), re.M)}
    # Every rule but the target rule runs a shell command, and each is checked.
    assert {key.split(":")[1] for key in commands} == rules - {"all"}
    for rule, command in commands.items():
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(command)
                  if name is not None]
        assert fields, rule
        unquoted = [name for name, spec in fields if not (spec or "").endswith("q")]
        assert not unquoted, f"{rule}: unquoted placeholder(s) {unquoted}"


def hostile_files_study(root: Path) -> tuple[Path, dict, dict]:
    """A files-world study: every input path and the results folder hold HOSTILE."""
    rng = np.random.default_rng(23)
    n = 36
    data = root / "in" / HOSTILE
    latent = rng.normal(size=(n, 3))
    features = {"lin": latent @ rng.normal(size=(3, 4)),
                "tanh": np.tanh(latent @ rng.normal(size=(3, 4))),
                "unr": rng.normal(size=(n, 3))}
    paths = {m: data / f"{m} {HOSTILE}.parquet" for m in features}
    for m, x in features.items():
        io.write_features(paths[m], x)
    io.write_objects(data / f"objects {HOSTILE}.parquet", [f"o{i}" for i in range(n)])
    shown = np.stack([rng.choice(n, 3, replace=False) for _ in range(260)])
    trips = sample_choices(similarity(latent), shown, 0.5, rng)
    io.write_triplets(data / f"train {HOSTILE}.parquet", trips[:220])
    io.write_triplets(data / f"test {HOSTILE}.parquet", trips[220:])
    cfg = base_config(results=f"results {HOSTILE}")
    cfg.pop("external_scores")  # simulated scores are for the synthetic world
    cfg["world"] = {"source": "files", "files": {
        "objects": str(data / f"objects {HOSTILE}.parquet"),
        "features": {m: str(p) for m, p in paths.items()},
        "human_train": str(data / f"train {HOSTILE}.parquet"),
        "human_test": str(data / f"test {HOSTILE}.parquet")}}
    cfg["simulation"].update(training_sizes=[40], seeds=1)
    workdir = copy_workflow(root / "wf", cfg)
    return workdir, cfg, features


@pytest.mark.workflow
def test_a_study_with_hostile_paths_runs_as_named_and_runs_nothing_else(tmp_path):
    workdir, cfg, features = hostile_files_study(tmp_path)
    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert not [p for p in tmp_path.rglob("MARK*")], "a command hidden in a name ran"
    results = workdir / cfg["results"]
    for m, x in features.items():
        np.testing.assert_array_equal(
            io.read_features(results / "world" / "features" / f"{m}.parquet", 36),
            x.astype(np.float32))
    curve = pd.read_csv(results / "tiny" / "tables" / "recovery_curve.csv")
    assert curve["recovery"].between(0, 1).all() and len(curve) == 1
    assert (results / "comparison" / "figures" / "metric_agreement.svg").stat().st_size > 0
    assert not (workdir / "results").exists()  # nothing went to a truncated name


@pytest.mark.workflow
def test_things_inputs_with_hostile_paths_import_the_files_named(tmp_path):
    # The THINGS importers (objects list, odd-one-out file, features in three formats)
    # with every source path renamed to hold HOSTILE.
    cfg = build_inputs(tmp_path)
    things = cfg["world"]["things"]
    hostile = tmp_path / HOSTILE
    shutil.move(tmp_path / "data", hostile)
    for key in ("triplets", "objects"):
        things[key] = str(hostile / Path(things[key]).relative_to("data"))
    for spec in things["features"].values():
        old = hostile / Path(spec["path"]).relative_to("data")
        new = old.with_name(f"{old.stem} {HOSTILE}{old.suffix}")
        old.rename(new)
        spec["path"] = str(new)
    cfg["results"] = f"out {HOSTILE}"
    workdir = copy_workflow(tmp_path / "wf", cfg)
    world = Path(cfg["results"]) / "world"
    targets = [str(world / "human" / "train.parquet")] + [
        str(world / "features" / f"{m}.parquet") for m in things["features"]]
    proc = run_snakemake(workdir, *targets)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert not [p for p in tmp_path.rglob("MARK*")], "a command hidden in a name ran"
    imported = io.read_features(workdir / world / "features" / "tanh.parquet", N_OBJ)
    source = io.read_json(workdir / world / "features" / "tanh.json")["source"]
    assert source == things["features"]["tanh"]["path"] and imported.shape == (N_OBJ, 6)
    assert len(io.read_triplets(workdir / world / "human" / "train.parquet", N_OBJ)[0]) \
        == 2500
    assert files_in(workdir / world)
