"""The kernel's memory model: the bytes one problem needs, and the limit's refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ResourceError
from .gather import SIMILARITY, Gather, parse_gather

if TYPE_CHECKING:
    from .options import FitOptions


class MemoryLimitError(ResourceError):
    """A single fit would need more memory than the configured limit allows."""


def bytes_per_problem(mode: Gather, n_objects: int, n_triplets: int, dim: int,
                      history: int, itemsize: int) -> int:
    """Peak working memory of one problem in one evaluation, plus its optimiser state, in
    bytes, for m = ``n_objects`` local objects, N triplets, dimension D = ``dim``.

    Counted generously: forward tensors kept for backward, their gradients, and the
    L-BFGS state (2·history vectors of D² plus a handful of D² work vectors).
    """
    p = dim * dim
    # Per triplet: logits and ~11 same-sized temporaries of forward and backward, plus
    # int64 indices: the set, its local re-indexing, and the pair index with its flat
    # copy (both ends of each pair in rows mode: counted for every mode).
    triplet_terms = n_triplets * 3 * 12 * itemsize + n_triplets * 3 * 8 * 6
    work = mode.work_bytes(n_objects, n_triplets, dim, itemsize) + triplet_terms
    # 2·history curvature vectors (and a transient copy of them while only part of the
    # batch is active), ~22 more of size D² (iterates, gradients, direction, line-search
    # trials and fallback point, autograd buffers, results); checked against peak RSS up
    # to d = 2048 on CPU.
    state = (4 * history + 22) * p * itemsize + 2 * history * history * itemsize
    return int(work + state)


def memory_estimate(n_objects: int, n_triplets: int, dim: int, batch: int,
                    options: FitOptions, mode: Gather | str = SIMILARITY) -> int:
    """Bytes the kernel needs for ``batch`` problems of m objects, N triplets and
    dimension D in gather ``mode`` (see :func:`~.kernel.fit`)."""
    gather = parse_gather(mode) or SIMILARITY
    return batch * bytes_per_problem(gather, n_objects, n_triplets, dim, options.history,
                                     options.itemsize)


def check_one_fits(per_problem: int, options: FitOptions, mode: Gather, n_triplets: int,
                   n_objects: int, dim: int) -> None:
    """Refuse a fit one of whose problems (``per_problem`` bytes) exceeds the limit."""
    if per_problem > options.max_memory_gb * 2**30:
        raise MemoryLimitError(
            f"one fit needs about {per_problem / 2**30:.2f} GiB ({mode.name} path: "
            f"{n_triplets} triplets, {n_objects} objects, d = {dim}, "
            f"history {options.history}, {options.dtype}), over the limit of "
            f"{options.max_memory_gb} GiB: raise fitting.max_memory_gb (with the job's "
            f"memory), or use fewer triplets or fewer feature dimensions (pca)")
