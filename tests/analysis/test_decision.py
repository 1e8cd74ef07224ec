"""The learned decision rule and the inversion matrix on score tables whose answer is
known: a mimic the best fit falls for, shuffled labels, a rule that must not see its test
seed, and Bayes' rule by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from modelrecovery.analysis import decision

GENS = ["a", "b", "c"]


def mimic_scores(seeds: int, rng: np.random.Generator, n_train: int = 100) -> pd.DataFrame:
    """Held-out scores where the best fit falls for a mimic: on a's data, b scores a
    little better than a (its flexible probe imitates a and fits the noise), while on
    b's own data b wins by a wide margin; c is unrelated and always wins its own."""
    rows = []
    for seed in range(seeds):
        for g in GENS:
            nll = {"a": 1.0, "b": 1.0, "c": 1.0}
            if g == "a":
                nll.update(a=0.80, b=0.78)
            elif g == "b":
                nll.update(a=0.95, b=0.70)
            else:
                nll.update(c=0.70)
            for c in GENS:
                v = nll[c] + rng.normal(scale=0.004)
                rows.append({"experiment": "e", "design": "random", "generator": g,
                             "n_train": n_train, "seed": seed, "candidate": c,
                             "test_nll": v, "test_acc": 1.0 - v / 2})
    return pd.DataFrame(rows)


def best_fit_credit(scores: pd.DataFrame) -> float:
    keys = ["generator", "seed"]
    best = scores.loc[scores.groupby(keys)["test_nll"].idxmin()]
    return float((best["candidate"] == best["generator"]).mean())


def test_the_learned_rule_sees_through_a_mimic_the_best_fit_falls_for():
    scores = mimic_scores(10, np.random.default_rng(0))
    assert best_fit_credit(scores) == pytest.approx(2 / 3)  # every one of a's datasets lost
    out = decision.learned_outcomes(scores)
    assert len(out) == 30 and out["credit"].mean() == 1.0
    assert (out["probability"] > 0.5).all()


def test_with_shuffled_generator_labels_the_learned_rule_is_at_chance():
    # Were a dataset's own label to reach the rule that scores it, shuffled labels would
    # still be "recovered"; held out by seed, nothing links scores to labels, so the rule
    # recovers 1 in 3 (two-sided binomial test against chance, and the real labels far
    # above it, on the same scores).
    rng = np.random.default_rng(1)
    scores = mimic_scores(40, rng)
    datasets = scores[["generator", "seed"]].drop_duplicates()
    shuffled = dict(zip(map(tuple, datasets.to_numpy()),
                        rng.permutation(datasets["generator"].to_numpy())))
    fake = scores.assign(generator=[shuffled[(g, s)] for g, s in
                                    zip(scores["generator"], scores["seed"])])
    out = decision.learned_outcomes(fake)
    hits = int(out["credit"].sum())
    assert binomtest(hits, len(out), 1 / 3).pvalue > 0.01, hits
    assert decision.learned_outcomes(scores)["credit"].mean() > 0.9


def test_a_seed_is_judged_by_a_rule_that_never_saw_it():
    # Swapping the labels of seed 0's datasets changes what the rules for the other
    # seeds learn, but not one verdict on seed 0 itself.
    scores = mimic_scores(6, np.random.default_rng(2))
    swap = {"a": "b", "b": "a", "c": "c"}
    relabelled = scores.assign(generator=np.where(
        scores["seed"] == 0, scores["generator"].map(swap), scores["generator"]))

    def seed0_winners(out: pd.DataFrame, labels: dict) -> dict:
        rows = out[out["seed"] == 0]
        return dict(zip(rows["generator"].map(labels), rows["winner"]))

    before = decision.learned_outcomes(scores)
    after = decision.learned_outcomes(relabelled)
    assert seed0_winners(after, swap) == seed0_winners(before, {g: g for g in GENS})
    # ... while the rules trained on seed 0 did change: seed 1's probabilities move.
    p1 = [o.loc[o["seed"] == 1, "probability"].to_numpy() for o in (before, after)]
    assert not np.allclose(*p1)


def test_one_seed_leaves_nothing_to_hold_out():
    assert decision.learned_outcomes(mimic_scores(1, np.random.default_rng(3))).empty


def verdicts() -> pd.DataFrame:
    """Eight datasets per generator: a wins 6 of a's and 2 of b's, b the rest; c's are
    split 1 win each between a|c ties (half credit each) and 7 clean wins."""
    rows = []
    winners = {"a": ["a"] * 6 + ["b"] * 2, "b": ["a"] * 2 + ["b"] * 6,
               "c": ["a|c"] * 2 + ["c"] * 6}
    for g, ws in winners.items():
        for seed, w in enumerate(ws):
            rows.append({"experiment": "e", "design": "random", "generator": g,
                         "n_train": 10, "seed": seed, "winner": w,
                         "tie": "|" in w, "credit": (1 / len(w.split("|")))
                         if g in w.split("|") else 0.0})
    return pd.DataFrame(rows)


def test_the_inversion_matrix_is_bayes_rule_on_the_confusion_matrix():
    prior = {"a": 0.2, "b": 0.5, "c": 0.3}
    inv = decision.inversion({"best_fit": verdicts()}, prior)
    post = inv.pivot(index="generator", columns="winner", values="p_generator_given_winner")
    np.testing.assert_allclose(post.sum(axis=0), 1.0)
    # By hand: p(a wins | a) = 6/8, p(a wins | b) = 2/8, p(a wins | c) = (2 · 1/2)/8.
    like_a = np.array([6, 2, 1]) / 8
    joint = np.array([0.2, 0.5, 0.3]) * like_a
    np.testing.assert_allclose(post["a"].to_numpy(), joint / joint.sum())
    # c wins only c's datasets: whatever the prior, a c win means c.
    np.testing.assert_allclose(post["c"].to_numpy(), [0, 0, 1])
    conf = inv.pivot(index="generator", columns="winner", values="p_winner_given_generator")
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)
    np.testing.assert_allclose(inv.groupby("winner")["prior"].sum(), 1.0)


def test_a_uniform_prior_reads_the_confusion_columns_normalised():
    inv = decision.inversion({"best_fit": verdicts()})
    b = inv[inv["winner"] == "b"].set_index("generator")["p_generator_given_winner"]
    np.testing.assert_allclose(b[["a", "b", "c"]], [0.25, 0.75, 0.0])


def test_rule_curves_pool_credit_with_exact_intervals():
    v = verdicts()
    curves = decision.rule_curves({"oracle": v, "best_fit": v.assign(credit=1.0)})
    assert list(curves["rule"]) == ["best_fit", "oracle"]
    oracle = curves[curves["rule"] == "oracle"].iloc[0]
    assert oracle["recovered"] == pytest.approx(6 + 6 + 1 + 6)
    assert oracle["ci_low"] < oracle["recovery"] < oracle["ci_high"]
    assert curves.loc[curves["rule"] == "best_fit", "ci_high"].iloc[0] == 1.0
