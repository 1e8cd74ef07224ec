"""The analyses' intervals against scipy and against what an interval must do."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from scipy.stats import t as student_t

from modelrecovery.analysis import stats


@pytest.mark.parametrize("n", [1, 7, 20, 53])
def test_clopper_pearson_matches_scipy_exact(n):
    x = np.arange(n + 1)
    lo, hi = stats.clopper_pearson(x, np.full(n + 1, n))
    for k in range(n + 1):
        ci = binomtest(int(k), n).proportion_ci(confidence_level=0.95, method="exact")
        assert lo[k] == pytest.approx(ci.low, abs=1e-10)
        assert hi[k] == pytest.approx(ci.high, abs=1e-10)
    lo90, hi90 = stats.clopper_pearson(x, np.full(n + 1, n), level=0.9)
    assert (lo90 >= lo - 1e-15).all() and (hi90 <= hi + 1e-15).all()


def test_clopper_pearson_with_split_credit_lies_between_neighbours():
    lo, hi = stats.clopper_pearson(np.array([1.0, 1.5, 2.0]), np.array([6, 6, 6]))
    assert lo[0] < lo[1] < lo[2] and hi[0] < hi[1] < hi[2]
    assert 0.0 <= lo[1] <= 1.5 / 6 <= hi[1] <= 1.0


def test_t_interval_is_the_textbook_interval_of_the_finite_values():
    v = np.array([0.2, 0.5, np.nan, 0.4, 0.9, np.inf])
    mean, lo, hi = stats.t_interval(v, 0.9)
    finite = np.array([0.2, 0.5, 0.4, 0.9])
    half = student_t.ppf(0.95, 3) * finite.std(ddof=1) / 2
    assert mean == pytest.approx(finite.mean())
    assert (lo, hi) == pytest.approx((finite.mean() - half, finite.mean() + half), rel=1e-12)
    assert np.isnan(stats.t_interval(np.array([0.3]))[1])
    assert np.isnan(stats.t_interval(np.array([np.nan]))[0])


def test_percentile_interval_leaves_out_undefined_resamples():
    rng = np.random.default_rng(0)
    boot = rng.normal(size=(2000, 2))
    boot[:500, 1] = np.nan  # a statistic undefined on a quarter of the resamples
    lo, hi = stats.percentile_interval(boot, 0.9)
    kept = boot[500:]
    assert lo == pytest.approx(np.quantile(kept, 0.05, axis=0))
    assert hi == pytest.approx(np.quantile(kept, 0.95, axis=0))
    one = stats.percentile_interval(boot[500:, 0], 0.9)
    assert one == (pytest.approx(lo[0]), pytest.approx(hi[0]))
    assert np.isnan(stats.percentile_interval(np.array([1.0, np.nan]), 0.9,
                                              min_resamples=2)[0])
    with pytest.raises(ValueError, match="strictly between"):
        stats.percentile_interval(boot, 1.0)
