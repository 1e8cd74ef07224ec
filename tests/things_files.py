"""THINGS-format triplet files for tests: the published behaviour file's columns, rows
with training HITs and the three repeated test sets, and a file lacking test set 2.
Shared by the importer, noise-ceiling, CLI and workflow tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_OBJ = 1854
HEADER = ["image1", "image2", "image3", "choice", "RT", "noise_ceiling", "subject_id",
          "HIT_nr", "trial_nr", "age", "gender", "date", "time", "dataset"]


def things_rows(seed: int = 0) -> list[list[str]]:
    """~2,750 rows: 120 training HITs of 20 trials, then three repeated test sets."""
    rng = np.random.default_rng(seed)
    subjects = ["00042"] + ["".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"),
                                               size=21)) for _ in range(14)]
    rows: list[list[str]] = []
    hit = 0

    def add(trip, choice, nc, subject, trial):
        age = rng.choice(["NaN", "", str(rng.integers(18, 70))])
        gender = rng.choice(["female", "male", ""])
        rows.append([str(trip[0]), str(trip[1]), str(trip[2]), str(choice),
                     str(rng.integers(400, 6000)), str(nc), subject, str(hit), str(trial),
                     age, gender, "2019-11-04", "13:02:51", str(rng.integers(1, 5))])

    for _ in range(120):
        hit += 1
        subject = subjects[rng.integers(len(subjects))]
        for trial in range(1, 21):
            add(rng.choice(N_OBJ, size=3, replace=False) + 1, rng.integers(1, 4), 0,
                subject, trial)
    rows[0][:4] = ["1", "1854", "17", "2"]  # both ends of the 1-based range
    test1 = [rng.choice(N_OBJ, size=3, replace=False) + 1 for _ in range(25)]
    for trip in test1:
        for r in range(6):
            hit += 1
            add(rng.permutation(trip), rng.integers(1, 4), 1, subjects[r], 1)
    test2 = [rng.choice(N_OBJ, size=3, replace=False) + 1 for _ in range(20)]
    for trip in test2:
        for s in range(3):
            for _ in range(2):  # within-subject repeats
                hit += 1
                add(trip, rng.integers(1, 4), 2, subjects[s], 1)
    for trip in test2:  # test set 3 repeats test set 2's triplets between subjects
        for s in range(4):
            hit += 1
            add(rng.permutation(trip), rng.integers(1, 4), 3, subjects[5 + s], 1)
    return rows


def write_table(path, rows, header=HEADER, sep="\t", newline="\n"):
    with open(path, "w", newline="") as fh:
        fh.write(sep.join(header) + newline)
        for row in rows:
            fh.write(sep.join(row) + newline)
    return path


def things_rows_without_test2(path: Path) -> Path:
    header = "image1\timage2\timage3\tchoice\tsubject_id\tnoise_ceiling"
    rows = [f"{a}\t{b}\t{c}\t1\ts1\t{split}"
            for (a, b, c), split in [((1, 2, 3), 0), ((4, 5, 6), 0), ((1, 5, 6), 1),
                                     ((1, 5, 6), 1)]]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path
