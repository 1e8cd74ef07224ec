"""Per-problem L-BFGS curvature histories in the compact representation, for batches."""

from __future__ import annotations

from collections.abc import Callable

import torch


class History:
    """Per-problem curvature pairs (s, y) for the compact L-BFGS form.

    Directions use the compact representation (Byrd, Nocedal & Schnabel 1994), which gives
    the same H·g as the two-loop recursion in a fixed number of batched operations. The
    vectors live in ring buffers of m + 1 slots (``pairs`` (B, P, 2(m+1)): s first, then
    y, as columns, so that the inner products with every pair are one row-times-matrix
    product) written in place; slot ``head`` is always free, so a pair can be written
    before it is known whether it will be kept. The small inner-product matrices
    ``inner[b, 0, i, j] = s_iᵀ y_j`` (upper triangle) and ``inner[b, 1] = YᵀY`` are kept
    in chronological order (oldest first, newest last), so the triangular solves need no
    reordering and a push is one shift; positions older than a problem's ``count`` are
    empty: 1 on the sᵀy diagonal (the triangular factor is the identity there), 0 elsewhere.
    """

    def __init__(self, b: int, m: int, p: int, device: torch.device, dtype: torch.dtype):
        self.m = m
        self.pairs = torch.zeros(b, p, 2 * (m + 1), device=device, dtype=dtype)
        self.inner = torch.zeros(b, 2, m, m, device=device, dtype=dtype)
        self.inner[:, 0] = torch.eye(m, device=device, dtype=dtype)
        self.head = torch.zeros(b, dtype=torch.long, device=device)
        self.count = torch.zeros(b, dtype=torch.long, device=device)
        self.gamma = torch.ones(b, device=device, dtype=dtype)  # sᵀy / yᵀy of the newest
        self._tables = _tables(m, device, dtype)
        self._maps()
        self.next_products: torch.Tensor | None = None
        self.rows = torch.arange(b, device=device)

    _FIELDS = ("pairs", "inner", "head", "count", "gamma", "slot", "pos", "valid")

    def select(self, idx: torch.Tensor) -> History:
        """The histories of problems ``idx``, in that order."""
        new = History.__new__(History)
        new.m, new._tables = self.m, self._tables
        for name in self._FIELDS:
            setattr(new, name, getattr(self, name)[idx])
        new.next_products = None if self.next_products is None else self.next_products[idx]
        new.rows = torch.arange(len(idx), device=idx.device)
        return new

    def _maps(self) -> None:
        """Look up, for each problem's head and count, the slot of each chronological
        position (B, 2m), the position of each slot (B, 2(m+1)) and the occupied
        positions (B, 2m) (see :func:`_tables`)."""
        slot, pos, valid = self._tables
        self.slot, self.pos = slot.index_select(0, self.head), pos.index_select(0, self.head)
        self.valid = valid.index_select(0, self.count)

    def reset(self, idx: torch.Tensor) -> None:
        """Forget the pairs of problems ``idx`` (steepest descent next)."""
        self.count[idx] = 0
        self.inner[idx] = 0.0
        self.inner[idx, 0] = torch.eye(self.m, device=idx.device, dtype=self.inner.dtype)
        self.gamma[idx] = 1.0
        self.valid[idx] = 0.0

    def shift(self, idx: torch.Tensor, hess: Callable[[torch.Tensor], torch.Tensor]
              ) -> None:
        """Keep the pairs of problems ``idx`` (R,) for an objective that differs from
        theirs by a quadratic term: each y gains ``hess(s)``, that term's Hessian times s,
        for s (R, P, V) every stored s as columns. Exact: the differences of gradients
        along the same steps. A problem whose kept pairs do not all still curve upwards
        (the :meth:`push` test) loses them all."""
        m, k = self.m, self.m + 1
        pairs = self.pairs[idx]
        pairs[:, :, k:] += hess(pairs[:, :, :k])
        self.pairs[idx] = pairs
        # The inner products in chronological order, recomputed: S (R, P, m), Y likewise.
        chron = pairs.gather(2, self.slot[idx][:, None, :].expand(-1, pairs.shape[1], -1))
        s_t, y = chron[:, :, :m].mT, chron[:, :, m:]
        sy, yy = (s_t @ y).triu(), y.mT @ y
        kept = self.valid[idx][:, :m]
        both = kept[:, :, None] * kept[:, None, :]
        self.inner[idx, 0] = sy * both + torch.diag_embed(1.0 - kept)
        self.inner[idx, 1] = yy * both
        curv, norm = sy.diagonal(dim1=1, dim2=2), yy.diagonal(dim1=1, dim2=2)
        newest = self.count[idx] > 0
        self.gamma[idx] = torch.where(newest, curv[:, -1] / norm[:, -1].clamp_min(1e-30),
                                      self.gamma[idx])
        self.next_products = None  # the next direction's products are formed afresh
        flat = ((curv <= 1e-10 * norm.clamp_min(1e-30)) & (kept > 0)).any(1)
        if bool(flat.any()):
            self.reset(idx[flat])

    def _products(self, v: torch.Tensor) -> torch.Tensor:
        """sᵢᵀv and yᵢᵀv of every pair for vectors v (B, V, P), in chronological order but
        not yet masked to the kept pairs: (B, V, 2m). (As v·pairs on the (P, 2(m+1))
        layout: ~2× faster than the elementwise product and sum, and 5× faster than the
        matrix-vector product on a (2(m+1), P) layout.)"""
        prod = torch.bmm(v, self.pairs)
        return prod.gather(2, self.slot[:, None, :].expand(-1, prod.shape[1], -1))

    def push(self, keep: torch.Tensor, s: torch.Tensor, y: torch.Tensor,
             g: torch.Tensor | None = None) -> None:
        """Append the pairs s, y (B, P) of the problems where ``keep`` (B,) is true,
        dropping their oldest; the others are unchanged. With ``g`` (B, P), the gradient
        the next :meth:`direction` will be asked about, its inner products are formed in
        the same product as y's (the next direction must be for this g, except in rows
        that are :meth:`reset` meanwhile)."""
        m, k = self.m, self.m + 1
        self.pairs[self.rows, :, self.head] = s
        self.pairs[self.rows, :, self.head + k] = y
        self.head = (self.head + keep) % k
        self.count = (self.count + keep).clamp_(max=m)
        self._maps()
        # Inner products of the new y with every kept s and y, in chronological order.
        if g is None:
            prod = self._products(y[:, None, :])[:, 0] * self.valid
        else:
            both = self._products(torch.stack([y, g], 1))
            prod, self.next_products = both[:, 0] * self.valid, both[:, 1]
        # Shift every position one older (the oldest drops out), then the newest column
        # (sᵀy and yᵀy) and row (yᵀy). The sᵀy row stays 0: only its upper triangle counts.
        inner = torch.nn.functional.pad(self.inner[:, :, 1:, 1:], (0, 1, 0, 1))
        inner[:, :, :, -1] = prod.view(-1, 2, m)
        inner[:, 1, -1, :] = prod[:, m:]
        self.inner = torch.where(keep[:, None, None, None], inner, self.inner)
        self.gamma = torch.where(keep, prod[:, m - 1] / prod[:, -1], self.gamma)

    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """−H·g for every problem: g (B, P) → (B, P)."""
        m = self.m
        if self.next_products is None:
            vg = self._products(g[:, None, :])[:, 0] * self.valid
        else:
            vg, self.next_products = self.next_products * self.valid, None
        r, yy = self.inner[:, 0], self.inner[:, 1]
        gam = self.gamma[:, None, None]
        # H·g = γg + S·u − γY·q with q = R⁻¹Sᵀg, u = R⁻ᵀ((D + γYᵀY)q − γYᵀg), D = diag R.
        # Positions not yet filled give q = u = 0 (R is the identity there, the rest 0).
        q = torch.linalg.solve_triangular(r, vg[:, :m, None], upper=True)
        rhs = torch.addcmul(torch.diagonal(r, dim1=1, dim2=2)[:, :, None] * q, gam,
                            torch.baddbmm(vg[:, m:, None], yy, q, beta=-1.0))
        u = torch.linalg.solve_triangular(r.transpose(1, 2), rhs, upper=False)
        # Coefficients of the pairs, [−u, γq], and 0 for the free slot.
        coef = torch.cat([u.neg_(), gam * q, q.new_zeros(len(q), 1, 1)], 1)
        return torch.baddbmm(g[:, None, :] * -gam, coef.gather(1, self.pos[:, :, None]).mT,
                             self.pairs.mT).squeeze(1)


def _tables(m: int, device: torch.device, dtype: torch.dtype
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tables of the ring of m + 1 slots, by head h (the free slot) and count c.

    ``slot[h]`` (2m,): the slots of chronological positions 0..m−1 (oldest first) for s,
    then for y; ``pos[h]`` (2(m+1),): the position of each slot in the coefficient vector
    [u (m), −γq (m), 0], the free slot pointing at the 0; ``valid[c]`` (2m,): 1 where a
    position holds one of the c newest pairs.
    """
    k = m + 1
    ar = torch.arange(k, device=device)
    heads = ar[:, None]
    slot = (heads + 1 + ar[:m]) % k
    pos = (ar - heads - 1) % k
    free = pos == m
    slot2 = torch.cat([slot, slot + k], 1)
    pos2 = torch.cat([torch.where(free, 2 * m, pos), torch.where(free, 2 * m, pos + m)], 1)
    valid = (ar[:m] >= m - ar[:, None]).to(dtype).repeat(1, 2)
    return slot2, pos2, valid
