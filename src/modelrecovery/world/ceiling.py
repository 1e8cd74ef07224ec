"""Human noise ceiling of odd-one-out choices from repeated test triplets.

Responses are grouped per *unordered* triplet {i, j, k}. Each response is scored by
leave-one-out majority agreement: the majority choice (which object was odd) among the
*other* responses to the same triplet; the response scores 1 if it is the majority
choice, 1/m if it is one of m choices tied for the majority, and 0 otherwise. Triplets
answered only once cannot be scored and are counted as skipped. The ceiling is the mean
score over scored responses: the accuracy the best possible model (one that predicts the
population's majority) could reach on these responses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import io
from ..errors import InputError

PathLike = io.PathLike


def _check_triplets(triplets: np.ndarray) -> np.ndarray:
    t = np.asarray(triplets)
    if t.ndim != 2 or t.shape[1] != 3:
        raise InputError(f"noise ceiling: triplets must have shape (N, 3), found {t.shape}")
    if len(t) == 0:
        raise InputError("noise ceiling: no triplets were given")
    if np.issubdtype(t.dtype, np.floating):
        bad = np.flatnonzero((~np.isfinite(t) | (t != np.floor(t))).any(axis=1))
        if len(bad):
            raise InputError(f"noise ceiling: triplet row {int(bad[0])} (0-based) = "
                             f"{tuple(t[bad[0]].tolist())} is not all integers")
    elif not np.issubdtype(t.dtype, np.integer):
        raise InputError(f"noise ceiling: triplets must be integers, found dtype {t.dtype}")
    t = t.astype(np.int64)
    bad = np.flatnonzero((t < 0).any(axis=1))
    if len(bad):
        raise InputError(f"noise ceiling: triplet row {int(bad[0])} (0-based) = "
                         f"{tuple(t[bad[0]].tolist())} has a negative index")
    rep = np.flatnonzero((t[:, 0] == t[:, 1]) | (t[:, 0] == t[:, 2]) | (t[:, 1] == t[:, 2]))
    if len(rep):
        raise InputError(f"noise ceiling: triplet row {int(rep[0])} (0-based) = "
                         f"{tuple(t[rep[0]].tolist())} repeats an object")
    return t


def _loo_scores(others: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of responses given the choice counts of the other responses.

    ``others`` (N, 3): how often each position of the sorted triplet was chosen as odd by
    the other responses considered; ``choice`` (N,): the position this response chose.
    Returns (score (N,), scored mask (N,)): unscored where there are no other responses.
    """
    scored = others.sum(axis=1) > 0
    top = others.max(axis=1)
    tied = (others == top[:, None]).sum(axis=1)
    own = others[np.arange(len(choice)), choice] == top
    return np.where(own & scored, 1.0 / tied, 0.0), scored


def noise_ceiling(triplets: np.ndarray, *, subjects: np.ndarray | None = None
                  ) -> dict[str, Any]:
    """Leave-one-out majority agreement of repeated odd-one-out responses.

    ``triplets`` (N, 3) integer array, one response per row, the odd one out in the last
    column (our triplet contract); the order of the first two does not matter, and the
    same object set in any order is the same triplet. ``subjects`` (N,), optional: who
    gave each response; it adds a between-subject variant in which the other responses
    of the same subject are left out too (a response is then scored against other
    people only).

    Returns ``{"ceiling": mean score over scored responses, "responses": number scored,
    "triplets": number of distinct triplets with ≥ 2 responses, "skipped_single": number
    of triplets (= responses) answered only once, "total_responses": N}`` and, with
    ``subjects``, ``"subjects"``, ``"ceiling_between_subjects"`` (NaN if no triplet was
    answered by two different subjects) and ``"responses_between_subjects"``.

    Raises InputError for malformed triplets, a ``subjects`` of the wrong length, or
    when no triplet has two or more responses.
    """
    t = _check_triplets(triplets)
    n = len(t)
    srt = np.sort(t, axis=1)
    choice = np.argmax(srt == t[:, 2:3], axis=1)  # position of the odd one in sorted order
    base = int(srt.max()) + 1
    key = (srt[:, 0] * base + srt[:, 1]) * base + srt[:, 2]
    _, group = np.unique(key, return_inverse=True)
    group = group.reshape(-1)
    counts = np.zeros((int(group.max()) + 1, 3), dtype=np.int64)
    np.add.at(counts, (group, choice), 1)
    others = counts[group].copy()
    others[np.arange(n), choice] -= 1
    score, scored = _loo_scores(others, choice)
    sizes = counts.sum(axis=1)
    if not scored.any():
        raise InputError(f"noise ceiling: none of the {n} responses repeats a triplet; a "
                         f"noise ceiling needs triplets answered more than once")
    result: dict[str, Any] = {
        "ceiling": float(score[scored].mean()),
        "responses": int(scored.sum()),
        "triplets": int((sizes >= 2).sum()),
        "skipped_single": int((sizes == 1).sum()),
        "total_responses": int(n),
    }
    if subjects is not None:
        s = np.asarray(subjects)
        if s.shape != (n,):
            raise InputError(f"noise ceiling: subjects must have shape ({n},) like the "
                             f"triplets, found {s.shape}")
        _, subject = np.unique(s.astype(str), return_inverse=True)
        subject = subject.reshape(-1)
        pair = group.astype(np.int64) * (int(subject.max()) + 1) + subject
        _, cell = np.unique(pair, return_inverse=True)
        cell = cell.reshape(-1)
        own = np.zeros((int(cell.max()) + 1, 3), dtype=np.int64)
        np.add.at(own, (cell, choice), 1)
        between, ok = _loo_scores(counts[group] - own[cell], choice)
        result["subjects"] = int(subject.max()) + 1
        result["ceiling_between_subjects"] = (float(between[ok].mean()) if ok.any()
                                              else float("nan"))
        result["responses_between_subjects"] = int(ok.sum())
    return result


def _read_split(path: Path, n_objects: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Triplets (N, 3) with repeats expanded, and subjects when the file has them."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException):
            names = []  # io.read_triplets reports the problem
        columns = ["subject"] if "subject" in names else []
        t, extra = io.read_triplets(path, n_objects, columns=columns)
        subjects = extra["subject"].to_numpy() if columns else None
        if "count" in extra:
            reps = extra["count"].to_numpy()
            t = np.repeat(t, reps, axis=0)
            subjects = None if subjects is None else np.repeat(subjects, reps)
        return t, subjects
    from ..importers import read_triplet_array

    return read_triplet_array(path, n_objects), None


def ceiling_by_split(paths: dict[str, PathLike], n_objects: int) -> dict[str, dict[str, Any]]:
    """Noise ceiling per repeated test set.

    ``paths`` maps a split name (e.g. ``"test1"``) to a triplet file: our Parquet
    triplets (repeats as rows or as a ``count`` column; a ``subject`` column, when
    present, adds the between-subject variant) or an older THINGS array (``.txt`` /
    ``.npy``). Returns ``{name: noise_ceiling(...) | {"file": path}}``; errors name the
    file.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        p = Path(path)
        t, subjects = _read_split(p, n_objects)
        try:
            result = noise_ceiling(t, subjects=subjects)
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from exc
        out[name] = {**result, "file": str(p)}
    return out
