"""The batched L-BFGS kernel: it recovers a known model, batching changes nothing, and it
reaches the same optimum as torch's own L-BFGS with a strong-Wolfe line search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from modelrecovery import fitting, oddoneout, sampling

F64 = torch.float64


def per_triplet_nll(sim: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    logits = oddoneout.pair_logits(sim, triplets)
    return logsumexp(logits, axis=1) - logits[:, 0]


def simulated_problem(seed: int, n: int, d: int, sizes: list[int], scale: float):
    """Random X (n, d), a known W_true, and triplet sets with choices drawn from it (T = 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w_true = scale * rng.normal(size=(d, d))
    sim = oddoneout.similarity(x, w_true)
    trip = sampling.sample_triplets(np.arange(n), sum(sizes), rng, n)
    trip = sampling.sample_choices(sim, trip, 1.0, rng)
    edges = np.cumsum([0, *sizes])
    return x, w_true, sim, [trip[a:b] for a, b in zip(edges[:-1], edges[1:])]


@pytest.fixture(scope="module")
def known_model():
    return simulated_problem(0, n=40, d=4, sizes=[4000, 2000], scale=0.6)


def test_fit_recovers_known_model(known_model):
    x, w_true, sim_true, (train, test) = known_model
    n_train, d = len(train), x.shape[1]
    options = fitting.FitOptions(regulariser="eye_distance", dtype="float64", device="cpu",
                               grad_tol=1e-8, loss_tol=1e-12, max_iter=1000)
    res = fitting.fit(x, fitting.TripletSets.from_arrays([train], dtype=F64), np.array([0]),
                    np.array([1e-4]), options)
    assert bool(res.converged[0]), res.status
    test_set = fitting.TripletSets.from_arrays([test], dtype=F64)
    acc, nll = fitting.evaluate(x, res.weights, test_set, np.array([0]))

    sim_fit = oddoneout.similarity(x, res.weights[0].numpy())
    diff = per_triplet_nll(sim_fit, test) - per_triplet_nll(sim_true, test)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    # evaluate() reports the same mean test NLL as the reference formula.
    assert nll[0] == pytest.approx(per_triplet_nll(sim_fit, test).mean(), rel=1e-10)
    # A maximum-likelihood fit with p free parameters is expected to lose about p/(2N)
    # nats per judgement on fresh data (Akaike's asymptotics; p = d² = 16 here, an upper
    # bound since S depends on W Wᵀ only). So the fitted model's test NLL must lie within
    # 3 standard errors of the true model's, after allowing twice that expected excess;
    # and it cannot beat the true model by more than chance (3 SE).
    excess = d * d / (2 * n_train)
    assert diff.mean() <= 2 * excess + 3 * se, (diff.mean(), se, excess)
    assert diff.mean() >= -3 * se, (diff.mean(), se)
    # The geometry itself is recovered (W only up to a rotation, so compare S).
    assert np.linalg.norm(sim_fit - sim_true) / np.linalg.norm(sim_true) < 0.1
    # ...and the fit is far better than the untransformed features and than chance.
    raw = oddoneout.nll(oddoneout.similarity(x), test)
    assert nll[0] < raw - 0.2 and nll[0] < np.log(3) - 0.4
    true_acc = oddoneout.accuracy(sim_true, test)
    assert abs(acc[0] - true_acc) < 0.03


@pytest.mark.parametrize("gather", ["similarity", "rows", "pairs"])
@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_batched_fit_equals_fits_alone(regulariser, gather):
    x, _, _, sets = simulated_problem(1, n=30, d=4, sizes=[300, 500, 200], scale=0.5)
    options = fitting.FitOptions(regulariser=regulariser, dtype="float64", device="cpu",
                               gather=gather, grad_tol=1e-9, loss_tol=1e-13, max_iter=1000,
                               warm_start=False)
    problem_set = np.array([0, 1, 2, 0, 1])  # sets of different lengths: padding involved
    lambdas = np.array([1e-3, 1e-2, 0.1, 1.0, 3.0])
    batch = fitting.fit(x, fitting.TripletSets.from_arrays(sets, dtype=F64), problem_set,
                      lambdas, options)
    for b, (s, lam) in enumerate(zip(problem_set, lambdas)):
        alone = fitting.fit(x, fitting.TripletSets.from_arrays([sets[s]], dtype=F64),
                          np.array([0]), np.array([lam]), options)
        assert bool(batch.converged[b]) and bool(alone.converged[0])
        assert float(batch.objective[b]) == pytest.approx(float(alone.objective[0]),
                                                          rel=1e-11)
        assert float(batch.train_nll[b]) == pytest.approx(float(alone.train_nll[0]),
                                                          rel=1e-7)
        # At λ = 1e-3 the objective is nearly flat along some directions of W; summing
        # over padded rows rounds differently (1e-16), which after ~100 iterations moves
        # the stopping point by up to ~1e-5 along that flat valley while the objective
        # agrees to 1e-13. A shared line search or shared history would differ at O(1e-2).
        np.testing.assert_allclose(batch.weights[b].numpy(), alone.weights[0].numpy(),
                                   rtol=0, atol=2e-5)
    # The λ grid matters: on one set, the weakest λ fits the training data best.
    assert float(batch.train_nll[0]) < float(batch.train_nll[3]) - 1e-3
    assert float(batch.train_nll[1]) < float(batch.train_nll[4]) - 1e-3


@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_batched_fit_takes_the_same_steps_as_alone(regulariser):
    # Fixed short runs (no tolerance can stop them): each problem's iterate after 10
    # L-BFGS steps must match its solo run to rounding. A batched optimiser that shared
    # a step length, a line search or curvature pairs across problems fails this at O(1e-3).
    # (Not many more steps: by 12 the λ = 2 fit has reached the rounding floor, where
    # curvature pairs are noise and iterates may drift apart by 1e-9.)
    x, _, _, sets = simulated_problem(5, n=30, d=4, sizes=[250, 400, 150], scale=0.5)
    options = fitting.FitOptions(regulariser=regulariser, dtype="float64", device="cpu",
                               max_iter=10, grad_tol=1e-30, loss_tol=1e-30, warm_start=False)
    problem_set = np.array([0, 1, 2, 2])
    lambdas = np.array([1e-3, 0.05, 0.3, 2.0])
    batch = fitting.fit(x, fitting.TripletSets.from_arrays(sets, dtype=F64), problem_set,
                      lambdas, options)
    for b, (s, lam) in enumerate(zip(problem_set, lambdas)):
        alone = fitting.fit(x, fitting.TripletSets.from_arrays([sets[s]], dtype=F64),
                          np.array([0]), np.array([lam]), options)
        assert int(batch.iterations[b]) == int(alone.iterations[0])
        assert batch.status[b] == alone.status[0]
        np.testing.assert_allclose(batch.weights[b].numpy(), alone.weights[0].numpy(),
                                   rtol=0, atol=1e-10)
        assert float(batch.objective[b]) == pytest.approx(float(alone.objective[0]),
                                                          rel=1e-13)


def reference_lbfgs(x: np.ndarray, triplets: np.ndarray, lam: float, regulariser: str
                    ) -> tuple[float, np.ndarray]:
    """torch.optim.LBFGS with strong-Wolfe line search on the same objective, from W = I."""
    data = fitting.TripletSets.from_arrays([triplets], dtype=F64)
    options = fitting.FitOptions(regulariser=regulariser, dtype="float64")
    fun = fitting.objective(x, data, np.array([0]), np.array([lam]), options)
    idx = torch.tensor([0])
    w = torch.eye(x.shape[1], dtype=F64)[None].clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=5000, tolerance_grad=1e-12,
                            tolerance_change=1e-16, history_size=10,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        obj = fun.parts(w, idx)[0].sum()
        obj.backward()
        return obj

    for _ in range(3):
        opt.step(closure)
    with torch.no_grad():
        return float(fun.parts(w, idx)[0][0]), w.detach()[0].numpy()


@pytest.mark.parametrize("regulariser,lam", [("eye_distance", 1e-3), ("eye_distance", 0.1),
                                             ("l2", 1e-3), ("l2", 0.1)])
def test_kernel_matches_torch_lbfgs_strong_wolfe(regulariser, lam):
    x, _, _, (train,) = simulated_problem(2, n=30, d=4, sizes=[400], scale=0.5)
    ref_obj, ref_w = reference_lbfgs(x, train, lam, regulariser)
    data = fitting.TripletSets.from_arrays([train], dtype=F64)
    options = fitting.FitOptions(regulariser=regulariser, dtype="float64", device="cpu",
                               grad_tol=1e-9, loss_tol=1e-12)
    res = fitting.fit(x, data, np.array([0]), np.array([lam]), options)
    assert bool(res.converged[0]), res.status
    assert abs(float(res.objective[0]) - ref_obj) <= 1e-6 * abs(ref_obj)
    # At the default tolerances (relative loss change 1e-7 per iteration) the kernel
    # stops a little earlier on the slowly converging small-λ problem: within 1e-5.
    default = fitting.fit(x, data, np.array([0]), np.array([lam]),
                        fitting.FitOptions(regulariser=regulariser, dtype="float64",
                                         device="cpu"))
    assert bool(default.converged[0]), default.status
    assert abs(float(default.objective[0]) - ref_obj) <= 1e-5 * abs(ref_obj)
    # The kernel cannot be meaningfully below the reference optimum either.
    assert float(res.objective[0]) >= ref_obj - 1e-9 * abs(ref_obj)
    sim_k = oddoneout.similarity(x, res.weights[0].numpy())
    sim_r = oddoneout.similarity(x, ref_w)
    assert np.linalg.norm(sim_k - sim_r) / np.linalg.norm(sim_r) < 1e-2


def test_float32_fit_reaches_the_float64_optimum():
    x, _, _, (train,) = simulated_problem(3, n=30, d=4, sizes=[400], scale=0.5)
    objs = {}
    for dtype in ("float32", "float64"):
        options = fitting.FitOptions(dtype=dtype, device="cpu")
        data = fitting.TripletSets.from_arrays([train], dtype=options.torch_dtype)
        res = fitting.fit(x, data, np.array([0]), np.array([0.01]), options)
        assert bool(res.converged[0]), (dtype, res.status)
        objs[dtype] = float(res.objective[0])
    assert objs["float32"] == pytest.approx(objs["float64"], rel=1e-4)


def test_iteration_cap_is_reported_as_not_converged():
    x, _, _, (train,) = simulated_problem(4, n=30, d=4, sizes=[300], scale=0.5)
    options = fitting.FitOptions(dtype="float64", device="cpu", max_iter=2, grad_tol=1e-12,
                               loss_tol=1e-15)
    res = fitting.fit(x, fitting.TripletSets.from_arrays([train], dtype=F64), np.array([0]),
                    np.array([1e-3]), options)
    assert res.status == ["max_iter"]
    assert not bool(res.converged[0])
    assert int(res.iterations[0]) == 2
    # Objective after two steps is below the starting point W = I.
    start = fitting.fit(x, fitting.TripletSets.from_arrays([train], dtype=F64), np.array([0]),
                      np.array([1e-3]),
                      fitting.FitOptions(dtype="float64", device="cpu", max_iter=0))
    assert float(res.objective[0]) < float(start.objective[0])
    np.testing.assert_array_equal(start.weights[0].numpy(), np.eye(4))
