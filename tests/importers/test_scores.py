"""External benchmark scores: validated on the way in, simulated for the synthetic world."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli_path, tool_env
from modelrecovery import io
from modelrecovery.importers import read_scores
from modelrecovery.world import synthetic

MODELS = ["alex", "vgg", "clip"]
GOOD = "model,v1,it\nalex,0.3,0.5\nvgg,0.4,\nclip,0.6,0.7\n"


def import_cli(files: list[Path], groups: list[str], out: Path
               ) -> subprocess.CompletedProcess[str]:
    cmd = [cli_path("modelrecovery"), "import-scores", "--file", *map(str, files),
           "--group", *groups, "--models", *MODELS, "--out", str(out)]
    return subprocess.run(cmd, env=tool_env(), capture_output=True, text=True, timeout=120)


def test_a_good_file_becomes_long_rows_without_the_unscored(tmp_path):
    path = tmp_path / "neural.csv"
    path.write_text(GOOD)
    rows = read_scores(path, "neural", MODELS)
    assert list(rows.columns) == list(io.EXTERNAL_SCORE_COLUMNS)
    assert rows["metric"].tolist() == ["v1", "v1", "v1", "it", "it"]
    assert rows.loc[rows["metric"] == "it", "model"].tolist() == ["alex", "clip"]
    assert (rows["group"] == "neural").all()
    assert rows["score"].tolist() == [0.3, 0.4, 0.6, 0.5, 0.7]
    # Parquet holds the same.
    pq.write_table(pa.table({"model": MODELS, "v1": [0.3, 0.4, 0.6],
                             "it": [0.5, None, 0.7]}), tmp_path / "n.parquet")
    pd.testing.assert_frame_equal(read_scores(tmp_path / "n.parquet", "neural", MODELS), rows)


# Each case: the file's text (CSV) and what the one line must say.
BAD_CSV = [
    ("v1,it\n0.3,0.5\n", "needs a 'model' column"),
    ("model\nalex\n", "no score column"),
    ("model,v1\n", "has no rows"),
    ("model,v1\nalex,0.3\nresnet,0.2\n", "data row 2 (line 3): model 'resnet' is not one"),
    ("model,v1\nalex,0.3\nalex,0.2\n", "data row 2 (line 3): model 'alex' appears more"),
    ("model,v1\n,0.3\n", "data row 1 (line 2): missing model name"),
    ("model,v1\nalex,0.3\nvgg,high\n", "data row 2 (line 3): column 'v1' must be a number, "
                                       "found 'high'"),
    ("model,v1\nalex,0.3\nvgg,inf\n", "column 'v1' must be a finite number"),
    ("model,v1\nalex,True\n", "must be a number"),
    ("model,v1,v1\nalex,0.3,0.2\n", "names column(s) ['v1'] more than once"),
    ("model,zero_shot_test_acc\nalex,0.3\n", "cannot name a score"),
    ("model,probed_acc:default\nalex,0.3\n", "cannot name a score"),
    ("model,v1\nalex,\nvgg,NA\n", "column 'v1' scores no model"),
    ("", "file is empty"),
]


@pytest.mark.parametrize("text, phrase", BAD_CSV, ids=[c[1][:30] for c in BAD_CSV])
def test_a_bad_scores_file_is_refused_in_one_line_naming_it(tmp_path, text, phrase):
    path = tmp_path / "scores.csv"
    path.write_text(text)
    out = tmp_path / "out.parquet"
    res = import_cli([path], ["neural"], out)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert str(path) in lines[0] and phrase in lines[0], lines[0]
    assert not out.exists()


def test_other_bad_files_are_refused_naming_them(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("model,v1\nalex,0.3\n".encode() + b"caf\xe9,0.1\n")
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"model": ["alex"], "v1": [[0.1, 0.2]]}), nested)
    text = tmp_path / "scores.txt"
    text.write_text(GOOD)
    for path, phrase in ((latin, "not UTF-8"), (nested, "column 'v1' must hold numbers"),
                         (text, "must be .csv or .parquet"),
                         (tmp_path / "missing.csv", "does not exist")):
        res = import_cli([path], ["neural"], tmp_path / "out.parquet")
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert str(path) in res.stderr and phrase in res.stderr, res.stderr


def test_a_score_in_two_files_is_refused_naming_both(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(GOOD)
    b.write_text("model,it\nalex,0.1\n")
    out = tmp_path / "out.parquet"
    res = import_cli([a, b], ["neural", "behavioural"], out)
    assert res.returncode == 2
    assert f"{b}: score 'it' is also a column of {a}" in res.stderr
    assert not out.exists()
    b.write_text("model,match\nalex,0.1\nclip,0.2\n")
    assert import_cli([a, b], ["neural", "behavioural"], out).returncode == 0
    rows = pd.read_parquet(out)
    assert rows.groupby("group")["metric"].unique().map(list).to_dict() == {
        "behavioural": ["match"], "neural": ["v1", "it"]}


def test_synthetic_scores_follow_the_seed_and_their_planted_agreement():
    models = [f"m{i}" for i in range(400)]
    groups = {"neural": 3, "behavioural": 2, "perceptual": 1}
    a = synthetic.external_scores(models, groups, 7)
    b = synthetic.external_scores(models, groups, 7)
    c = synthetic.external_scores(models, groups, 8)
    for g in groups:
        pd.testing.assert_frame_equal(a[g], b[g])
        assert not a[g].equals(c[g])
        assert list(a[g].columns) == ["model", *[f"{g}_{i + 1}" for i in range(groups[g])]]
        values = a[g].drop(columns="model").to_numpy()
        assert ((values > 0) & (values < 1)).all()
    # Within a group the scores share a factor: they agree far more than across groups
    # (planted 0.2 between neural and behavioural factors).
    within = np.corrcoef(a["neural"]["neural_1"], a["neural"]["neural_2"])[0, 1]
    across = np.corrcoef(a["neural"]["neural_1"], a["behavioural"]["behavioural_1"])[0, 1]
    assert within > 0.5 and abs(across) < 0.3 and within > across + 0.3


def test_a_parquet_file_names_its_bad_row(tmp_path):
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"model": ["alex", "vgg", "vgg"], "v1": [0.1, 0.2, 0.3]}), path)
    res = import_cli([path], ["neural"], tmp_path / "out.parquet")
    assert res.returncode == 2
    assert f"{path}: row 3: model 'vgg' appears more than once" in res.stderr
