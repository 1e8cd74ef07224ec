"""Metric-comparison analyses on tables whose answers are planted or computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, pearsonr, spearmanr

from modelrecovery.analysis import metrics as mc


def table_of(**columns: list[float]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"model": [f"m{i}" for i in range(n)], **columns})


@pytest.fixture(scope="module")
def noisy() -> pd.DataFrame:
    """30 models, three related metrics, a fourth unrelated, NaNs scattered."""
    rng = np.random.default_rng(42)
    a = rng.normal(size=30)
    b = a + 0.1 * rng.normal(size=30)
    c = -a + rng.normal(size=30)
    d = rng.normal(size=30)
    for v, holes in ((a, [0, 5]), (b, [3]), (c, [5, 7, 11]), (d, [])):
        v[holes] = np.nan
    return table_of(a=a, b=b, c=c, d=d)


def test_agreement_point_estimates_equal_scipy_pairwise_complete(noisy):
    metrics = ["a", "b", "c", "d"]
    out = mc.agreement(noisy, metrics, n_boot=50, rng=np.random.default_rng(0))
    assert list(out.columns) == ["metric_a", "metric_b", "n_models", "spearman",
                                 "spearman_ci_low", "spearman_ci_high", "pearson",
                                 "pearson_ci_low", "pearson_ci_high"]
    assert list(zip(out.metric_a, out.metric_b)) == [
        ("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    for row in out.itertuples():
        x, y = noisy[row.metric_a].to_numpy(), noisy[row.metric_b].to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        assert row.n_models == ok.sum()
        assert row.spearman == pytest.approx(spearmanr(x[ok], y[ok])[0], abs=1e-12)
        assert row.pearson == pytest.approx(pearsonr(x[ok], y[ok])[0], abs=1e-12)
    assert out.n_models.tolist() == [27, 26, 28, 26, 29, 27]


def test_agreement_intervals_contain_estimate_and_follow_the_seed(noisy):
    metrics = ["a", "b", "c"]
    first = mc.agreement(noisy, metrics, n_boot=400, rng=np.random.default_rng(0))
    again = mc.agreement(noisy, metrics, n_boot=400, rng=np.random.default_rng(0))
    other = mc.agreement(noisy, metrics, n_boot=400, rng=np.random.default_rng(1))
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first.spearman_ci_low, other.spearman_ci_low)
    pd.testing.assert_series_equal(first.spearman, other.spearman)  # only intervals move
    ab = first.iloc[0]
    for method in ("spearman", "pearson"):
        assert ab[f"{method}_ci_low"] <= ab[method] <= ab[f"{method}_ci_high"]
        assert ab[f"{method}_ci_low"] > 0.9  # a strongly correlated pair stays strong
        assert ab[f"{method}_ci_high"] <= 1.0
    wide = mc.agreement(noisy, metrics, n_boot=400, rng=np.random.default_rng(0), level=0.5)
    assert (wide.spearman_ci_high - wide.spearman_ci_low
            < first.spearman_ci_high - first.spearman_ci_low).all()


def test_agreement_constant_metric_or_too_few_models_gives_nan():
    t = table_of(a=[1.0, 2.0, 3.0, 4.0], k=[5.0, 5.0, 5.0, 5.0],
                 s=[1.0, np.nan, np.nan, 2.0])
    out = mc.agreement(t, ["a", "k", "s"], n_boot=20, rng=np.random.default_rng(0))
    ak, as_ = out.iloc[0], out.iloc[1]
    assert ak.n_models == 4 and as_.n_models == 2  # rows kept with their counts
    cols = ["spearman", "spearman_ci_low", "spearman_ci_high", "pearson", "pearson_ci_low",
            "pearson_ci_high"]
    assert ak[cols].isna().all() and as_[cols].isna().all()


def test_mean_off_diagonal_planted_minus_one_third():
    rng = np.random.default_rng(3)
    a = rng.normal(size=20)
    t = table_of(a=a, b=a.copy(), c=-a)  # pairwise correlations 1, -1, -1
    for method in ("spearman", "pearson"):
        out = mc.mean_off_diagonal(t, ["a", "b", "c"], n_boot=200,
                                   rng=np.random.default_rng(0), method=method)
        assert out["method"] == method and out["pairs"] == 3 and out["n_models"] == 20
        assert out["mean"] == pytest.approx(-1 / 3, abs=1e-12)
        # Every resample has the same three correlations, so the interval collapses.
        assert np.isfinite(out["ci_low"]) and np.isfinite(out["ci_high"])
        assert out["ci_low"] == pytest.approx(-1 / 3, abs=1e-12)
        assert out["ci_high"] == pytest.approx(-1 / 3, abs=1e-12)


def test_mean_off_diagonal_leaves_out_nan_pairs_and_matches_agreement(noisy):
    t = noisy.assign(k=5.0)  # constant metric: its pairs are NaN and left out
    metrics = ["a", "b", "c", "d", "k"]
    out = mc.mean_off_diagonal(t, metrics, n_boot=300, rng=np.random.default_rng(0))
    pairs = mc.agreement(t, metrics, n_boot=0, rng=np.random.default_rng(0))
    assert out["pairs"] == 6
    assert out["mean"] == pytest.approx(pairs.spearman.mean(skipna=True), abs=1e-12)
    assert out["ci_low"] < out["mean"] < out["ci_high"]


def orthogonal_pair(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Centred, exactly orthogonal a and b with var(a) = 9 var(b)."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=n), rng.normal(size=n)
    a -= a.mean()
    b -= b.mean()
    a /= np.linalg.norm(a)
    b -= (b @ a) * a  # Gram–Schmidt
    b /= np.linalg.norm(b)
    return 3.0 * a, b


def test_explained_variance_planted_nine_to_one():
    a, b = orthogonal_pair()
    assert abs(a @ b) < 1e-12 and np.var(a) == pytest.approx(9 * np.var(b), rel=1e-12)
    t = table_of(a=a, b=b)
    out = mc.explained_variance(t, ["a", "b"], {"a": "behavioural", "b": "neural"}, "mean")
    assert list(out.columns) == ["aggregation", "level", "name", "group", "n_models",
                                 "explained_variance"]
    assert out.level.tolist() == ["metric", "metric", "group", "group"]
    assert out.name.tolist() == ["a", "b", "behavioural", "neural"]
    assert out.group.tolist() == ["behavioural", "neural", "behavioural", "neural"]
    assert (out.aggregation == "mean").all() and (out.n_models == 40).all()
    np.testing.assert_allclose(out.explained_variance, [0.9, 0.1, 0.9, 0.1], atol=1e-12)


def test_explained_variance_ungrouped_metric_and_shared_group():
    a, b = orthogonal_pair()
    t = table_of(a=a, b=b)
    out = mc.explained_variance(t, ["a", "b"], {"a": "behavioural"}, "mean")
    assert out.group.tolist() == ["behavioural", "", "behavioural"]
    assert out.level.tolist() == ["metric", "metric", "group"]
    both = mc.explained_variance(t, ["a", "b"], {"a": "g", "b": "g"}, "mean")
    # A group holding every metric is the aggregate itself.
    assert both.iloc[-1].explained_variance == pytest.approx(1.0, abs=1e-12)


def test_aggregate_by_hand_with_nan_skipped():
    t = pd.DataFrame({"model": ["w", "x", "y", "z"],
                      "m1": [1.0, 3.0, 3.0, 5.0], "m2": [10.0, np.nan, 30.0, 20.0]})
    mean = mc.aggregate(t, ["m1", "m2"], "mean")
    assert mean.name == "mean" and mean.index.tolist() == ["w", "x", "y", "z"]
    np.testing.assert_allclose(mean, [5.5, 3.0, 16.5, 12.5])
    # m1: mean 3, SD √2 → z = (−√2, 0, 0, √2); m2 over w, y, z: mean 20, SD 10·√(2/3)
    # → z = (−√1.5, —, √1.5, 0).
    z = mc.aggregate(t, ["m1", "m2"], "zscore")
    r2, r15 = np.sqrt(2.0), np.sqrt(1.5)
    np.testing.assert_allclose(z, [(-r2 - r15) / 2, 0.0, r15 / 2, r2 / 2], atol=1e-12)
    # m1 ranks (1, 2.5, 2.5, 4) with the tie averaged; m2 ranks among w, y, z: (1, 3, 2).
    rank = mc.aggregate(t, ["m1", "m2"], "rank")
    np.testing.assert_allclose(rank, [1.0, 2.5, 2.75, 3.0])


def test_aggregate_model_without_any_score_is_nan():
    t = pd.DataFrame({"model": ["p", "q", "r"], "m1": [1.0, np.nan, 2.0],
                      "m2": [2.0, np.nan, 4.0]})
    for how in mc.AGGREGATIONS:
        out = mc.aggregate(t, ["m1", "m2"], how)
        assert np.isnan(out["q"]) and np.isfinite(out["p"]) and np.isfinite(out["r"])


def test_ranking_changes_identical_orderings_give_tau_one():
    t = table_of(m1=[1.0, 2.0, 3.0, 4.0, 5.0], m2=[10.0, 20.0, 30.0, 40.0, 50.0],
                 m3=[0.1, 0.3, 0.35, 0.6, 0.9])
    out = mc.ranking_changes(t, ["m1", "m2", "m3"])
    assert list(out.columns) == ["aggregation_a", "aggregation_b", "n_models", "kendall_tau"]
    assert list(zip(out.aggregation_a, out.aggregation_b)) == [
        ("mean", "zscore"), ("mean", "rank"), ("zscore", "rank")]
    np.testing.assert_allclose(out.kendall_tau, 1.0)
    assert (out.n_models == 5).all()


def test_ranking_changes_outlier_flips_the_mean():
    # Model m0 is worst on p and r but has a huge q: best by mean, second by mean rank.
    t = table_of(p=[1.0, 2.0, 3.0, 4.0, 5.0], r=[1.0, 2.0, 3.0, 4.0, 5.0],
                 q=[1000.0, 0.0, 0.1, 0.2, 0.3])
    out = mc.ranking_changes(t, ["p", "r", "q"]).set_index(["aggregation_a", "aggregation_b"])
    tau = out.loc[("mean", "rank"), "kendall_tau"]
    # Mean order m1<m2<m3<m4<m0, rank order m1<m0<m2<m3<m4: 3 of 10 pairs discordant.
    assert tau == pytest.approx(0.4, abs=1e-12)
    expected = kendalltau(mc.aggregate(t, ["p", "r", "q"], "mean"),
                          mc.aggregate(t, ["p", "r", "q"], "rank"))[0]
    assert tau == pytest.approx(expected, abs=1e-12)


def test_aggregates_table_and_ranks():
    t = table_of(p=[1.0, 2.0, 3.0, 4.0, 5.0], r=[1.0, 2.0, 3.0, 4.0, 5.0],
                 q=[1000.0, 0.0, 0.1, 0.2, 0.3])
    out = mc.aggregates(t, ["p", "r", "q"])
    assert list(out.columns) == ["model", "mean", "zscore", "rank", "rank_mean",
                                 "rank_zscore", "rank_rank"]
    assert out.model.tolist() == ["m0", "m1", "m2", "m3", "m4"]
    assert out.rank_mean.tolist() == [1.0, 5.0, 4.0, 3.0, 2.0]
    assert out.rank_rank.tolist() == [4.0, 5.0, 3.0, 2.0, 1.0]
    tied = mc.aggregates(table_of(p=[1.0, 2.0, 2.0]), ["p"])
    assert tied.rank_mean.tolist() == [3.0, 1.0, 1.0]  # ties share the best (min) rank


def test_bad_input_raises():
    t = table_of(a=[1.0, 2.0, 3.0], b=[3.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        mc.aggregate(t, ["a", "b"], "median")
    with pytest.raises(ValueError, match="nope"):
        mc.aggregate(t, ["a", "nope"], "mean")
    with pytest.raises(ValueError, match="nope"):
        mc.agreement(t, ["a", "nope"], n_boot=5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="nope"):
        mc.explained_variance(t, ["a", "nope"], {}, "mean")
    with pytest.raises(ValueError, match="unknown method"):
        mc.mean_off_diagonal(t, ["a", "b"], n_boot=5, rng=np.random.default_rng(0),
                             method="kendall")
    with pytest.raises(ValueError, match="more than one row"):
        mc.aggregate(pd.concat([t, t]), ["a"], "mean")


def test_vectorised_resample_correlations_equal_scipy():
    # The bootstrap's row-wise correlation must agree with scipy on each masked resample.
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=(40, 12)), 1)  # rounding plants ties
    y = x + rng.normal(size=(40, 12))
    mask = rng.random((40, 12)) < 0.8
    for method, func in (("spearman", spearmanr), ("pearson", pearsonr)):
        got = mc._masked_corr(x, np.where(mask, y, np.nan), mask, method, min_models=3)
        for row in range(40):
            m = mask[row]
            assert got[row] == pytest.approx(func(x[row, m], y[row, m])[0], abs=1e-12)
    flat = np.ones((1, 5))
    assert np.isnan(mc._masked_corr(flat, flat + np.arange(5), np.ones((1, 5), bool),
                                    "spearman", 3)).all()
