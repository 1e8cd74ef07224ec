"""``modelrecovery design next``: the next batch of an experiment in progress.

Inputs are the files a real experiment has: the folds table written by ``design export``
(which objects are training, validation and test objects of each fold), the responses
collected so far in the layout of ``design export`` plus a ``choice`` column (the 1-based
position, 1-3, of the object chosen as the odd one out, as in the THINGS file), and the
candidates' features. Every candidate is fitted to the training responses (λ by
validation accuracy), weighted by its validation likelihood, and the next batch of
``--batch`` training triplets per fold (and their share of validation and test
triplets) is the pool with the most information under the fitted candidates. The batch
is written in the same layout, positions continuing the collected ones.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from ..io.checks import check_file, shown
from ..seeds import rng_for

RESPONSE_COLUMNS = ("fold", "split", "image1", "image2", "image3", "choice")


def _read_csv(path: str, what: str, columns: tuple[str, ...]) -> pd.DataFrame:
    check_file(path, what)
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a CSV {what} table: "
                         f"{' '.join(str(exc).split())}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: {what} table lacks column(s) {missing}; it has "
                         f"{list(frame.columns)}")
    if frame.empty:
        raise InputError(f"{path}: {what} table has no rows")
    return frame


def _integers(frame: pd.DataFrame, path: str, column: str, lo: int, hi: int) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values))
                         | (values < lo) | (values > hi))
    if len(bad):
        r = int(bad[0])
        raise InputError(f"{path}: data row {r + 1}: {column} = "
                         f"{shown(frame[column].iloc[r])} must be an integer in {lo}..{hi}")
    return values.astype(np.int64)


def read_folds(path: str, n_objects: int):
    """The folds table of ``design export`` → one FoldObjects per fold."""
    from ..simulate import SPLITS, FoldObjects

    frame = _read_csv(path, "folds", ("fold", "split", "image"))
    image = _integers(frame, path, "image", 1, n_objects) - 1
    fold = _integers(frame, path, "fold", 0, 10**6)
    bad = np.flatnonzero(~frame["split"].isin(SPLITS).to_numpy())
    if len(bad):
        raise InputError(f"{path}: data row {int(bad[0]) + 1}: split "
                         f"{shown(frame['split'].iloc[bad[0]])} must be one of {list(SPLITS)}")
    # Within a fold every object belongs to one split, once: the folds are
    # concept-disjoint, and a listed twice object would be drawn twice as often.
    twice = np.flatnonzero(pd.Series(list(zip(fold, image))).duplicated().to_numpy())
    if len(twice):
        r = int(twice[0])
        first = int(np.flatnonzero((fold == fold[r]) & (image == image[r]))[0])
        raise InputError(f"{path}: data row {r + 1}: image {image[r] + 1} of fold {fold[r]} "
                         f"is listed already in data row {first + 1} (split "
                         f"{frame['split'].iloc[first]}); within a fold an object belongs "
                         f"to one split, once")
    out = []
    for f in range(int(fold.max()) + 1):
        sets = {s: np.sort(image[(fold == f) & (frame["split"] == s).to_numpy()])
                for s in SPLITS}
        if any(len(v) < 3 for v in sets.values()):
            raise InputError(f"{path}: fold {f} needs at least 3 objects in every split")
        out.append(FoldObjects(**sets))
    return out


def read_responses(path: str, n_objects: int, folds: list, folds_path: str) -> pd.DataFrame:
    """Collected responses → the shard layout (fold, split, position, i, j, k; k odd),
    positions in file order within each fold and split. Each response's fold must be one
    of ``folds`` (read from ``folds_path``), and its three objects different objects of
    that fold's split."""
    from ..simulate import SPLITS

    frame = _read_csv(path, "responses", RESPONSE_COLUMNS)
    images = np.stack([_integers(frame, path, f"image{c}", 1, n_objects) - 1
                       for c in (1, 2, 3)], axis=1)
    choice = _integers(frame, path, "choice", 1, 3) - 1
    fold = _integers(frame, path, "fold", 0, 10**6)
    bad = np.flatnonzero(~frame["split"].isin(SPLITS).to_numpy())
    if len(bad):
        raise InputError(f"{path}: data row {int(bad[0]) + 1}: split "
                         f"{shown(frame['split'].iloc[bad[0]])} must be one of {list(SPLITS)}")
    unknown = np.flatnonzero(fold >= len(folds))
    if len(unknown):
        r = int(unknown[0])
        raise InputError(f"{path}: data row {r + 1}: fold {fold[r]} is not in the folds "
                         f"table {folds_path}, which has folds 0..{len(folds) - 1}")
    for a, b in ((0, 1), (0, 2), (1, 2)):
        same = np.flatnonzero(images[:, a] == images[:, b])
        if len(same):
            r = int(same[0])
            raise InputError(f"{path}: data row {r + 1}: image{a + 1} and image{b + 1} are "
                             f"both {images[r, a] + 1}; a triplet shows three different "
                             f"objects")
    split = frame["split"].to_numpy()
    for r in range(len(frame)):
        members = getattr(folds[fold[r]], split[r])
        outside = [int(i) for i in images[r] if not _member(members, i)]
        if outside:
            raise InputError(f"{path}: data row {r + 1}: image {outside[0] + 1} is not a "
                             f"{split[r]} object of fold {fold[r]} in {folds_path}")
    others = np.array([[1, 2], [0, 2], [0, 1]])[choice]
    rows = np.arange(len(images))
    trip = np.stack([images[rows, others[:, 0]], images[rows, others[:, 1]],
                     images[rows, choice]], axis=1)
    out = pd.DataFrame({"fold": fold.astype(np.int8), "split": split, "i": trip[:, 0],
                        "j": trip[:, 1], "k": trip[:, 2]})
    out["position"] = out.groupby(["fold", "split"]).cumcount().astype(np.int32)
    return out


def _member(sorted_objects: np.ndarray, obj: int) -> bool:
    at = int(np.searchsorted(sorted_objects, obj))
    return at < len(sorted_objects) and int(sorted_objects[at]) == obj


def cmd_next(args: argparse.Namespace) -> None:
    from ..design.adaptive import choose_batch, fitted_criterion
    from ..design.export import export_table
    from ..design.static import split_sizes
    from ..fitting import resolve_device
    from ..simulate import eval_size
    from .args import (adaptive_options, design_options, fit_options, fitting_process,
                       named_values)

    fitting_process(args)
    names = io.read_objects(args.objects)["name"].tolist()
    n = len(names)
    folds = read_folds(args.folds, n)
    collected = read_responses(args.responses, n, folds, args.folds)
    candidates = {m: io.read_features(p, n)
                  for m, p in named_values(args.candidates, "--candidates").items()}
    counts = collected.groupby(["fold", "split"]).size()
    n_train = min(int(counts.get((f, "train"), 0)) for f in range(len(folds)))
    need = eval_size(n_train, args.eval_fraction)
    short = [f"fold {f} {s}" for f in range(len(folds)) for s in ("val", "test")
             if counts.get((f, s), 0) < need]
    if n_train < 1 or short:
        raise InputError(f"{args.responses}: fitting the candidates to {n_train} training "
                         f"response(s) per fold needs {need} validation and test responses "
                         f"per fold; too few in {short or ['train']}")
    options = fit_options(args)
    score_for, weights = fitted_criterion(collected, n_train, candidates, args.lambdas,
                                          options, args.eval_fraction,
                                          adaptive_options(args),
                                          str(resolve_device(options.device)))
    rng = rng_for(args.study_seed, "design next", n_train, len(collected))
    batch, _ = choose_batch(folds, collected, split_sizes(n_train + args.batch,
                                                          args.eval_fraction),
                            n, score_for, rng, design_options(args))
    io.write_csv(export_table(batch, names), args.out)
    for name, w in zip(candidates, weights):
        print(f"candidate {name}: weight {w:.4f}")


def add_next_parser(dsub: argparse._SubParsersAction, fit: argparse.ArgumentParser,
                    common: argparse.ArgumentParser, adaptive: argparse.ArgumentParser
                    ) -> None:
    p = dsub.add_parser("next", parents=[fit, common, adaptive],
                        help="the next batch of an experiment from its responses so far")
    for name in ("objects", "folds", "responses", "out"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--batch", type=int, required=True,
                   help="training triplets to add per fold")
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--study-seed", type=int, default=0)
    p.set_defaults(func=cmd_next)
