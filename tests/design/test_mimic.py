"""Designs aimed at the mimic, on constructed worlds whose answer is known: soft targets
are the cross-entropy, a mimic inside the candidate's span reproduces its generator and
one outside does not, the union bound ranks the triplet that separates a nested pair
first, and the whole design is reproducible and lies within its folds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import log_softmax

from modelrecovery import fitting
from modelrecovery.design import mimic
from modelrecovery.design.static import DesignOptions, design_folds, split_sizes
from modelrecovery.oddoneout import pair_logits, similarity
from modelrecovery.sampling import sample_triplets

N_OBJ = 48
FIT = fitting.FitOptions(method="full", regulariser="eye_distance", max_iter=300)


def nested_world(seed: int = 0) -> dict[str, np.ndarray]:
    """``small`` (4 dims); ``big`` = small plus two dims of its own; ``other`` unrelated."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_OBJ, 4))
    return {"small": x, "big": np.hstack([x, 1.5 * rng.normal(size=(N_OBJ, 2))]),
            "other": rng.normal(size=(N_OBJ, 4))}


def test_soft_target_rows_weigh_each_choice_by_its_probability():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N_OBJ, 3))
    pool = sample_triplets(np.arange(N_OBJ), 50, rng, N_OBJ)
    target = mimic.log_probs(x, pool, 0.7)
    rows, counts = mimic.soft_target_rows(pool, target)
    # The rows' count-weighted NLL under any model is the cross-entropy against target.
    z = rng.normal(size=(N_OBJ, 3))
    row_nll = -log_softmax(pair_logits(similarity(z), rows), axis=1)[:, 0]
    cross = -(np.exp(target) * mimic.log_probs(z, pool)).sum()
    assert counts.sum() == pytest.approx(len(pool))
    assert (counts * row_nll).sum() == pytest.approx(cross)


def test_a_mimic_reproduces_a_generator_inside_its_span_and_not_one_outside():
    feats = nested_world()
    rng = np.random.default_rng(2)
    pool = sample_triplets(np.arange(N_OBJ), 3000, rng, N_OBJ)
    test = sample_triplets(np.arange(N_OBJ), 2000, rng, N_OBJ)
    w = rng.normal(size=(4, 4))
    z_small = feats["small"] @ w  # a generator of small's features
    z_big = feats["big"] @ np.diag([1, 1, 1, 1, 2.0, 2.0])  # it uses big's own dims
    names = ["small", "big", "other"]
    cands = [feats[m] for m in names]
    targets = [mimic.log_probs(z_small, pool), mimic.log_probs(z_big, pool)]
    pairs = [(0, 1), (0, 2), (1, 0)]  # big mimics small; other mimics small; small mimics big
    zs = mimic.fit_mimics(cands, targets, pool, pairs, 1e-4, FIT)
    gen = [mimic.log_probs(z_small, test), mimic.log_probs(z_big, test)]
    d = [mimic.divergences(gen[g], mimic.log_probs(z, test)).mean()
         for (g, _), z in zip(pairs, zs)]
    assert d[0] < 1e-3  # big holds small: it imitates small's generator
    assert d[1] > 0.1 and d[2] > 0.02  # unrelated, and small lacks big's extra dims
    assert mimic.stein_triplets(d[2]) == pytest.approx(math.log(20) / d[2])
    assert mimic.stein_triplets(0.0) == math.inf


def test_the_union_bound_puts_the_triplet_that_separates_a_nested_pair_first():
    # Pair 0 is easy (every triplet separates it a little); pair 1 is nested: only
    # triplet 7 separates it, and less than the best triplets separate pair 0. Summed
    # divergence would rank triplet 7 below the easy ones; the union bound, once pair 0
    # has evidence, takes it next.
    rng = np.random.default_rng(3)
    d = np.column_stack([rng.uniform(0.5, 1.0, size=40), np.full(40, 1e-4)])
    d[7] = [0.2, 0.4]
    pool = sample_triplets(np.arange(N_OBJ), 40, rng, N_OBJ)
    options = DesignOptions(random_fraction=0.0, object_cap=None)
    order, value, flat = mimic.union_bound_order(d, np.array([0.5, 0.5]), 5, pool,
                                                 N_OBJ, options)
    assert not flat and order[1] == 7 and len(set(order.tolist())) == 5
    assert d[:, 0].sum() > 0 and (d.sum(axis=1) > d[7].sum()).sum() > 20
    assert value[0] == pytest.approx(d[order[0]].mean())
    # Nothing to separate: the pool's own (uniform) order.
    flat_order, _, flat = mimic.union_bound_order(np.zeros((40, 2)), np.array([0.5, 0.5]),
                                                  5, pool, N_OBJ, options)
    assert flat and flat_order.tolist() == list(range(5))


def test_the_union_bound_keeps_the_uniform_share_and_the_object_cap():
    rng = np.random.default_rng(4)
    pool = sample_triplets(np.arange(N_OBJ), 400, rng, N_OBJ)
    # Every triplet of object 0 separates the pair; the cap keeps it from taking over.
    d = np.where((pool == 0).any(axis=1), 1.0, 0.01)[:, None]
    order, _, _ = mimic.union_bound_order(d, np.ones(1), 40, pool, N_OBJ,
                                          DesignOptions(random_fraction=0.0, object_cap=2.0))
    chosen = pool[order]
    for m in range(1, 41):
        cap = math.ceil(2.0 * 3 * m / N_OBJ)
        assert np.bincount(chosen[:m].ravel(), minlength=N_OBJ).max() <= cap
    uncapped, _, _ = mimic.union_bound_order(d, np.ones(1), 40, pool, N_OBJ,
                                             DesignOptions(random_fraction=0.0,
                                                           object_cap=None))
    assert (pool[uncapped] == 0).any(axis=1).sum() > (chosen == 0).any(axis=1).sum()
    # Uniform slots take the pool in its own order.
    order, _, _ = mimic.union_bound_order(d, np.ones(1), 40, pool, N_OBJ,
                                          DesignOptions(random_fraction=0.25))
    m = np.arange(40)
    uniform = np.flatnonzero(np.floor((m + 1) * 0.25 + 1e-12) > np.floor(m * 0.25 + 1e-12))
    assert sorted(order[uniform].tolist()) == sorted(
        r for r in range(len(pool)) if r not in set(order[np.setdiff1d(m, uniform)])
    )[:len(uniform)]


def test_the_mimic_design_is_reproducible_and_lies_within_its_folds():
    feats = nested_world(5)
    rng = np.random.default_rng(6)
    gens = [(feats["small"] @ rng.normal(size=(4, 4)), 1.0, "dot"),
            (feats["big"], 0.8, "dot")]
    cands = [feats["small"], feats["big"], feats["other"]]
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    folds = design_folds(N_OBJ, 2, 0.3, 7, "e", 0)
    sizes = split_sizes(40, 0.25)

    def run():
        return mimic.mimic_design(folds, sizes, N_OBJ, gens, cands, pairs,
                                  np.full(4, 0.5), 1e-3, FIT,
                                  DesignOptions(pool_factor=5), mimic.MimicOptions(300),
                                  np.random.default_rng(8))

    (frame, records), (again, _) = run(), run()
    assert frame.equals(again)
    for (f, split), grp in frame.groupby(["fold", "split"]):
        allowed = set(getattr(folds[f], split).tolist())
        assert set(grp[["i", "j", "k"]].to_numpy().ravel()) <= allowed
        assert len(grp) == sizes[split]
    assert len(records) == 2 * 3
    for rec in records:
        assert [d["pair"] for d in rec["divergence"]] == list(range(4))
        # big holds small: its mimic of small's generator is far closer than other's.
        assert rec["divergence"][0]["pool"] < 0.2 * rec["divergence"][1]["pool"]
    train = [r for r in records if r["split"] == "train"]
    assert all(r["divergence"][2]["design"] > r["divergence"][2]["pool"] for r in train)
