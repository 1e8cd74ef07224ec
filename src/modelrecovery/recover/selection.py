"""λ selection: per dataset and candidate, the λ of best mean validation accuracy, or
the refits at each fold's own λ where the job made them (``simulation.protocol:
subsets``).

The one rule both the recover jobs (the generator's own refit at its chosen λ, for
parameter recovery) and the aggregation (winners, curves) apply. pandas only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The columns naming one simulated dataset.
DATASET = ["experiment", "generator", "n_train", "seed"]
# Accuracies are fractions of test triplets (ties add 1/2 or 1/3 credits) averaged over
# folds: distinct values differ by far more than 1e-9, while the same value reached by
# different sums differs by ~1e-16. Scores within TIE_TOL are ties.
TIE_TOL = 1e-9
#: The ``status`` of a recovery row that is a candidate's refit on its fold's training
#: and validation triplets at the fold's chosen λ (the recover job's
#: :func:`~modelrecovery.recover.refit.refit_chosen`); every other row is one λ of the
#: grid fitted to the training triplets alone.
REFIT = "refit"


def candidate_scores(fits: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × candidate: λ by mean validation accuracy over folds, its scores.

    Validation ties (within :data:`TIE_TOL`) go to the larger λ (the simpler transform).
    The score is the mean test accuracy over folds at that λ; ``test_nll`` is the mean
    test NLL there and ``converged`` whether every fold's fit converged. Where the
    dataset has :data:`REFIT` rows (each fold's refit at its own λ), the scores are
    their means over folds instead, ``lambda`` the geometric mean of the folds' λ.
    Returns the columns of :data:`DATASET`, ``candidate``, ``lambda``, ``val_acc``,
    ``test_acc``, ``test_nll``, ``converged``, sorted by dataset and candidate.
    """
    keys = [*DATASET, "candidate"]
    refit = fits["status"] == REFIT
    if refit.any():
        grid = candidate_scores(fits[~refit]) if (~refit).any() else None
        ref = fits[refit].assign(log_lambda=lambda f: np.log(f["lambda"].clip(lower=1e-300)))
        done = (ref.groupby(keys, sort=True)
                .agg(log_lambda=("log_lambda", "mean"), val_acc=("val_acc", "mean"),
                     test_acc=("test_acc", "mean"), test_nll=("test_nll", "mean"),
                     converged=("converged", "all"), zero=("lambda", "max"))
                .reset_index())
        done["lambda"] = np.where(done["zero"] > 0, np.exp(done["log_lambda"]), 0.0)
        done = done[[*keys, "lambda", "val_acc", "test_acc", "test_nll", "converged"]]
        if grid is not None:  # datasets without refits keep the grid's choice
            mine = grid.set_index(keys).index.isin(done.set_index(keys).index)
            done = pd.concat([done, grid[~mine]], ignore_index=True)
        return done.sort_values(keys, kind="stable").reset_index(drop=True)
    per_lam = (fits.groupby([*keys, "lambda"], sort=True)
               .agg(val_acc=("val_acc", "mean"), test_acc=("test_acc", "mean"),
                    test_nll=("test_nll", "mean"), converged=("converged", "all"))
               .reset_index())
    best = per_lam.groupby(keys)["val_acc"].transform("max")
    near = per_lam[per_lam["val_acc"] >= best - TIE_TOL]
    chosen = near.sort_values([*keys, "lambda"], ascending=[True] * len(keys) + [False],
                              kind="stable")
    return chosen.groupby(keys, sort=True).head(1).reset_index(drop=True)
