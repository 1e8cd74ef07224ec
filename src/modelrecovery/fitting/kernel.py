"""The kernel's entry points: :func:`fit` B problems together, :func:`evaluate` fitted
transforms, and the :func:`objective` the fits minimise.

A *problem* is one fit: one candidate's features X (n, d), one triplet set (a fold's
training triplets) and one regularisation strength λ. Many problems are solved at once.
Candidates of different d share one solver call, W stacked to (B, D, D) with D the
largest d, each problem's W in its own top-left d × d block (exact: the padded rows and
columns have zero features, zero gradient and zero penalty, so they stay zero). Where
that padding costs more arithmetic than a further call costs overhead
(:func:`.batch.by_dimension`: d = 64 beside d = 256 does 4× the work it needs alone),
each dimension is fitted in its own call, at its own cheapest gather mode, and the
results are padded to D the same way. The optimiser is L-BFGS with each problem's own
state (curvature history, step length, line search, convergence), so a batched fit
takes the same steps as the problem fitted alone; problems that have converged leave
the batch and stop costing work.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .batch import Features, as_list, by_dimension, padded, prepare, tensors
from .chains import Chains
from .evaluation import Objective
from .gather import Gather, evaluation_mode
from .lbfgs import Settings, Status, minimise
from .loss import LOG3, data_nll, probe_logits, tie_aware_accuracy
from .memory import check_one_fits, evaluation_bytes
from .options import FitOptions, resolve_device
from .triplets import TripletSets

# A fit that improves on W = 0 (objective log 3: uniform choices, no penalty) by less
# than this (nats per triplet) is returned as W = 0. Near 0 the solver leaves a residue
# (logit gaps of 1e-15 to 3e-5 nats on the default world's collapsed fits) whose
# direction, and so its ranking of triplets, is arbitrary: fits of one problem at float32/config
# and float64/tight tolerances score test accuracies from 0 to 0.54. A gain this small
# would take ~10¹² judgements to show; float32 resolves log 3 only to ~1e-7. Not for
# zero_shot: W = s·I ranks triplets as the raw features do at every s > 0, and W = 0 is
# outside its family (a generator's calibration rescales s anyway).
CHANCE_TOL = 1e-6


@dataclass
class FitResult:
    """Per-problem results of a batched fit (B problems).

    weights (B, D, K) (K = D, or k for low_rank:k): problem b's transform W in its top
    ``dims[b]`` rows;
    objective and train_nll (B,) in nats per judgement; iterations (B,) (under warm
    starts: of the problem's own λ stage; after a restart from |W|, of its last run);
    converged (B,) bool; status (B,) one of
    ``gradient`` / ``loss`` (tolerance met), ``max_iter``, ``line_search``
    (:attr:`.lbfgs.Status.label`); seconds for the whole call; evaluations: batched
    objective calls, problem_evaluations: problems evaluated over them; mode: the gather
    mode's name (one per feature dimension, ascending, joined by ``+`` where they
    differ). A fit (other than zero_shot) whose objective ends within 1e-6 of W = 0's
    (log 3) or above it is returned as W = 0, objective and train_nll log 3: the
    solver's residue near 0 ranks triplets arbitrarily.
    """

    weights: torch.Tensor
    objective: torch.Tensor
    train_nll: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    status: list[str]
    dims: torch.Tensor
    seconds: float
    evaluations: int
    problem_evaluations: int
    mode: str
    options: FitOptions = field(repr=False)

    def select(self, idx: np.ndarray) -> FitResult:
        """The results of problems ``idx`` (in that order); the call's totals (seconds,
        evaluations, mode) stay the whole call's."""
        t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        on = t.to(self.weights.device)
        return dataclasses.replace(
            self, weights=self.weights[on], objective=self.objective[on],
            train_nll=self.train_nll[on], iterations=self.iterations[t],
            converged=self.converged[t], status=[self.status[i] for i in t.tolist()],
            dims=self.dims[t])


def objective(features: Features, data: TripletSets, problem_set: np.ndarray,
              lambdas: np.ndarray, options: FitOptions = FitOptions(), *,
              problem_features: np.ndarray | None = None) -> Objective:
    """The kernel's objective for B problems, as :func:`fit` builds it.

    Call it as ``obj(flat_w, idx)`` → (objective (A,), gradient (A, D²)) or use
    ``obj.parts(w, idx)`` → (objective, data NLL) for W (A, D, D), in nats per judgement.
    """
    device = resolve_device(options.device)
    dtype = options.torch_dtype
    xs, feature_of, set_of, lam, data = tensors(features, data, problem_set, lambdas,
                                                problem_features, device, dtype)
    batch, _ = prepare(xs, data, feature_of, set_of, lam, options, device, dtype)
    return Objective(batch, max(int(x.shape[1]) for x in xs))


def fit(features: Features, data: TripletSets, problem_set: np.ndarray, lambdas: np.ndarray,
        options: FitOptions = FitOptions(), init: torch.Tensor | None = None, *,
        problem_features: np.ndarray | None = None) -> FitResult:
    """Fit B problems together.

    features: one (n, d) array, or a list of C arrays (n, d_c) (candidates; same n);
    data: F triplet sets; problem_set (B,) the set each problem fits; lambdas (B,);
    problem_features (B,) which feature array each problem uses (default 0);
    init: parameters (B, P) (for ``full``: W as (B, D, D)), or None for the identity;
    warm-started stages after the first start from the previous λ instead. Raises
    :class:`~.memory.MemoryLimitError` if one problem alone exceeds the memory limit.
    """
    xs_in = as_list(features)
    pf_in = (np.zeros(len(problem_set), dtype=np.int64) if problem_features is None
             else np.asarray(problem_features, dtype=np.int64))
    dim_of = np.array([int(np.shape(x)[1]) for x in xs_in])[pf_in]
    if init is None and len(np.unique(dim_of)) > 1 and by_dimension(
            dim_of, max(len(torch.unique(t)) for t in data.triplets),
            int(data.triplets.shape[1]), options.gather_mode):
        return _fit_by_dimension(xs_in, data, np.asarray(problem_set), np.asarray(lambdas),
                                 options, pf_in, dim_of)
    return _fit_together(features, data, problem_set, lambdas, options, init,
                         problem_features=problem_features)


def _fit_by_dimension(xs: list, data: TripletSets, problem_set: np.ndarray,
                      lambdas: np.ndarray, options: FitOptions, pf: np.ndarray,
                      dim_of: np.ndarray) -> FitResult:
    """:func:`fit` one feature dimension at a time, results merged in problem order."""
    start = time.perf_counter()
    parts = []
    for d in np.unique(dim_of):
        idx = np.flatnonzero(dim_of == d)
        used = np.unique(pf[idx])
        local = np.searchsorted(used, pf[idx])
        parts.append((idx, _fit_together([xs[c] for c in used], data, problem_set[idx],
                                         lambdas[idx], options, problem_features=local)))
    b, dmax = len(problem_set), int(dim_of.max())
    first = parts[0][1]
    k = options.parsed_method.out_dim(dmax)
    weights = first.weights.new_zeros((b, dmax, k))
    objective, train_nll = (first.objective.new_empty(b), first.train_nll.new_empty(b))
    iterations = first.iterations.new_empty(b)
    converged = first.converged.new_empty(b)
    status: list[str] = [""] * b
    for idx, res in parts:
        t = torch.as_tensor(idx, device=weights.device)
        weights[t, : res.weights.shape[1], : res.weights.shape[2]] = res.weights
        objective[t], train_nll[t] = res.objective, res.train_nll
        cpu = torch.as_tensor(idx)
        iterations[cpu], converged[cpu] = res.iterations, res.converged
        for i, label in zip(idx, res.status):
            status[i] = label
    modes = dict.fromkeys(res.mode for _, res in parts)
    return FitResult(weights=weights, objective=objective, train_nll=train_nll,
                     iterations=iterations, converged=converged, status=status,
                     dims=torch.as_tensor(dim_of), seconds=time.perf_counter() - start,
                     evaluations=sum(res.evaluations for _, res in parts),
                     problem_evaluations=sum(res.problem_evaluations for _, res in parts),
                     mode="+".join(modes), options=options)


def _fit_together(features: Features, data: TripletSets, problem_set: np.ndarray,
                  lambdas: np.ndarray, options: FitOptions,
                  init: torch.Tensor | None = None, *,
                  problem_features: np.ndarray | None = None) -> FitResult:
    """:func:`fit` in one solver call, features padded to the largest d."""
    device = resolve_device(options.device)
    dtype = options.torch_dtype
    torch.backends.cuda.matmul.allow_tf32 = options.allow_tf32
    torch.backends.cudnn.allow_tf32 = options.allow_tf32
    xs, feature_of, set_of, lam, data = tensors(features, data, problem_set, lambdas,
                                                problem_features, device, dtype)
    b = len(problem_set)
    pf = feature_of.cpu().numpy()
    start = time.perf_counter()
    batch, per_problem = prepare(xs, data, feature_of, set_of, lam, options, device, dtype)
    dmax = max(int(x.shape[1]) for x in xs)
    check_one_fits(per_problem, options, batch.gather, int(data.triplets.shape[1]),
                   int(xs[0].shape[0]), dmax)
    # The working batch holds as many problems as the memory limit allows.
    chunk = max(1, int(options.max_memory_gb * 2**30 // per_problem))
    method = options.parsed_method
    p = method.n_params(dmax)
    if init is None:
        w0 = method.init(batch.dims, dmax, dtype)
    else:
        if batch.bases:
            raise ValueError("an explicit init is in the features' coordinates; it cannot "
                             "be combined with reduce_rank (set reduce_rank=False)")
        w0 = init.to(device=device, dtype=dtype).reshape(b, p)
        if batch.symmetric:  # an asymmetric start is solved in all of R^{D×D}
            w3 = w0.view(b, dmax, dmax)
            batch.symmetric = bool(torch.equal(w3, w3.transpose(1, 2)))
    chains = Chains(batch, options, dmax, w0, problem_set, pf,
                    np.asarray(lambdas, dtype=np.float64))
    fun = Objective(batch, dmax)
    settings = Settings(max_iter=options.max_iter, history=options.history,
                        grad_tol=options.grad_tol, loss_tol=options.loss_tol,
                        max_line_search=options.max_line_search)
    first = chains.first(chunk, device)
    # Inference mode skips autograd's dispatch on the ~100 small operations of every
    # iteration (~10 % of a small job); its tensors are cloned out of it for the caller.
    with torch.inference_mode():
        out = minimise(fun.view(first, batch.symmetric), w0[first], settings, ids=first,
                       n_total=b, refill=chains)
    x_out, f_out, it_out, st_out = (v.clone() for v in out)
    with torch.no_grad():
        nll = torch.cat([batch.parts(x_out[lo: lo + chunk],
                                     torch.arange(lo, min(b, lo + chunk), device=device))[1]
                         for lo in range(0, b, chunk)])
        w = batch.to_original(method.matrix(x_out, dmax))
        if method.kind != "zero_shot":
            chance = f_out > LOG3 - CHANCE_TOL
            w[chance], f_out[chance], nll[chance] = 0.0, LOG3, LOG3
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    st_cpu = st_out.cpu()
    return FitResult(weights=w, objective=f_out, train_nll=nll, iterations=it_out.cpu(),
                     converged=(st_cpu == Status.GRADIENT) | (st_cpu == Status.LOSS),
                     status=[Status(s).label for s in st_cpu.tolist()],
                     dims=torch.as_tensor([int(xs[c].shape[1]) for c in pf]),
                     seconds=time.perf_counter() - start, evaluations=fun.evaluations,
                     problem_evaluations=fun.problem_evaluations, mode=batch.gather.name,
                     options=options)


@torch.no_grad()
def evaluate(features: Features, weights: torch.Tensor, data: TripletSets,
             problem_set: np.ndarray, gather: Gather | str = "auto", *,
             problem_features: np.ndarray | None = None, similarity: str = "dot",
             max_memory_gb: float = FitOptions.max_memory_gb
             ) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (ties split; a fraction of judgements) and mean NLL at T = 1 (nats per
    judgement) of each problem on its set.

    features as in :func:`fit`; weights W (B, D, K) as in :class:`FitResult`; data: F
    sets; problem_set (B,); ``similarity`` the fit's (``FitResult.options.similarity``)
    → two float64 arrays (B,). Problems are scored a chunk at a time, as many as
    ``max_memory_gb`` (the fit's :attr:`FitOptions.max_memory_gb`) holds: all B at once
    would hold every problem's X W and its similarities or gathered rows together
    (13.8 GB for 240 problems of 1,854 objects, d = 256 and 12,500 triplets).
    """
    xs_list = [torch.as_tensor(np.asarray(x), dtype=weights.dtype, device=weights.device)
               for x in as_list(features)]
    gx = padded(xs_list, weights.shape[-2])  # W is (B, D, K): pad features to its rows
    b = len(problem_set)
    pf = torch.as_tensor(np.zeros(b, dtype=np.int64) if problem_features is None
                         else np.asarray(problem_features, dtype=np.int64),
                         device=weights.device)
    sets = torch.as_tensor(np.asarray(problem_set), dtype=torch.long, device=weights.device)
    n_objects, n_trip = int(gx.shape[1]), int(data.triplets.shape[1])
    itemsize = weights.element_size()
    mode = evaluation_mode(gather, n_objects, n_trip, itemsize)
    chunk = max(1, int(max_memory_gb * 2**30 // evaluation_bytes(
        mode, n_objects, n_trip, int(weights.shape[-2]), itemsize)))
    triplets = data.triplets.to(weights.device)
    counts = data.counts.to(device=weights.device, dtype=weights.dtype)
    acc, nll = torch.empty(b, dtype=torch.float64), torch.empty(b, dtype=torch.float64)
    for lo in range(0, b, chunk):
        part = slice(lo, min(b, lo + chunk))
        logits = probe_logits(gx[pf[part]], weights[part], triplets[sets[part]], mode,
                              similarity)
        # Accuracy in float64: equal fractions of correct triplets must compare equal later.
        acc[part] = tie_aware_accuracy(logits, counts[sets[part]].double()).cpu()
        nll[part] = data_nll(logits, counts[sets[part]]).double().cpu()
    return acc.numpy(), nll.numpy()
