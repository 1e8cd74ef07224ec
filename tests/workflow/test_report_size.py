"""The Snakemake report stays small at any scale: of a design it embeds a summary of a
fixed size, never the per-triplet table (triplets.csv, millions of rows at THINGS sizes),
which stays a result of its own."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelrecovery import io
from modelrecovery.io.contracts import DESIGN_SUMMARY_COLUMNS

from conftest import REPO, base_config, cli_path, copy_workflow, run_snakemake, tool_env

#: Most bytes a design's summary may take, whatever the number of triplets.
SUMMARY_LIMIT = 4096
#: Files with one row per triplet (or per object), which the report must not embed.
PER_ROW_FILES = ("triplets.csv", "folds.csv")
N_OBJECTS = 120  # enough triplets within each split for the larger design


def run_cli(*args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli_path("modelrecovery"), *map(str, args)], env=tool_env(),
                          capture_output=True, text=True, timeout=300)


def export_uniform_design(root: Path, n_train: int) -> dict[str, Path]:
    """A uniform design of ``n_train`` training triplets per fold (``design static
    --uniform``), exported by ``design export`` with its summary under
    ``root/exp/design/random``."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    io.write_objects(root / "objects.parquet", [f"thing{i}" for i in range(N_OBJECTS)])
    models = ("a", "b")
    for m in models:
        io.write_features(root / f"{m}.parquet", rng.normal(size=(N_OBJECTS, 3)))
        io.save_generator(root / f"{m}.npz", root / f"{m}.json", np.eye(3), 1.0,
                          {"model": m})
    out = root / "exp" / "design" / "random"
    base = ["--objects", root / "objects.parquet"]
    design = run_cli("design", "static", *base,
                     "--features", *(f"{m}={root / f'{m}.parquet'}" for m in models),
                     "--generators", *(f"{m}={root / f'{m}.npz'}" for m in models),
                     "--uniform", "--experiment", "exp", "--seed", 0, "--study-seed", 1,
                     "--n-train-max", n_train, "--out", root / "d.parquet",
                     "--out-json", root / "d.json")
    assert design.returncode == 0, design.stderr
    files = {"triplets": out / "triplets.csv", "folds": out / "folds.csv",
             "summary": out / "triplets_summary.csv"}
    export = run_cli("design", "export", "--design", root / "d.parquet", "--design-json",
                     root / "d.json", *base, "--out", files["triplets"], "--out-folds",
                     files["folds"], "--out-summary", files["summary"])
    assert export.returncode == 0, export.stderr
    return files


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[int, dict[str, Path]]:
    """The same design exported at 50 and at 4000 training triplets per fold."""
    root = tmp_path_factory.mktemp("exports")
    return {n: export_uniform_design(root / f"n{n}", n) for n in (50, 4000)}


def test_the_design_summary_does_not_grow_with_the_triplets(exports):
    small, large = exports[50], exports[4000]
    size = lambda files, key: files[key].stat().st_size
    assert size(large, "triplets") > 50 * size(small, "triplets")  # the per-row table grows
    for files in (small, large):
        assert size(files, "summary") < SUMMARY_LIMIT
        summary = pd.read_csv(files["summary"])
        assert list(summary.columns) == list(DESIGN_SUMMARY_COLUMNS)
        assert summary["split"].tolist() == ["train", "val", "test", "all"]
    # 80 times the triplets: only the digits of the counts grow.
    assert abs(size(large, "summary") - size(small, "summary")) < 64


def test_the_summary_describes_the_exported_triplets(exports):
    files = exports[4000]
    summary = pd.read_csv(files["summary"]).set_index("split")
    table = pd.read_csv(files["triplets"])
    folds = pd.read_csv(files["folds"])
    images = ["image1", "image2", "image3"]
    for split in ("train", "val", "test", "all"):
        rows = table if split == "all" else table[table["split"] == split]
        members = folds if split == "all" else folds[folds["split"] == split]
        objects = np.unique(members["image"])
        uses = pd.Series(rows[images].to_numpy().ravel()).value_counts()
        uses = uses.reindex(objects, fill_value=0)
        got = summary.loc[split]
        assert got["triplets"] == len(rows) and got["folds"] == folds["fold"].nunique()
        assert got["objects"] == len(objects)
        assert got["objects_covered"] == int((uses > 0).sum())
        assert [got["uses_min"], got["uses_median"], got["uses_max"]] == [
            uses.min(), uses.median(), uses.max()]
        assert got["uniform_share"] == 1.0 and got["utility_mean"] == 0.0  # uniform
    assert (summary["file"] == "triplets.csv").all()  # beside the summary
    assert (summary["file_bytes"] == files["triplets"].stat().st_size).all()


def report_paths(text: str) -> list[str]:
    """The first argument of every ``report(...)`` call in workflow source ``text``."""
    found = []
    for match in re.finditer(r"(?<![\w.-])report\(", text):
        depth, i, quote = 0, match.end(), None
        while i < len(text):
            c = text[i]
            if quote:
                quote = None if c == quote else quote
            elif c in "\"'":
                quote = c
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                break
            i += 1
        found.append(text[match.end():i].strip())
    return found


def test_no_per_row_table_is_marked_for_the_report():
    sources = [REPO / "workflow" / "Snakefile", *sorted((REPO / "workflow" / "rules")
                                                      .glob("*.smk"))]
    paths = [p for s in sources if s.exists() for p in report_paths(s.read_text())]
    assert any("triplets_summary.csv" in p for p in paths), paths
    for path in paths:
        assert not any(f'"{name}"' in path or f"/{name}" in path for name in PER_ROW_FILES)
        assert ".parquet" not in path, path


def embedded(report: Path) -> dict[str, int]:
    """Bytes of every file the single-file HTML report embeds, by its path."""
    html = report.read_text()
    match = re.search(r"var results = (\{.*?\});\s*</script>", html, re.S)
    assert match, f"{report}: no embedded results (has Snakemake's report layout changed?)"
    return {path: len(base64.b64decode(item["data_uri"].split("base64,", 1)[1]))
            for path, item in json.loads(match.group(1)).items()}


@pytest.mark.workflow
def test_the_report_embeds_the_summary_not_the_triplets(tmp_path):
    cfg = base_config()
    cfg["world"]["synthetic"]["n_objects"] = N_OBJECTS
    workdir = copy_workflow(tmp_path, cfg)
    design = "results/tiny/design/random"
    target = f"{design}/triplets_summary.csv"
    sizes = {}
    for n_max in (40, 4000):  # the second run redoes only the design and its export
        cfg["simulation"]["training_sizes"] = [n_max]
        config = yaml.safe_dump(cfg, sort_keys=False)
        (workdir / "config" / "config.yaml").write_text(config)
        proc = run_snakemake(workdir, target)
        assert proc.returncode == 0, proc.stderr[-4000:]
        proc = run_snakemake(workdir, "--report", "report.html", target)
        assert proc.returncode == 0, proc.stderr[-4000:]
        items = embedded(workdir / "report.html")
        assert target in items and not any(p.endswith(PER_ROW_FILES) for p in items), items
        assert items[target] < SUMMARY_LIMIT
        triplets = workdir / design / "triplets.csv"
        summary = pd.read_csv(workdir / target)
        assert (summary["file"] == "tiny/design/random/triplets.csv").all()  # in results/
        assert (summary["file_bytes"] == triplets.stat().st_size).all()
        sizes[n_max] = (items, triplets.stat().st_size)
    (small, small_csv), (large, large_csv) = sizes[40], sizes[4000]
    assert large_csv > 50 * small_csv
    assert set(large) == set(small)
    for path in small:  # nothing embedded grows with the triplets (but their digits)
        assert large[path] < small[path] + 64, path
