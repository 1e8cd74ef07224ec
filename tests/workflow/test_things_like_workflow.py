"""A THINGS-like world through the THINGS path (world.source: things with
world.things.generate): the generated files in the published formats are read by the
same importers as the real files, and the study runs on them, here through
benchmarks/gpu_check.sh on the CPU, with 20 models as the THINGS study has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, base_config, cli_path, tool_env
from modelrecovery import io

pytestmark = pytest.mark.workflow
# The rehearsal's shape in small: 20 candidates in five families (d = 4-12) and a
# near-twin, two of them generators.
TWENTY = {f"net{i:02d}": {"dim": 4 + (i % 5) * 2, "family": "abcde"[i % 5],
                          "signal": 0.2 + 0.04 * (i % 7)} for i in range(1, 20)}
TWENTY["net20"] = {"twin_of": "net19", "nuisance": 2}
GENERATORS = ["net03", "net20"]
N_OBJ = 40


@pytest.fixture(scope="module")
def gpu_check(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """benchmarks/gpu_check.sh as prepared for a GPU, run on the CPU (DEVICE=cpu) at a
    small shape: a THINGS-like world of 40 concepts and 20 models, two generators, run
    through world.source: things, the path of a user's real files."""
    root = tmp_path_factory.mktemp("gpu_check")
    cfg = base_config(noise_ceiling="auto", external_scores={})
    cfg["world"] = {"source": "things", "things": {
        "format": "things_csv", "triplets": "data/tl/triplets.tsv",
        "objects": "data/tl/unique_id.txt", "n_objects": N_OBJ, "test_split": 2,
        "generate": {"seed": 5, "human_dim": 5, "density": 0.4, "train_triplets": 800,
                     "test_triplets": 40, "test_repeats": 6, "models": TWENTY},
        "features": {m: {"path": f"data/tl/features/{m}/features.npy", "center": True}
                     for m in TWENTY}}}
    cfg["simulation"]["seeds"] = 1
    config = root / "twenty.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**tool_env(), "DEVICE": "cpu", "CONFIG": str(config),
           "GENERATORS": " ".join(GENERATORS), "SIZES": "40", "TARGET_TRIPLETS": "3000",
           "CORES": "2", "WORK": str(root / "work")}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, root / "work", config


def snakemake_in(work: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Snakemake in the check's folder with its config and overlay, as the script runs it."""
    return subprocess.run([cli_path("snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
                           "-d", str(work), "--configfile", str(config),
                           str(work / "overlay.yaml"), "--cores", "2", *args],
                          env=tool_env(), capture_output=True, text=True, timeout=300)


def test_the_generated_world_goes_through_the_things_importers(gpu_check):
    _, work, _ = gpu_check
    world = work / "results" / "world"
    summary = io.read_json(world / "things_like.json")
    assert summary["rows"] == {"0": 800, "1": 240, "2": 240, "3": 240}
    dims = {m: spec["dim"] for m, spec in TWENTY.items() if "dim" in spec}
    assert summary["dims"] == {**dims, "net20": dims["net19"] + 2}
    ceiling = io.read_json(world / "human" / "ceiling.json")
    assert 0.5 < ceiling["ceiling"] < 0.9
    assert ceiling["splits"]["test2"]["file"] == "data/tl/triplets.tsv (noise_ceiling = 2)"
    train, _ = io.read_triplets(world / "human" / "train.parquet", N_OBJ)
    assert len(train) == 800
    for m in TWENTY:
        meta = json.loads((world / "features" / f"{m}.json").read_text())
        assert meta["source"].endswith(f"{m}/features.npy")
        assert io.read_features(world / "features" / f"{m}.parquet", N_OBJ).shape == (
            N_OBJ, summary["dims"][m])
    for m in GENERATORS:
        gen = io.read_json(work / "results" / "tiny" / "generators" / f"{m}.json")
        assert gen["noise_ceiling_target"] == pytest.approx(ceiling["ceiling"])
    curve = pd.read_csv(work / "results" / "tiny" / "tables" / "recovery_curve.csv")
    assert curve["n_train"].tolist() == [40]


def test_the_generated_files_are_not_rebuilt_and_rebuild_to_the_same_bytes(gpu_check):
    _, work, config = gpu_check
    proc = snakemake_in(work, config, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
    tsv = work / "data" / "tl" / "triplets.tsv"
    before = tsv.read_bytes()
    proc = snakemake_in(work, config, "--forcerun", "things_like_world", "--until",
                        "things_like_world")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tsv.read_bytes() == before


def test_the_gpu_check_runs_every_part_and_reports_each_rule(gpu_check):
    # The device line, the target fit, the rehearsal through every rule with the device
    # set by its overlay, and the per-rule table from the benchmark files.
    proc, work, _ = gpu_check
    out = proc.stdout
    assert "device: cpu" in out
    assert re.search(r"^fit: [\d.]+ s, \d+ iterations .* peak memory [\d.]+ GiB", out, re.M)
    overlay = json.loads((work / "overlay.yaml").read_text())
    assert overlay == {"results": "results", "generators": ["net03", "net20"],
                       "simulation": {"training_sizes": [40]}, "fitting": {"device": "cpu"}}
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| rule")}
    for rule in ("things_like", "import_things", "align", "calibrate",
                 "simulate", "recover", "aggregate", "analyse ceiling", "plot"):
        assert rule in rows, (rule, sorted(rows))
    cells = [c.strip() for c in rows["align"].split("|")]
    assert cells[4] == "20"  # jobs: every model aligned
    cells = [c.strip() for c in rows["recover"].split("|")]
    assert cells[3:5] == ["40", "2"]  # N, jobs
    # Every fitting job ran on the overlay's device and logged its peak memory.
    logs = sorted((work / "logs" / "tiny" / "recover").glob("*.log"))
    assert len(logs) == 2
    assert all("peak memory:" in log.read_text().splitlines()[-1] for log in logs)
    assert re.search(r"^total: \d+ s$", out, re.M)


def test_the_report_of_twenty_models_shows_legible_confusion_matrices(gpu_check,
                                                                      tmp_path):
    # The report of a 20-model study in the browser: the confusion figure is listed and
    # drawn, large enough for a legible cell per candidate (0.3 inch at 150 dpi).
    from test_report_browser import data_uri_bytes, render

    _, work, config = gpu_check
    report = work / "report.html"
    proc = subprocess.run([cli_path("snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
                           "-d", str(work), "--configfile", str(config),
                           str(work / "overlay.yaml"), "--report", str(report)],
                          env=tool_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    snaps = render(report, tmp_path, "confusion.png")
    figure = work / "results" / "tiny" / "figures" / "confusion.png"
    listed = [text for tag, text in snaps.text["figures"] if tag == "td"]
    assert "results/tiny/figures/confusion.png" in listed, listed
    before = set(snaps.images["figures"])
    (drawn,) = [src for src in snaps.images["figure"]
                if src not in before and src.startswith("data:image/png")]
    png = data_uri_bytes(drawn)
    assert png == figure.read_bytes()
    width = int.from_bytes(png[16:20], "big")  # the PNG header's IHDR width
    assert width >= 20 * 0.3 * 150, width


def test_the_gpu_check_refuses_a_cuda_device_torch_cannot_see(tmp_path):
    env = {**tool_env(), "DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": "",
           "WORK": str(tmp_path / "work")}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "gpu_check: DEVICE=cuda but torch sees no CUDA device")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "work" / "target.json").exists()
