"""Start-up checks of a study's configuration, run by the Snakefile before any job.

The JSON schema (``workflow/schemas/config.schema.yaml``) is the one home of the config's
structure: keys, types, ranges, the patterns of paths and names. This module adds what a
schema cannot say (finite numbers, integers written as floats, keys repeated in the YAML
file, names that must agree across keys, fold counts against the data, input files that
do not exist) and turns every refusal into one line naming the key.

It needs only what Snakemake itself depends on (PyYAML, jsonschema); pyarrow, when
present, lets it count the rows of a user's Parquet triplet file.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

PREFIX = "modelrecovery: config error"


class ConfigError(ValueError):
    """A refused configuration; the message is one line naming the key."""


# ------------------------------------------------------------------ the YAML file


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key repeated within one mapping (PyYAML keeps
    the last silently, so an edited copy of a key would quietly replace the first)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(f"{key_node.start_mark.name}: line {line}: key {key!r} appears "
                              f"again (first at line {seen[key]}); the last one would "
                              "silently win, so keep one")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _construct_mapping)


def check_config_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse a config file that does not parse, is empty, or repeats a key."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                content = yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 (safe loader)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: the config file is not UTF-8 text") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}: {where}not valid YAML: {problem}") from exc
        if content is None:
            raise ConfigError(f"{path}: the config file is empty")
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: the config file must be a mapping of keys, found "
                              f"a {type(content).__name__}")


# ------------------------------------------------------------------ values and schema


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _non_finite(value: Any, path: tuple = ()) -> tuple[str, float] | None:
    """The first float that is NaN or infinite, with its key (YAML's .nan and .inf pass
    every range in the schema, since NaN compares false with every bound)."""
    if isinstance(value, float) and not math.isfinite(value):
        return _key(path), value
    if isinstance(value, dict):
        items: Iterable = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, (*path, k))
        if found:
            return found
    return None


def _strict_integer(checker: Any, value: Any) -> bool:
    # jsonschema counts 3.0 as an integer; a seed or a count written as a float is a
    # typo the study should not round silently.
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", _strict_integer))


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = "" if key == "(top level)" else f" under '{key}'"
        return (f"config: unknown key(s) {extra}{where}; allowed: {', '.join(allowed)}")
    if error.validator == "pattern" and "description" in schema:
        return f"config key '{key}': {error.instance!r} is not {schema['description']}"
    if error.validator == "type" and error.validator_value == "integer":
        return f"config key '{key}': {error.instance!r} must be an integer"
    if error.validator == "required":
        return f"config: missing key {error.message.split()[0]} under '{key}'" \
            if key != "(top level)" else f"config: missing key {error.message.split()[0]}"
    return f"config key '{key}': {error.message}"


def check_values(config: dict, schema: dict) -> None:
    """Refuse non-finite numbers, then anything the schema refuses (one error, the most
    relevant as jsonschema ranks them)."""
    found = _non_finite(config)
    if found:
        key, value = found
        raise ConfigError(f"config key '{key}': {value} is not a finite number")
    errors = list(_Validator(schema).iter_errors(config))
    if errors:
        raise ConfigError(_describe(jsonschema.exceptions.best_match(errors)))


# ------------------------------------------------------------------ agreement across keys


def model_names(config: dict) -> list[str]:
    """The world's models, in config order."""
    world = config["world"]
    if world["source"] == "synthetic":
        return [m["name"] for m in world["synthetic"]["models"]]
    return list(world[world["source"]]["features"])


def input_files(config: dict) -> dict[str, str]:
    """Config key → path of every user file the world is imported from."""
    world = config["world"]
    source = world["source"]
    if source == "files":
        files = world["files"]
        out = {f"world.files.{k}": files[k] for k in ("objects", "human_train", "human_test")}
        out.update({f"world.files.features.{m}": p for m, p in files["features"].items()})
        return out
    if source == "things":
        things = world["things"]
        if things.get("generate"):
            return {}  # the world's own rule writes them
        names = (("train", "test") if things.get("format", "things_csv") == "arrays"
                 else ("triplets",))
        out = {f"world.things.{k}": things[k] for k in ("objects", *names)}
        out.update({f"world.things.features.{m}.path": spec["path"]
                    for m, spec in things["features"].items()})
        return out
    return {}


def score_files(config: dict) -> dict[str, str]:
    """Config key → path of every external scores file, and of the published study's
    results database."""
    files = (config.get("external_scores") or {}).get("files") or []
    out = {f"external_scores.files.{i}.path": f["path"] for i, f in enumerate(files)}
    if config.get("published_results"):
        out["published_results"] = config["published_results"]
    return out


def _triplet_rows(path: str) -> int | None:
    """Rows of a Parquet triplet file from its footer, or None when that cannot be read
    (the importer then names the problem)."""
    try:
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    except Exception:  # noqa: BLE001 - any failure here is reported by the importer
        return None


def check_consistency(config: dict) -> None:
    """Names that must agree across keys, fold counts against the data, and input files
    that must exist."""
    world = config["world"]
    models = model_names(config)
    if world["source"] == "synthetic":
        first: dict[str, int] = {}
        for pos, name in enumerate(models):
            if name in first:
                raise ConfigError(f"config key 'world.synthetic.models.{pos}.name': model "
                                  f"name {name!r} repeats entry {first[name]}; names must "
                                  "be unique (they name files)")
            first[name] = pos
        synthetic = world["synthetic"]
        for pos, spec in enumerate(synthetic["models"]):
            if spec.get("misrepresents", 0) > synthetic["n_objects"] // 2:
                raise ConfigError(
                    f"config key 'world.synthetic.models.{pos}.misrepresents': "
                    f"{spec['misrepresents']} objects, but at most half the world's "
                    f"{synthetic['n_objects']} ({synthetic['n_objects'] // 2}) can be "
                    "misrepresented")
    if config["noise_ceiling"] == "auto" and world["source"] != "things":
        raise ConfigError("config key 'noise_ceiling': 'auto' needs world.source: things "
                          "(the ceiling is computed from THINGS' repeated test triplets); "
                          "give a number instead")
    chosen = {}
    for key in ("generators", "candidates"):
        names = config.get(key) or models
        unknown = [n for n in names if n not in models]
        if unknown:
            raise ConfigError(f"config key '{key}': unknown model(s) {unknown}; the world "
                              f"has {models}")
        chosen[key] = names
    unknown = [n for n in config.get("model_info") or {} if n not in models]
    if unknown:
        raise ConfigError(f"config key 'model_info': unknown model(s) {unknown}; the world "
                          f"has {models}")
    missing = [n for n in chosen["generators"] if n not in chosen["candidates"]]
    if missing:
        raise ConfigError("config key 'candidates': every generator must also be a "
                          f"candidate, or recovery is undefined; missing {missing}")
    if len(chosen["candidates"]) < 2:
        raise ConfigError("config key 'candidates': model recovery needs at least two "
                          f"candidates, found {chosen['candidates']}")
    design = config.get("design") or {}
    priors = {"design.prior": design.get("prior") or {},
              "analysis.prior": (config.get("analysis") or {}).get("prior") or {}}
    for key, names in (*((k, list(v)) for k, v in priors.items()),
                       ("design.pair", design.get("pair") if isinstance(design.get("pair"),
                                                                       list) else [])):
        unknown = [n for n in names if n not in chosen["generators"]]
        if unknown:
            raise ConfigError(f"config key '{key}': {unknown} are not generators; the "
                              f"generators are {chosen['generators']}")
    for key, prior in priors.items():
        if prior and not any(prior.values()):
            raise ConfigError(f"config key '{key}': every weight is 0; give at least one "
                              "generator a positive weight")
    _check_generators_from(config["experiments"])
    _check_generated_things(world)
    simulation = config["simulation"]
    if simulation.get("protocol") == "subsets":
        if simulation["folds"] < 3:
            raise ConfigError("config key 'simulation.folds': the subsets protocol needs "
                              f"at least 3 (test, validation, training), got "
                              f"{simulation['folds']}")
        designed = [d for d in config.get("designs") or ["random"] if d != "random"]
        if designed:
            raise ConfigError(f"config key 'designs': {designed} lay out their own folds; "
                              "with simulation.protocol: subsets use designs: [random]")
    external = config.get("external_scores") or {}
    if external.get("synthetic") and world["source"] != "synthetic":
        raise ConfigError("config key 'external_scores.synthetic': simulated scores are "
                          "for the synthetic world; give your benchmarks' files under "
                          "external_scores.files instead")
    for key, path in {**input_files(config), **score_files(config)}.items():
        if not Path(path).exists():
            raise ConfigError(f"config key '{key}': {path} does not exist (relative paths "
                              f"are read from {os.getcwd()})")
    _check_cv_folds(config)


def _check_generated_things(world: dict) -> None:
    """A generated THINGS-like world names one generated model per feature file, each
    a thingsvision ``.npy``, in the published behaviour format."""
    things = world.get("things") or {}
    generate = things.get("generate")
    if world["source"] != "things" or not generate:
        return
    if things.get("format", "things_csv") != "things_csv":
        raise ConfigError("config key 'world.things.format': a generated world is written "
                          "in the published behaviour format; use things_csv")
    models, features = generate["models"], things["features"]
    if set(models) != set(features):
        raise ConfigError(f"config key 'world.things.generate.models': names {sorted(models)} "
                          f"but world.things.features names {sorted(features)}; list the "
                          "same models in both")
    for name, spec in features.items():
        if not str(spec["path"]).endswith(".npy"):
            raise ConfigError(f"config key 'world.things.features.{name}.path': a generated "
                              f"model's features are a thingsvision .npy, got {spec['path']}")
    for name, spec in models.items():
        twin = spec.get("twin_of")
        if twin is not None and (twin not in models or models[twin].get("twin_of")):
            raise ConfigError(f"config key 'world.things.generate.models.{name}.twin_of': "
                              f"{twin!r} is not a generated model that is not itself a twin")


def _check_generators_from(experiments: dict) -> None:
    """An experiment whose generators come from another names an experiment of the
    config that aligns its own (one step: the generators must exist somewhere)."""
    for name, spec in experiments.items():
        source = spec.get("generators_from")
        if source is None:
            continue
        key = f"config key 'experiments.{name}.generators_from'"
        if source == name:
            raise ConfigError(f"{key}: an experiment cannot take its generators from "
                              "itself; leave the key out instead")
        if source not in experiments:
            raise ConfigError(f"{key}: {source!r} is not an experiment of this config; "
                              f"the experiments are {sorted(experiments)}")
        if experiments[source].get("generators_from") is not None:
            raise ConfigError(f"{key}: {source!r} takes its own generators from "
                              f"{experiments[source]['generators_from']!r}; name that "
                              "experiment instead")


def _check_cv_folds(config: dict) -> None:
    folds = config["alignment"]["cv_folds"]
    world = config["world"]
    if world["source"] == "synthetic":
        rows, origin = world["synthetic"]["human_train_triplets"], \
            "world.synthetic.human_train_triplets"
    elif world["source"] == "files":
        origin = world["files"]["human_train"]
        rows = _triplet_rows(origin)
    else:
        return  # known only once the THINGS file is imported; align refuses it then
    if rows is not None and folds > rows:
        raise ConfigError(f"config key 'alignment.cv_folds': {folds} folds need at least "
                          f"{folds} human training triplets, but {origin} has {rows}; "
                          "lower cv_folds")


# ------------------------------------------------------------------ entry point


def check(config: dict, schema_path: str | os.PathLike[str],
          configfiles: Iterable[str | os.PathLike[str]]) -> None:
    """Every start-up check, in the order a user would fix them; raises ConfigError."""
    check_config_files(configfiles)
    with open(schema_path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    check_values(config, schema)
    check_consistency(config)


def refuse_bad_config(config: dict, schema_path: str | os.PathLike[str],
                      configfiles: Iterable[str | os.PathLike[str]]) -> None:
    """Run :func:`check`; on a refusal print its one line and exit with status 2 (a
    raised error would reach the user as Snakemake's multi-line report)."""
    try:
        check(config, schema_path, configfiles)
    except ConfigError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        sys.exit(2)
