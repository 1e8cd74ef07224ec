"""Cosine and euclidean similarity in the kernel: logits equal the NumPy reference, the
hand-written gradient equals autograd in every gather mode, and fits lower the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelrecovery import fitting, oddoneout
from modelrecovery.sampling import sample_choices

F64 = torch.float64
KINDS = ["dot", "cosine", "euclidean"]
MODES = ["similarity", "rows", "pairs"]


def world(seed: int, n: int = 24, dims: tuple[int, ...] = (4, 6), n_trip: int = 90):
    """Two candidates of different d (the kernel pads the smaller) and two triplet sets."""
    rng = np.random.default_rng(seed)
    feats = [rng.standard_normal((n, d)) / np.sqrt(d) for d in dims]
    sim = oddoneout.similarity(feats[0], 2.0 * np.eye(dims[0]))
    sets = [sample_choices(sim, np.stack([rng.choice(n, 3, replace=False)
                                          for _ in range(n_trip)]), 1.0, rng)
            for _ in range(2)]
    return feats, sets, rng


def random_theta(method: fitting.Method, dims: torch.Tensor, dmax: int,
                 rng: np.random.Generator) -> torch.Tensor:
    """θ near the identity, zero (for orthogonal: at the padding's values) outside each
    problem's own d, as the kernel keeps it."""
    theta = method.init(dims, dmax, F64)
    noise = torch.as_tensor(0.3 * rng.standard_normal(theta.shape))
    if method.kind == "orthogonal":
        inside = (torch.arange(dmax)[None, :] < dims[:, None]).to(F64)
        block = inside[:, :, None] * inside[:, None, :]
        noise = torch.cat([noise[:, :dmax] * inside,
                           noise[:, dmax:] * block.reshape(len(dims), -1)], 1)
    elif method.kind in ("diagonal", "full", "low_rank"):
        k = method.out_dim(dmax)
        rows = (torch.arange(dmax)[None, :] < dims[:, None]).to(F64)
        if method.kind == "diagonal":
            noise = noise * rows
        else:
            cols = (torch.arange(k)[None, :] < (dims[:, None] if k == dmax else k)).to(F64)
            noise = (noise.view(-1, dmax, k) * rows[:, :, None] * cols[:, None, :]
                     ).reshape(theta.shape)
    return theta + noise


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_probe_logits_equal_the_numpy_reference(kind, mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((15, 4))
    x[6] = 0.0  # a zero row (cosine 0 with every row)
    w = rng.standard_normal((3, 4, 4))
    trip = np.stack([np.stack([rng.choice(15, 3, replace=False) for _ in range(40)])
                     for _ in range(3)])
    got = fitting.probe_logits(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(trip),
                               mode, kind).numpy()
    for b in range(3):
        ref = oddoneout.pair_logits(oddoneout.similarity(x, w[b], kind), trip[b])
        np.testing.assert_allclose(got[b], ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", ["zero_shot", "diagonal", "orthogonal", "low_rank:3",
                                  "full"])
def test_the_hand_written_gradient_equals_autograd(text, kind, mode):
    feats, sets, rng = world(5)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    ps, pf = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    lam = np.array([0.1, 0.3, 0.05, 0.2])
    regs = ["eye_distance", "l2", "l1"] if text in ("full", "orthogonal") else ["eye_distance"]
    for reg in regs:
        opts = fitting.FitOptions(dtype="float64", device="cpu", method=text, regulariser=reg,
                                  gather=mode, similarity=kind, reduce_rank=False)
        obj = fitting.objective(feats, data, ps, lam, opts, problem_features=pf)
        method = opts.parsed_method
        theta = random_theta(method, obj.batch.dims, 6, rng)
        idx = torch.arange(4)
        f, g = obj(theta, idx)
        t = theta.clone().requires_grad_(True)
        f_ref, _ = obj.parts(t, idx)
        (g_ref,) = torch.autograd.grad(f_ref.sum(), t)
        np.testing.assert_allclose(f.numpy(), f_ref.detach().numpy(), rtol=1e-12)
        # zero_shot under the cosine: the gradient is 0 (the cosine ignores W's scale),
        # both sides rounding; hence the absolute floor.
        scale = max(float(g_ref.abs().max()), 1.0)
        np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("kind", ["cosine", "euclidean"])
@pytest.mark.parametrize("text", ["diagonal", "orthogonal", "full"])
def test_a_short_fit_lowers_the_loss_in_every_mode_alike(text, kind):
    feats, sets, _ = world(7, n_trip=150)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    ps, lam = np.array([0, 1]), np.array([0.01, 0.01])
    results = []
    for mode in MODES:
        opts = fitting.FitOptions(dtype="float64", device="cpu", method=text, gather=mode,
                                  similarity=kind, max_iter=40, warm_start=False)
        start = fitting.objective(feats[0], data, ps, lam, opts)
        f0, _ = start(opts.parsed_method.init(start.batch.dims, 4, F64), torch.arange(2))
        res = fitting.fit(feats[0], data, ps, lam, opts)
        assert (res.objective < f0 - 1e-3).all(), (mode, res.objective, f0)
        results.append(res.objective)
    # Three exact computations of one objective take the same steps.
    for other in results[1:]:
        np.testing.assert_allclose(other.numpy(), results[0].numpy(), rtol=1e-6)


@pytest.mark.parametrize("kind", ["cosine", "euclidean"])
def test_rank_reduction_and_the_symmetric_restriction_stay_exact(kind):
    # Features of rank 3 in d = 6: the kernel fits a 3 × 3 W in their row space, within
    # the symmetric matrices; both rest on S depending on W only through X W Wᵀ Xᵀ.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((24, 3)) @ rng.standard_normal((3, 6)) / 2.0
    sim = oddoneout.similarity(x, np.eye(6), kind)
    trip = np.stack([rng.choice(24, 3, replace=False) for _ in range(200)])
    data = fitting.TripletSets.from_arrays([sample_choices(sim, trip, 0.3, rng)], dtype=F64)
    base = dict(dtype="float64", device="cpu", similarity=kind, grad_tol=1e-10,
                loss_tol=1e-14, max_iter=3000, warm_start=False)
    fast = fitting.fit(x, data, np.array([0]), np.array([0.05]), fitting.FitOptions(**base))
    plain = fitting.fit(x, data, np.array([0]), np.array([0.05]),
                        fitting.FitOptions(**base, reduce_rank=False, symmetric=False))
    assert float(fast.objective[0]) == pytest.approx(float(plain.objective[0]), rel=1e-7)
    s_fast = oddoneout.similarity(x, fast.weights[0].numpy(), kind)
    s_plain = oddoneout.similarity(x, plain.weights[0].numpy(), kind)
    np.testing.assert_allclose(s_fast, s_plain, atol=1e-4)


def test_evaluate_scores_under_the_fits_similarity():
    feats, sets, _ = world(8)
    data = fitting.TripletSets.from_arrays(sets, dtype=F64)
    w = torch.as_tensor(np.random.default_rng(1).standard_normal((2, 4, 4)))
    for kind in KINDS:
        acc, nll = fitting.evaluate(feats[0], w, data, np.array([0, 1]), similarity=kind)
        for b in range(2):
            sim = oddoneout.similarity(feats[0], w[b].numpy(), kind)
            assert nll[b] == pytest.approx(oddoneout.nll(sim, sets[b]), rel=1e-10)
            assert acc[b] == pytest.approx(oddoneout.accuracy(sim, sets[b]), abs=1e-12)


def test_an_unknown_similarity_is_refused():
    with pytest.raises(ValueError, match="unknown similarity"):
        fitting.FitOptions(similarity="manhattan")
