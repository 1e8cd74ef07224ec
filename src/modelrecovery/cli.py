"""Command line: ``modelrecovery <subcommand>``, one per workflow step.

Every subcommand reads validated inputs and writes its outputs atomically, all or
nothing. On bad input it prints one line naming the file and the problem and exits with
status 2; a failure of its environment (a full disk, too little memory) is one line too,
naming the file or the setting to change, with status 1.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from . import io, outputs
from .cli_args import named_values
from .errors import InputError, ResourceError
from .seeds import rng_for

log = logging.getLogger("modelrecovery")


# ------------------------------------------------------------------ subcommand bodies


def _fit_options(args: argparse.Namespace):
    from .probe import FitOptions

    return FitOptions(regulariser=args.regulariser, method=args.method, max_iter=args.max_iter,
                      history=args.history, grad_tol=args.grad_tol, loss_tol=args.loss_tol,
                      dtype=args.dtype, device=args.device, allow_tf32=args.allow_tf32,
                      warm_start=args.warm_start, max_memory_gb=args.max_memory_gb)


def _fitting_process(args: argparse.Namespace) -> None:
    """Threads as configured, and an allocator that keeps freed memory (see
    :mod:`modelrecovery.allocator`)."""
    import torch

    from .allocator import keep_freed_memory

    torch.set_num_threads(max(1, args.threads))
    keep_freed_memory()


def cmd_synthesize(args: argparse.Namespace) -> None:
    from .synthetic import make_world

    spec = json.loads(args.spec)
    world = make_world(spec, args.study_seed, args.noise_ceiling)
    out = Path(args.out_dir)
    missing = sorted(set(args.models) ^ set(world.features))
    if missing:
        raise InputError(f"config: models {args.models} do not match the world's "
                         f"{sorted(world.features)}")
    io.write_objects(out / "objects.parquet", world.names)
    for name, x in world.features.items():
        io.write_features(out / "features" / f"{name}.parquet", x)
    io.write_triplets(out / "human" / "train.parquet", world.human_train)
    io.write_triplets(out / "human" / "test.parquet", world.human_test)
    io.write_json(world.meta, out / "world.json")
    log.info("synthetic world: %d objects, %d models, human T = %.4g",
             len(world.names), len(world.features), world.human_temperature)


def cmd_import(args: argparse.Namespace) -> None:
    objects = io.read_objects(args.objects)
    n = len(objects)
    features = {name: io.read_features(path, n)
                for name, path in named_values(args.features, "--features").items()}
    train, _ = io.read_triplets(args.train, n)
    test, _ = io.read_triplets(args.test, n)
    out = Path(args.out_dir)
    io.write_objects(out / "objects.parquet", objects["name"].tolist())
    for name, x in features.items():
        io.write_features(out / "features" / f"{name}.parquet", x)
    io.write_triplets(out / "human" / "train.parquet", train)
    io.write_triplets(out / "human" / "test.parquet", test)
    io.write_json({"n_objects": n, "source": "files",
                   "models": {k: {"features_dim": int(v.shape[1])} for k, v in features.items()},
                   "human_train_triplets": len(train), "human_test_triplets": len(test)},
                  out / "world.json")


def _write_human(out: Path, train: np.ndarray, test: np.ndarray, ceilings: dict,
                 test_name: str) -> None:
    """train.parquet, test.parquet and ceiling.json (the test split's noise ceiling)."""
    io.write_triplets(out / "train.parquet", train)
    io.write_triplets(out / "test.parquet", test)
    chosen = ceilings.get(test_name)
    io.write_json({"splits": ceilings, "test_split": test_name,
                   "ceiling": None if chosen is None else chosen["ceiling"]},
                  out / "ceiling.json")


def _ceilings(paths: dict[str, Path], n: int) -> dict:
    """Noise ceiling of every split that has repeated triplets (others are skipped)."""
    from .ceiling import ceiling_by_split

    out = {}
    for name, path in paths.items():
        try:
            out.update(ceiling_by_split({name: path}, n))
        except InputError as exc:
            log.info("no noise ceiling from %s: %s", name, exc)
    return out


def cmd_import_objects(args: argparse.Namespace) -> None:
    from .importers import import_objects

    import_objects(args.names, args.out, n_objects=args.n_objects)


def cmd_import_features(args: argparse.Namespace) -> None:
    from .importers import import_features

    n = len(io.read_objects(args.objects))
    meta = import_features(args.path, args.out, n_objects=n, fmt=args.format,
                           center=args.center, unit_norm=args.unit_norm, pca=args.pca)
    log.info("%s: %s", args.path, meta["preprocessing"])


def cmd_import_things(args: argparse.Namespace) -> None:
    from .importers import import_things

    n = len(io.read_objects(args.objects))
    out = Path(args.out_dir)
    summary = import_things(args.triplets, out / "splits", n_objects=n)
    test_name = f"test{args.test_split}"
    if test_name not in summary["splits"] or "train" not in summary["splits"]:
        raise InputError(f"{args.triplets}: needs a training split (noise_ceiling 0) and "
                         f"test split {args.test_split}; found {sorted(summary['splits'])}")
    paths = {name: out / "splits" / f"{name}.parquet" for name in summary["splits"]}
    train, _ = io.read_triplets(paths["train"], n)
    test, _ = io.read_triplets(paths[test_name], n)
    ceilings = _ceilings({k: v for k, v in paths.items() if k != "train"}, n)
    _write_human(out, train, test, ceilings, test_name)
    io.write_json(summary, out / "summary.json")


def cmd_import_arrays(args: argparse.Namespace) -> None:
    from .importers import read_triplet_array

    n = len(io.read_objects(args.objects))
    train = read_triplet_array(args.train, n)
    test = read_triplet_array(args.test, n)
    out = Path(args.out_dir)
    _write_human(out, train, test, _ceilings({"test": Path(args.test)}, n), "test")
    io.write_json({"train": {"rows": len(train), "file": str(args.train)},
                   "test": {"rows": len(test), "file": str(args.test)}},
                  out / "summary.json")


def cmd_align(args: argparse.Namespace) -> None:
    from .align import align_to_humans

    _fitting_process(args)
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    train, _ = io.read_triplets(args.train, n)
    test, _ = io.read_triplets(args.test, n)
    if not 2 <= args.cv_folds <= len(train):
        raise InputError(f"{args.train}: {len(train)} human training triplet(s) cannot be "
                         f"split into {args.cv_folds} cross-validation folds (2 to "
                         f"{len(train)}); set config key 'alignment.cv_folds' in that range")
    rng = rng_for(args.study_seed, "align", args.experiment, args.model)
    result = align_to_humans(x, train, test, args.lambdas, args.cv_folds, rng,
                             _fit_options(args))
    meta = {"model": args.model, "experiment": args.experiment, "method": args.method,
            "regulariser": args.regulariser, "lambda": result.lam, "lambdas": args.lambdas,
            "cv_folds": args.cv_folds, "fit": result.final, "human": result.human,
            "dtype": args.dtype, "grad_tol": args.grad_tol, "loss_tol": args.loss_tol}
    io.write_parquet(result.cv.assign(model=args.model), args.out_cv)
    io.save_generator(args.out_weights, args.out_json, result.weights, 1.0, meta)
    log.info("%s: λ = %g, human test accuracy zero-shot %.3f, probed %.3f", args.model,
             result.lam, result.human["zero_shot_test_acc"], result.human["probed_test_acc"])


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
    from .calibrate import calibrate_temperature
    from .oddoneout import expected_accuracy, pair_logits, similarity

    target = _target(args.target)
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    w, _ = io.load_generator(args.aligned)
    meta = io.read_json(args.aligned_json)
    trip, _ = io.read_triplets(args.triplets, n)
    logits = pair_logits(similarity(x, w), trip)
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


def cmd_simulate(args: argparse.Namespace) -> None:
    """One generator's datasets, one per seed (``--seed``/``--out``, and ``--design-file``
    for a designed dataset), each from its own random stream."""
    from .oddoneout import similarity
    from .simulate import simulate_dataset, simulate_design, triplet_keys

    designs = args.design_file or [None] * len(args.seed)
    if not len(args.seed) == len(args.out) == len(designs):
        raise InputError(f"--seed, --out (and --design-file) need one entry per dataset; "
                         f"got {len(args.seed)}, {len(args.out)} and {len(designs)}")
    n = len(io.read_objects(args.objects))
    x = io.read_features(args.features, n)
    w, temperature = io.load_generator(args.generator_file)
    sim = similarity(x, w)
    exclude = None
    if args.exclude and not args.design_file:
        exclude = np.concatenate([triplet_keys(io.read_triplets(p, n)[0], n)
                                  for p in args.exclude])
    for seed, out, design_file in zip(args.seed, args.out, designs):
        if design_file:
            # A designed dataset: the design fixed the triplets (and exclusions); only
            # the responses are drawn, from a stream of the design's own.
            design = io._open_parquet(design_file, "design").to_pandas()
            rng = rng_for(args.study_seed, "simulate", args.experiment, args.design,
                          args.generator, seed)
            io.write_parquet(simulate_design(sim, temperature, design, rng), out)
            continue
        rng = rng_for(args.study_seed, "simulate", args.experiment, args.generator, seed)
        shard = simulate_dataset(sim, temperature, args.n_train_max, n_folds=args.folds,
                                 val_fraction=args.val_fraction,
                                 eval_fraction=args.eval_fraction, rng=rng, exclude=exclude)
        io.write_parquet(shard, out)


def cmd_recover(args: argparse.Namespace) -> None:
    """Every design's and seed's dataset of one generator and training size, one after
    the other in one process (one kernel call each: the rows are those of one job per
    dataset), so the candidates are read and the process started once per size."""
    from .recover import recovery_fits

    designs = args.design * len(args.shard) if len(args.design) == 1 else args.design
    if not len(args.shard) == len(args.seed) == len(args.out) == len(designs):
        raise InputError(f"--shard, --seed, --out and --design need one entry per dataset "
                         f"(--design may be one for all); got {len(args.shard)}, "
                         f"{len(args.seed)}, {len(args.out)} and {len(args.design)}")
    _fitting_process(args)
    n = len(io.read_objects(args.objects))
    candidates = {name: io.read_features(path, n)
                  for name, path in named_values(args.candidates, "--candidates").items()}
    for shard_path, seed, out, design in zip(args.shard, args.seed, args.out, designs):
        shard = io._open_parquet(shard_path, "simulated shard").to_pandas()
        missing = {"fold", "split", "position", "i", "j", "k"} - set(shard.columns)
        if missing:
            raise InputError(f"{shard_path}: simulated shard lacks column(s) "
                             f"{sorted(missing)}")
        rows = recovery_fits(shard, args.n_train, candidates, args.lambdas,
                             _fit_options(args), eval_fraction=args.eval_fraction,
                             labels={"experiment": args.experiment, "design": design,
                                     "generator": args.generator, "seed": seed})
        io.write_parquet(rows, out)
        unconverged = int((~rows["converged"]).sum())
        if unconverged:
            log.warning("seed %d: %d of %d fits did not meet the tolerance (see 'status')",
                        seed, unconverged, len(rows))


def cmd_aggregate(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import analyse

    fits = io.read_tables(args.fits, analyse.check_recovery_rows)
    scores = analyse.candidate_scores(fits)
    outcomes = analyse.dataset_outcomes(scores)
    curve = analyse.recovery_curve(outcomes)
    gen = analyse.generator_curves(outcomes)
    conf = analyse.confusion(scores)
    summ = analyse.summary(curve, fits)
    align_rows = []
    for path in args.generators:
        meta = io.read_json(path)
        align_rows.append({"model": meta["model"], "lambda": meta["lambda"],
                           "temperature": meta["temperature"],
                           "expected_accuracy": meta["expected_accuracy"],
                           **meta["human"], "converged": meta["fit"]["converged"]})
    tables = {"scores": scores, "outcomes": outcomes, "recovery_curve": curve,
              "generator_curves": gen, "confusion": conf, "summary": summ,
              "alignment": pd.DataFrame(align_rows)}
    _write_tables(tables, Path(args.out_dir))
    for _, r in summ.iterrows():
        log.info("N = %6d  recovery %.3f [%.3f, %.3f]  ties %.2f", r["n_train"],
                 r["recovery"], r["ci_low"], r["ci_high"], r["tie_rate"])


def cmd_plot(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import plots

    curve = pd.read_parquet(args.curve)
    gen = pd.read_parquet(args.generator_curves)
    conf = pd.read_parquet(args.confusion)
    n_cands = conf["candidate"].nunique()
    plots.save_figure(plots.recovery_figure(curve, gen, n_cands,
                                            f"Model recovery: {args.experiment}"),
                      args.out_curve)
    plots.save_figure(plots.confusion_figure(conf, f"Confusion matrices: {args.experiment}"),
                      args.out_confusion)


def _write_tables(tables: dict, out: Path) -> None:
    for name, frame in tables.items():
        io.write_parquet(frame, out / f"{name}.parquet")
        io.write_csv(frame, out / f"{name}.csv")


def cmd_analyse_geometry(args: argparse.Namespace) -> None:
    from . import geometry, plots, study_analyses

    n = len(io.read_objects(args.objects))
    feats = {m: io.read_features(p, n) for m, p in named_values(args.features, "--features").items()}
    weights = {}
    for m, p in named_values(args.generators, "--generators").items():
        weights[m] = io.load_generator(p)[0]
        if not np.any(weights[m]):
            raise InputError(f"{p}: model {m!r}'s aligned transform is W = 0 (its fit to the "
                             "humans is no better than chance), so its aligned geometry is "
                             "undefined; leave it out of 'generators' or check its features")
    if args.metric == "correlation":
        paths = named_values(args.features, "--features")
        for m, x in feats.items():
            for label, z in (("features", x), ("aligned features", x @ weights[m])):
                rows = geometry.constant_rows(z)
                if len(rows):
                    raise InputError(
                        f"{paths[m]}: model {m!r}: object row {int(rows[0])} has constant "
                        f"{label} ({len(rows)} such row(s)), so its correlation distance "
                        "is undefined; set config key 'analysis.metric' to euclidean")
    geom, rsa, mds = study_analyses.model_geometry(feats, weights, args.metric)
    human = study_analyses.human_similarity(io.read_triplets(args.human_train, n)[0], n)
    rsa_h = pd.DataFrame({"model": list(feats), "experiment": args.experiment,
                          "rsa_human": [study_analyses.rsa_with_humans(feats[m], weights[m],
                                                                       human)
                                        for m in feats]})
    out = Path(args.out_dir)
    _write_tables({"geometry": geom.assign(experiment=args.experiment),
                   "rsa": rsa.assign(experiment=args.experiment),
                   "mds": mds.assign(experiment=args.experiment), "rsa_human": rsa_h}, out)
    plots.save_figure(plots.mds_figure(mds, geom, f"Aligned geometry: {args.experiment}"),
                      Path(args.figures) / "geometry")


def cmd_analyse_identifiability(args: argparse.Namespace) -> None:
    from . import identifiability, plots, study_analyses

    outcomes = pd.read_parquet(args.outcomes)
    confusion = pd.read_parquet(args.confusion)
    geom = pd.read_parquet(args.geometry)
    rng = rng_for(args.study_seed, "misidentification", args.experiment)
    tables = {"ranks": identifiability.rank_table(outcomes),
              "precision_recall": identifiability.precision_recall_f1(confusion),
              "misidentification": study_analyses.misidentification(
                  outcomes, geom[["model", "geometry_shift", "pr_aligned"]], args.n_boot, rng)}
    _write_tables(tables, Path(args.out_dir))
    plots.save_figure(plots.misidentification_figure(
        tables["misidentification"], f"Why models are misidentified: {args.experiment}"),
        Path(args.figures) / "misidentification")


def cmd_compare_methods(args: argparse.Namespace) -> None:
    from . import identifiability, plots, study_analyses

    def stack(paths: list[str], experiments: list[str]) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(p).assign(experiment=e)
                          for p, e in zip(paths, experiments)], ignore_index=True)

    exps = args.experiments
    alignment = stack(args.alignment, exps)
    curves = pd.concat([pd.read_parquet(p) for p in args.curves], ignore_index=True)
    gen_curves = pd.concat([pd.read_parquet(p) for p in args.generator_curves],
                           ignore_index=True)
    rsa_h = pd.concat([pd.read_parquet(p) for p in args.rsa_human], ignore_index=True)
    tradeoff = identifiability.accuracy_vs_identifiability(alignment, curves)
    table = study_analyses.metric_table(alignment, gen_curves, rsa_h)
    _, rho = identifiability.metric_agreement(table, model="model")
    out = Path(args.out_dir)
    _write_tables({"accuracy_vs_identifiability": tradeoff, "metrics_by_model": table,
                   "metric_agreement": rho.reset_index()}, out)
    fig = Path(args.figures)
    plots.save_figure(plots.tradeoff_figure(tradeoff), fig / "accuracy_vs_identifiability")
    plots.save_figure(plots.agreement_figure(rho), fig / "metric_agreement")


# ------------------------------------------------------------------ parser


def _fit_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("fitting")
    g.add_argument("--regulariser", default="eye_distance", choices=["eye_distance", "l2", "l1"])
    g.add_argument("--method", default="full",
                   help="alignment method: zero_shot, diagonal, low_rank:K or full")
    g.add_argument("--lambdas", type=float, nargs="+", required=True)
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    g.add_argument("--allow-tf32", action="store_true")
    g.add_argument("--max-iter", type=int, default=500)
    g.add_argument("--history", type=int, default=20)
    g.add_argument("--grad-tol", type=float, default=1e-6)
    g.add_argument("--loss-tol", type=float, default=1e-7)
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                   help="solve the λ grid from the largest λ down, each from the last solution")
    g.add_argument("--max-memory-gb", type=float, default=8.0,
                   help="kernel working-memory limit; batches split to fit it")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrecovery", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = _fit_parent()

    p = sub.add_parser("synthesize", help="build the embedded synthetic world")
    p.add_argument("--spec", required=True, help="JSON of config world.synthetic")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--noise-ceiling", type=float, required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("import", help="validate user Parquet files into the world layout")
    p.add_argument("--objects", required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("import-objects", help="a THINGS-style concept list → objects.parquet")
    p.add_argument("--names", required=True, help="one object name per line")
    p.add_argument("--n-objects", type=int, default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_import_objects)

    p = sub.add_parser("import-features", help="model features (npy, pt, thingsvision, "
                                               "txt, hdf5, mat, csv, parquet) → Parquet")
    p.add_argument("--path", required=True)
    p.add_argument("--objects", required=True)
    p.add_argument("--format", default="auto")
    p.add_argument("--center", action="store_true")
    p.add_argument("--unit-norm", action="store_true")
    p.add_argument("--pca", type=int, default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_import_features)

    p = sub.add_parser("import-things", help="the THINGS odd-one-out file → human triplets")
    p.add_argument("--triplets", required=True)
    p.add_argument("--objects", required=True)
    p.add_argument("--test-split", type=int, default=2, choices=[1, 2, 3])
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_import_things)

    p = sub.add_parser("import-arrays", help="older THINGS trainset/testset arrays")
    for name in ("train", "test", "objects", "out_dir"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.set_defaults(func=cmd_import_arrays)

    p = sub.add_parser("align", parents=[fit], help="fit a model to human triplets (CV λ)")
    for name in ("objects", "features", "train", "test", "model", "experiment",
                 "out_weights", "out_json", "out_cv"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--cv-folds", type=int, default=5)
    p.add_argument("--study-seed", type=int, required=True)
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("calibrate", help="set the generator's temperature to the noise ceiling")
    for name in ("objects", "features", "aligned", "aligned_json", "triplets", "out_npz",
                 "out_json"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--target", required=True,
                   help="expected accuracy to reach, or a ceiling.json (noise_ceiling: auto)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("simulate", help="simulate datasets from a calibrated generator")
    for name in ("objects", "features", "generator_file", "experiment", "generator"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one per dataset")
    p.add_argument("--out", nargs="+", required=True, help="one per --seed")
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--n-train-max", type=int, required=True)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--val-fraction", type=float, default=0.3)
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--exclude", nargs="*", default=[], help="triplet files not to redraw")
    p.add_argument("--design", default="random", help="the design's name (a label)")
    p.add_argument("--design-file", nargs="*", default=[],
                   help="per --seed, a design's triplets to answer (else uniform draws)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("recover", parents=[fit],
                       help="refit every candidate to datasets of one training size")
    for name in ("objects", "experiment", "generator"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--shard", nargs="+", required=True, help="simulated datasets")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one per --shard")
    p.add_argument("--out", nargs="+", required=True, help="one per --shard")
    p.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--n-train", type=int, required=True)
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--design", nargs="+", default=["random"],
                   help="per --shard (or one for all), the dataset's design (a label)")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("aggregate", help="recovery curves, confusion matrices, summary")
    p.add_argument("--fits", nargs="+", required=True)
    p.add_argument("--generators", nargs="*", default=[], help="generator JSON sidecars")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("analyse-geometry", help="geometry shift, dimensionality, RSA, MDS")
    for name in ("objects", "human_train", "experiment", "out_dir", "figures"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--generators", nargs="+", required=True, metavar="NAME=NPZ")
    p.add_argument("--metric", default="correlation", choices=["correlation", "euclidean"])
    p.set_defaults(func=cmd_analyse_geometry)

    p = sub.add_parser("analyse-identifiability",
                       help="ranks, precision/recall/F1, misidentification regression")
    for name in ("outcomes", "confusion", "geometry", "experiment", "out_dir", "figures"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--study-seed", type=int, required=True)
    p.set_defaults(func=cmd_analyse_identifiability)

    p = sub.add_parser("compare-methods",
                       help="accuracy vs identifiability and metric agreement across runs")
    for name in ("experiments", "alignment", "curves", "generator_curves", "rsa_human"):
        p.add_argument("--" + name.replace("_", "-"), nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figures", required=True)
    p.set_defaults(func=cmd_compare_methods)

    p = sub.add_parser("plot", help="recovery curve and confusion figures (PNG + SVG)")
    for name in ("curve", "generator_curves", "confusion", "experiment", "out_curve",
                 "out_confusion"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.set_defaults(func=cmd_plot)

    from .cli_design import register

    register(sub, fit)
    return parser


def _failure_line(exc: BaseException) -> str | None:
    """The one line for a failure of the job's environment (disk, memory, permissions)
    rather than of its input; None for anything else."""
    if isinstance(exc, ResourceError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return ("out of memory: the job needs more than this machine or its allocation "
                "gives; raise the rule's mem_mb (SLURM) or use fewer triplets or feature "
                "dimensions")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return ("out of GPU memory: lower fitting.max_memory_gb so the kernel splits its "
                "batches, or use a GPU with more memory")
    if isinstance(exc, OSError):
        target = exc.filename
        where = f"{target}: " if target else ""
        if exc.errno == errno.ENOSPC:
            return (f"{where}no space left on the device; free space there or set "
                    "'results' to a folder on a larger disk")
        if exc.errno == errno.EDQUOT:
            return f"{where}disk quota exceeded; free space or set 'results' elsewhere"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}permission denied ({exc.strerror}); check who owns it"
        return f"{where}{exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status: 2 for bad input, 1 for a failure of the
    environment or of the program. Either way the failure is one line on stderr and the
    command leaves no output behind (``--verbose`` adds the traceback)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    command = " ".join(filter(None, [args.command, getattr(args, "design_command", None)]))
    prefix = f"modelrecovery {command}: error:"
    try:
        with outputs.all_or_nothing():
            args.func(args)
    except InputError as exc:
        print(f"{prefix} {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - every failure ends as one line
        if args.verbose:
            traceback.print_exc()
        line = _failure_line(exc)
        if line is None:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            line = (f"unexpected {type(exc).__name__}: {exc} (at "
                    f"{Path(frame.filename).name}:{frame.lineno}); this is a bug or an "
                    "input the program does not check: please report it with the "
                    "traceback from --verbose")
        print(f"{prefix} {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
