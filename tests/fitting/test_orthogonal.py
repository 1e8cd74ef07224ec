"""The orthogonal method, W = diag(e^a)·Q with Q a rotation: W keeps that form through a
fit, the padding stays zero, its penalty is the published code's on W, and a fit to
choices of W* = D*·R recovers what the choices identify (W*W*ᵀ), beating zero-shot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import special_ortho_group

from modelrecovery import fitting, oddoneout
from modelrecovery.fitting import orthogonal
from modelrecovery.sampling import sample_choices

F64 = torch.float64
ORTHO = fitting.Method.parse("orthogonal")


def scale_and_rotation(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """D (row norms of W) and Q = D⁻¹W, for W = D·Q."""
    s = np.linalg.norm(w, axis=1)
    return s, w / s[:, None]


def choices(x: np.ndarray, w: np.ndarray, n: int, rng: np.random.Generator,
            temperature: float = 1.0) -> np.ndarray:
    trip = np.stack([rng.choice(len(x), 3, replace=False) for _ in range(n)])
    return sample_choices(oddoneout.similarity(x, w), trip, temperature, rng)


def test_theta_makes_a_scaled_rotation_and_the_identity_at_init():
    rng = np.random.default_rng(0)
    dims = torch.tensor([3, 5])
    theta = ORTHO.init(dims, 5, F64)
    w = ORTHO.matrix(theta, 5).numpy()
    np.testing.assert_array_equal(w[1], np.eye(5))
    np.testing.assert_array_equal(w[0], np.diag([1.0, 1, 1, 0, 0]))  # zero outside 3 × 3
    theta = theta[1:] + torch.as_tensor(rng.standard_normal((1, 30)))
    s, q = scale_and_rotation(ORTHO.matrix(theta, 5)[0].numpy())
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-12)
    assert np.linalg.det(q) == pytest.approx(1.0)
    np.testing.assert_allclose(s, np.exp(theta[0, :5].numpy()), rtol=1e-12)


@pytest.mark.parametrize("reg", ["eye_distance", "l2", "l1"])
def test_the_penalty_is_the_published_penalty_on_w(reg):
    rng = np.random.default_rng(1)
    theta = ORTHO.init(torch.tensor([4]), 4, F64) + torch.as_tensor(
        rng.standard_normal((1, 20)))
    w = ORTHO.matrix(theta, 4)
    got = float(ORTHO.penalty(theta, reg, torch.tensor([4]))[0])
    assert got == pytest.approx(float(fitting.penalty(w, reg)[0]), rel=1e-12)


@pytest.mark.parametrize("reg", ["eye_distance", "l2", "l1"])
def test_a_fit_keeps_w_a_scaled_rotation_from_any_start(reg):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 4)) / 2.0
    w_true = np.diag([2.0, 1.2, 0.6, 0.3]) @ special_ortho_group.rvs(4, random_state=3)
    data = fitting.TripletSets.from_arrays([choices(x, w_true, 400, rng)], dtype=F64)
    opts = fitting.FitOptions(dtype="float64", device="cpu", method="orthogonal",
                              regulariser=reg, warm_start=False, max_iter=300)
    start = ORTHO.init(torch.tensor([4, 4]), 4, F64)
    start[1] += torch.as_tensor(rng.standard_normal(20))  # a rotated, rescaled start
    res = fitting.fit(x, data, np.array([0, 0]), np.array([0.01, 0.01]), opts, init=start)
    for w in res.weights.numpy():
        s, q = scale_and_rotation(w)
        np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
        assert (s > 0).all()
    if reg == "eye_distance":
        # The data do not see Q; the penalty takes a rotated start's Q to ±I (it is blind
        # to W's sign: c = tr(W)/n changes sign with W).
        def off(q: np.ndarray) -> float:
            return min(np.abs(q - np.eye(4)).max(), np.abs(q + np.eye(4)).max())

        assert off(scale_and_rotation(ORTHO.matrix(start[1:], 4)[0].numpy())[1]) > 0.3
        assert off(scale_and_rotation(res.weights[1].numpy())[1]) < 1e-3


def test_padding_stays_zero_beside_a_larger_candidate():
    rng = np.random.default_rng(4)
    feats = [rng.standard_normal((30, 3)), rng.standard_normal((30, 5))]
    data = fitting.TripletSets.from_arrays([choices(feats[0], np.eye(3), 300, rng)],
                                           dtype=F64)
    opts = fitting.FitOptions(dtype="float64", device="cpu", method="orthogonal",
                              warm_start=False)
    batch = fitting.fit(feats, data, np.array([0, 0]), np.array([0.01, 0.01]), opts,
                        problem_features=np.array([0, 1]))
    pad = batch.weights[0].clone()
    pad[:3, :3] = 0
    assert float(pad.abs().max()) == 0.0
    alone = fitting.fit(feats[0], data, np.array([0]), np.array([0.01]), opts)
    assert float(batch.objective[0]) == pytest.approx(float(alone.objective[0]), rel=1e-10)


def test_a_lambda_path_with_warm_starts_matches_cold_fits():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 4)) / 2.0
    data = fitting.TripletSets.from_arrays([choices(x, np.diag([2.0, 1, 0.5, 0.2]), 500,
                                                    rng)], dtype=F64)
    lam = np.array([1.0, 0.1, 0.01])
    base = dict(dtype="float64", device="cpu", method="orthogonal", grad_tol=1e-9,
                loss_tol=1e-13, max_iter=2000)
    warm = fitting.fit(x, data, np.zeros(3, dtype=int), lam, fitting.FitOptions(**base))
    cold = fitting.fit(x, data, np.zeros(3, dtype=int), lam,
                       fitting.FitOptions(**base, warm_start=False))
    np.testing.assert_allclose(warm.objective.numpy(), cold.objective.numpy(), rtol=1e-7)


def test_a_fit_recovers_a_rotated_generator_up_to_its_invisible_rotation():
    # Choices from W* = D*·R (R a random rotation): every similarity sees X W* W*ᵀ Xᵀ =
    # X D*² Xᵀ, so the data identify D*², not R. The orthogonal fit recovers W*W*ᵀ, predicts
    # held-out choices better than zero-shot (W = s·I), and exactly as well as a diagonal
    # W, whose family of similarities it shares.
    rng = np.random.default_rng(6)
    d = 4
    x = rng.standard_normal((60, d))
    rotation = special_ortho_group.rvs(d, random_state=7)
    w_true = np.diag([2.4, 1.4, 0.7, 0.2]) @ rotation
    train = choices(x, w_true, 4000, rng)
    test = choices(x, w_true, 2000, rng)
    sets = fitting.TripletSets.from_arrays([train], dtype=F64)
    held = fitting.TripletSets.from_arrays([test], dtype=F64)

    def fit(method: str, lam: float):
        opts = fitting.FitOptions(dtype="float64", device="cpu", method=method,
                                  grad_tol=1e-9, loss_tol=1e-13, max_iter=3000,
                                  warm_start=False)
        res = fitting.fit(x, sets, np.array([0]), np.array([lam]), opts)
        return res, fitting.evaluate(x, res.weights, held, np.array([0]))[1][0]

    ortho, ortho_nll = fit("orthogonal", 1e-4)
    _, zero_nll = fit("zero_shot", 0.0)
    diag, diag_nll = fit("diagonal", 1e-4)
    w = ortho.weights[0].numpy()
    m_true, m_fit = w_true @ w_true.T, w @ w.T
    assert np.linalg.norm(m_fit - m_true) / np.linalg.norm(m_true) < 0.06
    assert ortho_nll < zero_nll - 0.3
    assert ortho_nll == pytest.approx(diag_nll, abs=1e-5)
    assert float(ortho.train_nll[0]) == pytest.approx(float(diag.train_nll[0]), abs=1e-6)
    # The rotation is not recovered: the fit's own stays at the identity it started from.
    _, q = scale_and_rotation(w)
    np.testing.assert_allclose(q, np.eye(d), atol=1e-6)
    assert np.abs(rotation - np.eye(d)).max() > 0.3


def test_the_exponential_adjoint_is_the_gradient_of_the_matrix_exponential():
    rng = np.random.default_rng(8)
    k = torch.as_tensor(rng.standard_normal((2, 3, 3)), dtype=F64)
    g = torch.as_tensor(rng.standard_normal((2, 3, 3)), dtype=F64)
    kk = k.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad((torch.linalg.matrix_exp(kk) * g).sum(), kk)
    np.testing.assert_allclose(orthogonal.expm_adjoint(k, g).numpy(), ref.numpy(),
                               atol=1e-12)
