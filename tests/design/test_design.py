"""Designs: ranking a pool, static designs per fold and split, adaptive rounds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from modelrecovery import fitting
from modelrecovery.analysis.designs import crossing, savings
from modelrecovery.design.adaptive import AdaptiveOptions, adaptive_dataset
from modelrecovery.design.information import pool_information
from modelrecovery.design.static import (DesignOptions, design_folds, rank_pool,
                                         split_sizes, static_design, uniform_slots)
from modelrecovery.oddoneout import similarity
from modelrecovery.sampling import sample_judgements, sample_triplets, triplet_keys

N_OBJ = 45


def crowded_pool(rng, n=N_OBJ, size=4000):
    """A uniform pool whose most informative triplets all hold object 0."""
    pool = sample_triplets(np.arange(n), size, rng, n)
    utility = rng.random(len(pool)) * 0.1
    utility[(pool == 0).any(axis=1)] += 1.0
    return pool, utility


@pytest.mark.parametrize("cap,fraction", [(None, 0.0), (2.0, 0.0), (3.0, 0.25)])
def test_every_prefix_keeps_the_cap_and_the_uniform_share(cap, fraction):
    rng = np.random.default_rng(0)
    pool, utility = crowded_pool(rng)
    count = 600
    options = DesignOptions(random_fraction=fraction, object_cap=cap)
    order, flat = rank_pool(pool, utility, count, N_OBJ, options)
    assert not flat and len(np.unique(order)) == count
    chosen = pool[order]
    uniform = uniform_slots(count, fraction)
    # Every prefix of length m holds ⌊m·f⌋ uniform triplets: the pool's own order.
    assert [int(uniform[:m].sum()) for m in (10, 100, count)] == [
        math.floor(m * fraction + 1e-12) for m in (10, 100, count)]
    np.testing.assert_array_equal(np.sort(order[uniform]), order[uniform])
    uses = np.zeros(N_OBJ, dtype=int)
    for m, (row, is_uniform) in enumerate(zip(chosen, uniform), start=1):
        # A designed triplet may only take objects below the prefix's cap (uniform ones
        # are drawn as they come, and count towards it).
        if cap is not None and not is_uniform:
            assert uses[row].max() < math.ceil(cap * 3 * m / N_OBJ), m
        uses[row] += 1
    if cap is None and fraction == 0:
        # Pure ranking: the first triplets are the best ones, all holding object 0.
        assert (chosen[:100] == 0).any(axis=1).all()
        np.testing.assert_array_equal(np.sort(utility)[::-1][:count], utility[order])
    if cap is not None:  # the crowding is broken: object 0 at most cap × its uniform share
        assert (chosen == 0).any(axis=1).mean() <= cap * 3 / N_OBJ + 0.01


def test_a_pool_without_information_is_kept_in_its_uniform_order():
    rng = np.random.default_rng(1)
    pool = sample_triplets(np.arange(N_OBJ), 500, rng, N_OBJ)
    order, flat = rank_pool(pool, np.zeros(len(pool)), 200, N_OBJ, DesignOptions())
    assert flat
    np.testing.assert_array_equal(order, np.arange(200))


def generators(rng, identical=False):
    """Three generators seeing one latent through their own projections (or all through
    the first one's: identical models)."""
    latent = rng.normal(size=(N_OBJ, 3))
    projections = [rng.normal(size=(3, 4)) for _ in range(3)]
    if identical:
        projections = [projections[0]] * 3
    return [latent @ p for p in projections], [np.eye(4)] * 3, [1.0, 1.0, 1.0]


def scorer(feats, weights, temps):
    def score(pool):
        return pool_information(feats, weights, temps, pool, dtype=torch.float64)
    return score


def test_static_design_lies_within_each_fold_split_and_is_reproducible():
    rng = np.random.default_rng(2)
    score = scorer(*generators(rng))
    folds = design_folds(N_OBJ, 3, 0.3, study_seed=4, experiment="x", seed=0)
    sizes = split_sizes(120, 0.125)
    runs = [static_design(folds, sizes, N_OBJ, score, np.random.default_rng(9),
                          DesignOptions(pool_factor=10))[0] for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    design = runs[0]
    for (f, split), rows in design.groupby(["fold", "split"]):
        objects = set(getattr(folds[f], split).tolist())
        trip = rows[["i", "j", "k"]].to_numpy()
        assert set(np.unique(trip).tolist()) <= objects
        assert len(np.unique(triplet_keys(trip, N_OBJ))) == len(trip) == sizes[split]
        assert rows["position"].tolist() == list(range(len(rows)))
    # The chosen triplets are more informative than the pool they came from.
    uniform = sample_triplets(folds[0].train, 1000, np.random.default_rng(3), N_OBJ)
    train = design[design["split"] == "train"]
    assert train["utility"].mean() > 1.5 * score(uniform).mean()


def test_identical_generators_give_a_uniform_design_that_says_so():
    rng = np.random.default_rng(4)
    feats, weights, temps = generators(rng, identical=True)
    folds = design_folds(N_OBJ, 3, 0.3, study_seed=4, experiment="x", seed=0)
    design, records = static_design(folds, split_sizes(60, 0.125), N_OBJ,
                                    scorer(feats, weights, temps),
                                    np.random.default_rng(9), DesignOptions())
    assert all(r["uninformative"] for r in records)
    assert np.abs(design["utility"]).max() < 1e-9


# ----------------------------------------------------------------- adaptive rounds


def adaptive_run(respond_seed_from: int, rounds_changed_from: int):
    """An adaptive study whose responses from round ``rounds_changed_from`` on come from
    a different stream (``respond_seed_from``)."""
    rng = np.random.default_rng(5)
    latent = rng.normal(size=(N_OBJ, 3))
    candidates = {"a": latent @ rng.normal(size=(3, 4)),
                  "b": np.tanh(latent @ rng.normal(size=(3, 4))),
                  "c": rng.normal(size=(N_OBJ, 3))}
    sim = similarity(candidates["a"]) / 2.0
    folds = design_folds(N_OBJ, 3, 0.3, study_seed=4, experiment="x", seed=0)

    def respond(trip, round_):
        seed = 100 + round_ + (respond_seed_from if round_ >= rounds_changed_from else 0)
        return sample_judgements(sim, trip, 1.0, np.random.default_rng(seed))

    options = fitting.FitOptions(dtype="float64", device="cpu", max_iter=200, history=10,
                               loss_tol=1e-9)
    shard, records = adaptive_dataset(
        folds, [30, 60, 120], 0.125, N_OBJ, respond, candidates, [0.01, 1.0], options,
        DesignOptions(pool_factor=8), AdaptiveOptions(),
        lambda r: np.random.default_rng(1000 + r))
    return shard, records


def test_an_adaptive_round_never_uses_a_later_response():
    base, records = adaptive_run(0, 99)
    assert [r["n_train"] for r in records] == [30, 60, 120]
    assert sorted(base["round"].unique()) == [0, 1, 2]
    later, _ = adaptive_run(555, 2)  # round 2's responses differ
    cols = ["fold", "split", "position"]
    shown = lambda s: s.assign(key=triplet_keys(s[["i", "j", "k"]].to_numpy(), N_OBJ))[
        [*cols, "key", "round"]].sort_values(cols).reset_index(drop=True)
    a, b = shown(base), shown(later)
    # Every triplet of every round is the same: round 2's triplets were chosen before its
    # responses existed, and no round after it uses them.
    pd.testing.assert_frame_equal(a, b)
    # The control: when round 1's responses change, round 2's choice moves.
    moved, _ = adaptive_run(555, 1)
    c = shown(moved)
    assert (a[a["round"] < 1]["key"].to_numpy() == c[c["round"] < 1]["key"].to_numpy()).all()
    assert not (a[a["round"] == 2]["key"].to_numpy()
                == c[c["round"] == 2]["key"].to_numpy()).all()
    # Training prefixes nest: each round's training rows continue the positions.
    train = base[(base["split"] == "train") & (base["fold"] == 0)].sort_values("position")
    assert train["position"].tolist() == list(range(120))
    assert train["round"].is_monotonic_increasing


# ----------------------------------------------------------------- savings


def test_crossing_interpolates_in_log_n_and_marks_bounds():
    sizes = np.array([100, 1000, 10000])
    assert crossing(sizes, [0.2, 0.6, 0.9], 0.4).n == pytest.approx(10 ** 2.5)
    assert crossing(sizes, [0.95, 0.96, 0.97], 0.9).at_most
    assert not crossing(sizes, [0.1, 0.2, 0.3], 0.9).reached


def test_savings_of_a_design_ten_times_faster():
    # Design 'fast' reaches at N what 'random' reaches at 10 N, for every dataset.
    rows = []
    for design, shift in (("random", 0), ("fast", 1)):
        for gen in "ab":
            for seed in range(20):
                for e, n in enumerate([10, 100, 1000, 10000]):
                    level = min(1.0, 0.25 * (e + shift))
                    rows.append({"design": design, "generator": gen, "seed": seed,
                                 "n_train": n, "credit": float(seed < 20 * level)})
    table = savings(pd.DataFrame(rows), {"t": 0.5}, 200, np.random.default_rng(0))
    fast = table[table["design"] == "fast"].iloc[0]
    assert fast["savings"] == pytest.approx(10.0) and fast["reached"]
    assert fast["savings_ci_low"] <= 10.0 <= fast["savings_ci_high"]
    assert table[table["design"] == "random"]["savings"].iloc[0] == pytest.approx(1.0)
    # At equal N the same gain reads as a recovery difference, with an interval that
    # excludes 0 where the curves differ and is exactly 0 for the reference itself.
    from modelrecovery.analysis.designs import bootstrap_curves, equal_n_differences

    outcomes = pd.DataFrame(rows)
    boots = bootstrap_curves(outcomes, 200, np.random.default_rng(1))
    diff = equal_n_differences(outcomes, boots).set_index(["design", "n_train"])
    assert diff.loc[("fast", 10), "recovery_vs_random"] == pytest.approx(0.25)
    assert diff.loc[("fast", 10), "vs_random_ci_low"] > 0
    assert (diff.loc["random", "recovery_vs_random"] == 0).all()
    assert (diff.loc["random", "vs_random_ci_high"] == 0).all()
    # The savings drawn from the same resamples equal those drawn from the generator.
    again = savings(outcomes, {"t": 0.5}, 200, None,
                    boots=bootstrap_curves(outcomes, 200, np.random.default_rng(0)))
    pd.testing.assert_frame_equal(again, table)


def test_the_most_confused_pair_and_the_pairwise_prior():
    from modelrecovery.analysis.designs import most_confused_pair
    from modelrecovery.cli.args import criterion_prior as _prior

    rows = []
    for n, rates in ((100, {("a", "c"): 0.9}), (1000, {("b", "c"): 0.3, ("c", "b"): 0.2,
                                                      ("a", "b"): 0.4})):
        for g in "abc":
            for c in "abc":
                rate = rates.get((g, c), 0.0)
                rows.append({"n_train": n, "generator": g, "candidate": c, "rate": rate})
    # At the largest N: a↔b 0.4, b↔c 0.5, a↔c 0 (the N = 100 confusion does not count).
    assert most_confused_pair(pd.DataFrame(rows), ["a", "b", "c"]) == ("b", "c")
    np.testing.assert_array_equal(_prior(["a", "b", "c"], [], ["c", "b"]), [0, 0.5, 0.5])
    np.testing.assert_allclose(_prior(["a", "b", "c"], ["a=3", "c=1"], None),
                               [0.75, 0, 0.25])


def test_the_design_summary_counts_uniform_slots_and_uninformative_splits():
    from modelrecovery.design.export import design_summary
    from modelrecovery.io.contracts import DESIGN_SUMMARY_COLUMNS
    from modelrecovery.simulate import FoldObjects

    folds = [FoldObjects(train=np.arange(0, 6), val=np.arange(6, 9), test=np.arange(9, 12)),
             FoldObjects(train=np.arange(6, 12), val=np.arange(0, 3), test=np.arange(3, 6))]
    rows = []
    for f, fold in enumerate(folds):
        for split, count in (("train", 6), ("val", 2), ("test", 2)):
            objects = getattr(fold, split)
            for m in range(count):
                trip = objects[[m % len(objects), (m + 1) % len(objects),
                                (m + 2) % len(objects)]]
                rows.append({"fold": f, "split": split, "position": m, "i": trip[0],
                             "j": trip[1], "k": trip[2], "utility": 0.5})
    design = pd.DataFrame(rows)
    # Fold 1's training pool told nothing: all its 6 triplets are uniform; fold 0's
    # training split has ⌊6 · 0.25⌋ = 1 uniform slot, an evaluation split ⌊2 · 0.25⌋ = 0.
    records = [{"fold": 1, "split": "train", "uninformative": True}]
    summary = design_summary(design, folds, 12, records, 0.25, "x/triplets.csv", 1234)
    assert list(summary.columns) == list(DESIGN_SUMMARY_COLUMNS)
    by = summary.set_index("split")
    assert list(by.index) == ["train", "val", "test", "all"]
    assert by.loc["train", "uniform_share"] == pytest.approx(round((1 + 6) / 12, 4))
    assert by.loc["val", "uniform_share"] == 0.0
    assert by.loc["all", "triplets"] == 20 and by.loc["all", "folds"] == 2
    assert by.loc["train", "objects"] == 12 and by.loc["val", "objects"] == 6
    # The 6 cyclic triplets of a fold's 6 training objects use each of them 3 times.
    assert by.loc["train", ["uses_min", "uses_median", "uses_max"]].tolist() == [3, 3, 3]
    assert (by["utility_mean"] == 0.5).all() and (by["file"] == "x/triplets.csv").all()
