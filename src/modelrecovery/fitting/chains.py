"""λ chains and warm starts: what takes a working-batch slot when its problem finishes.

Each problem is solved alone or, under warm starts, in one chain per (features, set)
running its λ values from the largest down, each from the previous solution. A chain
holds one slot of the working batch; when it ends, the next waiting chain takes the slot.
"""

from __future__ import annotations

import numpy as np
import torch

from . import restarts
from .batch import Batch
from .lbfgs import Start
from .loss import LOG3
from .options import FitOptions

# A warm start needs a previous solution that predicts better than chance by this much
# (nats per triplet); a collapsed W ≈ 0 sits at log 3 and would trap the next λ.
WARM_MARGIN = 1e-2


class Chains:
    """The λ chains of B problems, as the solver's refill (:class:`.lbfgs.Refill`).

    ``problem_set`` and ``problem_features`` (B,) name each problem's set and features,
    ``lambdas`` (B,) its λ; ``w0`` (B, P) are the cold starts (the identity, or the
    caller's init).
    """

    def __init__(self, batch: Batch, options: FitOptions, dmax: int, w0: torch.Tensor,
                 problem_set: np.ndarray, problem_features: np.ndarray,
                 lambdas: np.ndarray) -> None:
        self.batch, self.options, self.dmax, self.w0 = batch, options, dmax, w0
        self.method = options.parsed_method
        b = len(problem_set)
        chains: dict[tuple[int, int], list[int]] = {}
        for pb in range(b):
            key = ((int(problem_features[pb]), int(problem_set[pb])) if options.warm_start
                   else (pb, 0))
            chains.setdefault(key, []).append(pb)
        self.after = np.full(b, -1)  # the problem that follows each in its chain
        for chain in chains.values():
            chain.sort(key=lambda pb: -lambdas[pb])
            self.after[chain[:-1]] = chain[1:]
        self.waiting = [chain[0] for chain in chains.values()]
        self.unflips = np.zeros(b, dtype=np.int64)

    def first(self, slots: int, device: torch.device) -> torch.Tensor:
        """The problems that start in the first ``slots`` slots, taken off the queue."""
        first = torch.as_tensor(self.waiting[:slots], device=device)
        del self.waiting[:slots]
        return first

    def __call__(self, done: torch.Tensor, x_done: torch.Tensor, f_done: torch.Tensor,
                 g_done: torch.Tensor) -> Start:
        """For finished problems ``done`` (R,) at θ (R, P), objective (R,), gradient
        (R, P): the problems that continue in their slots."""
        batch, method, dmax = self.batch, self.method, self.dmax
        device = x_done.device
        # A larger λ can collapse W towards 0 (uniform predictions, NLL = log 3). W = 0 is
        # stationary for every λ under both regularisers (zero data gradient, and c = 0),
        # so only solutions that fit better than chance seed the next λ; others restart
        # from the identity like a cold fit.
        own, n_own = method.trace_mask(batch.dims[done], dmax, x_done.dtype)
        pen, dpen = method.penalty_and_grad(x_done, batch.regulariser, own, n_own)
        nll_done = f_done - batch.lambdas[done] * pen
        # Under l2 a flip costs nothing (W and |W| tie): only eye_distance restarts.
        flipped = (restarts.flipped(x_done, dmax, own)
                   if batch.symmetric and batch.regulariser == "eye_distance"
                   else torch.zeros(len(done), dtype=torch.bool))
        cont, nxt, starts, known = self._successors(done, x_done, nll_done, flipped)
        cont_t = torch.as_tensor(cont, dtype=torch.long, device=device)
        nxt_t = torch.as_tensor(nxt, dtype=torch.long, device=device)
        # A warm start sits where the previous λ ended, and the two objectives differ
        # only in λ: its objective and gradient are the finished ones shifted by Δλ·R.
        dlam = batch.lambdas[nxt_t] - batch.lambdas[done[cont_t]]
        hess = None
        if (self.options.carry_history and batch.regulariser in ("eye_distance", "l2")
                and method.quadratic_penalty):
            own_c, n_own_c = own[cont_t], n_own[cont_t]

            def penalty_change(rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                return dlam[rows, None, None] * method.penalty_hvp(
                    v, batch.regulariser, own_c[rows], n_own_c[rows])

            hess = penalty_change
        return Start(cont_t, nxt_t, torch.stack(starts) if starts else x_done[:0],
                     f_done[cont_t] + dlam * pen[cont_t],
                     torch.addcmul(g_done[cont_t], dlam[:, None], dpen[cont_t]),
                     torch.as_tensor(known, dtype=torch.bool, device=device), hess)

    def _successors(self, done: torch.Tensor, x_done: torch.Tensor,
                    nll_done: torch.Tensor, flipped: torch.Tensor
                    ) -> tuple[list[int], list[int], list[torch.Tensor], list[bool]]:
        """Per finished problem that has one, its position in ``done``, its successor
        (itself from |W| after a sign flip, the next λ of its chain, or the next waiting
        chain), the successor's start and whether that start is warm."""
        cont, nxt, starts, known = [], [], [], []
        for r, (pb, nll_pb, flip) in enumerate(zip(done.tolist(), nll_done.tolist(),
                                                   flipped.tolist())):
            warm = False
            if flip and self.unflips[pb] < restarts.MAX_UNFLIPS:
                self.unflips[pb] += 1
                nxt.append(pb)
                starts.append(restarts.unflipped(x_done[r:r + 1], self.dmax)[0])
            elif self.after[pb] >= 0:
                nxt.append(int(self.after[pb]))
                warm = nll_pb < LOG3 - WARM_MARGIN
                starts.append(x_done[r] if warm else self.w0[self.after[pb]])
            elif self.waiting:
                nxt.append(self.waiting.pop(0))
                starts.append(self.w0[nxt[-1]])
            else:
                continue
            cont.append(r)
            known.append(warm)
        return cont, nxt, starts, known
