"""Solver settings of a fit, and the device and dtypes it runs in."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch

from ..settings import REGULARISERS, SIMILARITIES
from .gather import GATHER_CHOICES, Gather, parse_gather
from .methods import Method

log = logging.getLogger(__name__)

Regulariser = Literal["eye_distance", "l2", "l1"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FitOptions:
    """Solver settings. Tolerances are recorded with every fit.

    ``loss_tol`` is on the relative change of the objective between iterations,
    ``grad_tol`` on the largest absolute gradient entry. ``max_memory_gb`` bounds the
    kernel's working memory: batches are split to fit, and a single problem that
    cannot fit is refused with :class:`~.memory.MemoryLimitError`. ``warm_start`` solves
    the λ grid from the largest λ down, each λ starting from the previous λ's solution
    when that solution predicts better than chance (else from the identity);
    ``carry_history`` lets such a start keep the previous λ's L-BFGS curvature pairs,
    shifted by the change of the penalty (exact for eye_distance and l2), so that its
    first steps need not measure the curvature again (docs/kernel.md, "The λ path").
    ``reduce_rank`` fits each fold in the row space of its own objects' features when
    their rank r is below d (W_r of size r × r), and maps the solution back exactly.
    ``symmetric`` solves ``full`` W under eye_distance or l2 within the symmetric
    matrices, where their optima lie (docs/kernel.md, "Exact reductions of the problem"): the same
    optimum in 25–40 % fewer iterations. ``gather`` names how pair logits are formed
    (:mod:`.gather`), ``auto`` letting the cost model choose per call. ``similarity`` is
    how the transformed features' rows make a pair's logit at T = 1 (dot, cosine,
    euclidean; :func:`modelrecovery.oddoneout.similarity`).
    """

    regulariser: Regulariser = "eye_distance"
    method: str = "full"
    similarity: str = "dot"
    max_iter: int = 500
    history: int = 20
    grad_tol: float = 1e-6
    loss_tol: float = 1e-7
    max_line_search: int = 25
    dtype: str = "float32"
    device: str = "auto"
    gather: Literal["auto", "similarity", "rows", "pairs"] = "auto"
    allow_tf32: bool = False
    warm_start: bool = True
    max_memory_gb: float = 8.0
    reduce_rank: bool = True
    symmetric: bool = True
    carry_history: bool = True

    def __post_init__(self) -> None:
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"unknown regulariser {self.regulariser!r}; use one of {REGULARISERS}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; use one of "
                             f"{SIMILARITIES}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use float32 or float64")
        if self.gather not in GATHER_CHOICES:
            raise ValueError(f"unknown gather mode {self.gather!r}")
        Method.parse(self.method)

    @property
    def parsed_method(self) -> Method:
        return Method.parse(self.method)

    @property
    def gather_mode(self) -> Gather | None:
        """The forced gather mode, or None for ``auto`` (the cost model's choice)."""
        return parse_gather(self.gather)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def itemsize(self) -> int:
        """Bytes per floating-point entry."""
        return torch.finfo(self.torch_dtype).bits // 8


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
