"""The kernel benchmark's study estimate and GPU-target fit (benchmarks/kernel_benchmark.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import kernel_benchmark as kb  # noqa: E402


def test_study_estimate_interpolates_measured_scaling_and_counts_the_published_fits():
    # A power law in N is a straight line in log-log: interpolation must reproduce it
    # exactly between the measured points, and hold the end values outside them.
    measured = np.array(kb.STUDY_TRIPLETS, dtype=float)
    points = pd.DataFrame({"n_triplets": measured[::-1],
                           "seconds_per_iteration": 3e-7 * measured[::-1] ** 0.9})
    est = kb.study_estimate(points, iterations_per_fit=40.0)
    sizes = kb.PUBLISHED_SIZES
    assert len(sizes) == 18 and sizes[0] == 50 and sizes[-1] == 4_200_000
    expected = 3e-7 * np.clip(sizes, measured.min(), measured.max()) ** 0.9
    np.testing.assert_allclose(est["seconds_per_iteration"], expected, rtol=1e-12)
    fits_per_size = 20 * 30 * 20 * 11 * 3
    assert (est["fits"] == fits_per_size).all()
    assert int(est["fits"].sum()) == 7_128_000  # "millions of sequential solver runs"
    np.testing.assert_allclose(est["device_hours"], fits_per_size * 40.0 * expected / 3600,
                               rtol=1e-12)


def test_target_fit_runs_in_its_own_process_and_learns_the_planted_transform():
    # The GPU target's code path at a small shape, through the same subprocess call the
    # benchmark makes (its peak memory is then its own).
    row = kb._in_subprocess("--target-point", [120, 8, 5000, 1e-3], "cpu", 3)
    assert row is not None
    assert row["n_objects"] == 120 and row["dim"] == 8 and row["n_triplets"] == 5000
    assert row["status"] in ("gradient", "loss") and row["iterations"] > 0
    # Planted at the THINGS noise ceiling: well below chance (log 3 ≈ 1.099).
    assert row["train_nll"] < np.log(3) - 0.1
    assert row["seconds"] > 0 and row["peak_memory_mb"] > 0
