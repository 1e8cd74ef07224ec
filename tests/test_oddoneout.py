"""Temperature calibration: T solves expected accuracy = target (a 1-D root find)."""

from __future__ import annotations

import numpy as np
import pytest

from modelrecovery.errors import InputError
from modelrecovery.oddoneout import calibrate_temperature, expected_accuracy

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
