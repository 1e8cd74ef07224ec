"""Stable seed derivation: every random stream comes from the study seed and a name."""

import hashlib

import numpy as np


def derive_seed(study_seed: int, *parts: object) -> int:
    """A 63-bit seed from the study seed and any labels (wildcards, stage names).

    Uses BLAKE2b over the ``repr``-free string form, never Python's salted ``hash()``,
    so a job rerun alone on another machine draws the same numbers.
    """
    key = "\x1f".join([str(int(study_seed)), *map(str, parts)])
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def rng_for(study_seed: int, *parts: object) -> np.random.Generator:
    """A NumPy generator seeded by :func:`derive_seed`."""
    return np.random.Generator(np.random.PCG64(derive_seed(study_seed, *parts)))
