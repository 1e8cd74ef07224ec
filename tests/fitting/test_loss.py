"""The odd-one-out likelihood, its gradient and tie-aware accuracy against brute force.

The reference here is written from the model's definition in docs/study.md, one triplet at a
time with explicit exp/log, so it shares no code with the package:

    p(k odd | i, j, k) = exp(S_ij) / (exp(S_ij) + exp(S_ik) + exp(S_jk)),  S = (XW)(XW)ᵀ
    L(W) = Σ_t w_t (−log p_t) / Σ_t w_t + λ R(W)
    R(W) = ‖W − cI‖²_F with c = tr(W)/d (eye_distance)  or  ‖W‖²_F (l2)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelrecovery import fitting, oddoneout

REGULARISERS = ["eye_distance", "l2"]
GATHERS = ["similarity", "rows", "pairs"]


# ----------------------------------------------------------------- brute-force reference


def brute_penalty(w: np.ndarray, regulariser: str) -> float:
    d = w.shape[0]
    if regulariser == "l2":
        return float(sum(w[a, b] ** 2 for a in range(d) for b in range(d)))
    c = sum(w[a, a] for a in range(d)) / d  # c = tr(W)/d, computed explicitly
    target = c * np.eye(d)
    return float(sum((w[a, b] - target[a, b]) ** 2 for a in range(d) for b in range(d)))


def brute_penalty_grad(w: np.ndarray, regulariser: str) -> np.ndarray:
    # d/dW ‖W‖² = 2W.  d/dW ‖W − cI‖² = 2(W − cI): the term through c vanishes because
    # Σ_a (W_aa − c) = tr(W) − d·c = 0.
    if regulariser == "l2":
        return 2.0 * w
    d = w.shape[0]
    return 2.0 * (w - np.trace(w) / d * np.eye(d))


def brute_nll_and_grad(x: np.ndarray, w: np.ndarray, triplets: np.ndarray,
                       counts: np.ndarray, temperature: float = 1.0
                       ) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted mean NLL, its gradient in W, and the per-triplet choice probabilities."""
    z = x @ w
    total, weight = 0.0, 0.0
    grad = np.zeros_like(w)
    probs = np.zeros((len(triplets), 3))
    for t, (i, j, k) in enumerate(triplets):
        s_ij = float(np.dot(z[i], z[j])) / temperature
        s_ik = float(np.dot(z[i], z[k])) / temperature
        s_jk = float(np.dot(z[j], z[k])) / temperature
        e_ij, e_ik, e_jk = math.exp(s_ij), math.exp(s_ik), math.exp(s_jk)
        denom = e_ij + e_ik + e_jk
        p = np.array([e_ij / denom, e_ik / denom, e_jk / denom])
        probs[t] = p
        total += counts[t] * -math.log(e_ij / denom)
        weight += counts[t]
        # dNLL/dS_pair = p_pair − [pair is the chosen one]; dS_ab/dW = x_a z_bᵀ + x_b z_aᵀ
        dlogit = (p - np.array([1.0, 0.0, 0.0])) * counts[t] / temperature
        for g, (a, b) in zip(dlogit, ((i, j), (i, k), (j, k))):
            grad += g * (np.outer(x[a], z[b]) + np.outer(x[b], z[a]))
    return total / weight, grad / weight, probs


def make_problem(seed: int, n: int = 9, d: int = 3, n_trip: int = 25):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = np.eye(d) + 0.4 * rng.normal(size=(d, d))
    trip = np.array([rng.choice(n, size=3, replace=False) for _ in range(n_trip)])
    counts = rng.integers(1, 4, size=n_trip).astype(np.float64)
    return x, w, trip, counts


# ----------------------------------------------------------------- torch kernel


@pytest.mark.parametrize("gather", GATHERS)
@pytest.mark.parametrize("regulariser", REGULARISERS)
def test_kernel_objective_and_gradient_match_bruteforce(regulariser, gather):
    # Two problems of different lengths (so one is padded) and different λ, in one batch.
    x, w0, trip0, c0 = make_problem(1, n_trip=25)
    _, w1, trip1, c1 = make_problem(2, n_trip=17)  # same n and d; its own W and triplets
    lambdas = np.array([0.3, 2.5])
    data = fitting.TripletSets.from_arrays([trip0, trip1], [c0, c1], dtype=torch.float64)
    options = fitting.FitOptions(regulariser=regulariser, dtype="float64", gather=gather)
    fun = fitting.objective(x, data, np.array([0, 1]), lambdas, options)
    w = np.stack([w0, w1])
    obj, grad = fun(torch.as_tensor(w.reshape(2, -1)), torch.tensor([0, 1]))
    obj, grad = obj.numpy(), grad.numpy().reshape(2, 3, 3)

    for b, (trip, counts) in enumerate(((trip0, c0), (trip1, c1))):
        nll, g_nll, _ = brute_nll_and_grad(x, w[b], trip, counts)
        expected = nll + lambdas[b] * brute_penalty(w[b], regulariser)
        expected_grad = g_nll + lambdas[b] * brute_penalty_grad(w[b], regulariser)
        np.testing.assert_allclose(obj[b], expected, rtol=1e-12, atol=0)
        np.testing.assert_allclose(grad[b], expected_grad, rtol=1e-10, atol=1e-12)

    # The public building blocks give the same pieces.
    wt = torch.as_tensor(w)
    logits = fitting.probe_logits(torch.as_tensor(x), wt, data.triplets, gather)
    nll_t = fitting.data_nll(logits, data.counts).numpy()
    pen_t = fitting.penalty(wt, regulariser).numpy()
    for b, (trip, counts) in enumerate(((trip0, c0), (trip1, c1))):
        nll, _, _ = brute_nll_and_grad(x, w[b], trip, counts)
        np.testing.assert_allclose(nll_t[b], nll, rtol=1e-12)
        np.testing.assert_allclose(pen_t[b], brute_penalty(w[b], regulariser), rtol=1e-12)
        sim = (x @ w[b]) @ (x @ w[b]).T
        ref_logits = np.array([[sim[i, j], sim[i, k], sim[j, k]] for i, j, k in trip])
        np.testing.assert_allclose(logits[b, : len(trip)].numpy(), ref_logits, rtol=1e-12)


def test_eye_distance_penalty_is_zero_exactly_on_scaled_identity():
    w = torch.stack([2.7 * torch.eye(4, dtype=torch.float64),
                     torch.eye(4, dtype=torch.float64)])
    w[1, 0, 1] = 0.5  # off-diagonal entry: penalty 0.25 from it alone
    pen = fitting.penalty(w, "eye_distance").numpy()
    assert abs(pen[0]) < 1e-12
    np.testing.assert_allclose(pen[1], 0.25, rtol=1e-12)
    np.testing.assert_allclose(fitting.penalty(w, "l2").numpy()[0], 4 * 2.7**2, rtol=1e-12)


@pytest.mark.parametrize("gather", GATHERS)
@pytest.mark.parametrize("regulariser", REGULARISERS)
def test_objective_gradcheck_float64(regulariser, gather):
    x, w0, trip, counts = make_problem(7, n=8, d=3, n_trip=15)
    data = fitting.TripletSets.from_arrays([trip], [counts], dtype=torch.float64)
    options = fitting.FitOptions(regulariser=regulariser, dtype="float64", gather=gather)
    fun = fitting.objective(x, data, np.array([0]), np.array([0.7]), options)
    idx = torch.tensor([0])
    w = torch.as_tensor(w0[None]).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: fun.parts(v, idx)[0], (w,), eps=1e-6,
                                    atol=1e-7, rtol=1e-6)
    # The closure the optimiser uses returns that same gradient.
    _, grad = fun(w.detach().reshape(1, -1), idx)
    (auto,) = torch.autograd.grad(fun.parts(w, idx)[0].sum(), w)
    np.testing.assert_allclose(grad.numpy(), auto.reshape(1, -1).numpy(), rtol=1e-12)


# ----------------------------------------------------------------- NumPy reference module


@pytest.mark.parametrize("temperature", [1.0, 0.37])
def test_oddoneout_nll_and_probabilities_match_bruteforce(temperature):
    x, w, trip, counts = make_problem(11, n=10, d=4, n_trip=30)
    sim = oddoneout.similarity(x, w)
    nll, _, probs = brute_nll_and_grad(x, w, trip, counts, temperature)
    np.testing.assert_allclose(oddoneout.choice_probabilities(sim, trip, temperature), probs,
                               rtol=1e-12)
    np.testing.assert_allclose(oddoneout.nll(sim, trip, temperature, counts), nll, rtol=1e-12)
    plain, _, _ = brute_nll_and_grad(x, w, trip, np.ones(len(trip)), temperature)
    np.testing.assert_allclose(oddoneout.nll(sim, trip, temperature), plain, rtol=1e-12)
    np.testing.assert_allclose(oddoneout.similarity(x), x @ x.T, rtol=1e-12)


def test_numpy_and_torch_logits_agree():
    x, w, trip, _ = make_problem(5, n=12, d=4, n_trip=40)
    ref = oddoneout.pair_logits(oddoneout.similarity(x, w), trip)
    for gather in GATHERS:
        got = fitting.probe_logits(torch.as_tensor(x), torch.as_tensor(w[None]),
                                torch.as_tensor(trip[None]), gather)[0].numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12)


# ----------------------------------------------------------------- ties split credit


TIE_CASES = [
    ([0.5, 0.5, 0.5], 1.0 / 3.0),   # all equal: a third, not argmax's 1
    ([2.0, 2.0, 1.0], 0.5),         # recorded pair tied with one other
    ([1.0, 2.0, 2.0], 0.0),         # tie among the wrong pairs
    ([3.0, 1.0, 2.0], 1.0),         # clear correct
    ([0.0, 0.0, -1.0], 0.5),
]


def test_accuracy_from_logits_splits_exact_ties():
    logits = np.array([c[0] for c in TIE_CASES])
    expected = np.array([c[1] for c in TIE_CASES])
    np.testing.assert_allclose(oddoneout.accuracy_from_logits(logits), expected, rtol=1e-15)
    all_equal = np.zeros((6, 3))
    assert oddoneout.accuracy_from_logits(all_equal).mean() == pytest.approx(1.0 / 3.0)


def test_tie_aware_accuracy_splits_exact_ties_with_weights():
    logits = torch.tensor([[c[0] for c in TIE_CASES]], dtype=torch.float64)
    per = np.array([c[1] for c in TIE_CASES])
    weights = torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0]], dtype=torch.float64)
    got = fitting.tie_aware_accuracy(logits, weights).numpy()[0]
    np.testing.assert_allclose(got, (per * weights.numpy()[0]).sum() / 10.0, rtol=1e-14)
    all_equal = torch.full((1, 5, 3), 0.25, dtype=torch.float64)
    got = fitting.tie_aware_accuracy(all_equal, torch.ones(1, 5, dtype=torch.float64))
    assert float(got[0]) == pytest.approx(1.0 / 3.0, abs=1e-15)


def test_accuracy_of_constant_similarity_is_one_third():
    sim = np.full((6, 6), 0.3)
    trip = np.array([[0, 1, 2], [3, 4, 5], [1, 3, 5]])
    assert oddoneout.accuracy(sim, trip) == pytest.approx(1.0 / 3.0, abs=1e-15)
    weights = torch.eye(2, dtype=torch.float64)[None] * 0.0  # W = 0: every logit is 0
    acc, nll = fitting.evaluate(np.ones((6, 2)), weights,
                              fitting.TripletSets.from_arrays([trip], dtype=torch.float64),
                              np.array([0]))
    assert acc[0] == pytest.approx(1.0 / 3.0, abs=1e-15)
    assert nll[0] == pytest.approx(math.log(3.0), abs=1e-12)
