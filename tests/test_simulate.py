"""Simulation: sampled choices follow the model, and folds are concept-disjoint."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2, chisquare, ncx2

from modelrecovery import oddoneout, sampling, simulate
from modelrecovery.errors import InputError

# ----------------------------------------------------------------- choices ~ softmax(S/T)

# Three fixed triplets (objects 0-2, 3-5, 6-8) with known choice probabilities, in the
# pair order [p(pair ij → k odd), p(pair ik → j odd), p(pair jk → i odd)].
KNOWN = [(0.60, 0.30, 0.10), (1 / 3, 1 / 3, 1 / 3), (0.45, 0.35, 0.20)]
TEMPERATURE = 0.7
ALPHA = 0.01
SHIFT = 0.02
# Sample size. Testing counts drawn from p against a hypothesis q that moves 2 points
# between two categories, Pearson's statistic is ≈ noncentral χ²(df = 2) with
# noncentrality λ = R Σ_c (p_c − q_c)²/q_c. The hardest case here is p = (0.60, 0.30,
# 0.10) with 2 points moved between the two largest categories:
# λ = R (0.02²/0.62 + 0.02²/0.28) ≈ 0.00207 R, or R (0.02²/0.58 + 0.02²/0.32) ≈ 0.00194 R.
# For power 0.999 at α = 0.01 (critical value χ²₂ = 9.21) λ must be about 35, so
# R = 20,000 draws per triplet (λ ≥ 38.8) is enough; the test re-derives this below.
REPEATS = 20_000


def known_similarity() -> np.ndarray:
    """S with S/T = log p for each triplet's pairs (the diagonal is never used)."""
    sim = np.zeros((9, 9))
    for t, probs in enumerate(KNOWN):
        i, j, k = 3 * t, 3 * t + 1, 3 * t + 2
        for (a, b), p in zip(((i, j), (i, k), (j, k)), probs):
            sim[a, b] = sim[b, a] = TEMPERATURE * math.log(p)
    return sim


def shifted(p: np.ndarray, sign: float) -> np.ndarray:
    """Move SHIFT between the two most probable categories."""
    order = np.argsort(-p, kind="stable")
    q = p.copy()
    q[order[0]] += sign * SHIFT
    q[order[1]] -= sign * SHIFT
    return q


def test_sampled_choices_match_model_probabilities():
    sim = known_similarity()
    base = np.array([[3 * t, 3 * t + 1, 3 * t + 2] for t in range(len(KNOWN))])
    rows = np.repeat(base, REPEATS, axis=0)
    rng_order = np.random.default_rng(123)
    # Each row in a random order: the probability of which object is odd must not depend
    # on how the triplet is written, so this also tests the reordering bookkeeping.
    rows = rng_order.permuted(rows, axis=1)
    np.testing.assert_allclose(
        oddoneout.choice_probabilities(sim, base, TEMPERATURE), np.array(KNOWN), rtol=1e-12)

    out = sampling.sample_choices(sim, rows, TEMPERATURE, np.random.default_rng(2024))
    # Each output row is its input row reordered so that the sampled odd one is last.
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(rows, axis=1))
    assert out.shape == rows.shape

    critical = chi2.ppf(1 - ALPHA, df=2)
    for t, probs in enumerate(KNOWN):
        p = np.array(probs)
        odd = out[np.sort(out, axis=1)[:, 0] == 3 * t][:, 2] - 3 * t
        assert len(odd) == REPEATS
        # odd object 2 (k) ↔ pair ij (p[0]); odd 1 (j) ↔ pair ik (p[1]); odd 0 ↔ pair jk.
        counts = np.array([(odd == 2).sum(), (odd == 1).sum(), (odd == 0).sum()])
        assert chisquare(counts, REPEATS * p).pvalue > 0.001, (t, counts, p)
        for sign in (+1.0, -1.0):
            q = shifted(p, sign)
            # The power calculation of the comment above, for this p and q.
            nc = REPEATS * float(np.sum((p - q) ** 2 / q))
            assert ncx2.sf(critical, 2, nc) > 0.999
            # ...and the same counts do reject the 2-point-shifted probabilities.
            assert chisquare(counts, REPEATS * q).pvalue < ALPHA, (t, counts, q)


def test_sample_choices_is_reproducible_and_seed_dependent():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(20, 3))
    sim = oddoneout.similarity(x)
    trip = sampling.sample_triplets(np.arange(20), 300, rng, 20)
    a = sampling.sample_choices(sim, trip, 1.0, np.random.default_rng(5))
    b = sampling.sample_choices(sim, trip, 1.0, np.random.default_rng(5))
    c = sampling.sample_choices(sim, trip, 1.0, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------- concept-disjoint folds


@pytest.mark.parametrize("n_objects,n_folds,val_fraction", [(45, 3, 0.3), (31, 4, 0.25)])
def test_concept_folds_are_disjoint_and_tests_partition(n_objects, n_folds, val_fraction):
    folds = simulate.concept_folds(n_objects, n_folds, val_fraction,
                                   np.random.default_rng(0))
    assert len(folds) == n_folds
    everyone = set(range(n_objects))
    for fold in folds:
        tr, va, te = set(fold.train), set(fold.val), set(fold.test)
        assert not (tr & va) and not (tr & te) and not (va & te)
        assert tr | va | te == everyone
        assert len(va) == round(val_fraction * (n_objects - len(te)))
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(n_objects))  # a partition
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(InputError):
        simulate.concept_folds(10, 1, 0.3, np.random.default_rng(0))


N_OBJ, N_MAX, FOLDS = 45, 400, 3


def simulated(seed: int, exclude: np.ndarray | None = None, n_objects: int = N_OBJ,
              n_max: int = N_MAX) -> pd.DataFrame:
    x = np.random.default_rng(77).normal(size=(n_objects, 4))
    return simulate.simulate_dataset(oddoneout.similarity(x), 0.5, n_max, n_folds=FOLDS,
                                     val_fraction=0.3, eval_fraction=0.125,
                                     rng=np.random.default_rng(seed), exclude=exclude)


@pytest.fixture(scope="module")
def shard() -> pd.DataFrame:
    return simulated(1)


def objects_of(frame: pd.DataFrame) -> set[int]:
    return set(np.unique(frame[["i", "j", "k"]].to_numpy()).tolist())


def test_simulated_splits_are_concept_disjoint(shard):
    n_eval = simulate.eval_size(N_MAX, 0.125)
    test_objects = []
    for fold in range(FOLDS):
        split = {s: shard[(shard["fold"] == fold) & (shard["split"] == s)]
                 for s in simulate.SPLITS}
        assert len(split["train"]) == N_MAX
        assert len(split["val"]) == len(split["test"]) == n_eval
        objs = {s: objects_of(f) for s, f in split.items()}
        assert not (objs["train"] & objs["val"])
        assert not (objs["train"] & objs["test"])
        assert not (objs["val"] & objs["test"])
        # Enough triplets to touch every object: each fold covers the whole set.
        assert objs["train"] | objs["val"] | objs["test"] == set(range(N_OBJ))
        test_objects.append(objs["test"])
        for s, f in split.items():
            assert f["position"].tolist() == list(range(len(f)))
    # Test object sets across folds partition the objects.
    assert sum(len(t) for t in test_objects) == N_OBJ
    assert set().union(*test_objects) == set(range(N_OBJ))


def test_simulated_triplets_are_valid_and_unique(shard):
    t = shard[["i", "j", "k"]].to_numpy()
    assert ((t >= 0) & (t < N_OBJ)).all()
    assert ((t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])).all()
    for (_fold, _split), grp in shard.groupby(["fold", "split"]):
        keys = sampling.triplet_keys(grp[["i", "j", "k"]].to_numpy(), N_OBJ)
        assert len(np.unique(keys)) == len(keys)


def test_smaller_sizes_are_prefixes(shard):
    for fold in range(FOLDS):
        full = simulate.subset(shard, fold, "train", N_MAX)
        for size in (1, 50, 120):
            np.testing.assert_array_equal(simulate.subset(shard, fold, "train", size),
                                          full[:size])
        rows = shard[(shard["fold"] == fold) & (shard["split"] == "train")]
        np.testing.assert_array_equal(
            full[:50], rows[rows["position"] < 50].sort_values("position")[["i", "j", "k"]]
            .to_numpy())
    # Row order in the file does not matter: subset sorts by position.
    shuffled = shard.sample(frac=1.0, random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(simulate.subset(shuffled, 1, "test", 10),
                                  simulate.subset(shard, 1, "test", 10))
    with pytest.raises(InputError, match="fewer than"):
        simulate.subset(shard, 0, "train", N_MAX + 1)


def test_simulation_is_reproducible_by_seed(shard):
    pd.testing.assert_frame_equal(simulated(1), shard)
    other = simulated(2)
    assert not other[["i", "j", "k"]].equals(shard[["i", "j", "k"]])


def test_exclusion_is_honoured():
    n, kw = 60, dict(n_objects=60, n_max=80)
    plain = simulated(4, **kw)
    plain_keys = sampling.triplet_keys(plain[["i", "j", "k"]].to_numpy(), n)
    # Exclude 40 triplets that the unrestricted draw with this seed does produce, spread
    # over all folds and splits: the exclusion must change the draw to avoid them.
    exclude = np.random.default_rng(8).choice(plain_keys, size=40, replace=False)
    with_excl = simulated(4, exclude=exclude, **kw)
    keys = sampling.triplet_keys(with_excl[["i", "j", "k"]].to_numpy(), n)
    assert not np.isin(keys, exclude).any()
    assert np.isin(plain_keys, exclude).sum() == 40
    assert len(with_excl) == len(plain)


def test_exclusion_of_human_triplets_over_all_objects_is_feasible():
    # The workflow's exclude_human_triplets passes every human triplet (over all n
    # objects) to every split. Only the excluded triplets *within* a split's objects
    # reduce what that split can draw. Here 2,000 human triplets over 60 objects leave
    # each validation set (12 objects, C(12,3) = 220 triplets) about 207 triplets, far
    # more than the 10 needed, so the simulation must succeed.
    n = 60
    human = sampling.sample_triplets(np.arange(n), 2000, np.random.default_rng(12), n)
    exclude = sampling.triplet_keys(human, n)
    shard = simulated(4, exclude=exclude, n_objects=n, n_max=80)
    keys = sampling.triplet_keys(shard[["i", "j", "k"]].to_numpy(), n)
    assert not np.isin(keys, exclude).any()


def test_sample_triplets_capacity_counts_only_exclusions_among_its_objects():
    # 6 objects: C(6,3) = 20 triplets, none of them excluded (every excluded triplet uses
    # objects 10..29), so drawing 10 distinct triplets is possible.
    n = 30
    elsewhere = sampling.sample_triplets(np.arange(10, 30), 100, np.random.default_rng(1), n)
    exclude = sampling.triplet_keys(elsewhere, n)
    trip = sampling.sample_triplets(np.arange(6), 10, np.random.default_rng(2), n, exclude)
    assert trip.shape == (10, 3)
    assert len(np.unique(sampling.triplet_keys(trip, n))) == 10


@pytest.mark.parametrize("count", [5, 30, 50])
def test_sample_triplets_honours_exclusion_in_sparse_and_dense_regimes(count):
    objects = np.array([2, 5, 7, 11, 13, 17, 19])  # C(7, 3) = 35 triplets
    n = 20
    exclude = sampling.triplet_keys(np.array([[2, 5, 7], [11, 13, 17], [5, 7, 19]]), n)
    if count > 35 - 3:
        with pytest.raises(InputError, match="cannot draw"):
            sampling.sample_triplets(objects, count, np.random.default_rng(0), n, exclude)
        return
    trip = sampling.sample_triplets(objects, count, np.random.default_rng(0), n, exclude)
    assert trip.shape == (count, 3)
    assert np.isin(trip, objects).all()
    keys = sampling.triplet_keys(trip, n)
    assert len(np.unique(keys)) == count
    assert not np.isin(keys, exclude).any()
    assert ((trip[:, 0] != trip[:, 1]) & (trip[:, 0] != trip[:, 2])
            & (trip[:, 1] != trip[:, 2])).all()


# ----------------------------------------------------------------- several participants


def test_one_participant_is_one_choice_per_triplet_with_the_same_draws():
    rng = np.random.default_rng(9)
    sim = oddoneout.similarity(rng.normal(size=(20, 3)))
    trip = sampling.sample_triplets(np.arange(20), 300, rng, 20)
    out, row = sampling.sample_judgements(sim, trip, 1.0, np.random.default_rng(5))
    np.testing.assert_array_equal(
        out, sampling.sample_choices(sim, trip, 1.0, np.random.default_rng(5)))
    np.testing.assert_array_equal(row, np.arange(300))


def test_participants_give_multinomial_counts_per_triplet():
    sim = known_similarity()
    base = np.array([[3 * t, 3 * t + 1, 3 * t + 2] for t in range(len(KNOWN))])
    participants = 50
    rows = np.repeat(base, REPEATS // participants, axis=0)
    out, row = sampling.sample_judgements(sim, rows, TEMPERATURE,
                                          np.random.default_rng(7), participants)
    # Every triplet has exactly P judgements, each its own objects reordered, in order.
    np.testing.assert_array_equal(np.bincount(row, minlength=len(rows)),
                                  np.full(len(rows), participants))
    assert np.all(np.diff(row) >= 0)
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(rows[row], axis=1))
    # A triplet's counts over its P judgements: multinomial(P, p), so each choice's count
    # has mean P p_c and variance P p_c (1 − p_c); pooled over triplets the choices
    # follow p (χ²), and the per-triplet variance is the multinomial one, not the
    # binomial of a single shared draw (P² p (1 − p)) nor zero.
    for t, probs in enumerate(KNOWN):
        p = np.array(probs)
        mine = np.sort(out, axis=1)[:, 0] == 3 * t
        odd = out[mine][:, 2] - 3 * t
        counts = np.array([(odd == 2).sum(), (odd == 1).sum(), (odd == 0).sum()])
        assert chisquare(counts, counts.sum() * p).pvalue > 0.001, (t, counts, p)
        per = np.zeros((len(rows), 3))
        np.add.at(per, (row[mine], 2 - odd), 1)
        per = per[np.unique(row[mine])]
        var = per[:, 0].var(ddof=1)
        want = participants * p[0] * (1 - p[0])
        assert 0.85 * want < var < 1.15 * want, (t, var, want)


def test_a_shard_with_participants_shares_positions_and_keeps_prefixes():
    x = np.random.default_rng(77).normal(size=(N_OBJ, 4))
    shard = simulate.simulate_dataset(oddoneout.similarity(x), 0.5, N_MAX, n_folds=FOLDS,
                                      val_fraction=0.3, eval_fraction=0.125,
                                      rng=np.random.default_rng(1), participants=4)
    per = shard.groupby(["fold", "split", "position"]).size()
    assert (per == 4).all()
    for (fold, split), rows in shard.groupby(["fold", "split"]):
        n = rows["position"].nunique()
        assert set(rows["position"]) == set(range(n))
        for size in (1, n // 2, n):
            got = simulate.subset(shard, int(fold), split, size)
            assert len(got) == 4 * size
            # One triplet per position: its four judgements name the same objects.
            first = rows[rows["position"] < size].sort_values("position", kind="stable")
            np.testing.assert_array_equal(got, first[["i", "j", "k"]].to_numpy())
    with pytest.raises(InputError, match="fewer than"):
        simulate.subset(shard, 0, "train", N_MAX + 1)


# ----------------------------------------------------------------- the subsets protocol


def test_subsets_protocol_rotates_disjoint_subsets_through_test_validation_and_training():
    x = np.random.default_rng(77).normal(size=(N_OBJ, 4))
    k, n_max = 5, 120
    shard = simulate.simulate_subsets(oddoneout.similarity(x), 0.5, n_max, n_folds=k,
                                      eval_fraction=0.25, rng=np.random.default_rng(3))
    n_eval = simulate.eval_size(n_max, 0.25)
    rows = {key: g.sort_values("position", kind="stable")[["i", "j", "k"]].to_numpy()
            for key, g in shard.groupby(["fold", "split"])}
    tests = [set(np.unique(rows[(f, "test")])) for f in range(k)]
    # Each subset's triplets lie inside it; the subsets are disjoint.
    for f in range(k):
        for g in range(f + 1, k):
            assert not tests[f] & tests[g]
    for f in range(k):
        assert len(rows[(f, "test")]) == len(rows[(f, "val")]) == n_eval
        assert len(rows[(f, "train")]) == n_max
        # Fold f validates on subset f + 1: the very triplets and answers fold f + 1 tests on.
        np.testing.assert_array_equal(rows[(f, "val")], rows[((f + 1) % k, "test")])
        train = set(np.unique(rows[(f, "train")]))
        assert not train & tests[f] and not train & tests[(f + 1) % k]
        # Training interleaves the other K − 2 subsets: every prefix draws from each.
        owner = [next(s for s in range(k) if set(t) <= tests[s])
                 for t in rows[(f, "train")][: 3 * (k - 2)]]
        assert sorted(set(owner)) == sorted(set(range(k)) - {f, (f + 1) % k})
        # One subset's answers serve every fold that trains on it.
        g = (f + 2) % k
        mine = [t for t in map(tuple, rows[(f, "train")]) if set(t) <= tests[g]]
        assert mine == [t for t in map(tuple, rows[((g + 1) % k, "train")])
                        if set(t) <= tests[g]][: len(mine)]
    with pytest.raises(InputError, match="at least 3"):
        simulate.simulate_subsets(oddoneout.similarity(x), 0.5, 10, n_folds=2,
                                  eval_fraction=0.25, rng=np.random.default_rng(3))
