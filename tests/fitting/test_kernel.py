"""The batched kernel's own guarantees: every shortcut equals the plain computation."""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from modelrecovery import fitting, oddoneout
from modelrecovery.fitting import chains
from modelrecovery.fitting import gather as gather_modes
from modelrecovery.fitting import kernel, lbfgs, restarts
from modelrecovery.fitting.lbfgs import Status
from modelrecovery.sampling import sample_choices

F64 = torch.float64


def world(seed: int, n: int, dims: list[int], n_trip: int, n_sets: int = 2,
          objects_per_set: int | None = None):
    """Random features per candidate and triplet sets sampled from candidate 0's geometry."""
    rng = np.random.default_rng(seed)
    feats = [rng.standard_normal((n, d)) / np.sqrt(d) for d in dims]
    sim = oddoneout.similarity(feats[0], 2.0 * np.eye(dims[0]))
    sets = []
    for _ in range(n_sets):
        pool = rng.choice(n, objects_per_set or n, replace=False)
        t = np.stack([rng.choice(pool, 3, replace=False) for _ in range(n_trip)])
        sets.append(sample_choices(sim, t, 1.0, rng))
    return feats, sets


def tight(**kw) -> fitting.FitOptions:
    base = dict(dtype="float64", device="cpu", grad_tol=1e-10, loss_tol=1e-14,
                max_iter=2000, warm_start=False)
    base.update(kw)
    return fitting.FitOptions(**base)


def test_candidates_of_different_dimension_batched_equal_separate_fits():
    feats, sets = world(0, 40, [3, 5, 4], 300)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    pf = np.array([0, 1, 2, 1, 2, 0])
    ps = np.array([0, 0, 1, 1, 0, 1])
    lam = np.array([0.1, 0.01, 0.3, 0.1, 0.05, 0.02])
    for reg in ("eye_distance", "l2"):
        opts = tight(regulariser=reg)
        batch = fitting.fit(feats, data, ps, lam, opts, problem_features=pf)
        assert batch.weights.shape == (6, 5, 5)
        for b in range(6):
            d = feats[pf[b]].shape[1]
            alone = fitting.fit(feats[pf[b]], fitting.TripletSets.from_arrays([sets[ps[b]]],
                                                                        dtype=F64),
                              np.array([0]), lam[b:b + 1], opts)
            assert int(batch.dims[b]) == d
            assert float(batch.objective[b]) == pytest.approx(float(alone.objective[0]),
                                                              rel=1e-10)
            # The padding stays exactly zero: no problem leaks into another's shape.
            pad = batch.weights[b].clone()
            pad[:d, :d] = 0
            assert float(pad.abs().max()) == 0.0
            s_batch = oddoneout.similarity(feats[pf[b]], batch.weights[b, :d, :d].numpy())
            s_alone = oddoneout.similarity(feats[pf[b]], alone.weights[0].numpy())
            np.testing.assert_allclose(s_batch, s_alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_fold_local_similarity_equals_plain_computation(regulariser):
    # Sets that touch only 15 of 50 objects: the kernel builds S over those 15 only.
    feats, sets = world(1, 50, [6], 120, n_sets=3, objects_per_set=15)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    rng = np.random.default_rng(2)
    w = torch.as_tensor(np.eye(6) + 0.3 * rng.standard_normal((3, 6, 6)))
    lam = np.array([0.2, 0.5, 1.0])
    ps = np.arange(3)
    for gather in ("similarity", "rows", "pairs"):
        fun = fitting.objective(feats[0], data, ps, lam, fitting.FitOptions(
            regulariser=regulariser, dtype="float64", gather=gather, reduce_rank=False))
        assert fun.batch.gather is fitting.GATHERS[gather]
        if fun.batch.gather is gather_modes.SIMILARITY:
            assert fun.batch.local_x.shape[1] == 15
        obj, grad = fun(w.reshape(3, -1), torch.arange(3))
        # The plain computation: full S over all 50 objects, autograd.
        wr = w.clone().requires_grad_(True)
        logits = fitting.probe_logits(torch.as_tensor(feats[0]), wr, data.triplets,
                                   "similarity")
        plain = fitting.data_nll(logits, data.counts) + torch.as_tensor(lam) * fitting.penalty(
            wr, regulariser)
        (g_plain,) = torch.autograd.grad(plain.sum(), wr)
        np.testing.assert_allclose(obj.numpy(), plain.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), g_plain.reshape(3, -1).numpy(), rtol=1e-10,
                                   atol=1e-13)


@pytest.mark.parametrize("gather", ["similarity", "rows", "pairs"])
@pytest.mark.parametrize("regulariser", ["eye_distance", "l2", "l1"])
@pytest.mark.parametrize("method", ["full", "low_rank:3", "diagonal", "zero_shot"])
def test_hand_written_gradient_equals_autograd(method, regulariser, gather):
    # Candidates of different d (padded), sets of different lengths (padded rows), and a
    # fold whose features are rank-deficient (reduced for full): the optimiser's gradient
    # must be autograd's on the plain computation, everywhere.
    feats, sets = world(11, 30, [4, 6, 3], 90, n_sets=3, objects_per_set=12)
    sets[1] = sets[1][:60]
    feats[1] = feats[1] @ np.diag([1, 1, 1, 1, 0, 0]) + 0.0
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    pf = np.array([0, 1, 2, 1, 0])
    ps = np.array([0, 1, 2, 0, 1])
    lam = np.array([0.3, 0.05, 1.0, 0.2, 0.0])
    fun = fitting.objective(feats, data, ps, lam, fitting.FitOptions(
        method=method, regulariser=regulariser, dtype="float64", gather=gather),
        problem_features=pf)
    assert fun.batch.gather is fitting.GATHERS[gather]
    rng = np.random.default_rng(12)
    p = fitting.Method.parse(method).n_params(6)
    theta = torch.as_tensor(0.5 * rng.standard_normal((5, p)) + 0.3)
    idx = torch.arange(5)
    obj, grad = fun(theta, idx)
    th = theta.clone().requires_grad_(True)
    plain, _ = fun.parts(th, idx)
    (g_plain,) = torch.autograd.grad(plain.sum(), th)
    np.testing.assert_allclose(obj.numpy(), plain.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), g_plain.numpy(), rtol=1e-10, atol=1e-13)
    # A narrowed view (the line search's retries) evaluates just its problems.
    sub = fun.view(idx).select(torch.tensor([3, 1]))
    f_sub, g_sub = sub(theta[[3, 1]])
    np.testing.assert_allclose(f_sub.numpy(), obj.numpy()[[3, 1]], rtol=1e-13)
    np.testing.assert_allclose(g_sub.numpy(), grad.numpy()[[3, 1]], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_objective_is_exact_where_choice_zero_trails_by_hundreds_of_nats(dtype):
    # Raw, unnormalised features at W = I can put the chosen pair's logit hundreds of
    # nats behind: p₀ underflows (float64 from ~745 nats), yet the objective must stay
    # finite and equal the plain computation, with autograd's gradient.
    feats, sets = world(5, 30, [4], 200, n_sets=1)
    x = [40.0 * feats[0]]
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    idx = torch.arange(2)
    scale = torch.tensor([[1.0], [0.5]], dtype=F64)
    theta = fitting.Method("full").init(torch.tensor([4, 4]), 4, F64) * scale
    ref = fitting.objective(x, data, np.zeros(2, dtype=int), np.array([0.1, 0.0]),
                          fitting.FitOptions(dtype="float64"))
    logits = fitting.probe_logits(torch.as_tensor(x[0]), ref.batch.method.matrix(
        theta, 4), data.triplets[[0, 0]])
    assert float((logits.amax(-1) - logits[..., 0]).max()) > 800  # p₀ underflows
    th = theta.clone().requires_grad_(True)
    plain, _ = ref.parts(th, idx)
    (g_plain,) = torch.autograd.grad(plain.sum(), th)
    fun = fitting.objective(x, data, np.zeros(2, dtype=int), np.array([0.1, 0.0]),
                          fitting.FitOptions(dtype=dtype))
    obj, grad = fun(theta.to(fun.batch.local_x.dtype), idx)
    assert torch.isfinite(obj).all() and torch.isfinite(grad).all()
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(obj.double().numpy(), plain.detach().numpy(), rtol=rtol)
    np.testing.assert_allclose(grad.double().numpy(), g_plain.numpy(), rtol=rtol,
                               atol=rtol * float(g_plain.abs().max()))


def two_loop(g, pairs):
    """Textbook L-BFGS two-loop recursion (Nocedal & Wright, Alg. 7.4), oldest pair first."""
    q = g.copy()
    alphas = []
    for s, y in reversed(pairs):
        a = (s @ q) / (s @ y)
        q -= a * y
        alphas.append(a)
    s, y = pairs[-1]
    r = (s @ y) / (y @ y) * q
    for (s, y), a in zip(pairs, reversed(alphas)):
        b = (y @ r) / (s @ y)
        r += s * (a - b)
    return -r


def test_eye_distance_keeps_float32_accuracy_when_w_is_large():
    # d = 256 at W ≈ 4I: ‖W‖² ≈ 4,100 against a penalty of 3.3. Expanded as ‖W‖² − tr²/d
    # the float32 penalty is off by 4e-5 relative (times λ in the objective: at λ = 1 a
    # fit's objective would come out below its own NLL); summed from W − cI it is exact to
    # float32 resolution, in all three places that compute it.
    gen = torch.Generator().manual_seed(0)
    d = 256
    w = 4.0 * torch.eye(d, dtype=F64) + 0.01 * torch.randn(d, d, generator=gen, dtype=F64)
    w = (w + w.T) / 2
    exact = float(((w - torch.trace(w) / d * torch.eye(d, dtype=F64)) ** 2).sum())
    w32, dims = w.float()[None], torch.tensor([d])
    method = fitting.Method("full")
    mask, n = method.trace_mask(dims, d, torch.float32)
    pen, grad = method.penalty_and_grad(w32.reshape(1, -1), "eye_distance", mask, n)
    for value in (pen, method.penalty(w32.reshape(1, -1), "eye_distance", dims),
                  fitting.penalty(w32, "eye_distance")):
        assert abs(float(value[0]) - exact) < 1e-6 * exact
    expected = 2 * (w - torch.trace(w) / d * torch.eye(d, dtype=F64))
    torch.testing.assert_close(grad.double().reshape(d, d), expected, rtol=0, atol=1e-5)


def test_compact_lbfgs_direction_equals_two_loop_recursion():
    rng = np.random.default_rng(3)
    p, m = 9, 4
    hist = lbfgs.History(3, m, p, torch.device("cpu"), F64)
    pairs: list[list] = [[], [], []]
    # Problem 0 wraps its ring buffer, 1 stays partly empty, 2 gets a single pair; pairs
    # that are not kept leave the history unchanged.
    for step in range(7):
        keep = np.array([True, step < 3, step == 0])
        s = rng.standard_normal((3, p))
        y = s + 0.4 * rng.standard_normal((3, p))
        hist.push(torch.as_tensor(keep), torch.as_tensor(s), torch.as_tensor(y))
        for b in np.flatnonzero(keep):
            pairs[b] = (pairs[b] + [(s[b], y[b])])[-m:]
    g = rng.standard_normal((3, p))
    d = hist.direction(torch.as_tensor(g)).numpy()
    for b in range(3):
        np.testing.assert_allclose(d[b], two_loop(g[b], pairs[b]), rtol=1e-10, atol=1e-12)
    # A narrowed history carries its problems' pairs along.
    sub = hist.select(torch.tensor([2, 0]))
    np.testing.assert_allclose(sub.direction(torch.as_tensor(g[[2, 0]])).numpy(), d[[2, 0]],
                               rtol=1e-12)
    hist.reset(torch.tensor([1]))
    np.testing.assert_allclose(hist.direction(torch.as_tensor(g))[1], -g[1])
    # After a reset the buffer refills from wherever its ring stopped.
    pairs[1] = []
    for _ in range(2):
        s = rng.standard_normal((3, p))
        y = s + 0.4 * rng.standard_normal((3, p))
        hist.push(torch.tensor([False, True, False]), torch.as_tensor(s), torch.as_tensor(y))
        pairs[1].append((s[1], y[1]))
    np.testing.assert_allclose(hist.direction(torch.as_tensor(g))[1].numpy(),
                               two_loop(g[1], pairs[1]), rtol=1e-10, atol=1e-12)


def test_a_shifted_history_equals_one_built_from_the_shifted_pairs():
    # A warm start's objective differs from the finished one by a quadratic term, so its
    # curvature pairs are the finished ones with y + H·s. Shifting in place must give the
    # directions of a history that was pushed those pairs; a pair that no longer curves
    # upwards empties its problem's history; products formed ahead with the last pair
    # must not serve the shifted problems.
    rng = np.random.default_rng(8)
    p, m = 9, 4
    hist = lbfgs.History(4, m, p, torch.device("cpu"), F64)
    pairs: list[list] = [[], [], [], []]
    for step in range(7):
        keep = np.array([True, step < 3, step == 0, True])
        s = rng.standard_normal((4, p))
        y = s + 0.4 * rng.standard_normal((4, p))
        g = torch.as_tensor(rng.standard_normal((4, p)))
        hist.push(torch.as_tensor(keep), torch.as_tensor(s), torch.as_tensor(y), g)
        for b in np.flatnonzero(keep):
            pairs[b] = (pairs[b] + [(s[b], y[b])])[-m:]
    h = rng.standard_normal((4, p, p))
    h = torch.as_tensor(h @ h.transpose(0, 2, 1) / p)  # positive semidefinite
    h[3] = -50.0 * torch.eye(p, dtype=F64)  # turns problem 3's pairs downwards
    rows = torch.tensor([0, 1, 3])
    asked = []

    def hess(v):
        asked.append(v.shape)
        return h[rows] @ v

    hist.shift(rows, hess)
    assert asked == [(3, p, m + 1)]
    d = hist.direction(g).numpy()
    for b in (0, 1):
        shifted = [(sv, yv + h[b].numpy() @ sv) for sv, yv in pairs[b]]
        np.testing.assert_allclose(d[b], two_loop(g[b].numpy(), shifted), rtol=1e-10,
                                   atol=1e-12)
    np.testing.assert_allclose(d[2], two_loop(g[2].numpy(), pairs[2]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d[3], -g[3].numpy())
    assert hist.count.tolist() == [m, 3, 1, 0]


def test_products_formed_with_a_pair_serve_the_next_direction():
    # push(..., g) forms g's inner products in the same product as y's; the direction
    # that follows must equal one formed from scratch, also after rows are reset (the
    # refilled slots) and after the batch is narrowed.
    rng = np.random.default_rng(5)
    p, m = 7, 3
    ahead = lbfgs.History(4, m, p, torch.device("cpu"), F64)
    plain = lbfgs.History(4, m, p, torch.device("cpu"), F64)
    for step in range(6):
        keep = torch.as_tensor(rng.random(4) < 0.8)
        s = torch.as_tensor(rng.standard_normal((4, p)))
        y = s + 0.3 * torch.as_tensor(rng.standard_normal((4, p)))
        g = torch.as_tensor(rng.standard_normal((4, p)))
        ahead.push(keep, s, y, g)
        plain.push(keep, s, y)
        if step == 3:
            for h in (ahead, plain):
                h.reset(torch.tensor([2]))
        if step < 5:
            np.testing.assert_allclose(ahead.direction(g).numpy(),
                                       plain.direction(g).numpy(), rtol=1e-12, atol=1e-14)
    sub = torch.tensor([3, 0, 2])
    ahead, plain = ahead.select(sub), plain.select(sub)
    np.testing.assert_allclose(ahead.direction(g[sub]).numpy(),
                               plain.direction(g[sub]).numpy(), rtol=1e-12, atol=1e-14)
    assert ahead.next_products is None  # used once


def test_flip_detection_is_the_eigenvalue_rule_on_padded_weights(monkeypatch):
    # Padded W (zeros beyond each problem's own d) are singular, yet only an eigenvalue
    # of the own block below −1e-6·max|eigenvalue| is a flip; the Cholesky shortcut
    # must agree with the eigenvalues everywhere, and leave the positive definite ones,
    # padded or not, without an eigendecomposition.
    rng = np.random.default_rng(8)
    dmax, dims = 5, [4, 3, 4, 2, 3, 5]
    spectra = [[2, 1, 0.5, 0.1], [1, 0.3, -0.2], [1, 1, 1, -1e-9], [0.5, 0.0],
               [3, 2, -1e-5], [1, 1, 1, 1, 1e-3]]
    w = torch.zeros(len(dims), dmax, dmax, dtype=F64)
    for b, (d, ev) in enumerate(zip(dims, spectra)):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        w[b, :d, :d] = torch.as_tensor(q @ np.diag(ev) @ q.T)
    own, _ = fitting.Method.parse("full").trace_mask(torch.tensor(dims), dmax, F64)
    ev = torch.linalg.eigvalsh(w)
    expected = ev[:, 0] < -1e-6 * ev.abs().amax(1)
    assert expected.tolist() == [False, True, False, False, True, False]
    decomposed = []
    eigvalsh = torch.linalg.eigvalsh
    monkeypatch.setattr(torch.linalg, "eigvalsh",
                        lambda a: decomposed.append(len(a)) or eigvalsh(a))
    assert restarts.flipped(w.reshape(len(dims), -1), dmax, own).tolist() == expected.tolist()
    assert sum(decomposed) == 4  # the four that are not positive definite


def test_warm_start_reaches_the_cold_optimum_with_less_work():
    feats, sets = world(4, 60, [5], 800, n_sets=3)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    lam = np.tile([1e-3, 1e-2, 1e-1, 1.0], 3)
    ps = np.repeat(np.arange(3), 4)
    cold = fitting.fit(feats[0], data, ps, lam, tight())
    warm = fitting.fit(feats[0], data, ps, lam, tight(warm_start=True))
    assert cold.converged.all() and warm.converged.all()
    np.testing.assert_allclose(warm.objective.numpy(), cold.objective.numpy(), rtol=1e-9)
    np.testing.assert_allclose(warm.train_nll.numpy(), cold.train_nll.numpy(), rtol=1e-6)
    # In iterations: the line search's rejected trials (a tenth of the evaluations on a
    # problem this small) come and go with rounding.
    assert warm.iterations.sum() < cold.iterations.sum()
    # Each warm stage keeps the previous λ's curvature pairs: the same optimum again,
    # and fewer iterations than a warm start without them.
    bare = fitting.fit(feats[0], data, ps, lam, tight(warm_start=True, carry_history=False))
    assert bare.converged.all()
    np.testing.assert_allclose(warm.objective.numpy(), bare.objective.numpy(), rtol=1e-9)
    assert warm.iterations.sum() < bare.iterations.sum()



@pytest.mark.parametrize("method,regulariser", [("full", "eye_distance"), ("full", "l2"),
                                                ("diagonal", "eye_distance")])
def test_a_warm_start_reuses_the_finished_evaluation_shifted_by_the_penalty(
        monkeypatch, method, regulariser):
    # A warm-started stage begins where the previous λ ended; its objective and gradient
    # there are the finished ones plus Δλ·R and Δλ·∇R (no new evaluation: see the next
    # test); they must equal a fresh evaluation.
    feats, sets = world(4, 60, [5], 800, n_sets=2)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    lam = np.tile([1e-3, 1e-2, 1e-1, 1.0], 2)
    ps = np.repeat(np.arange(2), 4)
    opts = tight(warm_start=True, method=method, regulariser=regulariser)
    checked = []
    solve = kernel.minimise

    def spy(problems, x0, settings, *, refill, **kw):
        def checked_refill(done, x, f, g):
            start = refill(done, x, f, g)
            if bool(start.known.any()):
                k = start.known
                fresh = problems.objective.view(start.ids[k], problems.symmetric)
                f_new, g_new = fresh(start.x[k])
                np.testing.assert_allclose(start.f[k].numpy(), f_new.numpy(), rtol=1e-12)
                np.testing.assert_allclose(start.g[k].numpy(), g_new.numpy(), rtol=1e-9,
                                           atol=1e-12)
                # The curvature pairs carried over change by exactly the difference of
                # the two objectives' gradient differences along a step.
                old = problems.objective.view(done[start.cont[k]], problems.symmetric)
                rows = torch.nonzero(k).flatten()
                step = 0.1 * torch.randn(start.x[k].shape, dtype=F64,
                                         generator=torch.Generator().manual_seed(0))
                if problems.symmetric:
                    step = step.view(len(rows), 5, 5)
                    step = (step + step.mT).reshape(len(rows), -1)
                x1 = start.x[k] + step
                change = (fresh(x1)[1] - g_new) - (old(x1)[1] - old(start.x[k])[1])
                np.testing.assert_allclose(start.hess(rows, step[:, :, None])[:, :, 0],
                                           change, rtol=1e-8, atol=1e-12)
                checked.append(int(k.sum()))
            return start
        return solve(problems, x0, settings, refill=checked_refill, **kw)

    monkeypatch.setattr(kernel, "minimise", spy)
    warm = fitting.fit(feats[0], data, ps, lam, opts)
    assert warm.converged.all()
    # Every stage whose predecessor (10× larger λ) beat chance starts warm (here 6 under
    # eye_distance; under l2 the two largest λ collapse to chance, so 2).
    nll = warm.train_nll.numpy().reshape(2, 4)
    expected = int((nll[:, 1:] < np.log(3) - chains.WARM_MARGIN).sum())
    assert expected >= 2 and sum(checked) == expected


class _ById:
    """solver_interface.SolverProblems' select and replace for test problems indexed by ``ids``."""

    ids: torch.Tensor

    def select(self, idx):
        new = copy.copy(self)
        new.ids = self.ids[idx]
        return new

    def replace(self, slots, ids):
        self.ids = self.ids.clone()
        self.ids[slots] = ids
        return self


class _Quadratics(_ById):
    """f_b(x) = ½ Σ a x² − Σ c x + μ_b Σ x² (solver_interface.SolverProblems), counting evaluations."""

    def __init__(self, mu: torch.Tensor, ids: torch.Tensor, calls: list):
        self.mu, self.ids, self.calls = mu, ids, calls
        self.a = torch.linspace(1.0, 30.0, 6, dtype=F64)
        self.c = torch.linspace(-1.0, 2.0, 6, dtype=F64)

    def value(self, x: torch.Tensor, mu: torch.Tensor):
        f = (0.5 * self.a * x * x - self.c * x).sum(1) + mu * (x * x).sum(1)
        return f, self.a * x - self.c + 2.0 * mu[:, None] * x

    def __call__(self, x):
        self.calls.extend(self.ids.tolist())
        return self.value(x, self.mu[self.ids])


def _no_start(x, f, g) -> lbfgs.Start:
    none = torch.zeros(0, dtype=torch.long)
    return lbfgs.Start(none, none, x[:0], f[:0], g[:0], none.bool())


def test_a_refill_with_a_known_objective_costs_no_evaluation():
    # Problem 0 then problem 1 in one slot, problem 1 starting where 0 ended. Told its
    # objective and gradient there, the solver takes the same steps with one evaluation
    # fewer than when it has to evaluate the start itself.
    mu = torch.tensor([1.0, 0.1], dtype=F64)
    runs = {}
    for known in (True, False):
        calls: list[int] = []
        quad = _Quadratics(mu, torch.tensor([0]), calls)

        def refill(done, x, f, g, quad=quad, known=known):
            if int(done[0]) == 1:
                return _no_start(x, f, g)
            f1, g1 = quad.value(x, mu[1:])
            return lbfgs.Start(torch.tensor([0]), torch.tensor([1]), x, f1, g1,
                               torch.tensor([known]))

        x, _, its, status = lbfgs.minimise(
            quad, torch.zeros(1, 6, dtype=F64), lbfgs.Settings(grad_tol=1e-12, loss_tol=0.0),
            ids=torch.tensor([0]), n_total=2, refill=refill)
        assert all(Status(s).converged for s in status.tolist())
        runs[known] = (x, its, calls.count(1))
    exact = quad.c / (quad.a + 2.0 * mu[:, None])
    np.testing.assert_allclose(runs[True][0].numpy(), exact.numpy(), rtol=1e-10)
    np.testing.assert_array_equal(runs[True][0].numpy(), runs[False][0].numpy())
    assert runs[True][1].tolist() == runs[False][1].tolist()
    assert runs[True][2] == runs[False][2] - 1
    # With no iterations allowed, a known start ends where it starts, unevaluated.
    calls = []

    def then_problem_1(done, x, f, g):
        if int(done[0]) == 1:
            return _no_start(x, f, g)
        return lbfgs.Start(torch.tensor([0]), torch.tensor([1]), x, f - 1.0, g,
                           torch.tensor([True]))

    x, f, its, status = lbfgs.minimise(
        _Quadratics(mu, torch.tensor([0]), calls), torch.zeros(1, 6, dtype=F64),
        lbfgs.Settings(max_iter=0), ids=torch.tensor([0]), n_total=2, refill=then_problem_1)
    assert status.tolist() == [Status.MAX_ITER] * 2 and its.tolist() == [0, 0]
    assert calls == [0] and float(f[1]) == float(f[0]) - 1.0


class _DoubleWells(_ById):
    """f_b(x) = (‖x‖² − r_b²)² (solver_interface.SolverProblems): curving downwards along every direction
    near 0, minimal on the sphere of radius r_b."""

    def __init__(self, r: torch.Tensor, ids: torch.Tensor):
        self.r, self.ids = r, ids

    def __call__(self, x):
        q = (x * x).sum(1) - self.r[self.ids] ** 2
        return q * q, 4.0 * q[:, None] * x


def test_a_start_where_the_objective_curves_downwards_is_left_in_a_few_steps():
    # From 1 % of the way out every curvature pair has sᵀy < 0 and is discarded, so the
    # history stays empty and the step stays the first iteration's 1/‖g‖₁, here ~1/√P of
    # the gradient. Backtracking under Armijo alone can only shorten it: 42, 115 and 372
    # iterations. Lengthening too-short steps (weak Wolfe) takes 5 or fewer.
    p = 4096
    r = torch.tensor([1.0, 3.0, 10.0], dtype=F64)
    x0 = 0.01 * r[:, None] * torch.ones(3, p, dtype=F64) / p**0.5
    x, _, its, status = lbfgs.minimise(_DoubleWells(r, torch.arange(3)), x0,
                                       lbfgs.Settings(grad_tol=1e-9, loss_tol=0.0))
    assert status.tolist() == [Status.GRADIENT] * 3
    torch.testing.assert_close(x.norm(dim=1), r)
    assert int(its.max()) <= 8
    # With two trials per search, a search that found a too-short step and then
    # overshot takes the short step instead of failing (without that, all fail at once).
    r = r[:2]
    x, _, _, status = lbfgs.minimise(_DoubleWells(r, torch.arange(2)), x0[:2],
                                     lbfgs.Settings(grad_tol=1e-9, loss_tol=0.0,
                                                    max_line_search=2))
    assert status.tolist() == [Status.GRADIENT] * 2
    torch.testing.assert_close(x.norm(dim=1), r)


def test_a_cold_fit_with_small_logits_converges_to_the_optimum():
    # Features at 0.3 of unit scale: at W = I the logits are small and the objective curves
    # downwards along the first steps. Unless the line search lengthens short steps, such
    # cold fits stop at max_iter (500) far above the optimum (objective 1.04 against 0.67
    # at λ = 1e-6).
    rng = np.random.default_rng(0)
    n, d = 100, 32
    x = 0.3 * rng.standard_normal((n, d)) / np.sqrt(d)
    sim = oddoneout.similarity(x, np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d))
    t = np.stack([rng.choice(n, 3, replace=False) for _ in range(3000)])
    data = fitting.TripletSets.from_arrays([sample_choices(sim, t, 0.01, rng)], dtype=F64)
    lam = np.array([1e-6, 1e-3])
    res = fitting.fit(x, data, np.zeros(2, int), lam, fitting.FitOptions(dtype="float64",
                                                                      warm_start=False))
    ref = fitting.fit(x, data, np.zeros(2, int), lam, tight(grad_tol=1e-12, loss_tol=0.0,
                                                          max_iter=20000))
    assert res.converged.all() and int(res.iterations.max()) < 100
    assert float(ref.objective.max()) < np.log(3) - 0.1  # far from the start's ≈ log 3
    np.testing.assert_allclose(res.objective.numpy(), ref.objective.numpy(), rtol=1e-6)


def test_one_short_step_on_a_flat_objective_does_not_end_the_fit():
    # 30 objects, 60 triplets and 64 or 36 parameters at λ = 1e-4: nearly flat. Stopping
    # on the first iteration whose loss change is under loss_tol left these fits up to
    # 8e-7 above the optimum; the test must hold on consecutive iterations.
    feats, sets = world(1, 30, [8, 6], 60, n_sets=3)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    pf, ps, lam = np.repeat([0, 1], 3), np.tile([0, 1, 2], 2), np.full(6, 1e-4)
    ref = fitting.fit(feats, data, ps, lam, tight(grad_tol=1e-13, max_iter=20000),
                    problem_features=pf)
    res = fitting.fit(feats, data, ps, lam, tight(grad_tol=1e-7, loss_tol=1e-9),
                    problem_features=pf)
    assert ref.converged.all() and res.converged.all()
    gap = (res.objective - ref.objective) / ref.objective
    assert float(gap.min()) > -1e-12 and float(gap.max()) < 2e-7


@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_a_collapsed_stage_does_not_trap_the_next_lambda(regulariser):
    # Features unrelated to the choices: a large λ collapses the fit towards uniform
    # predictions (under l2 to W = 0 exactly, a stationary point for every λ). A warm
    # start from there would stay stuck; the kernel restarts such problems from the
    # identity, so warm and cold agree.
    feats, sets = world(4, 60, [5, 8], 800, n_sets=1)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    lam = np.array([1e-3, 1e3])
    cold = fitting.fit(feats[1], data, np.zeros(2, int), lam, tight(regulariser=regulariser))
    warm = fitting.fit(feats[1], data, np.zeros(2, int), lam,
                     tight(regulariser=regulariser, warm_start=True))
    assert float(cold.objective[1]) > np.log(3) - 1e-2  # collapsed: no better than chance
    if regulariser == "l2":
        assert float(cold.weights[1].norm()) < 1e-6
    assert float(cold.objective[0]) < np.log(3) - 0.02  # the small λ still fits
    np.testing.assert_allclose(warm.objective.numpy(), cold.objective.numpy(), rtol=1e-9)


@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_a_fit_no_better_than_zero_is_returned_as_zero(regulariser):
    # Features unrelated to the choices: at λ = 1 and 1e3 the optimum is W = 0. Where
    # the solver stops near it depends on dtype and tolerances, and that residue ranked
    # held-out triplets arbitrarily; returned as W = 0, every such fit predicts the
    # three-way tie and scores exactly 1/3, however it was solved.
    feats, sets = world(5, 60, [5, 8], 800, n_sets=2)
    lam = np.array([1e-3, 1.0, 1e3])
    held_out = fitting.TripletSets.from_arrays(sets[1:], dtype=F64)
    for opts in (tight(regulariser=regulariser),
                 fitting.FitOptions(device="cpu", regulariser=regulariser, warm_start=True)):
        data = fitting.TripletSets.from_arrays(sets[:1], dtype=opts.torch_dtype)
        res = fitting.fit(feats[1], data, np.zeros(3, int), lam, opts)
        assert float(res.weights[1:].abs().max()) == 0.0
        log3 = torch.tensor(np.log(3), dtype=res.objective.dtype)
        assert bool((res.objective[1:] == log3).all())
        np.testing.assert_array_equal(res.train_nll[1:].numpy(), res.objective[1:].numpy())
        acc, nll = fitting.evaluate(feats[1], res.weights, held_out, np.zeros(3, int))
        assert acc[1] == acc[2] == pytest.approx(1.0 / 3.0, abs=1e-15)
        np.testing.assert_allclose(nll[1:], np.log(3), rtol=1e-7)
        # The small λ fits (beats chance by 8e-3) and is returned as it is.
        assert float(res.objective[0]) < np.log(3) - 5e-3
        assert float(res.weights[0].abs().max()) > 0.1 and acc[0] != 1.0 / 3.0
    # zero_shot keeps its W = s·I however small s gets: it ranks triplets as the raw
    # features do at every s > 0 (and W = 0 is outside its family).
    zs = fitting.fit(feats[1], data, np.zeros(1, int), np.zeros(1),
                   tight(method="zero_shot", regulariser=regulariser))
    w = zs.weights[0]
    assert float(w[0, 0]) > 0 and torch.equal(w, w[0, 0] * torch.eye(8, dtype=w.dtype))


def test_collapsed_repeats_equal_the_expanded_rows():
    feats, sets = world(5, 30, [4], 150, n_sets=1)
    rng = np.random.default_rng(6)
    rows = sets[0][rng.integers(0, 150, 600)]
    swap = rng.random(600) < 0.5  # (j, i, k) is the same judgement as (i, j, k)
    rows[swap] = rows[swap][:, [1, 0, 2]]
    uniq, counts = fitting.collapse(rows)
    assert len(uniq) < len(rows) and counts.sum() == len(rows)
    expanded = fitting.TripletSets.from_arrays([rows], dtype=F64)
    collapsed = fitting.TripletSets.from_arrays([rows], collapse_repeats=True, dtype=F64)
    assert collapsed.triplets.shape[1] == len(uniq)
    w = torch.as_tensor(np.eye(4) + 0.2 * rng.standard_normal((1, 4, 4)))
    opts = fitting.FitOptions(dtype="float64")
    f1, g1 = fitting.objective(feats[0], expanded, np.array([0]), np.array([0.1]), opts)(
        w.reshape(1, -1), torch.tensor([0]))
    f2, g2 = fitting.objective(feats[0], collapsed, np.array([0]), np.array([0.1]), opts)(
        w.reshape(1, -1), torch.tensor([0]))
    np.testing.assert_allclose(f1.numpy(), f2.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-10, atol=1e-14)
    r1 = fitting.fit(feats[0], expanded, np.array([0]), np.array([0.1]), tight())
    r2 = fitting.fit(feats[0], collapsed, np.array([0]), np.array([0.1]), tight())
    assert float(r1.objective[0]) == pytest.approx(float(r2.objective[0]), rel=1e-10)


@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_rank_reduction_is_exact(regulariser):
    # 12 objects per set but d = 20: the fold's features have rank 12 < d.
    feats, sets = world(7, 40, [20], 200, n_sets=2, objects_per_set=12)
    feats = [3.0 * feats[0]]
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    lam = np.array([1e-3, 1e-2, 1e-3, 1e-2])
    ps = np.array([0, 0, 1, 1])
    full = fitting.fit(feats[0], data, ps, lam, tight(regulariser=regulariser,
                                                    reduce_rank=False))
    red = fitting.fit(feats[0], data, ps, lam, tight(regulariser=regulariser,
                                                   reduce_rank=True))
    fun = fitting.objective(feats[0], data, ps, lam, tight(regulariser=regulariser))
    assert set(fun.batch.bases) and all(b.shape == (20, 12) for b in fun.batch.bases.values())
    assert fun.batch.dims.tolist() == [12] * 4
    np.testing.assert_allclose(red.objective.numpy(), full.objective.numpy(), rtol=1e-7)
    # Mapped back, the reduced W is the full W: the same geometry on every object,
    # including the 28 objects the fold never saw (their null-space part matters).
    for b in range(4):
        s_red = oddoneout.similarity(feats[0], red.weights[b].numpy())
        s_full = oddoneout.similarity(feats[0], full.weights[b].numpy())
        np.testing.assert_allclose(s_red, s_full, rtol=0, atol=1e-4 * np.abs(s_full).max())
        # ...and the full objective of the mapped-back W is the reported one.
        obj_full = fitting.objective(feats[0], data, ps[b:b + 1], lam[b:b + 1],
                                   tight(regulariser=regulariser, reduce_rank=False))
        f, _ = obj_full(red.weights[b].reshape(1, -1), torch.tensor([0]))
        assert float(f[0]) == pytest.approx(float(red.objective[b]), rel=1e-9)


def test_memory_limit_refuses_clearly_and_batches_split_exactly():
    feats, sets = world(9, 30, [4], 200, n_sets=1)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    with pytest.raises(fitting.MemoryLimitError, match=r"200 triplets.*d = 4.*GiB"):
        fitting.fit(feats[0], data, np.zeros(2, dtype=int), np.array([0.1, 1.0]),
                  tight(max_memory_gb=1e-6))
    per = fitting.memory_estimate(30, 200, 4, 1, tight())
    assert fitting.memory_estimate(30, 200, 4, 8, tight()) == 8 * per
    lam = np.geomspace(1e-3, 1.0, 6)
    whole = fitting.fit(feats[0], data, np.zeros(6, dtype=int), lam, tight())
    split = fitting.fit(feats[0], data, np.zeros(6, dtype=int), lam,
                      tight(max_memory_gb=2.5 * per / 2**30))  # two problems per chunk
    np.testing.assert_allclose(split.objective.numpy(), whole.objective.numpy(), rtol=1e-12)


_EVALUATION_PEAK = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from modelrecovery import fitting
    # 64 problems of 1,500 objects, d = 128, scored on 5,000 triplets each (the rows
    # path, float32): ~1 GB at once, a fraction of it a chunk at a time.
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((1500, d)).astype(np.float32) for d in (64, 128)]
    w = torch.as_tensor(rng.standard_normal((64, 128, 128)).astype(np.float32))
    sets = [rng.integers(0, 1500, (5000, 3)) for _ in range(4)]
    data = fitting.TripletSets.from_arrays(sets, dtype=torch.float32)
    ps, pf = np.arange(64) % 4, np.arange(64) % 2

    def peak_during(budget):
        open("/proc/self/clear_refs", "w").write("5")  # resets the peak RSS
        base = int(open("/proc/self/statm").read().split()[1]) * 4096
        out = fitting.evaluate(feats, w, data, ps, problem_features=pf,
                               max_memory_gb=budget)
        hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                   if line.startswith("VmHWM"))
        return out, (hwm - base) / 2**30

    (acc, nll), peak = peak_during({budget})
    (acc_all, nll_all), _ = peak_during(1e3)
    print(peak, float(np.abs(acc - acc_all).max()), float(np.abs(nll - nll_all).max()))
""")


@pytest.mark.parametrize("budget", [0.1, 0.25])
def test_scoring_stays_within_the_memory_limit_and_equals_scoring_all_at_once(budget):
    # Each problem's features, X W and gathered rows would be held at once for every
    # problem: 13.8 GB for the THINGS rehearsal's 240 fits of a recovery job at
    # N = 10⁵. Scored a chunk at a time, the peak stays within fitting.max_memory_gb
    # (in a fresh process, so that the peak is this call's alone) and the scores are
    # the same.
    out = subprocess.run([sys.executable, "-c", _EVALUATION_PEAK.format(budget=budget)],
                         capture_output=True, text=True, check=True)
    peak, d_acc, d_nll = (float(v) for v in out.stdout.split())
    assert 0 < peak < budget
    assert d_acc == 0.0 and d_nll == 0.0


@pytest.mark.parametrize("gather", ["similarity", "rows", "pairs"])
def test_slots_refilled_with_other_data_give_the_fits_of_the_whole_batch(gather):
    # Two problems' memory: the third and later chains wait, then take a finished
    # chain's slot with other features and another set (the slot's data is replaced,
    # for pairs mode the gathered ends' features too).
    feats, sets = world(13, 25, [3, 5], 120, n_sets=3)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    pf, ps = np.array([0, 1, 0, 1, 0, 1]), np.array([0, 1, 2, 2, 1, 0])
    lam = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    opts = tight(gather=gather)
    per = fitting.memory_estimate(25, 120, 5, 1, opts, gather)
    whole = fitting.fit(feats, data, ps, lam, opts, problem_features=pf)
    split = fitting.fit(feats, data, ps, lam,
                      tight(gather=gather, max_memory_gb=2.5 * per / 2**30),
                      problem_features=pf)
    assert whole.mode == split.mode == gather
    assert bool(split.converged.all())
    np.testing.assert_allclose(split.objective.numpy(), whole.objective.numpy(), rtol=1e-10)


def test_the_gather_mode_is_the_cheapest_that_fits_in_memory():
    # The default world's shapes (m ≈ 125-140, D = 16): pairs for few triplets,
    # similarity for many. The study's shape (m = 865, D = 256, N = 10⁴): similarity,
    # 6× faster there than rows, unless its m² buffer does not fit.
    choose = gather_modes.choose_gather
    fits = lambda g: True  # noqa: E731
    assert choose(125, 100, 16, 8, fits) is gather_modes.PAIRS
    assert choose(140, 300, 16, 8, fits) is gather_modes.PAIRS
    assert choose(140, 1000, 16, 8, fits) is gather_modes.SIMILARITY
    assert choose(140, 3000, 16, 4, fits) is gather_modes.SIMILARITY
    assert choose(865, 10_000, 256, 8, fits) is gather_modes.SIMILARITY
    assert choose(865, 100_000, 256, 8, fits) is gather_modes.SIMILARITY
    no_room = lambda g: g is not gather_modes.SIMILARITY  # noqa: E731
    assert choose(865, 10_000, 256, 8, no_room) is gather_modes.ROWS


def test_gather_mode_is_chosen_by_cost():
    # The default world's recovery jobs (m ≈ 125-140 objects per fold, D = 16): pairs
    # where the triplets are few, similarity once they are many.
    def pairs_cheaper(than: gather_modes.Gather, m: int, n: int, d: int) -> bool:
        return gather_modes.PAIRS.cost(m, n, d) < than.cost(m, n, d)

    assert pairs_cheaper(gather_modes.ROWS, 125, 100, 16)
    assert pairs_cheaper(gather_modes.SIMILARITY, 140, 300, 16)
    assert not pairs_cheaper(gather_modes.SIMILARITY, 140, 1000, 16)
    # Large D: x_iᵀ(WWᵀ) per pair costs D² each, the rows of Z are cheaper.
    assert not pairs_cheaper(gather_modes.ROWS, 1000, 1000, 256)
    assert not pairs_cheaper(gather_modes.ROWS, 20_000, 4_200_000, 1024)
    feats, sets = world(14, 125, [16], 100, n_sets=1)
    fun = fitting.objective(feats[0], fitting.TripletSets.from_arrays(sets, dtype=F64),
                          np.array([0]), np.array([0.1]), tight())
    assert fun.batch.gather is gather_modes.PAIRS


def test_paper_scale_fit_is_within_16_gib_by_the_memory_model():
    # 4.2M triplets, 1,854 objects, d = 1,024, float32: one fit must fit a 16 GB GPU.
    opts = fitting.FitOptions()
    assert fitting.memory_estimate(1854, 4_200_000, 1024, 1, opts) < 16 * 2**30


def test_auto_device_falls_back_to_cpu_with_a_log_line(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fitting.resolve_device.cache_clear()
    with caplog.at_level(logging.INFO, logger="modelrecovery.fitting.options"):
        assert fitting.resolve_device("auto") == torch.device("cpu")
    assert "no CUDA device visible" in caplog.text
    fitting.resolve_device.cache_clear()


def test_float32_default_and_no_silent_tf32():
    feats, sets = world(10, 20, [3], 100, n_sets=1)
    res = fitting.fit(feats[0], fitting.TripletSets.from_arrays(sets), np.array([0]),
                    np.array([0.1]))
    assert res.weights.dtype == torch.float32
    assert torch.backends.cuda.matmul.allow_tf32 is False


@pytest.mark.parametrize("regulariser", ["eye_distance", "l2"])
def test_symmetric_restriction_reaches_the_unrestricted_optimum(regulariser):
    # Every optimum of full W under these penalties is symmetric (docs/kernel.md,
    # "Exact reductions of the problem"); solving within the symmetric matrices must give the same fit, down
    # to λ = 1e-4 where the objective is flattest, in fewer evaluations.
    feats, sets = world(13, 40, [6], 300, n_sets=2)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    lam, ps = np.array([1e-4, 1e-2, 1.0, 1e-4]), np.array([0, 0, 0, 1])
    free = fitting.fit(feats[0], data, ps, lam, tight(regulariser=regulariser, symmetric=False))
    sym = fitting.fit(feats[0], data, ps, lam, tight(regulariser=regulariser))
    assert free.converged.all() and sym.converged.all()
    np.testing.assert_allclose(sym.objective.numpy(), free.objective.numpy(), rtol=1e-10)
    assert all(float((w - w.T).abs().max()) < 1e-12 for w in sym.weights)
    for b in range(4):
        s_sym = oddoneout.similarity(feats[0], sym.weights[b].numpy())
        s_free = oddoneout.similarity(feats[0], free.weights[b].numpy())
        # (l2 at λ = 1 collapses W to ~0 on both sides: compare on a floor)
        np.testing.assert_allclose(s_sym, s_free, rtol=0,
                                   atol=1e-4 * max(np.abs(s_free).max(), 1e-6))
    if regulariser == "eye_distance":  # the unrestricted optimum is itself symmetric
        assert all(float((w - w.T).abs().max()) < 1e-3 * float(w.abs().max())
                   for w in free.weights)
        assert sym.problem_evaluations < free.problem_evaluations


def test_a_sign_flipped_symmetric_fit_resumes_from_its_absolute_value(monkeypatch):
    # A symmetric start with a negative eigenvalue: within the symmetric matrices the fit
    # settles with the eigenvalue still negative (the way back crosses 0), worse than
    # the optimum under eye_distance. The kernel restarts it from |W|.
    feats, sets = world(13, 40, [6], 300, n_sets=2)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    flipped = torch.as_tensor(q @ np.diag([-1.0, 1, 1, 1, 1, 1]) @ q.T)[None].repeat(2, 1, 1)
    lam, ps = np.array([1e-4, 1e-3]), np.array([0, 1])
    opts = tight(reduce_rank=False)
    ref = fitting.fit(feats[0], data, ps, lam, tight(symmetric=False, reduce_rank=False))
    res = fitting.fit(feats[0], data, ps, lam, opts, init=flipped)
    np.testing.assert_allclose(res.objective.numpy(), ref.objective.numpy(), rtol=1e-10)
    assert all(float(torch.linalg.eigvalsh(w)[0]) > 0 for w in res.weights)
    monkeypatch.setattr(restarts, "MAX_UNFLIPS", 0)
    stuck = fitting.fit(feats[0], data, ps, lam, opts, init=flipped)
    assert (stuck.objective - ref.objective).min() > 1e-3


_FAULTS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import torch
    sys.path.insert(0, {tests!r})
    from modelrecovery import fitting
    from modelrecovery.fitting.allocator import keep_freed_memory
    from test_kernel import world
    assert keep_freed_memory()
    feats, sets = world(3, 200, [16], 600, n_sets=3)
    data = fitting.TripletSets.from_arrays(sets, dtype=torch.float64)
    lam, ps = np.tile(np.geomspace(1e-3, 1, 4), 3), np.repeat(np.arange(3), 4)
    opts = fitting.FitOptions(dtype="float64", max_iter=200)
    fitting.fit(feats[0], data, ps, lam, opts)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fitting.fit(feats[0], data, ps, lam, opts)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_fitting_processes_keep_freed_memory_instead_of_faulting_it_back():
    # The same fit twice in a fresh process with the fitting jobs' allocator settings:
    # the second run reuses the first one's memory. Under glibc's defaults this run
    # faulted between 0 and 43,000 pages, depending on the process's address layout (7
    # of 10 runs above 5,000); with the settings, 0 to 550 in every run.
    code = _FAULTS.format(tests=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert int(out.stdout.split()[-1]) < 2000


def test_candidates_are_fitted_by_dimension_where_padding_costs_more_than_a_call():
    # The default world's jobs (m ≈ 130, d = 10–16 padded to 16): one call. The study's
    # shape (m = 865, d = 64 beside 256): a call per dimension, at N = 10³ and 10⁶.
    by_dim = fitting.batch.by_dimension
    default = np.repeat([12, 14, 16, 12, 10, 12], 15)
    for n in (100, 300, 1000, 3000):
        assert not by_dim(default, 135, n, None)
    study = np.repeat([64, 256], 11)
    assert by_dim(study, 865, 1000, None) and by_dim(study, 865, 10**6, None)
    assert not by_dim(np.repeat([255, 256], 11), 865, 1000, None)
    assert by_dim(study, 865, 1000, fitting.GATHERS["similarity"])


@pytest.mark.parametrize("method", ["full", "low_rank:2", "diagonal"])
def test_candidates_of_different_dimension_are_fitted_one_dimension_at_a_time(
        method, monkeypatch):
    # A mixed-d fit split by dimension is, bit for bit, each dimension's candidates
    # fitted alone (each at its own D, with its own gather mode), padded back to the
    # largest d in problem order; and it reaches the optimum of the one padded call.
    monkeypatch.setattr(fitting.batch, "CALL_COST", 0.0)  # split at any size
    feats, sets = world(21, 40, [3, 5, 3], 150, n_sets=2)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    pf, ps = np.array([0, 1, 2, 1, 0, 2]), np.array([0, 1, 1, 0, 1, 0])
    lam = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    opts = tight(method=method, warm_start=True)
    mixed = fitting.fit(feats, data, ps, lam, opts, problem_features=pf)
    k = fitting.Method.parse(method).out_dim(5)
    assert mixed.weights.shape == (6, 5, k)
    assert mixed.dims.tolist() == [3, 5, 3, 5, 3, 3]
    modes = []
    for used, d in (([0, 2], 3), ([1], 5)):
        idx = np.flatnonzero(np.isin(pf, used))
        alone = fitting.fit([feats[c] for c in used], data, ps[idx], lam[idx], opts,
                            problem_features=np.searchsorted(used, pf[idx]))
        kd = alone.weights.shape[2]
        assert torch.equal(mixed.weights[idx, :d, :kd], alone.weights)
        assert not mixed.weights[idx, d:].any() and not mixed.weights[idx, :, kd:].any()
        assert torch.equal(mixed.objective[idx], alone.objective)
        assert torch.equal(mixed.iterations[idx], alone.iterations)
        assert [mixed.status[i] for i in idx] == alone.status
        modes.append(alone.mode)
    assert mixed.mode == "+".join(dict.fromkeys(modes))
    padded = kernel._fit_together(feats, data, ps, lam, opts, problem_features=pf)
    np.testing.assert_allclose(mixed.objective.numpy(), padded.objective.numpy(), rtol=1e-9)
    acc_m, nll_m = fitting.evaluate(feats, mixed.weights, data, ps, problem_features=pf)
    acc_p, nll_p = fitting.evaluate(feats, padded.weights, data, ps, problem_features=pf)
    np.testing.assert_allclose(nll_m, nll_p, rtol=1e-7)
