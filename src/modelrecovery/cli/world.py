"""``modelrecovery synthesize | import | import-objects | import-features | import-things |
import-arrays | synthesize-scores | import-scores``: the world of a study
(workflow/rules/data.smk), from :mod:`modelrecovery.world.synthetic` or the user's files
(:mod:`modelrecovery.importers`), and the models' external benchmark scores, simulated
for the synthetic world or validated from the user's files
(:mod:`modelrecovery.importers.scores`).

Each command writes the files it is given (``--out-objects``, ``--out-train``, ...), as
the workflow's rules do; ``--out-dir DIR`` instead writes the world's standard layout
under DIR, for use by hand.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from .. import io
from ..errors import InputError
from .args import named_paths, named_values

log = logging.getLogger("modelrecovery")

#: The world's files under ``--out-dir`` (the layout of results/world).
WORLD_LAYOUT = {"objects": "objects.parquet", "train": "human/train.parquet",
                "test": "human/test.parquet", "meta": "world.json"}
#: The human files of the THINGS importers under ``--out-dir`` (results/world/human).
HUMAN_LAYOUT = {"train": "train.parquet", "test": "test.parquet",
                "ceiling": "ceiling.json", "summary": "summary.json"}


def _outputs(args: argparse.Namespace, layout: dict[str, str]) -> dict[str, Path]:
    """Each file of ``layout``: its ``--out-<key>`` path, or its place under --out-dir."""
    named = {key: getattr(args, f"out_{key}") for key in layout}
    if args.out_dir is not None:
        given = [f"--out-{key}" for key, path in named.items() if path is not None]
        if given or getattr(args, "out_features", None):
            raise InputError(f"--out-dir writes the standard layout; leave out "
                             f"{given or ['--out-features']}, or name every file instead")
        return {key: Path(args.out_dir) / rel for key, rel in layout.items()}
    missing = [f"--out-{key}" for key, path in named.items() if path is None]
    if missing:
        raise InputError(f"needs {missing} (or --out-dir for the standard layout)")
    return {key: Path(path) for key, path in named.items()}


def _feature_outputs(args: argparse.Namespace, models: list[str]) -> dict[str, Path]:
    if args.out_dir is not None:
        return {m: Path(args.out_dir) / "features" / f"{m}.parquet" for m in models}
    if not args.out_features:
        raise InputError("needs --out-features NAME=PATH per model (or --out-dir)")
    return {m: Path(p) for m, p in
            named_paths(args.out_features, "--out-features", models).items()}


def cmd_synthesize(args: argparse.Namespace) -> None:
    import json

    from ..world.synthetic import make_world

    out = _outputs(args, WORLD_LAYOUT)
    spec = json.loads(args.spec)
    world = make_world(spec, args.study_seed, args.noise_ceiling)
    missing = sorted(set(args.models) ^ set(world.features))
    if missing:
        raise InputError(f"config: models {args.models} do not match the world's "
                         f"{sorted(world.features)}")
    features = _feature_outputs(args, args.models)
    io.write_objects(out["objects"], world.names)
    for name, x in world.features.items():
        io.write_features(features[name], x)
    io.write_triplets(out["train"], world.human_train)
    io.write_triplets(out["test"], world.human_test)
    io.write_json(world.meta, out["meta"])
    log.info("synthetic world: %d objects, %d models, human T = %.4g",
             len(world.names), len(world.features), world.human_temperature)


def cmd_import(args: argparse.Namespace) -> None:
    out = _outputs(args, WORLD_LAYOUT)
    sources = named_values(args.features, "--features")
    targets = _feature_outputs(args, list(sources))
    objects = io.read_objects(args.objects)
    n = len(objects)
    features = {name: io.read_features(path, n) for name, path in sources.items()}
    train, _ = io.read_triplets(args.train, n)
    test, _ = io.read_triplets(args.test, n)
    io.write_objects(out["objects"], objects["name"].tolist())
    for name, x in features.items():
        io.write_features(targets[name], x)
    io.write_triplets(out["train"], train)
    io.write_triplets(out["test"], test)
    io.write_json({"n_objects": n, "source": "files",
                   "models": {k: {"features_dim": int(v.shape[1])} for k, v in features.items()},
                   "human_train_triplets": len(train), "human_test_triplets": len(test)},
                  out["meta"])


def _write_human(out: dict[str, Path], train: np.ndarray, test: np.ndarray,
                 ceilings: dict, test_name: str, summary: dict) -> None:
    """train, test, ceiling (the test split's noise ceiling) and summary."""
    io.write_triplets(out["train"], train)
    io.write_triplets(out["test"], test)
    chosen = ceilings.get(test_name)
    io.write_json({"splits": ceilings, "test_split": test_name,
                   "ceiling": None if chosen is None else chosen["ceiling"]},
                  out["ceiling"])
    io.write_json(summary, out["summary"])


def _ceilings(paths: dict[str, Path], n: int, sources: dict[str, str] | None = None
              ) -> dict:
    """Noise ceiling of every split that has repeated triplets (others are skipped).
    ``sources`` names each split's origin in the user's data where ``paths`` are scratch
    files, so ceiling.json records where the split came from, not a temporary path."""
    from ..world.ceiling import ceiling_by_split

    out = {}
    for name, path in paths.items():
        try:
            out.update(ceiling_by_split({name: path}, n))
        except InputError as exc:
            log.info("no noise ceiling from %s: %s", name, exc)
            continue
        if sources is not None:
            out[name]["file"] = sources[name]
    return out


def cmd_import_objects(args: argparse.Namespace) -> None:
    from ..importers import import_objects

    import_objects(args.names, args.out, n_objects=args.n_objects)


def cmd_import_features(args: argparse.Namespace) -> None:
    from ..importers import import_features

    n = len(io.read_objects(args.objects))
    meta = import_features(args.path, args.out, n_objects=n, fmt=args.format,
                           center=args.center, unit_norm=args.unit_norm, pca=args.pca)
    log.info("%s: %s", args.path, meta["preprocessing"])


def cmd_import_things(args: argparse.Namespace) -> None:
    from ..importers import import_things

    out = _outputs(args, HUMAN_LAYOUT)
    n = len(io.read_objects(args.objects))
    # Every split goes to a scratch folder: the noise ceiling is computed from the test
    # splits, and the study keeps the training split and the chosen test split only.
    with tempfile.TemporaryDirectory(prefix="things-splits.") as scratch:
        summary = import_things(args.triplets, scratch, n_objects=n)
        test_name = f"test{args.test_split}"
        if test_name not in summary["splits"] or "train" not in summary["splits"]:
            raise InputError(f"{args.triplets}: needs a training split (noise_ceiling 0) "
                             f"and test split {args.test_split}; found "
                             f"{sorted(summary['splits'])}")
        paths = {name: Path(scratch) / f"{name}.parquet" for name in summary["splits"]}
        train, _ = io.read_triplets(paths["train"], n)
        test, _ = io.read_triplets(paths[test_name], n)
        tests = {k: v for k, v in paths.items() if k != "train"}
        ceilings = _ceilings(tests, n, {k: f"{args.triplets} (noise_ceiling = {k[4:]})"
                                        for k in tests})
    _write_human(out, train, test, ceilings, test_name, summary)


def cmd_import_arrays(args: argparse.Namespace) -> None:
    from ..importers import read_triplet_array

    out = _outputs(args, HUMAN_LAYOUT)
    n = len(io.read_objects(args.objects))
    train = read_triplet_array(args.train, n)
    test = read_triplet_array(args.test, n)
    _write_human(out, train, test, _ceilings({"test": Path(args.test)}, n), "test",
                 {"train": {"rows": len(train), "file": str(args.train)},
                  "test": {"rows": len(test), "file": str(args.test)}})


def _add_outputs(p: argparse.ArgumentParser, layout: dict[str, str],
                 features: bool = False) -> None:
    for key, rel in layout.items():
        p.add_argument(f"--out-{key}", default=None, metavar="PATH",
                       help=f"(under --out-dir: {rel})")
    if features:
        p.add_argument("--out-features", nargs="+", default=None, metavar="NAME=PATH",
                       help="one per model (under --out-dir: features/NAME.parquet)")
    p.add_argument("--out-dir", default=None,
                   help="write the standard layout under this folder instead")


def cmd_synthesize_scores(args: argparse.Namespace) -> None:
    from ..world.synthetic import external_scores

    counts = {group: _count(value) for group, value in
              named_values(args.groups, "--groups").items()}
    outs = named_values(args.out, "--out")
    if set(outs) != set(counts):
        raise InputError(f"--out: needs one GROUP=PATH for each of {sorted(counts)}; got "
                         f"{sorted(outs)}")
    for group, table in external_scores(args.models, counts, args.study_seed).items():
        io.write_csv(table, outs[group])


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"--groups: a group's number of scores must be a positive "
                         f"integer, got {text!r}")
    return int(text)


def cmd_import_scores(args: argparse.Namespace) -> None:
    from ..importers.scores import import_scores

    import_scores(args.file, args.group, args.models, args.out)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the world's subcommands to the main parser."""
    p = sub.add_parser("synthesize", help="build the embedded synthetic world")
    p.add_argument("--spec", required=True, help="JSON of config world.synthetic")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--noise-ceiling", type=float, required=True)
    _add_outputs(p, WORLD_LAYOUT, features=True)
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("import", help="validate user Parquet files into the world layout")
    p.add_argument("--objects", required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    _add_outputs(p, WORLD_LAYOUT, features=True)
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
    _add_outputs(p, HUMAN_LAYOUT)
    p.set_defaults(func=cmd_import_things)

    p = sub.add_parser("import-arrays", help="older THINGS trainset/testset arrays")
    for name in ("train", "test", "objects"):
        p.add_argument("--" + name, required=True)
    _add_outputs(p, HUMAN_LAYOUT)
    p.set_defaults(func=cmd_import_arrays)

    p = sub.add_parser("synthesize-scores",
                       help="simulated external benchmark scores for the synthetic world")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--groups", nargs="+", required=True, metavar="GROUP=COUNT")
    p.add_argument("--study-seed", type=int, required=True)
    p.add_argument("--out", nargs="+", required=True, metavar="GROUP=CSV")
    p.set_defaults(func=cmd_synthesize_scores)

    p = sub.add_parser("import-scores", help="validate external benchmark score files")
    p.add_argument("--file", nargs="+", required=True, help="CSV or Parquet, one per group")
    p.add_argument("--group", nargs="+", required=True, help="one per --file")
    p.add_argument("--models", nargs="+", required=True, help="the study's models")
    p.add_argument("--out", required=True, help="the scores as long rows (Parquet)")
    p.set_defaults(func=cmd_import_scores)
