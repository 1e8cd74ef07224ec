"""A THINGS-like world written in the published file formats, so a rehearsal of the real
study goes through the importers a user's data goes through (``world.source: things``).

Humans: a sparse non-negative embedding E (n, k) (k ≈ 49, as SPoSE and VICE recover from
THINGS) whose similarities E Eᵀ answer uniform triplets at the temperature that gives
the target noise ceiling (THINGS: 0.68). Models: features X = [L M, N] (n, d) with
L = [a·E, b·G_family, c·U_model] a mixture of the human embedding, a structure the
model's family shares and its own, M a random projection onto the leading dimensions and
N noise filling the rest, each dimension then scaled so that its variance falls as a
power law (index⁻ᵅ), as DNN feature spectra do; a
``twin_of`` model is another model's features plus nuisance dimensions (a nested pair).

Files: the behaviour file as THINGS lays it out (TAB-separated, 1-based ``image1 image2
image3``, ``choice`` the 1-based display position of the odd one out, ``noise_ceiling``
0 for training and 1–3 for the repeated test sets), ``unique_id.txt`` (one concept per
line) and one thingsvision ``features.npy`` (n, d) float32 per model. NumPy and pyarrow
only; every draw from the given generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InputError
from ..io.outputs import atomic_path
from ..oddoneout import calibrate_temperature, pair_logits
from ..sampling import sample_choices, sample_triplets

#: The behaviour file's columns, in the published order (its demographic columns left out).
BEHAVIOUR_COLUMNS: tuple[str, ...] = ("image1", "image2", "image3", "choice", "RT",
                                      "noise_ceiling", "subject_id", "HIT_nr", "trial_nr")


@dataclass(frozen=True)
class ModelSpec:
    """One model: feature dimension ``dim``, ``family`` (models of one family share a
    structure), ``signal`` a, the weight of the human embedding in its latent mixture,
    and ``twin_of``: the name of the model whose features it extends by ``nuisance``
    dimensions (then dim, family and signal are the other model's)."""

    dim: int = 256
    family: str = "a"
    signal: float = 0.5
    twin_of: str | None = None
    nuisance: int = 8


@dataclass(frozen=True)
class ThingsLike:
    """The world's shape: ``n_objects`` concepts, a ``human_dim``-dimensional human
    embedding with ``density`` non-zero entries, responses at noise ceiling ``ceiling``;
    ``train_triplets`` training HITs' triplets (20 per HIT), ``test_triplets`` triplets
    in each of the three repeated test sets, each answered ``test_repeats`` times
    (test set 3 repeats test set 2's triplets within subjects); ``spectrum`` α of the
    models' noise spectra; ``models`` name → :class:`ModelSpec`."""

    n_objects: int = 1854
    human_dim: int = 49
    density: float = 0.2
    ceiling: float = 0.68
    train_triplets: int = 100_000
    test_triplets: int = 1_000
    test_repeats: int = 25
    spectrum: float = 1.0
    models: dict[str, ModelSpec] = field(default_factory=dict)


def human_embedding(n: int, k: int, density: float, rng: np.random.Generator
                    ) -> np.ndarray:
    """A sparse non-negative embedding (n, k): each entry non-zero with probability
    ``density``, exponential where it is, and every object with at least one dimension."""
    e = rng.exponential(1.0, size=(n, k)) * (rng.random((n, k)) < density)
    empty = np.flatnonzero(~e.any(axis=1))
    e[empty, rng.integers(0, k, size=len(empty))] = rng.exponential(1.0, size=len(empty))
    return e


def model_features(world: ThingsLike, human: np.ndarray, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """Every model's features (n, d) float32, in ``world.models`` order (twins after the
    model they extend)."""
    n = world.n_objects
    z = (human - human.mean(0)) / human.std(0).clip(min=1e-12)
    decay = np.arange(1, 49) ** (-world.spectrum / 2.0)
    families = {f: rng.standard_normal((n, 24)) * decay[:24] for f in
                sorted({s.family for s in world.models.values() if s.twin_of is None})}
    out: dict[str, np.ndarray] = {}
    for name, spec in world.models.items():
        if spec.twin_of is not None:
            continue
        own = rng.standard_normal((n, 48)) * decay
        latent = np.hstack([spec.signal * z, 0.8 * families[spec.family], own])
        # The latent mixture, rotated, fills the leading dimensions (a network's semantic
        # components lead its spectrum) with its geometry intact; noise whose variance
        # falls as a power law fills the rest.
        r = min(spec.dim, latent.shape[1])
        rot = np.linalg.qr(rng.standard_normal((latent.shape[1], latent.shape[1])))[0]
        tail = (rng.standard_normal((n, spec.dim - r))
                * 0.5 * np.arange(2, spec.dim - r + 2) ** (-world.spectrum / 2.0))
        out[name] = np.hstack([(latent @ rot)[:, :r], tail]).astype(np.float32)
    for name, spec in world.models.items():
        if spec.twin_of is None:
            continue
        extra = 0.5 * rng.standard_normal((n, spec.nuisance))
        out[name] = np.hstack([out[spec.twin_of], extra]).astype(np.float32)
    return {name: out[name] for name in world.models}


def _answered(sim: np.ndarray, temperature: float, trip: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Displayed triplets (m, 3) in a random order and each one's 1-based choice."""
    shown = rng.permuted(trip, axis=1)
    odd = sample_choices(sim, shown, temperature, rng)[:, 2]
    return shown, np.argmax(shown == odd[:, None], axis=1) + 1


def behaviour_table(world: ThingsLike, human: np.ndarray, rng: np.random.Generator
                    ) -> tuple[pa.Table, float]:
    """The behaviour rows (training HITs of 20 trials, then test sets 1–3) and the
    responses' temperature T."""
    n = world.n_objects
    sim = human @ human.T
    calib = sample_triplets(np.arange(n), min(20_000, math.comb(n, 3)), rng, n)
    temperature = calibrate_temperature(pair_logits(sim, calib), world.ceiling)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in BEHAVIOUR_COLUMNS}
    subjects = np.array([f"S{i:05d}" for i in range(max(50, world.train_triplets // 400))])

    def add(shown, choice, split, subject, hit, trial):
        m = len(shown)
        for c, v in (("image1", shown[:, 0] + 1), ("image2", shown[:, 1] + 1),
                     ("image3", shown[:, 2] + 1), ("choice", choice),
                     ("RT", rng.integers(400, 6000, size=m)),
                     ("noise_ceiling", np.full(m, split)), ("subject_id", subject),
                     ("HIT_nr", hit), ("trial_nr", trial)):
            parts[c].append(np.asarray(v))

    train = sample_triplets(np.arange(n), world.train_triplets, rng, n)
    shown, choice = _answered(sim, temperature, train, rng)
    hit = np.arange(len(train)) // 20
    add(shown, choice, 0, subjects[rng.integers(0, len(subjects), size=hit[-1] + 1)][hit],
        hit + 1, np.arange(len(train)) % 20 + 1)
    first_hit = int(hit[-1]) + 2
    test = [sample_triplets(np.arange(n), world.test_triplets, rng, n) for _ in range(2)]
    for split, trip, within in ((1, test[0], False), (2, test[1], False),
                                (3, test[1], True)):
        reps = np.repeat(trip, world.test_repeats, axis=0)
        shown, choice = _answered(sim, temperature, reps, rng)
        who = (np.tile(rng.permutation(len(subjects))[: world.test_repeats], len(trip))
               if not within else np.repeat(rng.integers(0, len(subjects), len(trip)),
                                            world.test_repeats))
        hits = first_hit + np.arange(len(reps))
        add(shown, choice, split, subjects[who], hits, np.ones(len(reps), dtype=np.int64))
        first_hit = int(hits[-1]) + 1
    table = pa.table({c: np.concatenate(v) for c, v in parts.items()})
    return table, float(temperature)


def write_things_like(world: ThingsLike, triplets: Path, objects: Path,
                      features: dict[str, Path], rng: np.random.Generator) -> dict:
    """Write the behaviour file, the concept list and every model's ``features.npy``;
    returns a summary (rows per split, the temperature, the models' dimensions)."""
    if set(features) != set(world.models):
        raise InputError(f"the feature paths name {sorted(features)} but the world's "
                         f"models are {sorted(world.models)}")
    if world.test_repeats < 2:
        raise InputError(f"test_repeats must be at least 2 (a noise ceiling needs "
                         f"repeats), got {world.test_repeats}")
    for name, spec in world.models.items():
        twin = world.models.get(spec.twin_of) if spec.twin_of is not None else None
        if spec.twin_of is not None and (twin is None or twin.twin_of is not None):
            raise InputError(f"model {name!r}: twin_of {spec.twin_of!r} is not a model of "
                             "the world (or is itself a twin)")
    human = human_embedding(world.n_objects, world.human_dim, world.density, rng)
    table, temperature = behaviour_table(world, human, rng)
    feats = model_features(world, human, rng)
    with atomic_path(triplets) as tmp, pa.OSFile(str(tmp), "wb") as sink:
        # THINGS' header is bare names; pyarrow would quote them.
        sink.write(("\t".join(BEHAVIOUR_COLUMNS) + "\n").encode())
        pacsv.write_csv(table, sink, pacsv.WriteOptions(
            include_header=False, delimiter="\t", quoting_style="none"))
    with atomic_path(objects) as tmp:
        Path(tmp).write_text("".join(f"concept_{i:04d}\n" for i in range(world.n_objects)))
    for name, path in features.items():
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, feats[name], allow_pickle=False)
    split = table.column("noise_ceiling").to_numpy()
    return {"rows": {str(s): int((split == s).sum()) for s in range(4)},
            "temperature": temperature,
            "dims": {name: int(f.shape[1]) for name, f in feats.items()}}
