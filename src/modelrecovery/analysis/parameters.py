"""Parameter recovery across datasets: each score of the generators' refitted transforms
(:mod:`modelrecovery.recover.parameters`, where the scores are defined) summarised per
training size with its interval."""

from __future__ import annotations

import pandas as pd

from ..recover.parameters import SCORES
from .stats import t_interval


def parameter_curves(rows: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per experiment × design × generator × training size, each score's mean over the
    datasets' folds with its Student-t interval over datasets (the folds of one dataset
    are averaged first: they share its simulated choices). Columns: the keys,
    ``datasets``, and ``<score>``, ``<score>_ci_low``, ``<score>_ci_high`` for each of
    :data:`SCORES`."""
    keys = ["experiment", "design", "generator", "n_train"]
    per_dataset = rows.groupby([*keys, "seed"], sort=True)[list(SCORES)].mean().reset_index()
    out = []
    for key, grp in per_dataset.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        row["datasets"] = len(grp)
        for score in SCORES:
            mean, lo, hi = t_interval(grp[score].to_numpy(), level)
            row.update({score: mean, f"{score}_ci_low": lo, f"{score}_ci_high": hi})
        out.append(row)
    columns = [*keys, "datasets",
               *[f"{s}{suffix}" for s in SCORES for suffix in ("", "_ci_low", "_ci_high")]]
    return pd.DataFrame(out, columns=columns)
