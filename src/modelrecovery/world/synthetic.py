"""The embedded synthetic world: a sparse non-negative "human" latent and model features.

Objects have a sparse non-negative latent embedding Y (n, r), in the spirit of the
SPoSE/VICE embeddings of THINGS. "Humans" judge triplets from S = Y Yᵀ at the noise
ceiling. Each candidate model sees Y through its own distortion: a random projection
shared by its *family* (so two models of one family are hard to tell apart), a
nonlinearity, its own noise, and nuisance dimensions unrelated to Y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..oddoneout import calibrate_temperature, pair_logits, similarity
from ..sampling import sample_choices, sample_triplets
from ..seeds import rng_for

TRANSFORMS: tuple[str, ...] = ("linear", "relu", "tanh", "power", "unrelated")


@dataclass(frozen=True)
class ModelSpec:
    """One synthetic model: ``features = transform(Y A) + noise ⊕ nuisance``.

    transform: linear | relu | tanh | power (signed square) | unrelated (ignores Y).
    dim: columns of the projection A; noise: std of Gaussian noise relative to the
    signal's std; nuisance: extra pure-noise columns; family: models sharing it share A;
    misrepresents: objects (chosen at random) the model sees as other objects (their
    signal rows are other objects' rows), so two models of one family differ on those
    objects only.
    """

    name: str
    transform: str
    dim: int
    noise: float = 0.0
    nuisance: int = 0
    family: str | None = None
    misrepresents: int = 0

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ModelSpec:
        if spec.get("transform") not in TRANSFORMS:
            raise InputError(f"model {spec.get('name')!r}: transform must be one of "
                             f"{TRANSFORMS}, got {spec.get('transform')!r}")
        return cls(name=str(spec["name"]), transform=spec["transform"], dim=int(spec["dim"]),
                   noise=float(spec.get("noise", 0.0)), nuisance=int(spec.get("nuisance", 0)),
                   family=spec.get("family"),
                   misrepresents=int(spec.get("misrepresents", 0)))


@dataclass
class World:
    """A generated world: names (n,), latent (n, r), features per model (n, d_m), human data."""

    names: list[str]
    latent: np.ndarray
    features: dict[str, np.ndarray]
    human_train: np.ndarray
    human_test: np.ndarray
    human_temperature: float
    meta: dict[str, Any]


def sparse_latent(n_objects: int, dim: int, density: float, rng: np.random.Generator
                  ) -> np.ndarray:
    """Non-negative sparse embedding (n, r); every object has at least one active dimension."""
    values = rng.gamma(shape=2.0, scale=0.5, size=(n_objects, dim))
    active = rng.random((n_objects, dim)) < density
    empty = ~active.any(axis=1)
    active[np.flatnonzero(empty), rng.integers(0, dim, size=int(empty.sum()))] = True
    return values * active


def model_features(latent: np.ndarray, spec: ModelSpec, study_seed: int) -> np.ndarray:
    """Features (n, d) of one model, scaled so the mean squared row norm is 1."""
    n, r = latent.shape
    family = spec.family or spec.name
    proj = rng_for(study_seed, "family", family).normal(size=(r, spec.dim)) / np.sqrt(r)
    rng = rng_for(study_seed, "model", spec.name)
    if spec.transform == "unrelated":
        signal = rng.normal(size=(n, spec.dim))
    else:
        h = latent @ proj
        if spec.transform == "relu":
            h = np.maximum(h - np.median(h, axis=0), 0.0)
        elif spec.transform == "tanh":
            h = np.tanh(h / h.std(axis=0).clip(1e-12))
        elif spec.transform == "power":
            h = np.sign(h) * h**2
        signal = h
    if spec.misrepresents:
        if spec.misrepresents > n // 2:
            raise InputError(f"model {spec.name!r}: misrepresents {spec.misrepresents} "
                             f"objects, but the world has {n} (at most {n // 2})")
        # Its own stream, so that a model without misrepresented objects keeps its bytes.
        pick = rng_for(study_seed, "misrepresented", spec.name)
        wrong = pick.choice(n, size=spec.misrepresents, replace=False)
        others = np.setdiff1d(np.arange(n), wrong)
        signal = signal.copy()
        signal[wrong] = signal[pick.choice(others, size=len(wrong), replace=False)]
    scale = float(signal.std()) or 1.0
    x = signal + spec.noise * scale * rng.normal(size=signal.shape)
    if spec.nuisance:
        x = np.concatenate([x, scale * rng.normal(size=(n, spec.nuisance))], axis=1)
    return (x / np.sqrt(np.mean(np.sum(x * x, axis=1)))).astype(np.float32)


def make_world(spec: dict[str, Any], study_seed: int, noise_ceiling: float) -> World:
    """Build the synthetic world described by the config's ``world.synthetic`` block."""
    n = int(spec["n_objects"])
    models = [ModelSpec.from_dict(m) for m in spec["models"]]
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise InputError(f"world.synthetic.models: model names must be unique, got {names}")
    latent = sparse_latent(n, int(spec["latent_dim"]), float(spec["density"]),
                           rng_for(study_seed, "latent"))
    features = {m.name: model_features(latent, m, study_seed) for m in models}
    sim = similarity(latent)
    rng = rng_for(study_seed, "human")
    n_train, n_test = int(spec["human_train_triplets"]), int(spec["human_test_triplets"])
    everyone = np.arange(n)
    trip = sample_triplets(everyone, n_train + n_test, rng, n)
    temperature = calibrate_temperature(pair_logits(sim, trip), noise_ceiling)
    trip = sample_choices(sim, trip, temperature, rng)
    meta = {"n_objects": n, "latent_dim": int(spec["latent_dim"]),
            "human_temperature": temperature, "noise_ceiling": noise_ceiling,
            "models": {m.name: {"transform": m.transform, "dim": m.dim, "noise": m.noise,
                                "nuisance": m.nuisance, "family": m.family or m.name,
                                "features_dim": int(features[m.name].shape[1]),
                                **({"misrepresents": m.misrepresents}
                                   if m.misrepresents else {})}
                       for m in models}}
    return World(names=[f"object_{i:04d}" for i in range(n)], latent=latent,
                 features=features, human_train=trip[:n_train], human_test=trip[n_train:],
                 human_temperature=temperature, meta=meta)


# The planted agreement of the synthetic external scores: the correlation across models
# of the groups' latent factors (neural, behavioural, perceptual, then any further group
# uncorrelated), weak as Ahlert et al. (2024) found between Brain-Score's neural and
# behavioural scores; within a group every score is its factor plus noise of this std.
SCORE_FACTOR_CORRELATION = {("neural", "behavioural"): 0.2, ("neural", "perceptual"): 0.1,
                            ("behavioural", "perceptual"): 0.4}
SCORE_NOISE = 0.6


def external_scores(models: list[str], groups: dict[str, int], study_seed: int
                    ) -> dict[str, pd.DataFrame]:
    """Simulated external benchmark scores of ``models`` for a demonstration of the
    metric comparison: per group (name → number of scores) a table with a ``model``
    column and scores ``<group>_1`` … in (0, 1), each a logistic of the group's latent
    factor plus independent noise (:data:`SCORE_NOISE`); the factors are correlated
    across groups as :data:`SCORE_FACTOR_CORRELATION` says. They carry no information
    about the models' features: real studies bring their benchmarks' files."""
    names = list(groups)
    corr = np.eye(len(names))
    for (a, b), r in SCORE_FACTOR_CORRELATION.items():
        if a in names and b in names:
            corr[names.index(a), names.index(b)] = corr[names.index(b), names.index(a)] = r
    rng = rng_for(study_seed, "external_scores")
    factors = rng.multivariate_normal(np.zeros(len(names)), corr, size=len(models))
    out = {}
    for g, group in enumerate(names):
        noise = rng.normal(0.0, SCORE_NOISE, size=(len(models), groups[group]))
        values = 1.0 / (1.0 + np.exp(-(factors[:, [g]] + noise)))
        table = pd.DataFrame(values, columns=[f"{group}_{i + 1}" for i in range(groups[group])])
        table.insert(0, "model", models)
        out[group] = table
    return out
