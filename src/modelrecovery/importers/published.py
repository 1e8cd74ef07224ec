"""Results databases of the published study (Avitan & Golan, NeurIPS 2025,
github.com/brainsandmachines/oddoneout_model_recovery): the SQLite files its
``experiment_scripts/run_simulations.py`` writes and its ``tools/db_analysis.py`` reads.

The layout (``tools/db_tools.py``, ``init_database``; the rows written by
``save_reference_model_results``):

- table ``jobs``, one row per simulated dataset: ``id`` (INTEGER primary key),
  ``n_train_triplets`` (INTEGER, training triplets per fold), ``simulation_idx``
  (INTEGER, the seed), ``data_generating_model`` (TEXT), ``constraint_type`` (TEXT:
  "None" for a full W, "diagonal", "zero_shot", "(rectangular, k)"),
  ``dim_reduction_method`` (TEXT, "None" or e.g. "PCA_500"),
  ``data_generating_model_regularization`` and ``candidate_model_regularization`` (TEXT;
  absent from files older than them, then read as "None", as the published code does),
  ``status`` (TEXT, "done" once the results are saved), ``start_time``, ``finish_time``;
- table ``reference_model_results``, one row per dataset × candidate: ``job_id``
  (INTEGER, jobs.id), ``reference_model`` (TEXT, the candidate), ``test_accuracy``,
  ``train_accuracy``, ``validation_accuracy``, ``test_nll``, ``train_nll``,
  ``validation_nll`` (REAL: means over the published code's folds, at the chosen
  constant) and ``chosen_reg_con`` (REAL, the λ of best validation accuracy), besides
  copies of the job's labels, which are not read.

What the published analysis (``DBResultsAnalysis``) does, this importer does too: it
counts jobs with status "done" that have results; it names ``Google_ViT_Large_224``
``Google_ViT_Large``; a candidate saved twice for one job counts once, its first row;
the winner of a dataset is the candidate of best test accuracy, the first in stored row
order among equals (``confusion_matrix_row``'s ``max``), and the NLL winner the first of
least test NLL (``update_confusion_matrices``); the curves count only the seeds that
are finished for every generator at that size (``get_full_simulation_span``).

The database is opened read-only and only fixed queries run on it: every table and
column name is a constant of the layout above, never text from the file.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import checks
from ..io.contracts import (PUBLISHED_OUTCOME_COLUMNS, PUBLISHED_SCORE_COLUMNS,
                            PUBLISHED_VARIANT_COLUMNS, PathLike)

JOBS = "jobs"
RESULTS = "reference_model_results"
#: Columns of ``jobs`` that are read; :data:`JOB_OPTIONAL` may be absent.
JOB_COLUMNS = ("id", "n_train_triplets", "simulation_idx", "data_generating_model",
               "constraint_type", "dim_reduction_method", "status")
JOB_OPTIONAL = ("data_generating_model_regularization", "candidate_model_regularization")
#: Columns of ``reference_model_results`` that are read, and their names here.
RESULT_COLUMNS = {"job_id": "job_id", "reference_model": "candidate",
                  "chosen_reg_con": "lambda", "train_accuracy": "train_acc",
                  "validation_accuracy": "val_acc", "test_accuracy": "test_acc",
                  "train_nll": "train_nll", "validation_nll": "val_nll",
                  "test_nll": "test_nll"}
#: Model names the published analysis reads under another (db_analysis.replace_vit_large).
RENAMED = {"Google_ViT_Large_224": "Google_ViT_Large"}

_HEADER = b"SQLite format 3\x00"
_SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB", type(None): "NULL"}
_LABELS = [c for c in PUBLISHED_VARIANT_COLUMNS if c != "experiment"]
_DATASET = [*PUBLISHED_VARIANT_COLUMNS, "generator", "n_train", "seed"]


class PublishedResults(NamedTuple):
    """A published results database as this project's tables: ``scores``
    (:data:`~modelrecovery.io.contracts.PUBLISHED_SCORE_COLUMNS`) and ``outcomes``
    (:data:`~modelrecovery.io.contracts.PUBLISHED_OUTCOME_COLUMNS`)."""

    scores: pd.DataFrame
    outcomes: pd.DataFrame


def method_name(constraint_type: str) -> str:
    """A stored ``constraint_type`` in this project's words (``experiments.*.method``):
    "None" is ``full``, "(rectangular, k)" ``low_rank:k`` (read as the published
    ``parse_tuple_string`` reads it); any other text stays as it is."""
    if constraint_type == "None":
        return "full"
    rectangular = re.fullmatch(r"\(\s*rectangular\s*,\s*(\d+)\s*\)", constraint_type)
    return f"low_rank:{int(rectangular.group(1))}" if rectangular else constraint_type


def _found(value: object) -> str:
    """What a cell holds, in SQLite's words: 'is NULL', "holds TEXT '1.6M'"."""
    if value is None:
        return "is NULL"
    return f"holds {_SQL_TYPES.get(type(value), type(value).__name__)} {value!r}"


class _Table:
    """The rows of one table as columns, and the one-line refusal of a bad value."""

    def __init__(self, path: Path, name: str, columns: dict[str, list]) -> None:
        self.path, self.name, self.columns = path, name, columns
        self.places: list[str] = []

    def refuse(self, column: str, bad: list[bool] | np.ndarray,
               what: Callable[[object], str]) -> None:
        mask = np.asarray(bad, dtype=bool)
        if mask.any():
            row, count = checks.first_true(mask)
            value = self.columns[column][row]
            raise InputError(f"{self.path}: table '{self.name}', {self.places[row]}: column "
                             f"'{column}' {what(value)}{checks.such(count)}")

    def integers(self, column: str, meaning: str, least: int) -> np.ndarray:
        values = self.columns[column]
        self.refuse(column, [type(v) is not int for v in values],
                    lambda v: f"{_found(v)}, expected an INTEGER ({meaning})")
        out = np.array(values, dtype=np.int64)
        self.refuse(column, out < least, lambda v: f"is {v}, expected ≥ {least} ({meaning})")
        return out

    def names(self, column: str, meaning: str) -> list[str]:
        values = self.columns[column]
        self.refuse(column, [not isinstance(v, str) or not v.strip() for v in values],
                    lambda v: f"{_found(v)}, expected TEXT ({meaning})")
        return [RENAMED.get(v.strip(), v.strip()) for v in values]

    def labels(self, column: str) -> list[str]:
        """An option's stored text; NULL or an absent column is "None", the text the
        published code writes for an unset option."""
        values = self.columns.get(column, [None] * len(self.places))
        self.refuse(column, [v is not None and not isinstance(v, str) for v in values],
                    lambda v: f"{_found(v)}, expected TEXT")
        return ["None" if v is None else v.strip() for v in values]

    def reals(self, column: str, low: float, high: float, meaning: str) -> np.ndarray:
        values = self.columns[column]
        self.refuse(column, [type(v) not in (int, float) for v in values],
                    lambda v: f"{_found(v)}, expected a REAL ({meaning})")
        out = np.array(values, dtype=np.float64)
        self.refuse(column, ~np.isfinite(out) | (out < low) | (out > high),
                    lambda v: f"is {v}, expected {meaning}")
        return out


def _connect(p: Path) -> sqlite3.Connection:
    checks.check_file(p, "published results")
    with open(p, "rb") as fh:
        head = fh.read(len(_HEADER))
    if head != _HEADER:
        found = "an empty file" if not head else "its first bytes are not SQLite's header"
        raise InputError(f"{p}: not a SQLite database ({found}); expected a results .db "
                         "file of the published study")
    try:
        # as_uri percent-encodes the path, so a '?' or '#' in it stays part of the name.
        return sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"{p}: cannot open the database read-only: "
                         f"{checks.one_line(exc)}") from exc


def _read(con: sqlite3.Connection, p: Path, table: str, required: tuple[str, ...],
          optional: tuple[str, ...] = (), order: str = "rowid") -> _Table:
    """The ``required`` and present ``optional`` columns of ``table`` (constants of the
    layout), in ``order``."""
    found = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name = ? COLLATE NOCASE", (table,)).fetchone()
    if found is None:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 8")]
        raise InputError(f"{p}: no table '{table}' (it has {tables or 'no tables'}); a "
                         f"published results database has tables '{JOBS}' and '{RESULTS}'")
    names = {r[0].lower() for r in con.execute("SELECT name FROM pragma_table_info(?)",
                                               (table,))}
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"{p}: table '{table}' lacks column(s) {missing}; it has "
                         f"{sorted(names)}")
    columns = [*required, *(c for c in optional if c in names)]
    # Every name in this query is one of the layout's constants above.
    rows = con.execute(f"SELECT rowid, {', '.join(columns)} FROM {table} "
                       f"ORDER BY {order}").fetchall()
    out = _Table(p, table, {c: [r[k + 1] for r in rows] for k, c in enumerate(columns)})
    out.columns["rowid"] = [r[0] for r in rows]
    return out


def _jobs(t: _Table, experiment: str) -> pd.DataFrame:
    t.places = [f"row {k + 1} in id order" for k in range(len(t.columns["id"]))]
    ids = t.integers("id", "the job's id", 0)
    t.places = [f"id {i}" for i in ids]
    constraint = t.labels("constraint_type")
    frame = pd.DataFrame({
        "experiment": experiment,
        "method": [method_name(c) for c in constraint],
        "constraint_type": constraint,
        "dim_reduction_method": t.labels("dim_reduction_method"),
        "generator_regularization": t.labels(JOB_OPTIONAL[0]),
        "candidate_regularization": t.labels(JOB_OPTIONAL[1]),
        "generator": t.names("data_generating_model", "the generator's name"),
        "n_train": t.integers("n_train_triplets", "training triplets per fold", 1),
        "seed": t.integers("simulation_idx", "the simulation's index", 0),
        "job_id": ids,
        "done": [s == "done" for s in t.labels("status")],
    })
    twice = frame.duplicated(_DATASET, keep=False).to_numpy()
    if twice.any():
        first = frame[twice].iloc[0]
        same = frame.index[(frame[_DATASET] == first[_DATASET]).all(axis=1)]
        raise InputError(f"{t.path}: table '{JOBS}', ids {frame.loc[same, 'job_id'].tolist()}"
                         f": one dataset ({first['generator']}, n_train_triplets "
                         f"{first['n_train']}, simulation_idx {first['seed']}, the same "
                         "options) appears more than once")
    return frame


def _results(t: _Table, job_ids: set[int]) -> pd.DataFrame:
    t.places = [f"rowid {r}" for r in t.columns["rowid"]]
    jobs = t.integers("job_id", "the id of a row of 'jobs'", 0)
    t.places = [f"rowid {r} (job_id {j})" for r, j in zip(t.columns["rowid"], jobs)]
    t.refuse("job_id", [j not in job_ids for j in jobs],
             lambda v: f"is {v}, which no row of '{JOBS}' has")
    frame = pd.DataFrame({"job_id": jobs, "rowid": t.columns["rowid"],
                          "candidate": t.names("reference_model", "the candidate's name")})
    for theirs, ours in RESULT_COLUMNS.items():
        if ours.endswith("_acc"):
            frame[ours] = t.reals(theirs, 0.0, 1.0, "a fraction in [0, 1] of triplets")
        elif ours.endswith("_nll"):
            frame[ours] = t.reals(theirs, 0.0, np.inf, "a finite NLL ≥ 0")
        elif ours == "lambda":
            frame[ours] = t.reals(theirs, 0.0, np.inf, "a finite λ ≥ 0")
    # A job saved twice (a worker reset as stuck that still finished) keeps its first rows.
    return frame.drop_duplicates(["job_id", "candidate"], keep="first")


def _check_candidates(p: Path, scores: pd.DataFrame) -> None:
    """Every finished dataset of one setting has the same candidates, the generator among
    them (or recovery is undefined)."""
    sets = scores.groupby("job_id", sort=True).agg(
        generator=("generator", "first"), candidates=("candidate", lambda c: frozenset(c)),
        **{c: (c, "first") for c in PUBLISHED_VARIANT_COLUMNS})
    absent = [g not in c for g, c in zip(sets["generator"], sets["candidates"])]
    if any(absent):
        job = sets.index[int(np.argmax(absent))]
        raise InputError(f"{p}: table '{RESULTS}', job_id {job}: its generator "
                         f"{sets.loc[job, 'generator']!r} is not among its candidates, so "
                         "recovery is undefined")
    for _, group in sets.groupby(list(PUBLISHED_VARIANT_COLUMNS), sort=False):
        first = group["candidates"].iloc[0]
        other = [c != first for c in group["candidates"]]
        if any(other):
            k = int(np.argmax(other))
            lacks = sorted(first - group["candidates"].iloc[k])
            adds = sorted(group["candidates"].iloc[k] - first)
            raise InputError(f"{p}: table '{RESULTS}', job_id {group.index[k]}: its "
                             f"candidates differ from job_id {group.index[0]}'s of the same "
                             f"settings (lacks {lacks}, adds {adds}); a recovery curve "
                             "compares the same candidates in every dataset")


def _outcomes(scores: pd.DataFrame, jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished dataset: the published winners and the generator's rank."""
    keys = [*_DATASET, "job_id"]
    # Row order within a job is the stored order: idxmax/idxmin take the first of equals.
    best = scores.loc[scores.groupby("job_id", sort=False)["test_acc"].idxmax()]
    least = scores.loc[scores.groupby("job_id", sort=False)["test_nll"].idxmin()]
    out = best[keys].assign(winner=best["candidate"].to_numpy())
    out = out.merge(least[["job_id", "candidate"]].rename(columns={"candidate": "nll_winner"}),
                    on="job_id")
    top = scores.groupby("job_id")["test_acc"].transform("max")
    out = out.merge(scores.assign(top=scores["test_acc"] == top).groupby("job_id")["top"]
                    .sum().rename("n_tied").reset_index(), on="job_id")
    own = scores[scores["candidate"] == scores["generator"]].set_index("job_id")["test_acc"]
    above = scores["test_acc"].to_numpy() > own.reindex(scores["job_id"]).to_numpy()
    rank = 1 + pd.Series(above, index=scores.index).groupby(scores["job_id"]).sum()
    out["rank"] = rank.reindex(out["job_id"]).to_numpy().astype(np.int64)
    out["n_tied"] = out["n_tied"].astype(np.int64)
    out["tie"] = out["n_tied"] > 1
    out["credit"] = (out["winner"] == out["generator"]).astype(np.float64)
    out["nll_credit"] = (out["nll_winner"] == out["generator"]).astype(np.float64)
    # A seed counts at a size once every generator of that size has finished it.
    setting = [*PUBLISHED_VARIANT_COLUMNS, "n_train"]
    planned = jobs.groupby(setting)["generator"].nunique().rename("planned")
    finished = out.groupby([*setting, "seed"])["generator"].nunique().rename("finished")
    full = finished.reset_index().merge(planned.reset_index(), on=setting)
    full["complete"] = full["finished"] == full["planned"]
    out = out.merge(full[[*setting, "seed", "complete"]], on=[*setting, "seed"])
    return out.sort_values(_DATASET, kind="stable").reset_index(drop=True)


def read_published(path: PathLike) -> PublishedResults:
    """Read a published results database (module docstring) into this project's tables.

    ``experiment`` is the file's stem (the published study names each database after its
    experiment: full_W, diagonal, zero_shot, full_W_PCA_500). Returns the scores of every
    finished dataset's candidates and each finished dataset's outcome.

    Raises InputError naming the file, the table, the row and the column for: a file
    that is not a SQLite database; a missing table or column; an id, size or seed that
    is not an INTEGER (a size ≥ 1, a seed ≥ 0); a model name that is not TEXT; a score
    that is NULL, not a number, or out of range (accuracies in [0, 1]; NLLs and λ
    finite and ≥ 0); a result whose job_id no job has; a dataset listed twice; a
    generator missing from its candidates; candidates that differ between datasets of
    one setting; no finished dataset, or no seed finished for every generator.
    """
    p = Path(path)
    con = _connect(p)
    try:
        try:
            job_table = _read(con, p, JOBS, JOB_COLUMNS, JOB_OPTIONAL, order="id")
            result_table = _read(con, p, RESULTS, tuple(RESULT_COLUMNS))
        except sqlite3.Error as exc:
            raise InputError(f"{p}: cannot read the database: {checks.one_line(exc)}") \
                from exc
    finally:
        con.close()
    jobs = _jobs(job_table, p.stem)
    results = _results(result_table, set(jobs["job_id"].tolist()))
    finished = jobs[jobs["done"] & jobs["job_id"].isin(results["job_id"])]
    if finished.empty:
        raise InputError(f"{p}: no finished simulation: no row of '{JOBS}' has status "
                         f"'done' and rows in '{RESULTS}' ({len(jobs)} jobs, "
                         f"{len(results)} result rows)")
    scores = (finished.drop(columns="done").merge(results, on="job_id")
              .sort_values(["job_id", "rowid"]).reset_index(drop=True))
    _check_candidates(p, scores)
    outcomes = _outcomes(scores, jobs)
    if not outcomes["complete"].any():
        raise InputError(f"{p}: no seed is finished for every generator at any training "
                         "size; the published curves count such seeds only")
    scores = scores.sort_values(_DATASET, kind="stable").reset_index(drop=True)
    return PublishedResults(scores[list(PUBLISHED_SCORE_COLUMNS)],
                            outcomes[list(PUBLISHED_OUTCOME_COLUMNS)])
