"""Batched L-BFGS: many independent problems, each with its own curvature history, step
length, line search and convergence, advanced together in fixed-shape tensor operations.

The solver knows nothing of the probe: it minimises any :class:`SolverProblems`, a batch of
objectives that returns values (A,) and gradients (A, P) for parameters (A, P), and can be
narrowed to a subset of its problems. It is written for batches of small problems, where
the cost of one iteration is the number of tensor operations rather than the arithmetic:
every step is a fixed number of batched operations, whatever the history length, and the
batch is compacted only when a problem finishes.

One iteration of :func:`minimise` runs the phases of :class:`_Solver`: retire finished
problems (and refill their slots), propose a trial along each problem's direction,
evaluate all trials in one call, advance each line search, record the curvature pair and
test convergence.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .history import History
from .solver_interface import SolverProblems, Refill, Settings, Start, Status

__all__ = ["History", "SolverProblems", "Refill", "Settings", "Start", "Status", "minimise"]


# Plain ints for torch: it parses an IntEnum scalar about twice as slowly as an int, and a
# status update runs every iteration.
_RUNNING, _GRADIENT, _LOSS, _LINE_SEARCH, _MAX_ITER = (int(s) for s in Status)
_ARMIJO = 1e-4
# Weak Wolfe curvature condition: an accepted step must have flattened the slope along d
# to this fraction (Nocedal & Wright's value for quasi-Newton methods). A step that passes
# Armijo with the slope still steeper is too short, and is lengthened: a fit starting
# where the objective curves downwards (W = I with small logits) would otherwise keep
# rejecting its curvature pairs and crawl at the tiny first-iteration step.
_WOLFE = 0.9
# A too-short step grows to the secant estimate of where the slope vanishes, within
# these factors of itself.
_GROW = (2.0, 10.0)


def minimise(problems: SolverProblems, x0: torch.Tensor, settings: Settings, *,
             ids: torch.Tensor | None = None, n_total: int | None = None,
             refill: Refill | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise independent problems with per-problem L-BFGS.

    ``problems`` holds the first working batch, problems ``ids`` (B,) (default 0..B−1) of
    ``n_total`` (default B), starting at x0 (B, P). When a problem finishes, ``refill``
    may put another problem in its slot (a warm start along a λ path, or the next problem
    waiting for memory), so the batch stays full; otherwise the batch shrinks.

    Line search: per problem, for the weak Wolfe conditions. A trial that fails Armijo
    bounds the step from above, and the next is a safeguarded quadratic interpolation; a
    trial that passes Armijo but leaves the slope steep bounds it from below (and is
    kept as the fallback), and the next is a secant extrapolation, or the bracket's middle.
    The first trial of every problem is evaluated in one batched call, retries only for
    the problems that need them. Returns x (n_total, P), f, the iterations and
    :class:`Status` codes, all (n_total,).
    """
    return _Solver(problems, x0, settings, ids, n_total, refill).solve()


@dataclass
class _Slots:
    """Per-slot state of the working batch, one row per slot.

    ``fresh``: slots just refilled, whose first evaluation rides along (at step 0)
    unless the refill already knows it. ``searching``: a line search is under way, so
    the slot retries its backtracked step instead of a new direction; ``trials`` of it so
    far. ``quiet``: consecutive iterations within the loss tolerance. The bracket of a
    search: ``lo`` the longest step known to pass Armijo with the slope still steep (0:
    none yet) with its point ``x_lo``, ``f_lo``, ``g_lo`` and slope ``s_lo`` along d, and
    ``hi`` the shortest step known to fail (inf: none yet); only read while a search is
    under way.
    """

    ids: torch.Tensor
    x: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    iters: torch.Tensor
    status: torch.Tensor
    fresh: torch.Tensor
    searching: torch.Tensor
    trials: torch.Tensor
    d: torch.Tensor
    gtd: torch.Tensor
    step: torch.Tensor
    quiet: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    f_lo: torch.Tensor
    s_lo: torch.Tensor
    x_lo: torch.Tensor
    g_lo: torch.Tensor

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only slots ``keep``, in that order."""
        for name in _SLOT_FIELDS:
            setattr(self, name, getattr(self, name)[keep])


_SLOT_FIELDS = tuple(f.name for f in fields(_Slots))


@dataclass
class _Trial:
    """One evaluated trial per slot and what the line search makes of it: the point each
    slot moves to (x, f, g; its old one where the trial is rejected), ``ok`` (accepted),
    ``failed`` (its search ran out of trials), ``all_ok`` (every slot accepted, the usual
    case) and the trial's own objective ``ft``."""

    x: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    ok: torch.Tensor
    failed: torch.Tensor | None
    all_ok: bool
    ft: torch.Tensor


class _Solver:
    """The state of one :func:`minimise` call and its phases."""

    def __init__(self, problems: SolverProblems, x0: torch.Tensor, settings: Settings,
                 ids: torch.Tensor | None, n_total: int | None, refill: Refill | None
                 ) -> None:
        dev, dt = x0.device, x0.dtype
        b, p = x0.shape
        self.problems, self.settings, self.refill = problems, settings, refill
        ids = torch.arange(b, device=dev) if ids is None else ids.clone()
        n_total = b if n_total is None else n_total
        x = x0.clone()
        f, g = problems(x)
        self.x_out = torch.zeros(n_total, p, device=dev, dtype=dt)
        self.f_out = torch.zeros(n_total, device=dev, dtype=dt)
        self.it_out = torch.zeros(n_total, dtype=torch.long, device=dev)
        self.st_out = torch.zeros(n_total, dtype=torch.long, device=dev)
        self.capped = _RUNNING if settings.max_iter > 0 else _MAX_ITER
        status = self.initial_status(g)
        self.hist = History(b, settings.history, p, dev, dt)
        iters = torch.zeros(b, dtype=torch.long, device=dev)
        fresh = torch.zeros(b, dtype=torch.bool, device=dev)
        searching = torch.zeros(b, dtype=torch.bool, device=dev)
        trials = torch.zeros(b, dtype=torch.long, device=dev)
        quiet = torch.zeros(b, dtype=torch.long, device=dev)
        d, gtd, step = torch.zeros_like(x), torch.zeros_like(f), torch.zeros_like(f)
        lo, hi, f_lo, s_lo = (torch.zeros_like(f) for _ in range(4))
        self.s = _Slots(ids, x, f, g, iters, status, fresh, searching, trials, d, gtd, step,
                        quiet, lo, hi, f_lo, s_lo, x, g)
        # Whether any slot is fresh, searching, or searching with a lower end: each
        # spares the operations of its case in the common iteration without one.
        self.any_fresh = self.any_searching = self.any_lower = False

    def initial_status(self, g: torch.Tensor) -> torch.Tensor:
        """The status at a start with gradient g (R, P): converged, or running."""
        return torch.where(g.abs().amax(1) <= self.settings.grad_tol, _GRADIENT, self.capped)

    def solve(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # Every loop is one batched evaluation. A problem either tries a new direction or,
        # when its last trial failed the Armijo test, the backtracked step of its current
        # line search: trials of different problems share a call instead of waiting.
        while True:
            if not self.retire():
                return self.x_out, self.f_out, self.it_out, self.st_out
            self.propose()
            s = self.s
            xt = torch.addcmul(s.x, s.step[:, None], s.d)
            ft, gt = self.problems(xt)
            trial = self.line_search(xt, ft, gt)
            self.record_pair(trial)
            self.test_convergence(trial)
            s.x, s.f, s.g = trial.x, trial.f, trial.g

    def retire(self) -> bool:
        """Store finished problems, refill their slots (and store refills that start
        converged), compact the batch to the running ones: whether any still run."""
        s = self.s
        fin = torch.nonzero(s.status).flatten()
        if not fin.numel():
            return True
        while fin.numel():
            ids = s.ids[fin]
            self.x_out[ids], self.f_out[ids] = s.x[fin], s.f[fin]
            self.it_out[ids], self.st_out[ids] = s.iters[fin], s.status[fin]
            if self.refill is None:
                break
            new = self.refill(ids, s.x[fin], s.f[fin], s.g[fin])
            if not new.cont.numel():
                break
            slots = fin[new.cont]
            self.take_slots(slots, new)
            fin = slots[s.status[slots] != _RUNNING]
        keep = torch.nonzero(s.status == _RUNNING).flatten()
        if keep.numel() == 0:
            return False
        if keep.numel() < len(s.ids):
            s.compact(keep)
            self.hist = self.hist.select(keep)
            self.problems = self.problems.select(keep)
        return True

    def take_slots(self, slots: torch.Tensor, new: Start) -> None:
        """Put the refill ``new`` into ``slots``, with its curvature pairs where kept."""
        s, hist = self.s, self.hist
        s.ids[slots], s.x[slots], s.f[slots], s.g[slots] = new.ids, new.x, new.f, new.g
        self.problems = self.problems.replace(slots, new.ids)
        if new.hess is None:
            hist.reset(slots)
        else:
            hist.reset(slots[~new.known])
            rows = torch.nonzero(new.known).flatten()
            if rows.numel():
                hist.shift(slots[rows], lambda v, rows=rows: new.hess(rows, v))
        s.iters[slots], s.quiet[slots] = 0, 0
        s.status[slots] = torch.where(new.known, self.initial_status(new.g), _RUNNING)
        s.fresh[slots] = ~new.known
        self.any_fresh = self.any_fresh or not bool(new.known.all())

    def propose(self) -> None:
        """Each slot's direction d, its slope gtd and trial step: a new L-BFGS direction,
        or the search's own while one is under way (step 0 for fresh slots)."""
        s, hist = self.s, self.hist
        g = s.g
        dn = hist.direction(g)
        gtdn = (g * dn).sum(1)
        if bool((gtdn >= 0).any()):  # stale curvature: restart from steepest descent
            bad = ~(gtdn < 0)
            dn = torch.where(bad[:, None], -g, dn)
            gtdn = (g * dn).sum(1)
            hist.reset(torch.nonzero(bad & ~s.searching).flatten())
        empty = hist.count == 0
        if bool(empty.any()):
            stepn = torch.where(empty, torch.clamp(1.0 / g.abs().sum(1), max=1.0),
                                torch.ones_like(s.f))
        else:
            stepn = torch.ones_like(s.f)
        if self.any_searching:
            s.d = torch.where(s.searching[:, None], s.d, dn)
            s.gtd = torch.where(s.searching, s.gtd, gtdn)
            s.step = torch.where(s.searching, s.step, stepn)
        else:
            s.d, s.gtd, s.step = dn, gtdn, stepn
        if self.any_fresh:
            s.step = torch.where(s.fresh, 0.0, s.step)

    def line_search(self, xt: torch.Tensor, ft: torch.Tensor, gt: torch.Tensor) -> _Trial:
        """Accept each trial (xt, ft, gt) that meets the weak Wolfe conditions; narrow the
        others' brackets and choose their next step."""
        s = self.s
        armijo = torch.isfinite(ft) & (ft <= torch.addcmul(s.f, s.step, s.gtd, value=_ARMIJO))
        slope = torch.linalg.vecdot(gt, s.d)
        ok = armijo & (slope >= _WOLFE * s.gtd)
        if self.any_fresh:
            ok = ok | s.fresh
        s.trials += 1
        if bool(ok.all()):
            s.searching = torch.zeros_like(ok)
            self.any_searching = self.any_lower = False
            return _Trial(xt, ft, gt, ok, None, True, ft)
        return self.bracket(xt, ft, gt, armijo, slope, ok)

    def bracket(self, xt: torch.Tensor, ft: torch.Tensor, gt: torch.Tensor,
                armijo: torch.Tensor, slope: torch.Tensor, ok: torch.Tensor) -> _Trial:
        """The line search where some trial is rejected: update the brackets, the next
        steps, and the fallback of searches that run out of trials."""
        s = self.s
        f, gtd, step = s.f, s.gtd, s.step
        # Searches under way keep their brackets; new ones start with none.
        hi = (torch.where(s.searching, s.hi, torch.inf) if self.any_searching
              else torch.full_like(f, torch.inf))
        short = ~ok & armijo  # passes Armijo with the slope still steep: too short
        lower = self.any_lower or bool(short.any())
        if lower:
            if self.any_lower:
                lo = torch.where(s.searching, s.lo, 0.0)
                f_lo = torch.where(s.searching, s.f_lo, f)
                s_lo = torch.where(s.searching, s.s_lo, gtd)
            else:
                lo, f_lo, s_lo = torch.zeros_like(f), f, gtd
            # A longer step must also beat the lower end, else the objective rose in
            # between: an upper end.
            short = short & (ft < f_lo)
            upper = ~ok & ~short
            t_down = _interpolate(step, ft, lo, f_lo, s_lo)
            # Lower end: the secant root of the slope, within _GROW of the step, until
            # an upper end is known; then the bracket's middle.
            rise = slope - s_lo
            t_sec = torch.where(rise > 0, step - slope * (step - lo) / rise,
                                _GROW[1] * step)
            t_up = torch.where(torch.isinf(hi),
                               t_sec.clamp(_GROW[0] * step, _GROW[1] * step),
                               0.5 * (step + hi))
            s.lo, s.f_lo, s.s_lo = (torch.where(short, a, b)
                                    for a, b in ((step, lo), (ft, f_lo), (slope, s_lo)))
            s.x_lo = torch.where(short[:, None], xt, s.x_lo)
            s.g_lo = torch.where(short[:, None], gt, s.g_lo)
            s.hi = torch.where(upper, step, hi)
            s.step = torch.where(upper, t_down, torch.where(short, t_up, step))
        else:  # no lower end anywhere: plain backtracking from the current point
            upper = ~ok
            s.hi = torch.where(upper, step, hi)
            s.step = torch.where(upper, _interpolate(step, ft, 0.0, f, gtd), step)
        out = ~ok & (s.trials >= self.settings.max_line_search)
        s.searching = ~ok & ~out
        self.any_searching = bool(s.searching.any())
        x_acc, f_acc, g_acc, failed = xt, ft, gt, out
        if lower:  # out of trials: the best Armijo point found, else a failed search
            fallback = out & (s.lo > 0)
            failed = out & ~fallback
            self.any_lower = bool((s.searching & (s.lo > 0)).any())
            ok = ok | fallback
            x_acc = torch.where(fallback[:, None], s.x_lo, xt)
            f_acc = torch.where(fallback, s.f_lo, ft)
            g_acc = torch.where(fallback[:, None], s.g_lo, gt)
        return _Trial(torch.where(ok[:, None], x_acc, s.x), torch.where(ok, f_acc, f),
                      torch.where(ok[:, None], g_acc, s.g), ok, failed, False, ft)

    def record_pair(self, trial: _Trial) -> None:
        """Push each accepted step's curvature pair (s, y) where it curves upwards."""
        s = self.s
        step, y = trial.x - s.x, trial.g - s.g
        keep = (step * y).sum(1) > 1e-10 * y.square().sum(1).clamp_min(1e-30)
        keep = keep if trial.all_ok else keep & trial.ok
        self.hist.push(keep & ~s.fresh if self.any_fresh else keep, step, y, trial.g)

    def test_convergence(self, trial: _Trial) -> None:
        """Count the completed iterations and set the status of the problems they end."""
        s, settings = self.s, self.settings
        f, f_new, g_new = s.f, trial.f, trial.g
        scale = settings.loss_tol * torch.maximum(f.abs(), f_new.abs()).clamp_min(1e-12)
        small = (f - f_new).abs() <= scale
        if trial.all_ok:  # every iteration complete (the usual case): fewer operations
            s.quiet = torch.where(small, s.quiet + 1, 0)
            s.iters += 1
            new = torch.where(s.iters >= settings.max_iter, _MAX_ITER, _RUNNING)
            new = torch.where(s.quiet >= settings.patience, _LOSS, new)
            s.status = torch.where(g_new.abs().amax(1) <= settings.grad_tol, _GRADIENT, new)
            s.trials.zero_()
        else:
            ok, failed = trial.ok, trial.failed
            # A rejected trial is not an iteration: its count of quiet iterations stands.
            s.quiet = torch.where(ok, torch.where(small, s.quiet + 1, 0), s.quiet)
            conv_loss = s.quiet >= settings.patience
            ended = ok | failed  # problems whose iteration is complete
            s.iters += ended.long()
            # A failed search whose trial points did not measurably change the loss has
            # hit the resolution of the dtype: the loss criterion, not a solver failure.
            stalled = failed & ((trial.ft - f).abs() <= scale)
            new = torch.where(s.iters >= settings.max_iter, _MAX_ITER, _RUNNING)
            new = torch.where(failed, _LINE_SEARCH, new)
            new = torch.where(stalled | (conv_loss & ok), _LOSS, new)
            new = torch.where(g_new.abs().amax(1) <= settings.grad_tol, _GRADIENT, new)
            s.status = torch.where(ended, new, s.status)
            s.trials = torch.where(ended, 0, s.trials)
        if self.any_fresh:  # a fresh slot's step is its start: no iteration, no stopping test
            s.iters -= s.fresh.long()
            s.status = torch.where(s.fresh, self.initial_status(g_new), s.status)
            s.quiet = torch.where(s.fresh, 0, s.quiet)
            s.fresh = torch.zeros_like(s.fresh)
            self.any_fresh = False


def _interpolate(step: torch.Tensor, ft: torch.Tensor, lo: torch.Tensor | float,
                 f_lo: torch.Tensor, s_lo: torch.Tensor) -> torch.Tensor:
    """The next trial below an upper end: the minimiser of the quadratic through the lower
    end lo (objective f_lo, slope s_lo; step 0 and the current point while there is none)
    and the failed trial ``step`` (objective ``ft``), kept within 10–50 % of the bracket
    from lo. All (B,)."""
    span = step - lo
    denom = 2.0 * (ft - f_lo - s_lo * span)
    t_quad = torch.where(torch.isfinite(ft) & (denom > 0),
                         -s_lo * span * span / denom, 0.5 * span)
    return lo + torch.minimum(torch.maximum(t_quad, 0.1 * span), 0.5 * span)
