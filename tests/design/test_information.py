"""I(M; Y | t), the expected information about the model from one response."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from modelrecovery.design.information import MAX_INFORMATION, pool_information
from modelrecovery.oddoneout import choice_probabilities, similarity


def brute_force(features, weights, temps, prior, triplets) -> np.ndarray:
    """Σ_g Σ_y π_g p_g(y) log(p_g(y) / p(y)), enumerating models and the three responses
    one by one (the definition of mutual information, no entropy shortcut)."""
    out = []
    probs = [choice_probabilities(similarity(x, w), triplets, t)
             for x, w, t in zip(features, weights, temps)]
    for r in range(len(triplets)):
        mix = [sum(prior[g] * probs[g][r, y] for g in range(len(prior))) for y in range(3)]
        total = 0.0
        for g, y in itertools.product(range(len(prior)), range(3)):
            p = probs[g][r, y]
            if prior[g] > 0 and p > 0:
                total += prior[g] * p * math.log(p / mix[y])
        out.append(total)
    return np.array(out)


def world(rng, n=15, models=4):
    feats = [rng.normal(size=(n, d)) for d in (3, 4, 2, 5)[:models]]
    weights = [rng.normal(size=(x.shape[1], x.shape[1])) * 0.7 for x in feats]
    temps = rng.uniform(0.3, 3.0, size=models)
    trips = np.array(list(itertools.combinations(range(n), 3)))
    return feats, weights, temps, trips


@pytest.mark.parametrize("memory", [2.0, 1e-6], ids=["similarities", "feature_rows"])
def test_information_equals_the_brute_force_definition(memory):
    rng = np.random.default_rng(0)
    feats, weights, temps, trips = world(rng)
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    # A tiny memory budget forces the feature-row path and chunks of a few triplets.
    got = pool_information(feats, weights, temps, trips, prior=prior, dtype=torch.float64,
                           max_memory_gb=memory)
    want = brute_force(feats, weights, temps, prior, trips)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert (got >= 0).all() and (got <= MAX_INFORMATION + 1e-12).all()
    assert got.std() > 0.01  # the world has informative and uninformative triplets


def test_a_model_with_zero_prior_drops_out_and_identical_models_give_zero():
    rng = np.random.default_rng(1)
    feats, weights, temps, trips = world(rng, models=3)
    two = pool_information(feats[:2], weights[:2], temps[:2], trips, dtype=torch.float64)
    three = pool_information(feats, weights, temps, trips, prior=[0.5, 0.5, 0.0],
                             dtype=torch.float64)
    np.testing.assert_allclose(three, two, rtol=1e-12, atol=1e-15)
    same = pool_information([feats[0]] * 3, [weights[0]] * 3, [temps[0]] * 3, trips,
                            dtype=torch.float64)
    assert np.abs(same).max() <= 1e-15


def test_near_deterministic_models_stay_exact():
    # Huge logits: probabilities round to 0/1, log-probabilities do not. Two models that
    # choose opposite odd ones out with certainty give the full log 2 under a 50/50 prior.
    x = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    a = np.diag([30.0, 0.0])
    b = np.diag([0.0, 30.0])
    trips = np.array([[0, 1, 2]])
    got = pool_information([x, x], [a, b], [1e-3, 1e-3], trips, dtype=torch.float64)
    assert got[0] == pytest.approx(math.log(2), rel=1e-12)


def test_bad_priors_are_refused():
    rng = np.random.default_rng(2)
    feats, weights, temps, trips = world(rng, models=2)
    for prior in ([0.5, 0.6], [1.0], [-0.5, 1.5]):
        with pytest.raises(ValueError, match="prior"):
            pool_information(feats, weights, temps, trips[:3], prior=prior)
