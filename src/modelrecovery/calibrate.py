"""Temperature calibration: solve for T so the model's expected accuracy hits a target."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .errors import InputError
from .oddoneout import expected_accuracy


def calibrate_temperature(logits: np.ndarray, target: float, *, rtol: float = 1e-12) -> float:
    """T > 0 with mean_t max_k softmax(logits_t / T)_k = ``target``.

    logits (N, 3): pair similarities of the calibration triplets at T = 1. Expected
    accuracy falls monotonically from its T→0 limit (1 without exact ties) to 1/3 as
    T→∞, so this is a 1-D root find, solved with Brent's method on log T.
    """
    if not 1.0 / 3.0 < target < 1.0:
        raise InputError(f"noise-ceiling target must lie in (1/3, 1), got {target}")
    z = np.asarray(logits, dtype=np.float64)
    spread = z.max(axis=1) - z.min(axis=1)
    if not np.any(spread > 0):
        raise InputError("the model gives every triplet equal pair similarities; "
                         "no temperature reaches the target accuracy")

    def gap(log_t: float) -> float:
        return expected_accuracy(z, float(np.exp(log_t))) - target

    # The T→0 limit: exact ties cap what any temperature can reach.
    top = z == z.max(axis=1, keepdims=True)
    ceiling = float((1.0 / top.sum(axis=1)).mean())
    if ceiling <= target:
        raise InputError(f"the model's best reachable expected accuracy is {ceiling:.4f} "
                         f"(exact ties in its similarities), below the target {target}")
    scale = float(np.median(spread[spread > 0]))
    lo, hi = np.log(scale) - 2.0, np.log(scale) + 2.0
    for _ in range(200):
        if gap(lo) > 0:
            break
        lo -= 2.0
    for _ in range(200):
        if gap(hi) < 0:
            break
        hi += 2.0
    return float(np.exp(brentq(gap, lo, hi, xtol=1e-14, rtol=rtol, maxiter=500)))
