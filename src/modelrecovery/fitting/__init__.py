"""The torch fitting kernel: batched, full-batch L-BFGS for odd-one-out linear probes.

The package keeps the loss apart from the solver, one module per responsibility:

- :mod:`.options`: :class:`FitOptions`, the device and dtypes;
- :mod:`.methods`: :class:`Method`, how parameters θ make W, and the regularisers
  (:mod:`.orthogonal`: the orthogonal method's W = diag(e^a)·exp(B − Bᵀ));
- :mod:`.similarities`: the cosine and euclidean pair similarities of X W;
- :mod:`.triplets`: :class:`TripletSets` and their triplet counts, :func:`collapse`;
- :mod:`.gather`: the three ways to form pair logits and the cost model choosing one;
- :mod:`.memory`: the memory model and :class:`MemoryLimitError`;
- :mod:`.loss`: the loss (data NLL + λ·R) on whole tensors, differentiable by autograd;
- :mod:`.batch`: a run's problems on the device (local objects, rank reduction);
- :mod:`.evaluation`: the loss over a batch with its hand-written gradient, the solver's
  view of the problems;
- :mod:`.restarts`: sign-flip restarts of symmetric W;
- :mod:`.chains`: λ chains and warm starts, refilling the solver's slots;
- :mod:`.lbfgs`, :mod:`.history`, :mod:`.solver_interface`: the batched L-BFGS solver;
- :mod:`.kernel`: :func:`fit`, :func:`evaluate`, :func:`objective`, :class:`FitResult`;
- :mod:`.allocator`: the memory-allocator settings of a fitting process.
"""

from .gather import GATHERS, Gather, Pairs, Rows, Similarity, parse_gather
from .kernel import FitResult, evaluate, fit, objective
from .loss import data_nll, probe_logits, penalty, tie_aware_accuracy
from .memory import MemoryLimitError, memory_estimate
from .methods import METHODS, Method
from .options import REGULARISERS, FitOptions, Regulariser, resolve_device
from .solver_interface import Status
from .triplets import TripletSets, collapse

__all__ = [
    "GATHERS", "METHODS", "REGULARISERS", "FitOptions", "FitResult", "Gather",
    "MemoryLimitError", "Method", "Pairs", "Regulariser", "Rows", "Similarity", "Status",
    "TripletSets", "collapse", "data_nll", "evaluate", "fit", "memory_estimate",
    "objective", "probe_logits", "parse_gather", "penalty", "resolve_device",
    "tie_aware_accuracy",
]
