"""The NumPy reference: the similarities of transformed features, checked entry by entry,
and temperature calibration (T solves expected accuracy = target, a 1-D root find)."""

from __future__ import annotations

import numpy as np
import pytest

from modelrecovery import io
from modelrecovery.errors import InputError
from modelrecovery.oddoneout import (calibrate_temperature, expected_accuracy, pair_logits,
                                     row_pair_logits, similarity)

TOL = 0.002


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    return np.random.default_rng(31).normal(scale=2.0, size=(500, 3))


@pytest.mark.parametrize("target", [0.4, 0.5, 0.678, 0.9, 0.97])
def test_calibration_hits_target(logits, target):
    t = calibrate_temperature(logits, target)
    assert t > 0 and np.isfinite(t)
    assert abs(expected_accuracy(logits, t) - target) < TOL


def test_calibration_is_monotone_in_target(logits):
    temps = [calibrate_temperature(logits, a) for a in (0.4, 0.6, 0.8, 0.95)]
    # A higher expected accuracy needs a lower temperature.
    assert all(a > b for a, b in zip(temps, temps[1:]))


def test_calibration_scales_with_logits(logits):
    # Scaling every logit by c scales the solution by c (softmax(c z / (c T))).
    t1 = calibrate_temperature(logits, 0.678)
    t2 = calibrate_temperature(7.5 * logits, 0.678)
    assert t2 == pytest.approx(7.5 * t1, rel=1e-6)


@pytest.mark.parametrize("target", [1 / 3, 0.3, 0.0, 1.0, 1.2, -0.5])
def test_target_outside_open_interval_is_refused(logits, target):
    with pytest.raises(InputError, match=r"1/3, 1"):
        calibrate_temperature(logits, target)


def test_all_tied_logits_are_refused():
    tied = np.full((20, 3), 0.7)
    with pytest.raises(InputError):
        calibrate_temperature(tied, 0.678)


def test_exact_ties_capping_the_reachable_accuracy_are_refused():
    # Half of the triplets fully tied (accuracy 1/3 at any T), half clear-cut (→ 1 as
    # T → 0): no temperature gets above 2/3.
    rng = np.random.default_rng(4)
    mixed = np.vstack([np.full((50, 3), 1.5), rng.normal(size=(50, 3))])
    with pytest.raises(InputError, match="reachable"):
        calibrate_temperature(mixed, 0.9)
    t = calibrate_temperature(mixed, 0.6)
    assert abs(expected_accuracy(mixed, t) - 0.6) < TOL


def test_top_pair_ties_still_allow_targets_below_one_half():
    # Every triplet has its two largest pair similarities exactly tied, e.g. [1, 1, 0]:
    # max_k p_k falls from 1/2 (T → 0) to 1/3 (T → ∞), so any target in (1/3, 1/2) is
    # reachable by a unique T, e.g. 0.4. Exact ties make 1/2 the ceiling, not 1/3.
    rng = np.random.default_rng(5)
    top = rng.normal(size=(40, 1))
    low = top - rng.uniform(0.5, 2.0, size=(40, 1))
    logits = np.hstack([top, top, low])
    t = calibrate_temperature(logits, 0.4)
    assert abs(expected_accuracy(logits, t) - 0.4) < TOL
    with pytest.raises(InputError):
        calibrate_temperature(logits, 0.6)


def _by_hand(z: np.ndarray, kind: str) -> np.ndarray:
    """Each pair's similarity from its two rows alone, in plain Python arithmetic."""
    n = len(z)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            dot = sum(float(a) * float(b) for a, b in zip(z[i], z[j]))
            if kind == "dot":
                out[i, j] = dot
            elif kind == "cosine":
                ni = sum(float(a) ** 2 for a in z[i]) ** 0.5
                nj = sum(float(b) ** 2 for b in z[j]) ** 0.5
                out[i, j] = dot / (ni * nj) if ni > 0 and nj > 0 else 0.0
            else:
                out[i, j] = -sum((float(a) - float(b)) ** 2 for a, b in zip(z[i], z[j])) ** 0.5
    return out


@pytest.mark.parametrize("kind", ["dot", "cosine", "euclidean"])
def test_similarities_equal_their_definitions_entry_by_entry(kind):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(7, 3))
    x[4] = 0.0  # a zero row: cosine 0 with every row, euclidean its norm
    w = rng.normal(size=(3, 2))
    z = x @ w
    np.testing.assert_allclose(similarity(x, w, kind), _by_hand(z, kind), rtol=1e-12,
                               atol=1e-12)
    trip = np.array([[0, 1, 2], [4, 5, 6], [3, 0, 4], [6, 2, 1]])
    np.testing.assert_allclose(row_pair_logits(z, trip, kind),
                               pair_logits(_by_hand(z, kind), trip), rtol=1e-12, atol=1e-12)


def test_cosine_ignores_the_scale_and_euclidean_sees_distances():
    rng = np.random.default_rng(12)
    x, w = rng.normal(size=(6, 4)), rng.normal(size=(4, 4))
    np.testing.assert_allclose(similarity(x, 5.0 * w, "cosine"), similarity(x, w, "cosine"),
                               atol=1e-13)
    # −‖z_i − z_j‖ = −√(S_ii + S_jj − 2 S_ij) of the dot product; the closest pair is the
    # most similar.
    dot = similarity(x, w)
    d = np.sqrt(np.maximum(np.diag(dot)[:, None] + np.diag(dot)[None, :] - 2 * dot, 0))
    np.testing.assert_allclose(similarity(x, w, "euclidean"), -d, atol=1e-10)
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity(x, w, "manhattan")


@pytest.mark.parametrize("kind", ["dot", "cosine", "euclidean"])
def test_a_generator_file_carries_its_similarity(tmp_path, kind):
    rng = np.random.default_rng(13)
    x, w = rng.normal(size=(5, 3)), rng.normal(size=(3, 3))
    io.save_generator(tmp_path / "g.npz", tmp_path / "g.json", w, 0.7,
                      {"model": "m", "similarity": kind})
    gen = io.read_generator(tmp_path / "g.npz", 3)
    assert (gen.similarity, gen.temperature) == (kind, 0.7)
    assert io.read_json(tmp_path / "g.json")["similarity"] == kind
    np.testing.assert_array_equal(gen.similarities(x), similarity(x, w, kind))
    trip = np.array([[0, 1, 2], [3, 4, 0]])
    np.testing.assert_allclose(gen.pair_logits(x, trip),
                               pair_logits(similarity(x, w, kind), trip), atol=1e-12)


def test_a_generator_file_without_a_similarity_is_dot_and_a_bad_one_is_refused(tmp_path):
    w = np.eye(2)
    np.savez(tmp_path / "old.npz", W=w, T=np.asarray(1.5))
    assert io.read_generator(tmp_path / "old.npz").similarity == "dot"
    np.savez(tmp_path / "bad.npz", W=w, T=np.asarray(1.5), similarity=np.asarray("l7"))
    with pytest.raises(InputError, match="bad.npz: unknown similarity 'l7'"):
        io.read_generator(tmp_path / "bad.npz")
