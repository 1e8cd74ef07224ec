"""The identifiability ceiling on worlds whose answer is known: the likelihoods against a
brute-force computation, identical twins, unrelated generators, and the decomposition."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelrecovery.analysis import oracle
from modelrecovery.oddoneout import similarity
from modelrecovery.simulate import simulate_dataset

N_OBJ, SIZES, EVAL = 36, (20, 80), 0.25


def world(seed: int, weights: dict[str, np.ndarray]) -> tuple[dict, dict]:
    x = np.random.default_rng(seed).normal(size=(N_OBJ, 4))
    return ({g: similarity(x, w) for g, w in weights.items()},
            {g: 1.0 for g in weights})


def logliks(sims: dict, temps: dict, seeds: int, design: str = "random") -> pd.DataFrame:
    rows = []
    for g in sims:
        for seed in range(seeds):
            rng = np.random.default_rng([seed, sorted(sims).index(g)])
            shard = simulate_dataset(sims[g], temps[g], max(SIZES), n_folds=3,
                                     val_fraction=0.3, eval_fraction=EVAL, rng=rng)
            for n in SIZES:
                trip = oracle.dataset_triplets(shard, n, EVAL)
                for scorer, ll in oracle.log_likelihoods(trip, sims, temps).items():
                    rows.append({"experiment": "e", "design": design, "generator": g,
                                 "n_train": n, "seed": seed, "scorer": scorer,
                                 "loglik": ll})
    return pd.DataFrame(rows)


def test_log_likelihoods_equal_a_brute_force_sum():
    sims, _ = world(0, {"a": np.eye(4), "b": np.diag([3.0, 1.0, 0.2, 0.0])})
    temps = {"a": 0.7, "b": 2.5}
    rng = np.random.default_rng(1)
    shard = simulate_dataset(sims["a"], temps["a"], 40, n_folds=3, val_fraction=0.3,
                             eval_fraction=EVAL, rng=rng)
    trip = oracle.dataset_triplets(shard, 40, EVAL)
    assert len(trip) == 3 * (40 + 2 * 10)
    got = oracle.log_likelihoods(trip, sims, temps)
    for g, sim in sims.items():
        want = 0.0
        for i, j, k in trip:
            e = [math.exp(sim[p, q] / temps[g]) for p, q in ((i, j), (i, k), (j, k))]
            want += math.log(e[0] / sum(e))
        assert got[g] == pytest.approx(want, rel=1e-12)


def test_a_generator_of_several_instances_is_scored_by_their_mixture():
    # The dataset's probability under a generator whose instance is unknown is the mean
    # of its instances' probabilities (log-mean-exp of their log-likelihoods); one
    # instance is the plain likelihood.
    sims, _ = world(2, {"a": np.eye(4), "a2": np.diag([2.0, 1.0, 1.0, 0.5])})
    rng = np.random.default_rng(3)
    shard = simulate_dataset(sims["a"], 1.0, 20, n_folds=3, val_fraction=0.3,
                             eval_fraction=EVAL, rng=rng)
    trip = oracle.dataset_triplets(shard, 20, EVAL)
    single = oracle.log_likelihoods(trip, sims, {"a": 1.0, "a2": 0.8})
    mixed = oracle.log_likelihoods(trip, {"g": [sims["a"], sims["a2"]]},
                                   {"g": [1.0, 0.8]})
    assert mixed["g"] == pytest.approx(
        math.log((math.exp(single["a"]) + math.exp(single["a2"])) / 2), rel=1e-12)
    assert oracle.log_likelihoods(trip, {"g": [sims["a"]]}, {"g": [1.0]})["g"] == \
        single["a"]


def test_identical_twins_are_a_coin_flip_and_all_of_it_is_the_datas():
    sims, temps = world(2, {"twin_a": np.eye(4), "twin_b": np.eye(4)})
    out = oracle.oracle_outcomes(logliks(sims, temps, seeds=3))
    assert out["tie"].all() and (out["credit"] == 0.5).all()
    assert (out["winner"] == "twin_a|twin_b").all() and (out["rank"] == 1).all()
    curve = oracle.oracle_curve(out)
    assert (curve["recovery"] == 0.5).all() and (curve["tie_rate"] == 1.0).all()
    # A best fit as good as a coin flip leaves nothing to the metric.
    best = curve[["experiment", "design", "n_train"]].assign(recovery=0.5)
    dec = oracle.decomposition(curve, best)
    assert (dec["data_limited"] == 0.5).all() and (dec["metric_limited"] == 0.0).all()
    assert (dec["metric_share"] == 0.0).all()


def test_unrelated_generators_are_told_apart_from_few_triplets():
    rng = np.random.default_rng(3)
    sims, temps = world(3, {g: rng.normal(size=(4, 4)) * 2 for g in ("p", "q", "r")})
    curve = oracle.oracle_curve(oracle.oracle_outcomes(logliks(sims, temps, seeds=4)))
    assert (curve["recovery"] == 1.0).all() and (curve["datasets"] == 12).all()
    assert (curve["ci_high"] == 1.0).all() and (curve["ci_low"] > 0.7).all()


def test_the_ceiling_is_not_below_the_truth_rule_and_the_split_adds_up():
    # The generator scores its own data highest more often than chance, and a best fit
    # that does worse is charged to the metric: data + metric = the best fit's failures.
    sims, temps = world(4, {"a": np.eye(4), "b": np.diag([1.0, 1.0, 1.0, 0.3]),
                            "c": np.diag([0.3, 1.0, 1.0, 1.0])})
    curve = oracle.oracle_curve(oracle.oracle_outcomes(logliks(sims, temps, seeds=6)))
    assert (curve["recovery"] > 1 / 3).all()
    assert curve.loc[curve["n_train"] == max(SIZES), "recovery"].iloc[0] >= \
        curve.loc[curve["n_train"] == min(SIZES), "recovery"].iloc[0]
    best = curve[["experiment", "design", "n_train"]].assign(recovery=0.4)
    dec = oracle.decomposition(curve, best)
    np.testing.assert_allclose(dec["data_limited"] + dec["metric_limited"], 0.6)


def test_a_dataset_without_its_generators_likelihood_is_refused():
    rows = pd.DataFrame([{"experiment": "e", "design": "random", "generator": "a",
                          "n_train": 10, "seed": 0, "scorer": "b", "loglik": -3.0}])
    with pytest.raises(ValueError, match="its generator has no log-likelihood"):
        oracle.oracle_outcomes(rows)
