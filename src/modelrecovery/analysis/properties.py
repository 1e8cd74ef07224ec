"""Model metadata and the model-properties regression (the published Table S3).

Model metadata (config key ``model_info``) gives each model, every field optional, a
display ``label``, its training ``objective`` and ``architecture``, its parameter count
``parameters`` and its ``embedding_dim`` (the published ``formal_names_dict``,
``models_objective``, ``architecture_dict``, ``n_params`` and ``embed_dim``). Labels
replace model names in figures; objective and architecture group the models.

The properties table has one row per model: metadata, then what its features and its
aligned transform W (d, k) say about it, before (X, shape (n, d)) and after (X W)
alignment: effective dimensionality (participation ratio), TwoNN and GriDE intrinsic
dimension, and the geometry shift of :func:`.geometry.geometry_shift`.

The regression follows the published ``Table_S3_regression.py``: one row per simulated
dataset × candidate other than its generator, the outcome the generator's test accuracy
minus the candidate's (``accuracy_difference``; or ``misidentification``, 1 when the
candidate scores better, ½ for a tie, 0 otherwise), each property entering twice (the
generator's and the candidate's), bootstrap over models
(:func:`.identifiability.misidentification_regression` with ``crossed``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..recover.selection import DATASET, TIE_TOL
from . import geometry
from .identifiability import misidentification_regression

#: Metadata fields and their types (str: one line of text; float: > 0; int: ≥ 1).
INFO_FIELDS: dict[str, type] = {"label": str, "objective": str, "architecture": str,
                                "parameters": float, "embedding_dim": int}
#: The numeric columns of :func:`model_properties`, the regression's possible predictors.
PROPERTIES = ("parameters", "embedding_dim", "geometry_shift", "ed_pre", "ed_post",
              "delta_ed", "twonn_pre", "twonn_post", "delta_twonn", "gride_pre",
              "gride_post", "delta_gride")
#: The published Table S3's predictors.
DEFAULT_PREDICTORS = ("parameters", "embedding_dim", "geometry_shift", "ed_pre", "ed_post")
OUTCOMES = ("accuracy_difference", "misidentification")
ROLES = ("generator", "candidate")
REGRESSION_COLUMNS = ["experiment", "n_train", "term", "property", "role", "coef", "ci_low",
                      "ci_high", "std_coef", "std_ci_low", "std_ci_high", "p_value",
                      "p_adjusted", "correction", "r2", "r2_ci_low", "r2_ci_high",
                      "outcome", "n_obs", "n_groups", "n_boot", "n_boot_valid", "note"]


def _one_line(value: Any) -> bool:
    return (isinstance(value, str) and value.strip() != ""
            and not any(ord(ch) < 32 or ord(ch) == 127 for ch in value))


def read_model_info(text: str, source: str = "--model-info") -> dict[str, dict[str, Any]]:
    """Model metadata from JSON: ``{model: {field: value}}`` with fields of
    :data:`INFO_FIELDS`. A bad document, field or value is refused in one line naming
    ``source`` and the key."""
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON: {exc.msg} at character {exc.pos}"
                         ) from exc
    if not isinstance(info, dict):
        raise InputError(f"{source}: expected a mapping of model names to fields")
    for model, fields in info.items():
        if not isinstance(fields, dict):
            raise InputError(f"{source}: model_info.{model}: expected a mapping of fields")
        for key, value in fields.items():
            kind = INFO_FIELDS.get(key)
            where = f"{source}: model_info.{model}.{key}"
            if kind is None:
                raise InputError(f"{where}: unknown field; the fields are "
                                 f"{', '.join(INFO_FIELDS)}")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = (_one_line(value) if kind is str
                  else number and math.isfinite(value) and value > 0 if kind is float
                  else number and float(value).is_integer() and value >= 1)
            if not ok:
                wanted = {str: "one line of text", float: "a number > 0",
                          int: "an integer ≥ 1"}[kind]
                raise InputError(f"{where}: {value!r} is not {wanted}")
    return info


def labels(info: Mapping[str, Mapping[str, Any]], names: Sequence[str] | None = None
           ) -> dict[str, str]:
    """Display name of each model of ``names`` (default: those in ``info``): its
    ``label``, else its name."""
    return {n: str((info.get(n) or {}).get("label") or n)
            for n in (list(info) if names is None else names)}


def groups(info: Mapping[str, Mapping[str, Any]], field: str = "objective"
           ) -> dict[str, str]:
    """Each model's ``field`` (objective or architecture); models without one are left
    out (an empty mapping when no model has one)."""
    return {n: str(f[field]) for n, f in info.items() if field in (f or {})}


def model_properties(geometry_table: pd.DataFrame, features: Mapping[str, np.ndarray],
                     weights: Mapping[str, np.ndarray],
                     info: Mapping[str, Mapping[str, Any]] | None = None,
                     range_max: int = 64) -> pd.DataFrame:
    """One row per model of ``geometry_table``: metadata and geometry before/after W.

    Args:
        geometry_table: :func:`.study.model_geometry`'s per-model table (``model,
            geometry_shift, pr_raw, pr_aligned, dim``).
        features: model → X, (n, d).
        weights: model → aligned W, (d, k).
        info: :func:`read_model_info`'s mapping (None: no metadata).
        range_max: GriDE's largest neighbour rank (:func:`.geometry.gride`).

    Returns:
        Columns ``model, label, objective, architecture`` (text; the last two null
        when not given), ``parameters`` (NaN when not given), ``embedding_dim``
        (``model_info``'s, else d), ``feature_dim`` (d), ``geometry_shift``, ``ed_pre``,
        ``ed_post`` (participation ratios of X and X W), ``delta_ed`` (post − pre), and
        ``twonn_*``, ``gride_*`` likewise (:func:`.geometry.twonn`,
        :func:`.geometry.gride`).
    """
    info = info or {}
    rows = []
    for _, g in geometry_table.iterrows():
        name = str(g["model"])
        meta = info.get(name) or {}
        x = features[name]
        aligned = x @ weights[name]
        row = {"model": name, "label": labels(info, [name])[name],
               "objective": meta.get("objective"), "architecture": meta.get("architecture"),
               "parameters": float(meta.get("parameters", np.nan)),
               "embedding_dim": int(meta.get("embedding_dim", x.shape[1])),
               "feature_dim": int(x.shape[1]),
               "geometry_shift": float(g["geometry_shift"]),
               "ed_pre": float(g["pr_raw"]), "ed_post": float(g["pr_aligned"])}
        for short, estimate in (("twonn", geometry.twonn),
                                ("gride", lambda z: geometry.gride(z, range_max))):
            row[f"{short}_pre"], row[f"{short}_post"] = estimate(x), estimate(aligned)
        for short in ("ed", "twonn", "gride"):
            row[f"delta_{short}"] = row[f"{short}_post"] - row[f"{short}_pre"]
        rows.append(row)
    cols = ["model", "label", "objective", "architecture", "parameters", "embedding_dim",
            "feature_dim", "geometry_shift", "ed_pre", "ed_post", "delta_ed", "twonn_pre",
            "twonn_post", "delta_twonn", "gride_pre", "gride_post", "delta_gride"]
    return pd.DataFrame(rows, columns=cols)


def pair_rows(scores: pd.DataFrame, properties: pd.DataFrame,
              predictors: Sequence[str]) -> pd.DataFrame:
    """One row per dataset × candidate other than its generator, with both outcomes and
    each predictor p of both models (``p_generator``, ``p_candidate``).

    Args:
        scores: candidate scores (``experiment, generator, n_train, seed, candidate,
            test_acc``; test accuracy a fraction of triplets).
        properties: :func:`model_properties` rows covering every model in ``scores``.
        predictors: columns of ``properties``.

    Returns:
        ``experiment, n_train, seed, generator, candidate, accuracy_difference``
        (generator's test accuracy − candidate's), ``misidentification`` (1 if the
        candidate's is higher by more than the tie tolerance, ½ within it, else 0), then
        the predictor columns.
    """
    own = (scores.loc[scores["candidate"] == scores["generator"], [*DATASET, "test_acc"]]
           .rename(columns={"test_acc": "generator_acc"}))
    rows = scores[scores["candidate"] != scores["generator"]].merge(own, on=DATASET,
                                                                     how="left")
    lost = rows["generator_acc"].isna().to_numpy()
    if lost.any():
        key = rows.loc[lost, DATASET].iloc[0].to_dict()
        raise InputError(f"scores: dataset {key} has no score of its generator as a "
                         "candidate, so its accuracy difference is undefined")
    diff = rows["generator_acc"] - rows["test_acc"]
    rows = rows.assign(accuracy_difference=diff,
                       misidentification=np.where(diff < -TIE_TOL, 1.0,
                                                  np.where(diff <= TIE_TOL, 0.5, 0.0)))
    table = properties.set_index("model")[list(predictors)]
    for role in ROLES:
        missing = sorted(set(rows[role]) - set(table.index))
        if missing:
            raise InputError(f"model properties: no row for {role}(s) {missing}")
        rows = rows.join(table.add_suffix(f"_{role}"), on=role)
    cols = ["experiment", "n_train", "seed", "generator", "candidate",
            "accuracy_difference", "misidentification",
            *(f"{p}_{r}" for p in predictors for r in ROLES)]
    return rows[cols].sort_values(cols[:5]).reset_index(drop=True)


def usable_predictors(properties: pd.DataFrame, models: Sequence[str],
                      predictors: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The predictors a regression over ``models`` can use: those with a finite value
    for every model that are not constant across them. Returns (usable, in order;
    predictor → why it is left out)."""
    table = properties.set_index("model").reindex(list(models))
    used, notes = [], {}
    for p in predictors:
        values = table[p].to_numpy(dtype=np.float64)
        lacking = [m for m, v in zip(models, values) if not np.isfinite(v)]
        if len(lacking) == len(models):
            notes[p] = f"left out: no model has a value of {p}"
        elif lacking:
            notes[p] = f"left out: no value of {p} for {lacking}"
        elif np.all(values == values[0]):
            notes[p] = f"left out: {p} is the same for every model"
        else:
            used.append(p)
    return used, notes


def properties_regression(scores: pd.DataFrame, properties: pd.DataFrame,
                          predictors: Sequence[str], outcome: str, n_boot: int,
                          rng: np.random.Generator, correction: str = "bonferroni",
                          level: float = 0.95) -> pd.DataFrame:
    """The published model-properties regression, per experiment × training size.

    Per cell: :func:`pair_rows`; predictors lacking a value for some model or constant
    across the models are left out (:func:`usable_predictors`); ``outcome`` is regressed
    on the z-scored ``p_generator`` and ``p_candidate`` of the rest
    (:func:`.identifiability.misidentification_regression`, bootstrap ``crossed`` over
    generator and candidate models: ``n_groups`` is the number of models), the terms'
    bootstrap p-values adjusted together by ``correction``. A cell whose design is
    degenerate (too few models for the predictors, collinear properties) keeps its terms
    with NaN estimates and the reason in ``note``.

    Args:
        scores: candidate scores (see :func:`pair_rows`).
        properties: :func:`model_properties` rows.
        predictors: columns of ``properties`` (e.g. :data:`DEFAULT_PREDICTORS`).
        outcome: one of :data:`OUTCOMES`.
        n_boot: bootstrap replicates per cell.
        rng: the bootstrap's random stream (cells drawn in sorted order).
        correction: ``bonferroni`` (published), ``holm`` or ``bh``.
        level: interval coverage.

    Returns:
        One row per cell × predictor × role, columns :data:`REGRESSION_COLUMNS`:
        ``term`` is ``<property>_<role>``, the estimates those of
        :func:`.identifiability.misidentification_regression` (``std_coef`` is the
        published coefficient: outcome and predictors standardised), ``note`` empty when
        the term was fitted.
    """
    if outcome not in OUTCOMES:
        raise InputError(f"outcome {outcome!r}: expected one of {OUTCOMES}")
    unknown = [p for p in predictors if p not in properties.columns]
    if unknown or not predictors:
        raise InputError(f"predictors {unknown or '(none)'}: expected columns of the model "
                         f"properties table, e.g. {list(PROPERTIES)}")
    out = []
    for (exp, n), cell in scores.groupby(["experiment", "n_train"], sort=True):
        models = sorted(set(cell["generator"]) | set(cell["candidate"]))
        used, notes = usable_predictors(properties, models, predictors)
        terms = [f"{p}_{r}" for p in used for r in ROLES]
        res = pd.DataFrame({"term": terms, "note": ""})
        if used and len(used) >= len(models):
            # A property enters as a function of the model on each side: with M models
            # the generator's (and the candidate's) columns span at most M − 1 directions.
            res = res.assign(note=f"degenerate design: {len(used)} properties need at "
                                  f"least {len(used) + 1} models, there are {len(models)}")
        elif used:
            try:
                res = misidentification_regression(
                    pair_rows(cell, properties, used), terms, outcome, n_boot, rng,
                    level=level, crossed=("generator", "candidate"), correction=correction
                ).assign(note="")
            except ValueError as exc:
                res = res.assign(note=str(exc))
        left = pd.DataFrame({"term": [f"{p}_{r}" for p in notes for r in ROLES],
                             "note": [notes[p] for p in notes for _ in ROLES]})
        res = pd.concat([res, left], ignore_index=True).assign(
            experiment=exp, n_train=n, outcome=outcome, correction=correction)
        res["property"], res["role"] = zip(*(t.rsplit("_", 1) for t in res["term"]))
        order = {f"{p}_{r}": k for k, (p, r) in enumerate((p, r) for p in predictors
                                                          for r in ROLES)}
        out.append(res.sort_values("term", key=lambda t: t.map(order)))
    if not out:
        return pd.DataFrame(columns=REGRESSION_COLUMNS)
    return pd.concat(out, ignore_index=True).reindex(columns=REGRESSION_COLUMNS)


__all__ = ["INFO_FIELDS", "PROPERTIES", "DEFAULT_PREDICTORS", "OUTCOMES", "ROLES",
           "REGRESSION_COLUMNS",
           "read_model_info", "labels", "groups", "model_properties", "pair_rows",
           "usable_predictors", "properties_regression"]
