"""Aggregation of recovery rows (λ chosen by :mod:`modelrecovery.recover.selection`): winners, curves, confusion matrices, and
the table of the generators' alignment to the humans.

Inputs are recovery rows (:data:`modelrecovery.io.RECOVERY_COLUMNS`); accuracies are
fractions of held-out triplets, NLLs nats per judgement. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from ..io import RECOVERY_COLUMNS, PathLike
from ..recover.selection import DATASET, TIE_TOL
from .stats import clopper_pearson


def check_recovery_rows(frame: pd.DataFrame, source: object) -> None:
    """Refuse a recovery table that lacks contract columns or has a ``val_acc`` or
    ``test_acc`` outside [0, 1] (NaN included); ``source`` names it in the refusal."""
    missing = [c for c in RECOVERY_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: recovery table lacks column(s) {missing}")
    for col in ("val_acc", "test_acc"):
        bad = np.flatnonzero(~frame[col].between(0.0, 1.0))
        if len(bad):
            raise InputError(f"{source}: row {int(bad[0])} has {col} = "
                             f"{frame[col].iloc[bad[0]]}, outside [0, 1]")


def dataset_outcomes(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per simulated dataset: who won, the generator's credit, ties, rank, NLL winner.

    Tied best candidates share the win equally; ``credit`` is the generator's share
    (1 if it wins alone, 1/m if tied with m−1 others, 0 otherwise). ``rank`` is the
    generator's competition rank (1 = best; tied candidates share the best rank).
    """
    rows = []
    for key, grp in scores.groupby(DATASET, sort=True):
        gen = key[1]
        if gen not in set(grp["candidate"]):
            raise InputError(f"dataset {dict(zip(DATASET, key))}: the generator is not "
                             "among the candidates, so recovery is undefined")
        best = grp["test_acc"].max()
        top = sorted(grp.loc[grp["test_acc"] >= best - TIE_TOL, "candidate"])
        gen_acc = float(grp.loc[grp["candidate"] == gen, "test_acc"].iloc[0])
        nll_best = grp["test_nll"].min()
        nll_top = sorted(grp.loc[grp["test_nll"] <= nll_best + TIE_TOL, "candidate"])
        rows.append({
            **dict(zip(DATASET, key)),
            "winner": top[0] if len(top) == 1 else "|".join(top),
            "n_tied": len(top),
            "tie": len(top) > 1,
            "credit": (1.0 / len(top)) if gen in top else 0.0,
            "rank": int(1 + (grp["test_acc"] > gen_acc + TIE_TOL).sum()),
            "nll_winner": "|".join(nll_top),
            "nll_credit": (1.0 / len(nll_top)) if gen in nll_top else 0.0,
        })
    return pd.DataFrame(rows)


def _curve(outcomes: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Recovery rate, its interval, tie rate, NLL recovery, mean rank and MRR per group."""
    grp = outcomes.groupby(by, sort=True)
    out = grp.agg(datasets=("credit", "size"), recovered=("credit", "sum"),
                  tie_rate=("tie", "mean"), nll_recovered=("nll_credit", "sum"),
                  mean_rank=("rank", "mean"),
                  mrr=("rank", lambda r: float(np.mean(1.0 / np.asarray(r))))).reset_index()
    out["recovery"] = out["recovered"] / out["datasets"]
    out["ci_low"], out["ci_high"] = clopper_pearson(out["recovered"], out["datasets"])
    out["nll_recovery"] = out["nll_recovered"] / out["datasets"]
    return out


def recovery_curve(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Recovery accuracy per experiment × training size, pooled over generators and seeds.

    Columns: ``experiment``, ``n_train``, ``datasets``, ``recovered`` (summed credit),
    ``recovery`` (its fraction), ``ci_low``/``ci_high`` (95% Clopper–Pearson),
    ``tie_rate``, ``nll_recovered``, ``nll_recovery``, ``mean_rank`` and ``mrr``.
    """
    return _curve(outcomes, ["experiment", "n_train"])


def generator_curves(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Recovery accuracy per experiment × generator × training size (the columns of
    :func:`recovery_curve` plus ``generator``)."""
    return _curve(outcomes, ["experiment", "generator", "n_train"])


def confusion(scores: pd.DataFrame) -> pd.DataFrame:
    """Long-form confusion matrices: share of each generator's datasets won by each candidate.

    One row per experiment × n_train × generator × candidate; ``rate`` sums to 1 over
    candidates for every generator and size (ties split the win).
    """
    outcomes = dataset_outcomes(scores)
    rows = []
    for _, o in outcomes.iterrows():
        winners = o["winner"].split("|")
        for cand in winners:
            rows.append({"experiment": o["experiment"], "n_train": o["n_train"],
                         "generator": o["generator"], "candidate": cand,
                         "weight": 1.0 / len(winners)})
    won = pd.DataFrame(rows)
    cands = sorted(scores["candidate"].unique())
    grid = (pd.MultiIndex.from_product(
        [sorted(outcomes["experiment"].unique()), sorted(outcomes["n_train"].unique()),
         sorted(outcomes["generator"].unique()), cands],
        names=["experiment", "n_train", "generator", "candidate"]).to_frame(index=False))
    total = won.groupby(["experiment", "n_train", "generator", "candidate"])["weight"].sum()
    grid = grid.merge(total.reset_index(), how="left").fillna({"weight": 0.0})
    per_gen = outcomes.groupby(["experiment", "n_train", "generator"]).size().rename("datasets")
    grid = grid.merge(per_gen.reset_index(), how="inner")
    grid["rate"] = grid["weight"] / grid["datasets"]
    return grid.rename(columns={"weight": "wins"})


def summary(curve: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """The headline table: per experiment × size, recovery with its interval and fit health.

    ``curve`` is :func:`recovery_curve`'s table, ``fits`` the recovery rows. Fit health:
    ``fits`` (number of fits), ``converged_rate``, ``median_iterations`` and
    ``fit_seconds`` (summed wall time).
    """
    health = (fits.groupby(["experiment", "n_train"])
              .agg(fits=("converged", "size"), converged_rate=("converged", "mean"),
                   median_iterations=("iterations", "median"),
                   fit_seconds=("seconds", "sum")).reset_index())
    cols = ["experiment", "n_train", "datasets", "recovery", "ci_low", "ci_high", "tie_rate",
            "nll_recovery", "mrr"]
    return curve[cols].merge(health, on=["experiment", "n_train"])


#: The columns of :func:`alignment_table` before the human scores.
ALIGNMENT_KEYS = ("model", "lambda", "temperature", "expected_accuracy")


def alignment_table(generator_jsons: Iterable[PathLike]) -> pd.DataFrame:
    """One row per calibrated generator: how well it fits the humans.

    ``generator_jsons`` are the JSON sidecars of the calibrated generators (written by
    ``modelrecovery calibrate``), in the order the rows take. Each row holds ``model``,
    ``lambda`` (the λ chosen by cross-validation), ``temperature`` (T, calibrated to the
    noise ceiling), ``expected_accuracy`` (at that T, a fraction), every human score of
    the alignment (``zero_shot_test_acc``, ``probed_test_acc``, ``probed_train_acc``,
    ``cv_val_acc``: fractions of human triplets) and ``converged`` (the final fit's
    flag). No sidecars give an empty table without columns.

    Raises InputError naming the file and the key when a sidecar lacks one.
    """
    rows: list[dict[str, Any]] = []
    for path in generator_jsons:
        meta = io.read_json(path)
        missing = [k for k in (*ALIGNMENT_KEYS, "human", "fit") if k not in meta]
        if missing:
            raise InputError(f"{path}: generator sidecar lacks key(s) {missing}; it has "
                             f"{sorted(meta)}")
        if not isinstance(meta["human"], dict) or not isinstance(meta["fit"], dict) \
                or "converged" not in meta["fit"]:
            raise InputError(f"{path}: generator sidecar needs an object 'human' of scores "
                             f"and an object 'fit' with key 'converged'")
        rows.append({**{k: meta[k] for k in ALIGNMENT_KEYS}, **meta["human"],
                     "converged": meta["fit"]["converged"]})
    return pd.DataFrame(rows)
