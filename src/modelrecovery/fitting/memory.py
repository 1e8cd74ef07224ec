"""The kernel's memory model: the bytes one problem needs, and the limit's refusal."""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING

import torch

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


def evaluation_bytes(mode: Gather, n_objects: int, n_triplets: int, dim: int,
                     itemsize: int) -> int:
    """Peak memory of scoring one problem (:func:`~.kernel.evaluate`) on N triplets of
    its n = ``n_objects`` features of dimension D = ``dim``, in bytes: the mode's
    forward working memory (generous: it counts backward's too), the problem's copy of
    X, and the logits with the accuracy's and NLL's temporaries (~12 per logit)."""
    return (mode.work_bytes(n_objects, n_triplets, dim, itemsize)
            + n_objects * dim * itemsize + 12 * 3 * n_triplets * itemsize)


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


def peak_memory() -> str:
    """The process's peak resident memory and, where it used CUDA, the peak of torch's
    CUDA allocator, in GiB: what a fitting job's memory request and
    ``fitting.max_memory_gb`` are sized by."""
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
        1 if sys.platform == "darwin" else 1024)
    text = f"peak memory: {rss / 2**30:.2f} GiB resident"
    if torch.cuda.is_initialized():
        text += (f", {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated on "
                 f"{torch.cuda.get_device_name()}")
    return text
