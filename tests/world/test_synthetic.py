"""The synthetic world's models: families share their view of the latent, and a model
that misrepresents a few objects differs from its family on those objects only."""

from __future__ import annotations

import numpy as np
import pytest

from modelrecovery.errors import InputError
from modelrecovery.world.synthetic import ModelSpec, model_features, sparse_latent


def latent(n: int = 80) -> np.ndarray:
    return sparse_latent(n, 6, 0.5, np.random.default_rng(0))


def test_a_model_that_misrepresents_objects_differs_from_its_family_on_those_only():
    y = latent()
    base = model_features(y, ModelSpec("base", "linear", 5, family="f"), 3)
    variant = model_features(y, ModelSpec("variant", "linear", 5, family="f",
                                          misrepresents=4), 3)
    # Up to the overall scale both are normalised by: equal rows except four.
    big = np.abs(variant) > 1e-3
    ratio = float(np.median(base[big] / variant[big]))
    differ = np.flatnonzero(~np.isclose(base, variant * ratio, rtol=1e-5,
                                        atol=1e-6).all(axis=1))
    assert len(differ) == 4
    # Each misrepresented object is seen as another object of the world.
    for i in differ:
        assert np.isclose(variant[i] * ratio, base, rtol=1e-5, atol=1e-6).all(axis=1).any()
    # Without the option (and without noise) the variant is its family's base exactly.
    again = model_features(y, ModelSpec("variant", "linear", 5, family="f"), 3)
    assert np.array_equal(again, base)


def test_misrepresenting_more_than_half_the_world_is_refused_naming_the_model():
    with pytest.raises(InputError, match="model 'v': misrepresents 41 objects"):
        model_features(latent(), ModelSpec("v", "linear", 5, misrepresents=41), 3)
