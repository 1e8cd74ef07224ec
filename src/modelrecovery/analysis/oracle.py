"""The identifiability ceiling: which generator made a dataset, read off the generators'
own likelihoods of its responses, with no refitting.

With the generators known, the rule "the generator under which the dataset's responses
are most likely", argmax_g Σ_t log p_g(y_t | t) over every triplet the dataset holds at a
training size (each fold's first N training triplets and its first eval_size(N)
validation and test triplets), is the Bayes-optimal identification under a uniform prior
over the generators: no decision rule that sees the same responses has a higher expected
recovery. So at every N

    1 − recovery(best fit) = [1 − recovery(oracle)] + [recovery(oracle) − recovery(best fit)]

splits the failures into what the data cannot tell (no analysis of these responses could
do better) and what the flexible probe loses (a better metric or decision rule could).
The oracle compares the generators only: a candidate that generates no data has no
likelihood of its own here. numpy and pandas only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from ..oddoneout import pair_logits
from ..simulate import SPLITS, eval_size, subset
from .stats import clopper_pearson

#: The columns naming one simulated dataset of one design.
DATASET = ["experiment", "design", "generator", "n_train", "seed"]
# Log-likelihood sums of different generators differ by far more than this relative
# amount; the same generator scored twice (identical twins) agrees to the last bit.
TIE_RTOL = 1e-12


def dataset_triplets(shard: pd.DataFrame, n_train: int, eval_fraction: float) -> np.ndarray:
    """Every triplet a dataset holds at training size ``n_train`` (N, 3), the chosen odd
    one out last: per fold, the first ``n_train`` training triplets and the first
    eval_size(n_train) validation and test triplets, as the recovery fits see them."""
    e = eval_size(n_train, eval_fraction)
    sizes = {"train": n_train, "val": e, "test": e}
    return np.concatenate([subset(shard, int(f), s, sizes[s])
                           for f in sorted(shard["fold"].unique()) for s in SPLITS])


def log_likelihoods(triplets: np.ndarray,
                    sims: Mapping[str, np.ndarray | Sequence[np.ndarray]],
                    temperatures: Mapping[str, float | Sequence[float]]) -> dict[str, float]:
    """Σ_t log p_g(y_t | t) of the recorded choices (nats) under each generator g:
    similarity S_g (n, n) at temperature T_g > 0. A generator given as k instances
    (a list of similarities and one of temperatures) has the likelihood of its mixture,
    log (1/k) Σ_i p_{g,i}(y): the Bayes decision when the instance is unknown."""
    out = {}
    for g, sim in sims.items():
        sims_g = list(sim) if isinstance(sim, (list, tuple)) else [sim]
        temps = temperatures[g]
        temps_g = list(temps) if isinstance(temps, (list, tuple)) else [temps]
        per = []
        for s_i, t_i in zip(sims_g, temps_g, strict=True):
            z = pair_logits(s_i, triplets) / float(t_i)
            per.append(float((z[:, 0] - logsumexp(z, axis=1)).sum()))
        out[g] = float(logsumexp(per) - np.log(len(per))) if len(per) > 1 else per[0]
    return out


def oracle_outcomes(logliks: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset: the generators of the highest likelihood and the true
    generator's credit.

    ``logliks``: one row per dataset (:data:`DATASET`) × ``scorer`` (a generator) with its
    ``loglik``. Returns :data:`DATASET`, ``winner`` (tied winners joined by ``|``),
    ``n_tied``, ``tie``, ``credit`` (1, 1/m in an m-way tie the generator is in, else 0)
    and ``rank`` (the generator's competition rank, 1 = most likely), sorted by dataset.
    """
    rows = []
    for key, grp in logliks.groupby(DATASET, sort=True):
        gen = key[DATASET.index("generator")]
        ll = dict(zip(grp["scorer"], grp["loglik"].astype(float)))
        if gen not in ll:
            raise ValueError(f"dataset {dict(zip(DATASET, key))}: its generator has no "
                             "log-likelihood")
        best = max(ll.values())
        tol = TIE_RTOL * max(1.0, abs(best))
        top = sorted(g for g, v in ll.items() if v >= best - tol)
        rows.append({**dict(zip(DATASET, key)), "winner": "|".join(top), "n_tied": len(top),
                     "tie": len(top) > 1, "credit": 1.0 / len(top) if gen in top else 0.0,
                     "rank": int(1 + sum(v > ll[gen] + tol for v in ll.values()))})
    return pd.DataFrame(rows, columns=[*DATASET, "winner", "n_tied", "tie", "credit",
                                       "rank"])


def oracle_curve(outcomes: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Oracle recovery per experiment × design × training size, pooled over generators
    and seeds: ``datasets``, ``recovered`` (summed credit), ``recovery`` and its exact
    interval ``ci_low``/``ci_high`` (Clopper–Pearson, split ties as fractional
    successes), and ``tie_rate``."""
    keys = ["experiment", "design", "n_train"]
    out = (outcomes.groupby(keys, sort=True)
           .agg(datasets=("credit", "size"), recovered=("credit", "sum"),
                tie_rate=("tie", "mean")).reset_index())
    out["recovery"] = out["recovered"] / out["datasets"]
    out["ci_low"], out["ci_high"] = clopper_pearson(out["recovered"].to_numpy(),
                                                    out["datasets"].to_numpy(), level)
    return out[[*keys, "datasets", "recovered", "recovery", "ci_low", "ci_high",
                "tie_rate"]]


def decomposition(oracle: pd.DataFrame, best_fit: pd.DataFrame) -> pd.DataFrame:
    """The failures of the best fit split at every experiment × design × N into
    ``data_limited`` = 1 − oracle recovery and ``metric_limited`` = oracle − best-fit
    recovery (they sum to 1 − best-fit recovery), and ``metric_share``, the metric's
    part of the failures (NaN where the best fit fails on none).

    ``oracle``: :func:`oracle_curve`; ``best_fit``: the best-fit curve with the same keys
    and its ``recovery`` (e.g. per design, :func:`.designs.design_curves`).
    """
    keys = ["experiment", "design", "n_train"]
    both = oracle[[*keys, "recovery"]].merge(best_fit[[*keys, "recovery"]], on=keys,
                                             suffixes=("_oracle", "_best_fit"))
    both["data_limited"] = 1.0 - both["recovery_oracle"]
    both["metric_limited"] = both["recovery_oracle"] - both["recovery_best_fit"]
    failed = 1.0 - both["recovery_best_fit"]
    both["metric_share"] = np.where(failed > 0, both["metric_limited"] / failed.where(
        failed > 0, 1.0), np.nan)
    return both
