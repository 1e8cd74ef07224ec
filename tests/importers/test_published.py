"""The published study's results databases (Avitan & Golan, NeurIPS 2025): read as its
analysis reads them, curves equal to hand computations, bad files refused in one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelrecovery import io
from modelrecovery.analysis.published import comparison_figure, published_curves, shared_models
from modelrecovery.errors import InputError
from modelrecovery.importers.published import method_name, read_published

from published_db import CURVES, FULL, JOBS, JOBS_SQL, POOLED, RESULTS_SQL, write_db

# Clopper–Pearson 95% bounds in closed form: for n = 2, k = 1 they are 1 − √0.975 and
# √0.975; for k = 2, √0.025 and 1; for n = 1, k = 1: 0.025 and 1; k = 0: 0 and 0.975.
CP = {(1, 2): (1 - 0.975 ** 0.5, 0.975 ** 0.5), (2, 2): (0.025 ** 0.5, 1.0),
      (1, 1): (0.025, 1.0), (0, 1): (0.0, 0.975)}


@pytest.fixture
def db(tmp_path) -> Path:
    return write_db(tmp_path / "full_W.db")


def test_the_curves_equal_the_hand_computed_ones(db):
    result = read_published(db)
    curves, pooled = published_curves(result.outcomes)
    assert list(curves.columns) == list(io.contracts.PUBLISHED_CURVE_COLUMNS)
    got = {(r.method, r.generator, r.n_train): r for r in curves.itertuples()}
    assert set(got) == set(CURVES)
    for key, (won, n, tie_rate, nll_won, mean_rank, mrr) in CURVES.items():
        r = got[key]
        assert (r.recovered, r.datasets) == (won, n), key
        assert r.recovery == pytest.approx(won / n)
        assert (r.ci_low, r.ci_high) == pytest.approx(CP[(won, n)], abs=1e-12), key
        assert r.tie_rate == pytest.approx(tie_rate)
        assert r.nll_recovered == nll_won
        assert (r.mean_rank, r.mrr) == pytest.approx((mean_rank, mrr)), key
    assert {(r.method, r.n_train): (r.recovered, r.datasets)
            for r in pooled.itertuples()} == POOLED
    # The pooled 3/6 and 5/6: the exact interval as scipy's binomtest gives it (the
    # published analysis's own interval, db_analysis.calculate_binomial_ci).
    from scipy.stats import binomtest
    for r in pooled.itertuples():
        ci = binomtest(int(r.recovered), int(r.datasets)).proportion_ci(0.95, "exact")
        assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_settings_are_kept_as_columns(db):
    curves, _ = published_curves(read_published(db).outcomes)
    rect = curves[curves["method"] == "low_rank:8"]
    assert set(rect["constraint_type"]) == {"(rectangular, 8)"}
    assert set(rect["candidate_regularization"]) == {"L2"}
    assert set(curves["experiment"]) == {"full_W"}
    full = curves[curves["method"] == "full"]
    assert set(full["constraint_type"]) == {"None"}
    assert set(full["generator_regularization"]) == {"eye_distance"}
    assert [method_name(c) for c in ("None", "diagonal", "zero_shot", "( rectangular,30 )",
                                     "other")] == ["full", "diagonal", "zero_shot",
                                                   "low_rank:30", "other"]


def test_winners_follow_the_published_rule(db):
    out = read_published(db).outcomes.set_index(["method", "generator", "n_train", "seed"])
    # A tie of A and B with B stored first: B wins, as the published max() decides.
    tie = out.loc[("full", "C", 100, 0)]
    assert (tie["winner"], tie["n_tied"], bool(tie["tie"]), tie["rank"]) == ("B", 2, True, 3)
    assert tie["nll_winner"] == "C" and tie["nll_credit"] == 1.0
    # A saved twice for one job: its first row counts (0.60, not 0.99), so B wins.
    assert out.loc[("full", "A", 100, 0), "winner"] == "B"
    # Seed 2 at N = 400 is finished for B only: listed, not counted.
    assert not out.loc[("full", "B", 400, 2), "complete"]
    assert out.drop(index=("full", "B", 400, 2))["complete"].all()
    assert ("full", "A", 400, 2) not in out.index   # pending: no outcome


def test_scores_hold_every_candidate_of_every_finished_dataset(db):
    scores = read_published(db).scores
    assert list(scores.columns) == list(io.contracts.PUBLISHED_SCORE_COLUMNS)
    finished = [j for j in JOBS if j[4] == "done"]
    assert len(scores) == sum(len({c for c, *_ in rows}) for *_, rows in finished)
    row = scores[(scores["generator"] == "B") & (scores["n_train"] == 400)
                 & (scores["seed"] == 1) & (scores["candidate"] == "C")].iloc[0]
    assert (row["test_acc"], row["test_nll"], row["lambda"]) == (0.65, 0.60, 0.01)
    assert row["train_acc"] == pytest.approx((0.65 + 1) / 2)
    assert row["val_nll"] == pytest.approx(0.60 * 0.9)


def test_older_files_without_regularisation_columns_read_as_none(tmp_path):
    jobs_sql = JOBS_SQL.replace("    data_generating_model_regularization TEXT,\n", "") \
        .replace("    candidate_model_regularization TEXT,\n", "") \
        .replace(", data_generating_model_regularization,\n            "
                 "candidate_model_regularization", "")
    old = [(s, g, n, seed, st, rows) for s, g, n, seed, st, rows in JOBS if s == FULL]
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as con:
        con.execute(jobs_sql)
        con.execute(RESULTS_SQL)
    with sqlite3.connect(path) as con:   # write_db's INSERT names the columns: copy rows
        src = write_db(tmp_path / "src.db", old)
        con.execute("ATTACH DATABASE ? AS src", (str(src),))
        con.execute("INSERT INTO jobs SELECT id, n_train_triplets, simulation_idx, "
                    "data_generating_model, constraint_type, dim_reduction_method, status, "
                    "start_time, finish_time FROM src.jobs")
        con.execute("INSERT INTO reference_model_results SELECT * FROM "
                    "src.reference_model_results")
    outcomes = read_published(path).outcomes
    assert set(outcomes["generator_regularization"]) == {"None"}
    assert set(outcomes["candidate_regularization"]) == {"None"}
    assert set(outcomes["experiment"]) == {"old"}


def test_the_vit_name_is_read_as_the_published_analysis_reads_it(tmp_path):
    jobs = [(FULL, "Google_ViT_Large_224", 100, 0, "done",
             [("Google_ViT_Large_224", .7, .5), ("B", .6, .6)]),
            (FULL, "B", 100, 0, "done", [("Google_ViT_Large_224", .5, .7), ("B", .6, .6)])]
    out = read_published(write_db(tmp_path / "vit.db", jobs)).outcomes
    assert set(out["generator"]) == {"Google_ViT_Large", "B"}
    assert out["credit"].tolist() == [1.0, 1.0]


def test_the_database_is_opened_read_only(db):
    before = db.read_bytes()
    mtime = db.stat().st_mtime_ns
    read_published(db)
    assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in db.parent.iterdir()) == ["full_W.db"]   # no journal


def test_shared_and_unshared_models_are_listed_not_dropped(db):
    curves, _ = published_curves(read_published(db).outcomes)
    ours = pd.DataFrame({"experiment": "default", "generator": ["A", "A", "D"],
                         "n_train": [100, 400, 100], "recovery": [0.5, 1.0, 0.0],
                         "ci_low": [0.1, 0.5, 0.0], "ci_high": [0.9, 1.0, 0.5]})
    assert shared_models(ours, curves) == {"both": ["A"], "only_ours": ["D"],
                                           "only_published": ["B", "C"]}
    fig = comparison_figure(ours, curves)
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "only in ours: D" in texts and "only in the published results: B, C" in texts
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["A"]
    # Ours, the full setting and the low-rank one: three curves in A's panel.
    assert len(panels[0].get_lines()) == 3


# ------------------------------------------------------------------------- refusals


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _rewrite(db: Path, *statements: str) -> Path:
    with sqlite3.connect(db) as con:
        for sql in statements:
            con.execute(sql)
    return db


BAD = [
    ("not_sqlite", lambda p: _written(p, b"id,n\n1,2\n"),
     "not a SQLite database (its first bytes are not SQLite's header)"),
    ("empty", lambda p: _written(p, b""), "not a SQLite database (an empty file)"),
    ("missing_table", lambda p: _rewrite(write_db(p), "DROP TABLE reference_model_results"),
     "no table 'reference_model_results' (it has ['jobs', 'sqlite_sequence'])"),
    ("missing_column", lambda p: _rewrite(write_db(p), "ALTER TABLE reference_model_results "
                                                        "DROP COLUMN test_nll"),
     "table 'reference_model_results' lacks column(s) ['test_nll']"),
    ("null_loss", lambda p: _rewrite(write_db(p), "UPDATE reference_model_results SET "
                                                   "test_nll = NULL WHERE rowid = 5"),
     "table 'reference_model_results', rowid 5 (job_id 2): column 'test_nll' is NULL, "
     "expected a REAL (a finite NLL ≥ 0)"),
    ("text_size", lambda p: _rewrite(write_db(p), "UPDATE jobs SET n_train_triplets = "
                                                   "'1.6M' WHERE id = 3"),
     "table 'jobs', id 3: column 'n_train_triplets' holds TEXT '1.6M', expected an INTEGER "
     "(training triplets per fold)"),
    ("real_size", lambda p: _rewrite(write_db(p), "UPDATE jobs SET n_train_triplets = 400.5 "
                                                   "WHERE id >= 7"),
     "table 'jobs', id 7: column 'n_train_triplets' holds REAL 400.5, expected an INTEGER "
     "(training triplets per fold) (11 such rows)"),
    ("accuracy_above_1", lambda p: _rewrite(write_db(p), "UPDATE reference_model_results "
                                                          "SET test_accuracy = 1.5 "
                                                          "WHERE rowid = 2"),
     "rowid 2 (job_id 1): column 'test_accuracy' is 1.5, expected a fraction in [0, 1]"),
    ("orphan", lambda p: _rewrite(write_db(p), "UPDATE reference_model_results SET "
                                                "job_id = 99 WHERE rowid = 8"),
     "rowid 8 (job_id 99): column 'job_id' is 99, which no row of 'jobs' has"),
    ("generator_not_a_candidate", lambda p: _rewrite(
        write_db(p), "DELETE FROM reference_model_results WHERE job_id = 3 AND "
                     "reference_model = 'B'"),
     "job_id 3: its generator 'B' is not among its candidates"),
    ("other_candidates", lambda p: _rewrite(
        write_db(p), "DELETE FROM reference_model_results WHERE job_id = 4 AND "
                     "reference_model = 'C'"),
     "job_id 4: its candidates differ from job_id 1's of the same settings (lacks ['C'], "
     "adds [])"),
    # NULLs are distinct to SQLite's UNIQUE, but an unset option reads as "None": the
    # same dataset as job 1.
    ("dataset_twice", lambda p: _rewrite(
        write_db(p), "INSERT INTO jobs (n_train_triplets, simulation_idx, "
                     "data_generating_model, constraint_type, dim_reduction_method, "
                     "data_generating_model_regularization, candidate_model_regularization,"
                     " status) VALUES (100, 0, 'A', NULL, 'None', 'eye_distance', "
                     "'eye_distance', 'pending')"),
     "table 'jobs', ids [1, 18]: one dataset (A, n_train_triplets 100, simulation_idx 0, "
     "the same options) appears more than once"),
    ("nothing_finished", lambda p: _rewrite(write_db(p), "UPDATE jobs SET status = 'running'"),
     "no finished simulation: no row of 'jobs' has status 'done'"),
    ("no_complete_seed", lambda p: _rewrite(write_db(p), "DELETE FROM reference_model_results"
                                                         " WHERE job_id IN (1, 2, 7, 8, 16)"),
     "no seed is finished for every generator at any training size"),
]


@pytest.mark.parametrize("name,make,message", BAD, ids=[b[0] for b in BAD])
def test_bad_databases_are_refused_in_one_line(tmp_path, name, make, message):
    path = make(tmp_path / f"{name}.db")
    with pytest.raises(InputError) as caught:
        read_published(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "\n" not in text


def test_a_missing_file_and_a_folder_are_refused(tmp_path):
    with pytest.raises(InputError, match="published results file does not exist"):
        read_published(tmp_path / "absent.db")
    with pytest.raises(InputError, match="is a folder"):
        read_published(tmp_path)


def test_values_from_the_file_are_never_run_as_sql(tmp_path):
    """A model name holding SQL is read as a name, and the file is left as it was."""
    evil = "A'); DROP TABLE jobs; --"
    jobs = [(FULL, evil, 100, 0, "done", [(evil, .7, .5), ("B", .6, .6)]),
            (FULL, "B", 100, 0, "done", [(evil, .5, .7), ("B", .6, .6)])]
    path = write_db(tmp_path / "evil.db", jobs)
    out = read_published(path).outcomes
    assert evil in set(out["generator"])
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT COUNT(*) FROM jobs").fetchone() == (2,)
    assert np.array_equal(out["credit"].to_numpy(), [1.0, 1.0])
