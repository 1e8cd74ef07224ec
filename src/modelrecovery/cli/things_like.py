"""``modelrecovery things-like``: a THINGS-like world in the published file formats
(workflow/rules/data.smk, config ``world.things.generate``), with
:mod:`modelrecovery.world.things_like`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

from .. import io
from ..errors import InputError
from ..seeds import rng_for
from .args import named_values

log = logging.getLogger("modelrecovery")


def parse_world(text: str, n_objects: int) -> object:
    """The :class:`~modelrecovery.world.things_like.ThingsLike` a JSON spec (config
    ``world.things.generate`` without ``seed``) describes; unknown or ill-typed keys are
    refused naming the key."""
    from ..world.things_like import ModelSpec, ThingsLike

    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--spec is not JSON: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("models"), dict):
        raise InputError("--spec needs a mapping with 'models' (name → dim, family, signal)")
    models = {}
    for name, m in spec.pop("models").items():
        models[name] = _build(ModelSpec, m, f"generate.models.{name}")
    spec.pop("seed", None)
    return dataclasses.replace(_build(ThingsLike, spec, "generate"), models=models,
                               n_objects=n_objects)


def _build(cls, values: object, where: str):
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    defaults = cls()
    # The kind of each key is its default's (a None default stands for a name).
    kinds = {key: type(getattr(defaults, key)) if getattr(defaults, key) is not None
             else str for key in values}
    for key, value in values.items():
        kind = kinds[key]
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              if kind in (int, float) else isinstance(value, kind))
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise InputError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return cls(**{k: (int(v) if kinds[k] is int else v) for k, v in values.items()})


def cmd_things_like(args: argparse.Namespace) -> None:
    from ..world.things_like import write_things_like

    world = parse_world(args.spec, args.n_objects)
    features = named_values(args.features, "--features")
    summary = write_things_like(world, args.out_triplets, args.out_objects, features,
                                rng_for(args.seed, "things-like world"))
    io.write_json({**summary, "seed": args.seed}, args.out_summary)
    log.info("THINGS-like world: %s rows by noise_ceiling split, T = %.4g",
             summary["rows"], summary["temperature"])


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``things-like`` to the main parser."""
    p = sub.add_parser("things-like", help="a THINGS-like world in the published formats")
    p.add_argument("--spec", required=True, help="JSON of config world.things.generate")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--n-objects", type=int, default=1854)
    p.add_argument("--out-triplets", required=True, help="the TAB-separated behaviour file")
    p.add_argument("--out-objects", required=True, help="unique_id.txt")
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH",
                   help="where each model's features.npy goes")
    p.add_argument("--out-summary", required=True, help="rows, temperature, dimensions")
    p.set_defaults(func=cmd_things_like)
