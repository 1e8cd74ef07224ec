"""The torch fitting kernel: batched, full-batch L-BFGS for odd-one-out linear probes.

A *problem* is one fit: features X (n, d) shared by all problems, one triplet set
(a fold's training triplets) and one regularisation strength λ. Many problems are
solved at once: W is stacked to (B, d, d) and every tensor operation covers all active
problems. The optimiser is L-BFGS with each problem's own state (curvature history,
step length, line search, convergence), so a batched fit takes the same steps as the
same problem fitted alone; finished problems leave the batch and stop costing work.

Objective of problem b (fold f, strength λ_b), with pair logits as in :mod:`oddoneout`:

    L_b(W) = Σ_t w_t [logsumexp(S_ij, S_ik, S_jk) − S_ij] / Σ_t w_t  +  λ_b R(W)
    R(W)   = ‖W − cI‖²_F, c = tr(W)/d  (eye_distance)   or   ‖W‖²_F  (l2)

with S = (X W)(X W)ᵀ at T = 1 (the scale of W absorbs the temperature).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

Regulariser = Literal["eye_distance", "l2"]
REGULARISERS: tuple[str, ...] = ("eye_distance", "l2")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FitOptions:
    """Solver settings. Tolerances are recorded with every fit.

    ``loss_tol`` is on the relative change of the objective between iterations,
    ``grad_tol`` on the largest absolute gradient entry.
    """

    regulariser: Regulariser = "eye_distance"
    max_iter: int = 500
    history: int = 10
    grad_tol: float = 1e-6
    loss_tol: float = 1e-7
    max_line_search: int = 25
    dtype: str = "float32"
    device: str = "auto"
    gather: Literal["auto", "similarity", "rows"] = "auto"
    allow_tf32: bool = False

    def __post_init__(self) -> None:
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"unknown regulariser {self.regulariser!r}; use one of {REGULARISERS}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use float32 or float64")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


@functools.cache
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first visible CUDA device (as SLURM sets CUDA_VISIBLE_DEVICES), else CPU.

    Cached, so the fallback is logged once per process.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("no CUDA device visible (CUDA_VISIBLE_DEVICES=%s); fitting on CPU",
                 os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        return torch.device("cpu")
    return torch.device(name)


@dataclass
class TripletSets:
    """F triplet sets padded to a common length N.

    ``triplets`` (F, N, 3) int64 with k odd; ``weights`` (F, N): the count of each
    triplet (1 for plain rows), 0 on padding.
    """

    triplets: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def from_arrays(cls, sets: list[np.ndarray], counts: list[np.ndarray] | None = None,
                    *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> TripletSets:
        """Pad a list of (N_f, 3) arrays (and optional (N_f,) counts)."""
        n_max = max(len(s) for s in sets)
        t = np.zeros((len(sets), n_max, 3), dtype=np.int64)
        w = np.zeros((len(sets), n_max), dtype=np.float64)
        for f, s in enumerate(sets):
            t[f, : len(s)] = s
            w[f, : len(s)] = 1.0 if counts is None else counts[f]
            # Padding rows point at a valid distinct triplet; their weight is 0.
            t[f, len(s):] = (0, 1, 2)
        return cls(torch.as_tensor(t, device=device), torch.as_tensor(w, dtype=dtype,
                                                                       device=device))

    @property
    def n_sets(self) -> int:
        return int(self.triplets.shape[0])


def _use_similarity_gather(n_objects: int, n_triplets: int, mode: str) -> bool:
    if mode != "auto":
        return mode == "similarity"
    # The full S costs n²·d per problem in one matmul; row gathers cost ~3N·d in slower
    # memory-bound ops. Computing S pays once the triplets cover a good part of it.
    return n_objects * n_objects <= 8 * n_triplets


def pair_logits(features: torch.Tensor, weights: torch.Tensor, triplets: torch.Tensor,
                gather: str = "auto") -> torch.Tensor:
    """Pair logits [S_ij, S_ik, S_jk] for a batch of problems.

    features (n, d); weights (B, d, d); triplets (B, N, 3) long → (B, N, 3).
    """
    z = features @ weights  # (B, n, d)
    n = features.shape[0]
    i, j, k = triplets.unbind(-1)
    if _use_similarity_gather(n, triplets.shape[1], gather):
        flat = (z @ z.transpose(1, 2)).reshape(z.shape[0], n * n)
        idx = torch.stack([i * n + j, i * n + k, j * n + k], dim=-1)
        return flat.gather(1, idx.reshape(idx.shape[0], -1)).reshape(idx.shape)

    def rows(index: torch.Tensor) -> torch.Tensor:
        return z.gather(1, index.unsqueeze(-1).expand(-1, -1, z.shape[-1]))

    zi, zj, zk = rows(i), rows(j), rows(k)
    return torch.stack([(zi * zj).sum(-1), (zi * zk).sum(-1), (zj * zk).sum(-1)], dim=-1)


def penalty(weights: torch.Tensor, regulariser: str) -> torch.Tensor:
    """R(W) per problem, shape (B,), for weights (B, d, d)."""
    sq = weights.square().sum(dim=(1, 2))
    if regulariser == "l2":
        return sq
    # ‖W − cI‖² with c = tr(W)/d expands to ‖W‖² − tr(W)²/d.
    tr = weights.diagonal(dim1=1, dim2=2).sum(-1)
    return sq - tr.square() / weights.shape[-1]


def data_nll(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean NLL of choice 0 per problem: logits (B, N, 3), weights (B, N) → (B,)."""
    per = torch.logsumexp(logits, dim=-1) - logits[..., 0]
    return (weights * per).sum(-1) / weights.sum(-1)


def tie_aware_accuracy(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted accuracy of the most probable choice, exact ties splitting credit: (B,)."""
    top = logits == logits.amax(dim=-1, keepdim=True)
    per = top[..., 0].to(weights.dtype) / top.sum(-1).to(weights.dtype)
    return (weights * per).sum(-1) / weights.sum(-1)


@dataclass
class FitResult:
    """Per-problem results of a batched fit (B problems).

    weights (B, d, d); objective and train_nll (B,) in nats per judgement;
    iterations (B,); converged (B,) bool; status (B,) one of
    ``gradient`` / ``loss`` (tolerance met), ``max_iter``, ``line_search``.
    """

    weights: torch.Tensor
    objective: torch.Tensor
    train_nll: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    status: list[str]
    seconds: float
    options: FitOptions = field(repr=False)


class _Objective:
    """Closure evaluating objective and gradient for any subset of the problems."""

    def __init__(self, features: torch.Tensor, data: TripletSets, problem_set: torch.Tensor,
                 lambdas: torch.Tensor, options: FitOptions) -> None:
        self.x = features
        self.data = data
        self.problem_set = problem_set
        self.lambdas = lambdas
        self.options = options
        self.d = features.shape[1]
        self.evaluations = 0

    def parts(self, w: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sets = self.problem_set[idx]
        logits = pair_logits(self.x, w, self.data.triplets[sets], self.options.gather)
        nll = data_nll(logits, self.data.weights[sets])
        return nll + self.lambdas[idx] * penalty(w, self.options.regulariser), nll

    def __call__(self, flat: torch.Tensor, idx: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        self.evaluations += 1
        w = flat.detach().reshape(-1, self.d, self.d).requires_grad_(True)
        with torch.enable_grad():
            obj, _ = self.parts(w, idx)
            (grad,) = torch.autograd.grad(obj.sum(), w)
        return obj.detach(), grad.reshape(flat.shape)


def _two_loop(grad: torch.Tensor, s_hist: torch.Tensor, y_hist: torch.Tensor,
              rho: torch.Tensor, count: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """L-BFGS direction −H g for each problem from its own ring buffer of curvature pairs.

    grad (A, P); s_hist, y_hist (A, m, P); rho (A, m); count, head (A,) long.
    """
    a_rows = torch.arange(grad.shape[0], device=grad.device)
    m = s_hist.shape[1]
    depth = int(count.max()) if count.numel() else 0
    q = grad.clone()
    alphas = []
    for age in range(depth):  # newest pair first
        slot = (head - 1 - age) % m
        valid = (age < count).to(grad.dtype)
        s, y, r = s_hist[a_rows, slot], y_hist[a_rows, slot], rho[a_rows, slot]
        alpha = valid * r * (s * q).sum(1)
        q -= alpha[:, None] * y
        alphas.append(alpha)
    if depth:
        newest = (head - 1) % m
        y_new = y_hist[a_rows, newest]
        gamma = 1.0 / (rho[a_rows, newest] * y_new.square().sum(1))
        q *= torch.where(count > 0, gamma, torch.ones_like(gamma))[:, None]
    for age in reversed(range(depth)):  # oldest pair first
        slot = (head - 1 - age) % m
        valid = (age < count).to(grad.dtype)
        s, y, r = s_hist[a_rows, slot], y_hist[a_rows, slot], rho[a_rows, slot]
        beta = r * (y * q).sum(1)
        q += (valid * (alphas[age] - beta))[:, None] * s
    return -q


def lbfgs(fun: _Objective, x0: torch.Tensor, options: FitOptions
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Minimise B independent problems with per-problem L-BFGS.

    ``fun(x_sub, idx)`` returns objective (A,) and gradient (A, P) for the problems
    ``idx``. Line search: backtracking with safeguarded quadratic interpolation under
    the Armijo condition, per problem. Returns x (B, P), f (B,), iterations (B,),
    converged (B,), status per problem.
    """
    dev, dt = x0.device, x0.dtype
    b, p = x0.shape
    m = options.history
    x = x0.clone()
    all_idx = torch.arange(b, device=dev)
    f, g = fun(x, all_idx)
    s_hist = torch.zeros(b, m, p, device=dev, dtype=dt)
    y_hist = torch.zeros(b, m, p, device=dev, dtype=dt)
    rho = torch.zeros(b, m, device=dev, dtype=dt)
    count = torch.zeros(b, dtype=torch.long, device=dev)
    head = torch.zeros(b, dtype=torch.long, device=dev)
    iters = torch.zeros(b, dtype=torch.long, device=dev)
    status = ["max_iter"] * b
    done = g.abs().amax(1) <= options.grad_tol
    for i in torch.nonzero(done).flatten().tolist():
        status[i] = "gradient"
    c1 = 1e-4
    for _ in range(options.max_iter):
        act = torch.nonzero(~done).flatten()
        if act.numel() == 0:
            break
        xa, fa, ga = x[act], f[act], g[act]
        d = _two_loop(ga, s_hist[act], y_hist[act], rho[act], count[act], head[act])
        gtd = (ga * d).sum(1)
        not_descent = ~(gtd < 0)
        if not_descent.any():  # stale curvature: restart from steepest descent
            d[not_descent] = -ga[not_descent]
            gtd = (ga * d).sum(1)
            count[act[not_descent]] = 0
        first = count[act] == 0
        step = torch.ones_like(fa)
        step[first] = torch.clamp(1.0 / ga[first].abs().sum(1), max=1.0)
        # Per-problem backtracking line search.
        x_new, f_new, g_new = xa.clone(), fa.clone(), ga.clone()
        searching = torch.ones_like(fa, dtype=torch.bool)
        f_last = fa.clone()
        for _ls in range(options.max_line_search):
            sidx = torch.nonzero(searching).flatten()
            if sidx.numel() == 0:
                break
            xt = xa[sidx] + step[sidx, None] * d[sidx]
            ft, gt = fun(xt, act[sidx])
            f_last[sidx] = ft
            ok = torch.isfinite(ft) & (ft <= fa[sidx] + c1 * step[sidx] * gtd[sidx])
            acc = sidx[ok]
            x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
            searching[acc] = False
            rej = sidx[~ok]
            if rej.numel():
                t, f0, slope, fr = step[rej], fa[rej], gtd[rej], ft[~ok]
                denom = 2.0 * (fr - f0 - slope * t)
                t_quad = torch.where(torch.isfinite(fr) & (denom > 0), -slope * t * t / denom,
                                     0.5 * t)
                step[rej] = torch.minimum(torch.maximum(t_quad, 0.1 * t), 0.5 * t)
        failed = searching
        s = x_new - xa
        y = g_new - ga
        sy = (s * y).sum(1)
        good = (~failed) & (sy > 1e-10 * y.square().sum(1).clamp_min(1e-30))
        if good.any():
            gi = act[good]
            slot = head[gi]
            s_hist[gi, slot] = s[good]
            y_hist[gi, slot] = y[good]
            rho[gi, slot] = 1.0 / sy[good]
            head[gi] = (slot + 1) % m
            count[gi] = torch.clamp(count[gi] + 1, max=m)
        iters[act] += 1
        x[act], f[act], g[act] = x_new, f_new, g_new
        scale = torch.maximum(fa.abs(), f_new.abs()).clamp_min(1e-12)
        conv_grad = g_new.abs().amax(1) <= options.grad_tol
        conv_loss = (fa - f_new).abs() <= options.loss_tol * scale
        # A failed search whose trial points did not measurably change the loss has hit
        # the resolution of the dtype: the loss criterion, not a solver failure.
        stalled = failed & ((f_last - fa).abs() <= options.loss_tol * scale)
        out_of_iters = iters[act] >= options.max_iter
        for n_local, i in enumerate(act.tolist()):
            if conv_grad[n_local]:
                status[i] = "gradient"
            elif stalled[n_local] or (conv_loss[n_local] and not failed[n_local]):
                status[i] = "loss"
            elif failed[n_local]:
                status[i] = "line_search"
            elif out_of_iters[n_local]:
                status[i] = "max_iter"
            else:
                continue
            done[i] = True
    converged = torch.tensor([st in ("gradient", "loss") for st in status], device=dev)
    return x, f, iters, converged, status


def fit(features: np.ndarray | torch.Tensor, data: TripletSets, problem_set: np.ndarray,
        lambdas: np.ndarray, options: FitOptions = FitOptions(),
        init: torch.Tensor | None = None) -> FitResult:
    """Fit B problems together.

    features (n, d); data: F triplet sets; problem_set (B,) the set each problem fits;
    lambdas (B,) their strengths; init (B, d, d) or None for W = I.
    """
    device = resolve_device(options.device)
    dtype = options.torch_dtype
    torch.backends.cuda.matmul.allow_tf32 = options.allow_tf32
    torch.backends.cudnn.allow_tf32 = options.allow_tf32
    x = torch.as_tensor(np.asarray(features), dtype=dtype, device=device)
    data = TripletSets(data.triplets.to(device), data.weights.to(device=device, dtype=dtype))
    sets = torch.as_tensor(np.asarray(problem_set), dtype=torch.long, device=device)
    lam = torch.as_tensor(np.asarray(lambdas, dtype=np.float64), dtype=dtype, device=device)
    b, d = len(sets), x.shape[1]
    if init is None:
        w0 = torch.eye(d, dtype=dtype, device=device).expand(b, d, d).reshape(b, d * d)
    else:
        w0 = init.to(device=device, dtype=dtype).reshape(b, d * d)
    start = time.perf_counter()
    fun = _Objective(x, data, sets, lam, options)
    flat, obj, iters, conv, status = lbfgs(fun, w0, options)
    w = flat.reshape(b, d, d)
    with torch.no_grad():
        _, nll = fun.parts(w, torch.arange(b, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return FitResult(weights=w, objective=obj, train_nll=nll, iterations=iters.cpu(),
                     converged=conv.cpu(), status=status,
                     seconds=time.perf_counter() - start, options=options)


@torch.no_grad()
def evaluate(features: np.ndarray | torch.Tensor, weights: torch.Tensor, data: TripletSets,
             problem_set: np.ndarray, gather: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (ties split) and mean NLL at T = 1 of each problem on its set.

    weights (B, d, d); data: F sets; problem_set (B,) → two float64 arrays (B,).
    """
    x = torch.as_tensor(np.asarray(features), dtype=weights.dtype, device=weights.device)
    sets = torch.as_tensor(np.asarray(problem_set), dtype=torch.long, device=weights.device)
    trip = data.triplets.to(weights.device)[sets]
    wts = data.weights.to(device=weights.device, dtype=weights.dtype)[sets]
    logits = pair_logits(x, weights, trip, gather)
    acc = tie_aware_accuracy(logits, wts)
    nll = data_nll(logits, wts)
    return acc.double().cpu().numpy(), nll.double().cpu().numpy()
