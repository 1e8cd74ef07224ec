"""What the batched L-BFGS solver (:mod:`.lbfgs`) takes and returns: the problems it
minimises, its settings, the starts a refill hands it, and the status of each problem."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch


class Status(enum.IntEnum):
    """Why a problem stops (RUNNING while it runs): the codes :func:`.lbfgs.minimise`
    returns."""

    RUNNING = 0
    GRADIENT = 1  # the gradient tolerance is met
    LOSS = 2  # the loss tolerance is met, or the dtype's resolution is reached
    LINE_SEARCH = 3  # a line search ran out of trials
    MAX_ITER = 4

    @property
    def label(self) -> str:
        """The name results record: ``gradient``, ``loss``, ``line_search``, ..."""
        return self.name.lower()

    @property
    def converged(self) -> bool:
        return self in (Status.GRADIENT, Status.LOSS)


class SolverProblems(Protocol):
    """A batch of A objectives (the working batch's slots)."""

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective (A,) and its gradient (A, P) at parameters θ (A, P)."""
        ...

    def select(self, idx: torch.Tensor) -> SolverProblems:
        """The slots ``idx`` (A',) of this batch, in that order."""
        ...

    def replace(self, slots: torch.Tensor, ids: torch.Tensor) -> SolverProblems:
        """This batch with problems ``ids`` (R,) in slots ``slots`` (R,)."""
        ...


@dataclass(frozen=True)
class Settings:
    """Stopping rules: ``grad_tol`` on the largest gradient entry, ``loss_tol`` on the
    relative change of the objective in each of ``patience`` consecutive iterations (one
    short step, e.g. the first after a curvature reset, is not convergence: with
    patience 1 fits stop up to 1e-6 above the optimum on flat objectives, with 2 within
    1e-7, for ~5 % more evaluations); ``history`` curvature pairs."""

    max_iter: int = 500
    history: int = 20
    grad_tol: float = 1e-6
    loss_tol: float = 1e-7
    max_line_search: int = 25
    patience: int = 2


@dataclass
class Start:
    """SolverProblems ``ids`` (R',) taking the slots of finished problems at positions ``cont``
    (R',) of ``done``, from x (R', P). Where ``known`` (R',) is true, f (R',) and g
    (R', P) are already their objective and gradient at x (a warm start whose objective
    differs from the finished one's by a known term): they need no evaluation. If that
    term is quadratic, ``hess(rows, s)`` gives its Hessian times s (R'', P, V) for the
    known rows ``rows`` (R'',) (positions in ``ids``): those problems keep the finished
    ones' curvature pairs (:meth:`.history.History.shift`) instead of starting without any."""

    cont: torch.Tensor
    ids: torch.Tensor
    x: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    known: torch.Tensor
    hess: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


class Refill(Protocol):
    """What follows finished problems in their slots of the working batch."""

    def __call__(self, done: torch.Tensor, x: torch.Tensor, f: torch.Tensor,
                 g: torch.Tensor) -> Start:
        """For finished problems ``done`` (R,) with solutions x (R, P), objectives f (R,)
        and gradients g (R, P): the problems that continue in their slots."""
        ...
