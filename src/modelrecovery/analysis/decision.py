"""Decision rules that read the same fits better, and what to believe when a model wins.

The learned rule (Wagenmakers et al. 2004's parametric bootstrap cross-fitting, read as
a classifier): every candidate's held-out scores on a simulated dataset, the vector the
best fit takes the argmax of, go into a multinomial logistic regression that names the
generator. It is trained on the simulations themselves and scored only on datasets it
was not trained on: within each experiment × design × training size, every seed's
datasets are predicted by a rule fitted to the other seeds' (datasets of one seed share
their triplets across generators, so a seed is the unit that must not straddle the
split). What it recovers beyond the best fit is failure a better reading of the same
fits removes, without new data.

The inversion matrix (Wilson & Collins 2019) turns a rule's confusion matrix p(winner |
generator) into p(generator | winner) by Bayes' rule under a prior over the generators:
what a researcher should believe when their model wins. numpy, pandas and scipy only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

from .oracle import DATASET
from .stats import clopper_pearson

#: The rules the study compares, in the order tables and figures show them.
RULES = ("best_fit", "best_fit_nll", "learned", "oracle")
# The rule's own scores and class offsets are the readings the best fit already makes,
# so they are barely shrunk (enough for a minimiser to exist when the training datasets
# are separable); the candidate × generator cross terms are what the rule learns beyond
# the best fit, and carry the penalty.
_OWN_L2 = 1e-4
# Logits of different generators differ by far more than this; the same features scored
# for two classes with the same weights (twins) agree to round-off.
_TIE_TOL = 1e-9


def _features(group: pd.DataFrame, candidates: list[str]) -> tuple[pd.DataFrame,
                                                                     np.ndarray]:
    """Per dataset, every candidate's held-out NLL (as a log-likelihood, negated) and
    accuracy, each centred over the candidates (only differences between candidates tell
    generators apart): (n_datasets, 2, n_candidates)."""
    keys = [c for c in DATASET if c in group.columns]
    nll = group.pivot_table(index=keys, columns="candidate", values="test_nll",
                            aggfunc="first").reindex(columns=candidates)
    acc = group.pivot_table(index=keys, columns="candidate", values="test_acc",
                            aggfunc="first").reindex(index=nll.index, columns=candidates)
    if nll.isna().to_numpy().any() or acc.isna().to_numpy().any():
        raise ValueError("every dataset needs a score for every candidate")
    x = np.stack([-nll.to_numpy(float), acc.to_numpy(float)], axis=1)
    return nll.index.to_frame(index=False), x - x.mean(axis=2, keepdims=True)


def fit_rule(x: np.ndarray, own: np.ndarray, y: np.ndarray, n_classes: int,
             l2: float) -> np.ndarray:
    """Fit the multinomial logistic rule; returns its weights (flat).

    ``x`` (n, 2, C) the centred, scaled scores; ``own`` (K,) each class's candidate
    column; ``y`` (n,) class indices. Logit of class k: a·x[:, :, own[k]] + b_k +
    Σ_c V[:, c, k]·x[:, :, c]; L2 penalty ``l2`` on V (mean cross-entropy objective),
    :data:`_OWN_L2` on a and b. Deterministic: L-BFGS from zeros.
    """
    n, q, c = x.shape
    flat = x.reshape(n, q * c)
    target = np.eye(n_classes)[y]

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = _logits(w, x, own, n_classes)
        lse = logsumexp(z, axis=1)
        p = np.exp(z - lse[:, None])
        d = (p - target) / n
        a, b, v = _unpack(w, q, c, n_classes)
        loss = float((lse - (z * target).sum(axis=1)).mean()
                     + 0.5 * _OWN_L2 * (a @ a + b @ b) + 0.5 * l2 * (v * v).sum())
        ga = np.einsum("nk,nqk->q", d, x[:, :, own]) + _OWN_L2 * a
        gb = d.sum(axis=0) + _OWN_L2 * b
        gv = flat.T @ d + l2 * v
        return loss, np.concatenate([ga, gb, gv.ravel()])

    w0 = np.zeros(q + n_classes + q * c * n_classes)
    return minimize(objective, w0, jac=True, method="L-BFGS-B").x


def _unpack(w: np.ndarray, q: int, c: int, k: int):
    return w[:q], w[q:q + k], w[q + k:].reshape(q * c, k)


def _logits(w: np.ndarray, x: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    n, q, c = x.shape
    a, b, v = _unpack(w, q, c, k)
    return np.einsum("nqk,q->nk", x[:, :, own], a) + b + x.reshape(n, q * c) @ v


def learned_outcomes(scores: pd.DataFrame, l2: float = 1.0) -> pd.DataFrame:
    """The learned rule's verdict on every dataset, each predicted by a rule that never
    saw its seed.

    ``scores``: one row per dataset × candidate (:func:`..recover.selection.
    candidate_scores`, with a ``design`` column) holding ``test_nll`` and ``test_acc``.
    Per experiment × design × training size, leave-one-seed-out: scores are centred over
    candidates per dataset and scaled by the training seeds' standard deviation.
    Returns :data:`DATASET`, ``winner`` (tied winners joined by ``|``), ``n_tied``,
    ``tie``, ``credit`` (as the best fit's) and ``probability`` (the rule's probability
    of the true generator). Groups with one seed have no held-out seed: their rows are
    left out (a log line in the CLI says so).
    """
    rows = []
    for _, group in scores.groupby(["experiment", "design", "n_train"], sort=True):
        candidates = sorted(group["candidate"].unique())
        generators = sorted(group["generator"].unique())
        index, x = _features(group, candidates)
        y = index["generator"].map({g: i for i, g in enumerate(generators)}).to_numpy()
        own = np.array([candidates.index(g) for g in generators])
        seeds = index["seed"].to_numpy()
        if len(np.unique(seeds)) < 2:
            continue
        for seed in np.unique(seeds):
            train, test = seeds != seed, seeds == seed
            scale = x[train].std(axis=(0, 2), keepdims=True)
            scale[scale == 0] = 1.0
            w = fit_rule(x[train] / scale, own, y[train], len(generators), l2)
            z = _logits(w, x[test] / scale, own, len(generators))
            prob = np.exp(z - logsumexp(z, axis=1, keepdims=True))
            for i, (zi, pi) in enumerate(zip(z, prob)):
                key = index[test].iloc[i]
                top = [generators[k] for k in np.flatnonzero(zi >= zi.max() - _TIE_TOL)]
                gen = key["generator"]
                rows.append({**{c: key[c] for c in DATASET}, "winner": "|".join(top),
                             "n_tied": len(top), "tie": len(top) > 1,
                             "credit": 1.0 / len(top) if gen in top else 0.0,
                             "probability": float(pi[generators.index(gen)])})
    out = pd.DataFrame(rows, columns=[*DATASET, "winner", "n_tied", "tie", "credit",
                                      "probability"])
    return out.sort_values(DATASET, kind="stable").reset_index(drop=True)


def rule_curves(outcomes: Mapping[str, pd.DataFrame], level: float = 0.95) -> pd.DataFrame:
    """Recovery per experiment × design × rule × N (``outcomes``: rule → per-dataset
    verdicts with ``credit`` and ``tie``): ``datasets``, ``recovered``, ``recovery``,
    exact interval ``ci_low``/``ci_high`` (Clopper–Pearson, split ties as fractional
    successes) and ``tie_rate``."""
    keys = ["experiment", "design", "rule", "n_train"]
    frames = [o.assign(rule=r) for r, o in outcomes.items() if len(o)]
    out = (pd.concat(frames, ignore_index=True).groupby(keys, sort=False)
           .agg(datasets=("credit", "size"), recovered=("credit", "sum"),
                tie_rate=("tie", "mean")).reset_index())
    out["recovery"] = out["recovered"] / out["datasets"]
    out["ci_low"], out["ci_high"] = clopper_pearson(out["recovered"].to_numpy(),
                                                    out["datasets"].to_numpy(), level)
    order = {r: i for i, r in enumerate(RULES)}
    out = out.sort_values(["experiment", "design", "rule", "n_train"],
                          key=lambda s: s.map(order) if s.name == "rule" else s,
                          kind="stable").reset_index(drop=True)
    return out[[*keys, "datasets", "recovered", "recovery", "ci_low", "ci_high",
                "tie_rate"]]


def inversion(outcomes: Mapping[str, pd.DataFrame],
              prior: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The inversion matrix p(generator | winner) per experiment × design × rule × N.

    ``outcomes``: rule → per-dataset verdicts (``generator``, ``winner`` with tied
    winners joined by ``|``, each taking an equal share of the win). ``prior``: weight
    per generator (normalised; uniform when None, absent generators weigh 0). With the
    confusion p(w | g) = wins of w on g's datasets / g's datasets,
    p(g | w) = prior(g) p(w | g) / Σ_g' prior(g') p(w | g'). One row per winner that
    won any dataset × generator: ``prior``, ``p_winner_given_generator``,
    ``p_generator_given_winner`` (sums to 1 over generators for every winner; NaN for
    a winner only generators of zero prior elect).
    """
    frames = []
    for rule, o in outcomes.items():
        if not len(o):
            continue
        o = o.assign(winner=o["winner"].str.split("|"))
        o["share"] = 1.0 / o["winner"].str.len()
        frames.append(o.explode("winner").assign(rule=rule))
    won = pd.concat(frames, ignore_index=True)
    keys = ["experiment", "design", "rule", "n_train"]
    generators = sorted(won["generator"].unique())
    given = {g: 1.0 for g in generators} if prior is None else dict(prior)
    weights = pd.Series({g: float(given.get(g, 0.0)) for g in generators})
    weights = weights / weights.sum()
    per_gen = (won.drop_duplicates([*keys, "generator", "seed"])
               .groupby([*keys, "generator"]).size().rename("datasets"))
    wins = won.groupby([*keys, "generator", "winner"])["share"].sum().rename("wins")
    rows = []
    for key, grp in wins.reset_index().groupby(keys, sort=False):
        table = grp.pivot(index="generator", columns="winner", values="wins")
        table = table.reindex(index=generators).fillna(0.0)
        n = per_gen.loc[key].reindex(generators).to_numpy(float)
        likelihood = table.to_numpy() / n[:, None]
        joint = weights.to_numpy()[:, None] * likelihood
        total = joint.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            posterior = np.where(total > 0, joint / total, np.nan)
        for (i, g), (j, w) in ((a, b) for a in enumerate(generators)
                               for b in enumerate(table.columns)):
            rows.append({**dict(zip(keys, key)), "winner": w, "generator": g,
                         "prior": float(weights[g]),
                         "p_winner_given_generator": float(likelihood[i, j]),
                         "p_generator_given_winner": float(posterior[i, j])})
    order = {r: i for i, r in enumerate(RULES)}
    out = pd.DataFrame(rows)
    return out.sort_values([*keys, "winner", "generator"],
                           key=lambda s: s.map(order) if s.name == "rule" else s,
                           kind="stable").reset_index(drop=True)
