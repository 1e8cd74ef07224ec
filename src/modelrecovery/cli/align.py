"""``modelrecovery align | align-instance | calibrate``: each model aligned to the humans
(λ by cross-validation), further generator instances refitted to bootstrap resamples,
and each calibrated into a generator (workflow/rules/align.smk), with
:mod:`modelrecovery.align` and :func:`modelrecovery.oddoneout.calibrate_temperature`."""

from __future__ import annotations

import argparse
import logging

import numpy as np

from .. import io
from ..errors import InputError
from ..seeds import rng_for
from .args import fit_options, fitting_process

log = logging.getLogger("modelrecovery")


def _model_and_humans(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray,
                                                         np.ndarray]:
    """A fitting command's process set up, and its inputs: the model's features (n, d)
    and the human training and test triplets (N, 3)."""
    fitting_process(args)
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    train, _ = io.read_triplets(args.train, n)
    test, _ = io.read_triplets(args.test, n)
    return x, train, test


def cmd_align(args: argparse.Namespace) -> None:
    from ..align import align_to_humans

    x, train, test = _model_and_humans(args)
    if not 2 <= args.cv_folds <= len(train):
        raise InputError(f"{args.train}: {len(train)} human training triplet(s) cannot be "
                         f"split into {args.cv_folds} cross-validation folds (2 to "
                         f"{len(train)}); set config key 'alignment.cv_folds' in that range")
    rng = rng_for(args.study_seed, "align", args.experiment, args.model)
    result = align_to_humans(x, train, test, args.lambdas, args.cv_folds, rng,
                             fit_options(args))
    meta = {"model": args.model, "experiment": args.experiment, "method": args.method,
            "similarity": args.similarity, "regulariser": args.regulariser,
            "lambda": result.lam, "lambdas": args.lambdas,
            "cv_folds": args.cv_folds, "fit": result.final, "human": result.human,
            "dtype": args.dtype, "grad_tol": args.grad_tol, "loss_tol": args.loss_tol}
    io.write_parquet(result.cv.assign(model=args.model), args.out_cv)
    io.save_generator(args.out_weights, args.out_json, result.weights, 1.0, meta)
    log.info("%s: λ = %g, human test accuracy zero-shot %.3f, probed %.3f", args.model,
             result.lam, result.human["zero_shot_test_acc"], result.human["probed_test_acc"])


def cmd_align_instance(args: argparse.Namespace) -> None:
    from ..align import generator_instance, human_scores

    x, train, test = _model_and_humans(args)
    aligned = io.read_json(args.aligned_json)
    lam = aligned.get("lambda")
    if not isinstance(lam, (int, float)) or not lam >= 0:
        raise InputError(f"{args.aligned_json}: no alignment λ (key 'lambda') to refit "
                         f"the instance at; got {lam!r}")
    if args.instance < 1:
        raise InputError(f"--instance: instances are numbered from 1 (0 is the aligned "
                         f"generator itself), got {args.instance}")
    rng = rng_for(args.study_seed, "generator instance", args.experiment, args.model,
                  args.instance)
    options = fit_options(args)
    if aligned.get("similarity", "dot") != options.similarity:
        raise InputError(f"{args.aligned_json}: aligned under similarity "
                         f"{aligned.get('similarity', 'dot')!r}, but this instance would be "
                         f"refitted under {options.similarity!r} (--similarity)")
    w, final = generator_instance(x, train, float(lam), rng, options)
    meta = {**aligned, "instance": args.instance, "fit": final,
            "human": human_scores(x, w, train, test, options.similarity)}
    io.save_generator(args.out_weights, args.out_json, w, 1.0, meta)
    log.info("%s instance %d: λ = %g, human test accuracy probed %.3f (aligned %.3f)",
             args.model, args.instance, lam, meta["human"]["probed_test_acc"],
             aligned.get("human", {}).get("probed_test_acc", float("nan")))


def _target(text: str) -> float:
    """The calibration target: a number, or a ceiling.json written by the importers
    (``noise_ceiling: auto``); refused unless it lies in (1/3, 1), where a temperature
    can reach it."""
    try:
        value, origin = float(text), f"--target {text}"
        hint = "set config key 'noise_ceiling' to a number in (1/3, 1)"
    except ValueError:
        value, origin = io.read_json(text).get("ceiling"), text
        hint = ("the human test split's noise ceiling is not a usable target; set "
                "config key 'noise_ceiling' to a number in (1/3, 1)")
        if value is None:
            raise InputError(f"{text}: no noise ceiling could be computed (the human test "
                             "split has no repeated triplets); set noise_ceiling to a "
                             "number")
    if not isinstance(value, (int, float)) or not 1.0 / 3.0 < float(value) < 1.0:
        raise InputError(f"{origin}: the calibration target (noise ceiling) is {value}, "
                         f"but an expected accuracy lies in (1/3, 1), chance to certain; "
                         f"{hint}")
    return float(value)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from ..oddoneout import calibrate_temperature, expected_accuracy, pair_logits

    target = _target(args.target)
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    aligned = io.read_generator(args.aligned, x.shape[1])
    w = aligned.weights
    meta = io.read_json(args.aligned_json)
    meta["similarity"] = aligned.similarity
    trip, _ = io.read_triplets(args.triplets, n)
    logits = pair_logits(aligned.similarities(x), trip)
    if not np.any(w):
        raise InputError(
            f"{args.aligned}: model {meta.get('model')!r} cannot be calibrated: its aligned "
            "transform is W = 0, so it predicts the humans no better than chance (λ = "
            f"{meta.get('lambda')}); leave it out of 'generators' or check its features")
    try:
        temperature = calibrate_temperature(logits, target)
    except InputError as exc:
        raise InputError(
            f"{args.aligned}: model {meta.get('model')!r} cannot be calibrated to the "
            f"target {target}: {exc}; leave it out of 'generators' or check its features"
        ) from exc
    meta.update({"noise_ceiling_target": target,
                 "expected_accuracy": expected_accuracy(logits, temperature),
                 "calibration_triplets": len(trip)})
    io.save_generator(args.out_npz, args.out_json, w, temperature, meta)
    log.info("%s: T = %.6g gives expected accuracy %.4f", meta.get("model"), temperature,
             meta["expected_accuracy"])


def register(sub: argparse._SubParsersAction, fit: argparse.ArgumentParser) -> None:
    """Add ``align``, ``align-instance`` and ``calibrate`` to the main parser."""
    p = sub.add_parser("align", parents=[fit], help="fit a model to human triplets (CV λ)")
    for name in ("objects", "features", "train", "test", "model", "experiment",
                 "out_weights", "out_json", "out_cv"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--cv-folds", type=int, default=5)
    p.add_argument("--study-seed", type=int, required=True)
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("align-instance", parents=[fit],
                       help="one more generator instance: W refitted to a bootstrap "
                            "resample of the human training triplets at the aligned λ")
    for name in ("objects", "features", "train", "test", "model", "experiment",
                 "aligned_json", "out_weights", "out_json"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--instance", type=int, required=True, help="1, 2, ...")
    p.add_argument("--study-seed", type=int, required=True)
    p.set_defaults(func=cmd_align_instance)

    p = sub.add_parser("calibrate", help="set the generator's temperature to the noise ceiling")
    for name in ("objects", "features", "aligned", "aligned_json", "triplets", "out_npz",
                 "out_json"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--target", required=True,
                   help="expected accuracy to reach, or a ceiling.json (noise_ceiling: auto)")
    p.set_defaults(func=cmd_calibrate)
