"""``modelrecovery import-published`` as users call it: the tables and the comparison
figure written, a bad database refused in one line with exit 2 and nothing left."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import cli_path, files_in, tool_env
from modelrecovery import io
from published_db import POOLED, write_db

TABLES = ["published_scores", "published_outcomes", "published_curves", "published_recovery"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli_path("modelrecovery"), "import-published", *args],
                          env=tool_env(), capture_output=True, text=True, timeout=120)


def table_flags(out: Path, names: list[str] = TABLES) -> list[str]:
    return ["--out-parquet", *(f"{n}={out / n}.parquet" for n in names),
            "--out-csv", *(f"{n}={out / n}.csv" for n in names)]


def our_curves(path: Path) -> Path:
    """A generator_curves table of this project's: generators A (also published) and D."""
    io.write_parquet(pd.DataFrame({
        "experiment": "default", "generator": ["A", "A", "D", "D"],
        "n_train": [100, 400, 100, 400], "datasets": 3, "recovered": [1.0, 3.0, 0.0, 2.0],
        "recovery": [1 / 3, 1.0, 0.0, 2 / 3], "ci_low": [0.01, 0.29, 0.0, 0.09],
        "ci_high": [0.91, 1.0, 0.71, 0.99]}), path)
    return path


def test_tables_and_figure_are_written(tmp_path):
    db = write_db(tmp_path / "full_W.db")
    out = tmp_path / "out"
    ours = our_curves(tmp_path / "generator_curves.parquet")
    proc = run("--database", str(db), *table_flags(out), "--our-curves", str(ours),
               "--out-png", f"published_comparison={out / 'fig.png'}",
               "--out-svg", f"published_comparison={out / 'fig.svg'}")
    assert proc.returncode == 0, proc.stderr
    pooled = pd.read_csv(out / "published_recovery.csv")
    assert {(r.method, r.n_train): (r.recovered, r.datasets)
            for r in pooled.itertuples()} == POOLED
    curves = pd.read_parquet(out / "published_curves.parquet")
    assert list(curves.columns) == list(io.contracts.PUBLISHED_CURVE_COLUMNS)
    # The stored text "None" stays text ("None" is one of pandas' default NA strings).
    pd.testing.assert_frame_equal(pd.read_csv(out / "published_curves.csv",
                                              keep_default_na=False), curves,
                                  check_dtype=False)
    assert (out / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "fig.svg").read_text()
    # The models only one study has are named, not dropped.
    assert "generators only ours: D" in proc.stderr
    assert "generators only published: B, C" in proc.stderr
    assert "generators both: A" in proc.stderr


def test_a_subset_of_the_tables_is_enough(tmp_path):
    db = write_db(tmp_path / "full_W.db")
    out = tmp_path / "out"
    proc = run("--database", str(db), *table_flags(out, ["published_curves"]))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in files_in(out)) == ["published_curves.csv",
                                                     "published_curves.parquet"]


def _break(sql: str):
    def make(path: Path) -> Path:
        write_db(path)
        with sqlite3.connect(path) as con:
            con.execute(sql)
        return path
    return make


def _text(path: Path) -> Path:
    path.write_text("this is not a database\n")
    return path


BAD = [
    ("not_sqlite", _text, "not a SQLite database"),
    ("missing_table", _break("DROP TABLE jobs"), "no table 'jobs'"),
    ("missing_column", _break("ALTER TABLE reference_model_results DROP COLUMN test_accuracy"),
     "lacks column(s) ['test_accuracy']"),
    ("null_loss", _break("UPDATE reference_model_results SET test_nll = NULL "
                         "WHERE rowid = 11"),
     "rowid 11 (job_id 4): column 'test_nll' is NULL"),
    ("text_size", _break("UPDATE jobs SET n_train_triplets = 'big' WHERE id = 2"),
     "table 'jobs', id 2: column 'n_train_triplets' holds TEXT 'big', expected an INTEGER"),
]


@pytest.mark.parametrize("name,make,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_database_exits_2_in_one_line_and_writes_nothing(tmp_path, name, make,
                                                                message):
    db = make(tmp_path / f"{name}.db")
    out = tmp_path / "out"
    ours = our_curves(tmp_path / "generator_curves.parquet")
    proc = run("--database", str(db), *table_flags(out), "--our-curves", str(ours),
               "--out-png", f"published_comparison={out / 'fig.png'}",
               "--out-svg", f"published_comparison={out / 'fig.svg'}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"modelrecovery import-published: error: {db}: ")
    assert message in lines[0]
    assert not out.exists()


def test_bad_flags_are_refused_before_reading(tmp_path):
    db = write_db(tmp_path / "full_W.db")
    out = tmp_path / "out"
    proc = run("--database", str(db), "--out-parquet", f"curves={out / 'c.parquet'}",
               "--out-csv", f"curves={out / 'c.csv'}")
    assert proc.returncode == 2
    assert "--out-parquet: unknown table(s) ['curves']" in proc.stderr
    proc = run("--database", str(db), *table_flags(out), "--out-png",
               f"published_comparison={out / 'f.png'}")
    assert proc.returncode == 2
    assert "--our-curves, --out-png and --out-svg go together" in proc.stderr
    assert not out.exists()
