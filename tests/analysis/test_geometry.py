"""Geometry computations on inputs with known answers, cross-checked against rsatoolbox."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from modelrecovery.analysis import geometry


def random_features(n: int = 12, d: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def orthonormal(rows: int, cols: int, rng: np.random.Generator, centred: bool = False
                ) -> np.ndarray:
    """(rows, cols) with orthonormal columns; ``centred``: each column also sums to 0."""
    a = rng.normal(size=(rows, cols))
    if centred:
        a -= a.mean(axis=0)
    q, _ = np.linalg.qr(a)
    return q


# --------------------------------------------------------------------------- rsatoolbox


def rsa_dataset(x: np.ndarray):
    import rsatoolbox.data

    return rsatoolbox.data.Dataset(np.asarray(x, dtype=np.float64))


def test_correlation_rdm_matches_rsatoolbox():
    from rsatoolbox.rdm import calc_rdm

    x = random_features()
    theirs = calc_rdm(rsa_dataset(x), method="correlation").get_vectors()[0]
    # Same definition: 1 − Pearson r between rows; same upper-triangle order (row-major).
    np.testing.assert_allclose(geometry.upper(geometry.rdm(x, "correlation")), theirs,
                               rtol=0, atol=1e-12)


def test_euclidean_rdm_matches_rsatoolbox_squared_over_d():
    from rsatoolbox.rdm import calc_rdm

    x = random_features()
    theirs = calc_rdm(rsa_dataset(x), method="euclidean").get_vectors()[0]
    # rsatoolbox 0.3.x calc_rdm_euclidean returns the *squared* Euclidean distance divided
    # by the number of channels d (its rdm_descriptor says 'squared euclidean'); ours is
    # the plain distance, so compare ours² / d with theirs.
    ours = geometry.upper(geometry.rdm(x, "euclidean"))
    np.testing.assert_allclose(ours ** 2 / x.shape[1], theirs, rtol=1e-10, atol=1e-12)
    # Monotone transform: the Spearman comparison of RDMs cannot tell them apart.
    assert spearmanr(ours, theirs).statistic == pytest.approx(1.0)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rdm_similarity_matches_rsatoolbox_spearman(metric):
    from rsatoolbox.rdm import calc_rdm, compare

    rng = np.random.default_rng(1)
    x = random_features(n=15, d=6, seed=1)
    w = rng.normal(size=(6, 6))
    r1 = calc_rdm(rsa_dataset(x), method=metric)
    r2 = calc_rdm(rsa_dataset(x @ w), method=metric)
    theirs = float(compare(r1, r2, method="spearman")[0, 0])
    ours = geometry.rdm_similarity(geometry.rdm(x, metric), geometry.rdm(x @ w, metric))
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert geometry.geometry_shift(x, w, metric) == pytest.approx(1 - theirs, abs=1e-12)


def test_rsa_matrix_matches_rsatoolbox_compare():
    from rsatoolbox.rdm import calc_rdm, compare

    rng = np.random.default_rng(2)
    n = 10
    feats = {"a": rng.normal(size=(n, 5)), "b": rng.normal(size=(n, 8)),
             "c": rng.normal(size=(n, 3))}
    feats["d"] = feats["a"] @ rng.normal(size=(5, 5))  # related to "a"
    ours = geometry.rsa_matrix(feats, "correlation")
    rdms = calc_rdm([rsa_dataset(f) for f in feats.values()], method="correlation")
    theirs = compare(rdms, rdms, method="spearman")
    assert list(ours.index) == list(ours.columns) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(ours.to_numpy(), theirs, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.diag(ours.to_numpy()), 1.0)


# --------------------------------------------------------------------------- RDMs


def test_rdm_definitions():
    x = random_features(n=9, d=5, seed=3)
    np.testing.assert_allclose(geometry.rdm(x, "euclidean"), squareform(pdist(x)),
                               atol=1e-12)
    np.testing.assert_allclose(geometry.rdm(x, "correlation"),
                               squareform(pdist(x, "correlation")), atol=1e-12)
    base = np.array([1.0, 2.0, 4.0, 0.5])
    y = np.stack([base, 3 * base + 7, -base])
    r = geometry.rdm(y, "correlation")
    assert r.dtype == np.float64 and r.shape == (3, 3)
    assert r[0, 1] == pytest.approx(0.0, abs=1e-12)   # affine copy: r = 1
    assert r[0, 2] == pytest.approx(2.0, abs=1e-12)   # negated: r = −1
    np.testing.assert_array_equal(np.diag(r), 0.0)
    np.testing.assert_array_equal(r, r.T)


def test_upper_order_and_length():
    m = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(geometry.upper(m), [1, 2, 3, 6, 7, 11])


def test_rdm_refuses_bad_input():
    with pytest.raises(ValueError, match="constant"):
        geometry.rdm(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [0.0, 1.0, 5.0]]))
    with pytest.raises(ValueError, match="metric"):
        geometry.rdm(random_features(), "cosine")  # type: ignore[arg-type]


def test_rsa_matrix_constant_rdm_is_nan():
    rng = np.random.default_rng(4)
    n = 6
    # The vertices of a regular simplex are equidistant: a constant Euclidean RDM.
    feats = {"simplex": np.eye(n), "x": rng.normal(size=(n, 3)), "y": rng.normal(size=(n, 4))}
    r = geometry.rsa_matrix(feats, "euclidean")
    assert r.loc["simplex"].isna().all() and r["simplex"].isna().all()
    assert r.loc["x", "x"] == 1.0
    assert r.loc["x", "y"] == pytest.approx(geometry.rdm_similarity(
        geometry.rdm(feats["x"], "euclidean"), geometry.rdm(feats["y"], "euclidean")))
    assert np.isnan(geometry.rdm_similarity(geometry.rdm(np.eye(n), "euclidean"),
                                            geometry.rdm(feats["x"], "euclidean")))


# --------------------------------------------------------------------------- geometry shift


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_geometry_shift_zero_for_scaled_identity(metric):
    x = random_features(n=20, d=6, seed=5)
    assert geometry.geometry_shift(x, 2.5 * np.eye(6), metric) == pytest.approx(0, abs=1e-12)


def test_geometry_shift_zero_for_orthogonal_with_euclidean():
    rng = np.random.default_rng(6)
    x = random_features(n=20, d=6, seed=6)
    q = orthonormal(6, 6, rng)
    assert geometry.geometry_shift(x, q, "euclidean") == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_geometry_shift_positive_for_distorting_transform(metric):
    x = random_features(n=30, d=6, seed=7)
    # Blow up one feature and nearly remove the rest: the geometry becomes ~1-D.
    w = np.diag([50.0, 0.05, 0.05, 0.05, 0.05, 0.05])
    shift = geometry.geometry_shift(x, w, metric)
    assert shift > 0.3
    # A low-rank (d, k) transform is accepted too.
    assert geometry.geometry_shift(x, np.eye(6)[:, :2], metric) > 0.1


# --------------------------------------------------------------------------- MDS


def test_mds_recovers_a_planar_configuration():
    rng = np.random.default_rng(8)
    config = rng.normal(size=(9, 2)) * [3.0, 1.0]
    d = squareform(pdist(config))
    coords = geometry.mds(d, 2, seed=0)
    assert coords.shape == (9, 2)
    np.testing.assert_allclose(squareform(pdist(coords)), d, atol=1e-10)
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-12)
    # Deterministic, with the largest-magnitude coordinate of each axis positive.
    np.testing.assert_array_equal(coords, geometry.mds(d, 2))
    for c in coords.T:
        assert c[np.argmax(np.abs(c))] > 0
    # Rotating and reflecting the configuration gives the same map.
    rot = np.array([[0.0, -1.0], [1.0, 0.0]]) @ np.diag([1.0, -1.0])
    np.testing.assert_allclose(geometry.mds(squareform(pdist(config @ rot)), 2), coords,
                               atol=1e-9)


def test_mds_of_one_minus_rsa():
    rng = np.random.default_rng(9)
    feats = {f"m{i}": rng.normal(size=(8, 4)) for i in range(5)}
    diss = 1.0 - geometry.rsa_matrix(feats).to_numpy()
    coords = geometry.mds(diss)
    assert coords.shape == (5, 2) and np.all(np.isfinite(coords))
    with pytest.raises(ValueError, match="non-finite"):
        geometry.mds(np.full((3, 3), np.nan))


# --------------------------------------------------------------------------- dimensionality


def test_participation_ratio_known_spectrum():
    rng = np.random.default_rng(10)
    n, d, r = 40, 9, 5
    u = orthonormal(n, r, rng, centred=True)
    v = orthonormal(d, r, rng)
    s = np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    x = u @ np.diag(s) @ v.T + rng.normal(size=d) * 100  # a constant offset per feature
    expected = np.sum(s ** 2) ** 2 / np.sum(s ** 4)
    assert geometry.participation_ratio(x) == pytest.approx(expected, rel=1e-10)


def test_participation_ratio_isotropic_and_rank_one():
    rng = np.random.default_rng(11)
    n, d = 30, 6
    iso = orthonormal(n, d, rng, centred=True) @ orthonormal(d, d, rng).T * 4.0
    assert geometry.participation_ratio(iso) == pytest.approx(d, rel=1e-10)
    rank_one = np.outer(rng.normal(size=n), rng.normal(size=d))
    assert geometry.participation_ratio(rank_one) == pytest.approx(1.0, rel=1e-10)
    assert np.isnan(geometry.participation_ratio(np.ones((5, 3))))
    before, after = geometry.effective_dimensionality(iso, np.diag([1.0, 0, 0, 0, 0, 0]))
    assert before == pytest.approx(d, rel=1e-10) and after == pytest.approx(1.0, rel=1e-10)
    before, after = geometry.effective_dimensionality(iso, 3 * np.eye(d)[:, :2])
    assert after == pytest.approx(2.0, rel=1e-10)


# --------------------------------------------------------------------------- intrinsic dimension


def test_neighbour_distances_match_a_kd_tree_and_drop_duplicates():
    from scipy.spatial import cKDTree

    x = np.unique(random_features(n=300, d=40, seed=20), axis=0)  # the rows, sorted
    ours = geometry.neighbour_distances(x, 7)
    theirs = cKDTree(x).query(x, k=8)[0][:, 1:]  # the first neighbour is the point itself
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    # A repeated row counts once: its zero distance would make every ratio undefined.
    doubled = np.vstack([x, x[:5]])
    np.testing.assert_array_equal(geometry.neighbour_distances(doubled, 7), ours)
    with pytest.raises(ValueError, match="distinct points"):
        geometry.neighbour_distances(x[:3], 3)


def test_twonn_is_the_closed_form_likelihood_on_a_hand_built_line():
    # Points 0, 1, 3, 7 on a line: (r1, r2) = (1, 3), (1, 2), (2, 3), (4, 6), so
    # μ = 3, 2, 1.5, 1.5 and d̂ = (m − 1) / Σ log μ with m = 4. Rotated into 5-D and
    # shifted, distances and so the estimate are unchanged.
    expected = 3 / (np.log(3) + np.log(2) + 2 * np.log(1.5))
    line = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert geometry.twonn(line) == pytest.approx(expected, rel=1e-12)
    q = orthonormal(5, 1, np.random.default_rng(21))
    assert geometry.twonn(line @ q.T + 2.0) == pytest.approx(expected, rel=1e-9)
    assert np.isnan(geometry.twonn(np.ones((6, 3))))  # one distinct point


@pytest.mark.parametrize("k", [2, 3, 5])
def test_twonn_and_gride_find_the_dimension_of_a_linear_subspace(k):
    # m = 2000 Gaussian points on a k-dimensional subspace of R^30. Under the Pareto law
    # of μ the TwoNN estimate has standard error d / √m (0.07 for d = 3); the tolerance
    # is 4 of them (a Gaussian has no boundary, whose points bias TwoNN down).
    # GriDE pools larger neighbourhoods, so its spread is far smaller; its tolerance, 5%
    # of d, covers the bias from the Gaussian's density gradient at the larger scales.
    rng = np.random.default_rng(22 + k)
    x = rng.normal(size=(2000, k)) @ orthonormal(30, k, rng).T
    assert abs(geometry.twonn(x) - k) < 4 * k / np.sqrt(2000)
    assert abs(geometry.gride(x) - k) < 0.05 * k
    # Seen through a linear map of full rank the manifold keeps its dimension.
    w = rng.normal(size=(30, 30))
    assert abs(geometry.twonn(x @ w) - k) < 4 * k / np.sqrt(2000)


def test_gride_first_scale_is_the_twonn_likelihood_and_maximises_its_own():
    from scipy.special import betaln

    rng = np.random.default_rng(23)
    r = np.sort(rng.uniform(1.0, 2.0, size=(50, 4)), axis=1)
    lm = np.log(r[:, 1] / r[:, 0])
    # n1 = 1, n2 = 2: the Pareto likelihood, maximised at m / Σ log μ.
    assert geometry._gride_scale(lm, 1, 2) == pytest.approx(len(lm) / lm.sum(), rel=1e-8)
    # n1 = 2, n2 = 4: the root beats every other d of the written-out log likelihood.
    lm = np.log(r[:, 3] / r[:, 1])

    def loglik(d: float) -> float:
        return float(np.sum(np.log(d) + np.log(np.expm1(d * lm)) - (3 * d + 1) * lm)
                     - len(lm) * betaln(2, 2))

    best = geometry._gride_scale(lm, 2, 4)
    grid = np.linspace(0.5 * best, 2 * best, 301)
    assert all(loglik(best) >= loglik(d) - 1e-9 for d in grid)
    assert loglik(best) > loglik(1.01 * best) and loglik(best) > loglik(0.99 * best)
