"""Triplet data: judgements (i, j, k) with k the odd one out, and their multiplicities.

A triplet's multiplicity is its *count* everywhere in the kernel: the number of times the
same judgement is made (1 for plain rows, 0 on padding). Every mean over triplets is
weighted by these counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def collapse(triplets: np.ndarray, counts: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Merge repeated judgements: (N, 3) → unique rows (U, 3) and their counts (U,).

    (i, j, k) and (j, i, k) are the same judgement (the pair is unordered), so rows are
    canonicalised to i < j first. The count-weighted mean NLL over the unique rows equals
    the plain mean over the original rows. ``counts`` (N,) gives each input row's own
    multiplicity (default 1).
    """
    t = np.asarray(triplets, dtype=np.int64)
    canon = np.stack([np.minimum(t[:, 0], t[:, 1]), np.maximum(t[:, 0], t[:, 1]), t[:, 2]], 1)
    c = np.ones(len(t)) if counts is None else np.asarray(counts, dtype=np.float64)
    uniq, inverse = np.unique(canon, axis=0, return_inverse=True)
    return uniq, np.bincount(inverse.reshape(-1), weights=c, minlength=len(uniq))


@dataclass
class TripletSets:
    """F triplet sets padded to a common length N.

    ``triplets`` (F, N, 3) int64 with k odd; ``counts`` (F, N): the count of each
    triplet (1 for plain rows), 0 on padding.
    """

    triplets: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def from_arrays(cls, sets: Sequence[np.ndarray], counts: Sequence[np.ndarray] | None = None,
                    *, collapse_repeats: bool = False, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> TripletSets:
        """Pad a list of (N_f, 3) arrays (and optional (N_f,) counts).

        ``collapse_repeats`` merges repeated judgements into counts (see :func:`collapse`).
        """
        rows, row_counts = [], []
        for f, s in enumerate(sets):
            c = None if counts is None else counts[f]
            if collapse_repeats:
                s, c = collapse(s, c)
            rows.append(np.asarray(s, dtype=np.int64).reshape(-1, 3))
            row_counts.append(np.ones(len(rows[-1])) if c is None
                              else np.asarray(c, dtype=np.float64))
        n_max = max(len(s) for s in rows)
        t = np.zeros((len(rows), n_max, 3), dtype=np.int64)
        n = np.zeros((len(rows), n_max), dtype=np.float64)
        for f, (s, c) in enumerate(zip(rows, row_counts)):
            t[f, : len(s)] = s
            n[f, : len(s)] = c
            # Padding rows point at a triplet of the set itself; their count is 0.
            t[f, len(s):] = s[0] if len(s) else (0, 1, 2)
        return cls(torch.as_tensor(t, device=device), torch.as_tensor(n, dtype=dtype,
                                                                       device=device))

    @property
    def n_sets(self) -> int:
        return int(self.triplets.shape[0])

    def to(self, device: torch.device, dtype: torch.dtype) -> TripletSets:
        """These sets on ``device``, counts in ``dtype``."""
        return TripletSets(self.triplets.to(device), self.counts.to(device=device,
                                                                    dtype=dtype))
