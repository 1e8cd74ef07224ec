"""A small results database in the published study's layout (Avitan & Golan, NeurIPS
2025: tools/db_tools.py, init_database and save_reference_model_results), written with
the standard library's sqlite3, and the curves it must give, computed by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The published schema, as init_database creates it.
JOBS_SQL = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    n_train_triplets INTEGER,
    simulation_idx INTEGER,
    data_generating_model TEXT,
    constraint_type TEXT,
    data_generating_model_regularization TEXT,
    candidate_model_regularization TEXT,
    dim_reduction_method TEXT,
    status TEXT,
    start_time TEXT,
    finish_time TEXT,
    UNIQUE (n_train_triplets, simulation_idx, data_generating_model, constraint_type,
            dim_reduction_method, data_generating_model_regularization,
            candidate_model_regularization)
);"""
RESULTS_SQL = """
CREATE TABLE IF NOT EXISTS reference_model_results (
    job_id INTEGER,
    simulation_idx INTEGER,
    data_generating_model TEXT,
    n_train_triplets INTEGER,
    reference_model TEXT,
    constraint_type TEXT,
    dim_reduction_method TEXT,
    data_generating_model_regularization TEXT,
    candidate_model_regularization TEXT,
    test_accuracy REAL,
    train_accuracy REAL,
    validation_accuracy REAL,
    test_nll REAL,
    train_nll REAL,
    validation_nll REAL,
    chosen_reg_con REAL,
    FOREIGN KEY(job_id) REFERENCES jobs(id)
);"""

FULL = ("None", "None", "eye_distance", "eye_distance")   # constraint, dim, gen reg, cand reg
RECT = ("(rectangular, 8)", "None", "eye_distance", "L2")

# (setting, generator, n, seed, status, [(candidate, test_accuracy, test_nll), ...] in
# stored order). Generators A, B, C; candidates A, B, C (A, B for the second setting).
JOBS = [
    (FULL, "A", 100, 0, "done", [("A", .60, .90), ("B", .62, 1.0), ("C", .50, 1.1),
                                 ("A", .99, .10)]),   # A saved twice: its first row counts
    (FULL, "A", 100, 1, "done", [("A", .61, .95), ("B", .61, .97), ("C", .40, 1.2)]),
    (FULL, "B", 100, 0, "done", [("A", .55, .93), ("B", .58, .92), ("C", .50, 1.0)]),
    (FULL, "B", 100, 1, "done", [("A", .59, .90), ("B", .57, .91), ("C", .50, 1.0)]),
    # A tie of A and B, B stored first: the published rule gives B (sorting would give A).
    (FULL, "C", 100, 0, "done", [("B", .50, 1.0), ("A", .50, 1.0), ("C", .49, .99)]),
    (FULL, "C", 100, 1, "done", [("A", .50, 1.0), ("B", .55, 1.0), ("C", .70, .80)]),
    (FULL, "A", 400, 0, "done", [("A", .80, .50), ("B", .60, .70), ("C", .55, .80)]),
    (FULL, "A", 400, 1, "done", [("A", .81, .50), ("B", .61, .70), ("C", .56, .80)]),
    (FULL, "B", 400, 0, "done", [("A", .60, .70), ("B", .75, .50), ("C", .55, .80)]),
    (FULL, "B", 400, 1, "done", [("A", .50, .80), ("B", .60, .70), ("C", .65, .60)]),
    (FULL, "C", 400, 0, "done", [("A", .50, .80), ("B", .60, .70), ("C", .90, .30)]),
    (FULL, "C", 400, 1, "done", [("A", .50, .80), ("B", .60, .70), ("C", .91, .30)]),
    # Seed 2 at N = 400: finished for B only, so not counted in the curves.
    (FULL, "B", 400, 2, "done", [("A", .10, .99), ("B", .90, .20), ("C", .10, .99)]),
    (FULL, "A", 400, 2, "pending", []),
    (FULL, "C", 400, 2, "running", []),
    (RECT, "A", 100, 0, "done", [("A", .70, .60), ("B", .60, .70)]),
    (RECT, "B", 100, 0, "done", [("A", .70, .60), ("B", .65, .65)]),
]

# Hand-computed, per setting × generator × N: (recovered, datasets, tie_rate,
# nll_recovered, mean_rank, mrr). Ranks are competition ranks of the generator's test
# accuracy (1 + the candidates strictly above it).
CURVES = {
    ("full", "A", 100): (1, 2, 0.5, 2, 1.5, 0.75),     # s0: B .62 > A .60; s1: A, B tie, A first
    ("full", "B", 100): (1, 2, 0.0, 1, 1.5, 0.75),     # s1: A .59 > B .57 (and NLL .90 < .91)
    ("full", "C", 100): (1, 2, 0.5, 2, 2.0, (1 / 3 + 1) / 2),  # s0: B wins the tie, C 3rd
    ("full", "A", 400): (2, 2, 0.0, 2, 1.0, 1.0),
    ("full", "B", 400): (1, 2, 0.0, 1, 1.5, 0.75),     # s1: C .65 > B .60
    ("full", "C", 400): (2, 2, 0.0, 2, 1.0, 1.0),
    ("low_rank:8", "A", 100): (1, 1, 0.0, 1, 1.0, 1.0),
    ("low_rank:8", "B", 100): (0, 1, 0.0, 0, 2.0, 0.5),
}
# Pooled over generators: (recovered, datasets).
POOLED = {("full", 100): (3, 6), ("full", 400): (5, 6), ("low_rank:8", 100): (1, 2)}


def write_db(path: Path, jobs=JOBS, jobs_sql: str = JOBS_SQL,
             results_sql: str = RESULTS_SQL) -> Path:
    """The database of ``jobs``, written as run_simulations.py writes it: every job first
    (create_jobs_from_combinations), then each finished job's rows in candidate order."""
    with sqlite3.connect(path) as con:
        con.execute(jobs_sql)
        con.execute(results_sql)
        ids = []
        for setting, gen, n, seed, status, _ in jobs:
            constraint, dim, gen_reg, cand_reg = setting
            cur = con.execute(
                "INSERT INTO jobs (n_train_triplets, simulation_idx, data_generating_model,"
                " constraint_type, dim_reduction_method, data_generating_model_regularization,"
                " candidate_model_regularization, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (n, seed, gen, constraint, dim, gen_reg, cand_reg, status))
            ids.append(cur.lastrowid)
        for job_id, (setting, gen, n, seed, _, rows) in zip(ids, jobs):
            for cand, acc, nll in rows:
                con.execute(
                    "INSERT INTO reference_model_results (job_id, simulation_idx,"
                    " data_generating_model, n_train_triplets, reference_model,"
                    " constraint_type, dim_reduction_method, test_accuracy, train_accuracy,"
                    " validation_accuracy, test_nll, train_nll, validation_nll,"
                    " chosen_reg_con) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, seed, gen, n, cand, setting[0], setting[1], acc, (acc + 1) / 2,
                     acc * 0.9, nll, nll * 0.8, nll * 0.9, 0.01))
    return path
