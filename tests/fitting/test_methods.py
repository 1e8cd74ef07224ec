"""Alignment methods (zero_shot, diagonal, low_rank:k, full) × regularisers (incl. l1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from modelrecovery import fitting, oddoneout
from modelrecovery.sampling import sample_choices

F64 = torch.float64


def problem(seed: int, n: int = 25, d: int = 4, n_trip: int = 200):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) / np.sqrt(d)
    sim = oddoneout.similarity(x, 2.0 * np.eye(d) + 0.5 * rng.standard_normal((d, d)))
    t = np.stack([rng.choice(n, 3, replace=False) for _ in range(n_trip)])
    return x, sample_choices(sim, t, 1.0, rng), rng


def explicit_w(method: fitting.Method, theta: np.ndarray, d: int) -> np.ndarray:
    if method.kind == "zero_shot":
        return np.exp(theta[0]) * np.eye(d)
    if method.kind == "diagonal":
        return np.diag(theta)
    return theta.reshape(d, method.out_dim(d))


def brute_penalty(w: np.ndarray, reg: str, kind: str) -> float:
    if kind == "zero_shot":
        return 0.0
    if reg == "l1":
        return float(np.abs(w).sum())
    if reg == "l2":
        return float((w ** 2).sum())
    n = min(w.shape)
    c = np.trace(w[:n, :n]) / n
    eye = np.zeros_like(w)
    eye[np.arange(n), np.arange(n)] = 1.0
    return float(((w - c * eye) ** 2).sum())


@pytest.mark.parametrize("reg", ["eye_distance", "l2", "l1"])
@pytest.mark.parametrize("text", ["zero_shot", "diagonal", "low_rank:2", "low_rank:6", "full"])
def test_objective_matches_explicit_transform(text, reg):
    x, trip, rng = problem(1)
    method = fitting.Method.parse(text)
    d = x.shape[1]
    theta = rng.standard_normal(method.n_params(d)) + (1.0 if method.kind != "low_rank" else 0)
    data = fitting.TripletSets.from_arrays([trip], dtype=F64)
    opts = fitting.FitOptions(regulariser=reg, method=text, dtype="float64", reduce_rank=False)
    fun = fitting.objective(x, data, np.array([0]), np.array([0.4]), opts)
    obj, grad = fun(torch.as_tensor(theta[None]), torch.tensor([0]))
    w = explicit_w(method, theta, d)
    expected = oddoneout.nll(oddoneout.similarity(x, w), trip) + 0.4 * brute_penalty(
        w, reg, method.kind)
    assert float(obj[0]) == pytest.approx(expected, rel=1e-12)
    if reg != "l1":  # |θ| is not differentiable at 0; the rest are smooth
        th = torch.as_tensor(theta[None]).clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda v: fun.batch.parts(v, torch.tensor([0]))[0],
                                        (th,), eps=1e-6, atol=1e-7, rtol=1e-6)
    assert grad.shape == (1, method.n_params(d))


@pytest.mark.parametrize("reg", ["eye_distance", "l2"])
@pytest.mark.parametrize("text", ["zero_shot", "diagonal", "low_rank:2", "full"])
def test_penalty_hessian_times_vectors_equals_autograd(text, reg):
    # Warm starts carry their curvature pairs to the next λ by y += Δλ·∇²R·s.
    method = fitting.Method.parse(text)
    dims = torch.tensor([4, 3])  # the second problem padded to D = 4
    mask, n = method.trace_mask(dims, 4, F64)
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(2, method.n_params(4), dtype=F64, generator=gen)
    v = torch.randn(2, method.n_params(4), 3, dtype=F64, generator=gen)
    got = method.penalty_hvp(v, reg, mask, n)
    for b in range(2):
        def pen(t, b=b):
            return method.penalty_and_grad(t[None], reg, mask[b:b + 1], n[b:b + 1])[0][0]
        for col in range(3):
            _, expected = torch.autograd.functional.hvp(pen, theta[b], v[b, :, col])
            torch.testing.assert_close(got[b, :, col], expected, rtol=1e-12, atol=1e-12)


def test_low_rank_with_k_equal_d_is_the_full_method():
    x, trip, _ = problem(2)
    data = fitting.TripletSets.from_arrays([trip], dtype=F64)
    kw = dict(dtype="float64", grad_tol=1e-10, loss_tol=1e-14, warm_start=False,
              reduce_rank=False)
    full = fitting.fit(x, data, np.zeros(2, int), np.array([0.01, 0.3]),
                     fitting.FitOptions(method="full", **kw))
    low = fitting.fit(x, data, np.zeros(2, int), np.array([0.01, 0.3]),
                    fitting.FitOptions(method="low_rank:4", **kw))
    np.testing.assert_allclose(low.objective.numpy(), full.objective.numpy(), rtol=1e-10)


def test_zero_shot_fits_only_a_scale():
    x, trip, _ = problem(3)
    data = fitting.TripletSets.from_arrays([trip], dtype=F64)
    res = fitting.fit(x, data, np.array([0]), np.array([1.0]),
                    fitting.FitOptions(method="zero_shot", dtype="float64", grad_tol=1e-10,
                                     loss_tol=1e-14))
    w = res.weights[0].numpy()
    s = w[0, 0]
    np.testing.assert_allclose(w, s * np.eye(x.shape[1]), atol=1e-14)
    # The 1-D optimum of the NLL over the scale s (no penalty for zero_shot).
    ref = minimize_scalar(lambda v: oddoneout.nll(oddoneout.similarity(x, v * np.eye(4)), trip),
                          bounds=(0.01, 20.0), method="bounded", options={"xatol": 1e-10})
    assert float(res.objective[0]) == pytest.approx(ref.fun, rel=1e-8)
    # Accuracy is scale-free: zero-shot accuracy is the raw features' accuracy.
    assert oddoneout.accuracy(oddoneout.similarity(x, w), trip) == pytest.approx(
        oddoneout.accuracy(oddoneout.similarity(x), trip))


def test_zero_shot_never_collapses_features_that_predict_nothing():
    # Choices unrelated to x: the best scale shrinks towards 0, yet s stays > 0 and the
    # raw ranking (zero-shot accuracy) survives; W = 0 would turn every triplet into a tie.
    x, _, rng = problem(8, d=4)
    trip = np.stack([rng.choice(25, 3, replace=False) for _ in range(300)])
    res = fitting.fit(x, fitting.TripletSets.from_arrays([trip], dtype=F64), np.array([0]),
                    np.array([0.0]), fitting.FitOptions(method="zero_shot", dtype="float64"))
    w = res.weights[0].numpy()
    assert 0 < w[0, 0] < 1
    assert oddoneout.accuracy(oddoneout.similarity(x, w), trip) == pytest.approx(
        oddoneout.accuracy(oddoneout.similarity(x), trip))


@pytest.mark.parametrize("text", ["diagonal", "low_rank:3"])
def test_methods_batch_across_candidates_of_different_dimension(text):
    rng = np.random.default_rng(4)
    feats = [rng.standard_normal((30, d)) / np.sqrt(d) for d in (3, 5)]
    _, trip, _ = problem(4, n=30, d=3)
    data = fitting.TripletSets.from_arrays([trip], dtype=F64)
    kw = dict(method=text, dtype="float64", grad_tol=1e-10, loss_tol=1e-14,
              warm_start=False)
    lam = np.array([0.05, 0.05, 0.5])
    pf = np.array([0, 1, 1])
    batch = fitting.fit(feats, data, np.zeros(3, int), lam, fitting.FitOptions(**kw),
                      problem_features=pf)
    for b in range(3):
        alone = fitting.fit(feats[pf[b]], data, np.array([0]), lam[b:b + 1],
                          fitting.FitOptions(**kw))
        assert float(batch.objective[b]) == pytest.approx(float(alone.objective[0]),
                                                          rel=1e-9)


def test_more_flexible_methods_fit_training_data_better():
    x, trip, _ = problem(5, d=5, n_trip=400)
    data = fitting.TripletSets.from_arrays([trip], dtype=F64)
    nll = {}
    for text in ("zero_shot", "diagonal", "low_rank:2", "full"):
        res = fitting.fit(x, data, np.array([0]), np.array([1e-4]),
                        fitting.FitOptions(method=text, dtype="float64"))
        nll[text] = float(res.train_nll[0])
    assert nll["full"] < nll["diagonal"] < nll["zero_shot"]
    assert nll["full"] <= nll["low_rank:2"] + 1e-6


def test_l1_gives_sparser_transforms_than_l2():
    x, trip, _ = problem(6, d=6, n_trip=400)
    data = fitting.TripletSets.from_arrays([trip], dtype=F64)
    out = {}
    for reg in ("l1", "l2"):
        res = fitting.fit(x, data, np.array([0]), np.array([0.02]),
                        fitting.FitOptions(regulariser=reg, dtype="float64"))
        w = res.weights[0].numpy()
        out[reg] = (np.abs(w) < 1e-3 * np.abs(w).max()).mean()
        assert float(res.objective[0]) < np.log(3)  # it fitted something
    assert out["l1"] > out["l2"]


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="low_rank:32"):
        fitting.FitOptions(method="low_rank")
    with pytest.raises(ValueError, match="unknown alignment method"):
        fitting.FitOptions(method="banana")
