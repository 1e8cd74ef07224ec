"""Figures drawn from tables whose intervals are awkward but legitimate."""

import numpy as np
import pandas as pd

from modelrecovery.analysis import plots


def test_bootstrap_interval_that_excludes_the_estimate_is_drawn_as_it_is():
    # A percentile bootstrap interval need not contain its estimate (skewed resamples at
    # small N): the figure must neither fail nor move the interval onto the point.
    reg = pd.DataFrame({"term": ["alignment_gap", "alignment_gap"], "n_train": [100, 1000],
                        "std_coef": [0.5, 0.2], "std_ci_low": [0.6, np.nan],
                        "std_ci_high": [0.9, np.nan]})
    fig = plots.misidentification_figure(reg, "t")
    (ax,) = fig.axes
    segments = [s for c in ax.collections for s in c.get_segments() if len(s)]
    assert len(segments) == 1
    np.testing.assert_allclose(segments[0][:, 1], [0.6, 0.9])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.5, 0.2])


def test_tradeoff_figure_draws_both_intervals_around_each_method():
    tradeoff = pd.DataFrame({"experiment": ["full"], "human_acc": [0.6], "human_ci_low": [0.62],
                             "human_ci_high": [0.7], "recovery": [0.8],
                             "recovery_ci_low": [0.7], "recovery_ci_high": [0.9]})
    fig = plots.tradeoff_figure(tradeoff)
    (ax,) = fig.axes
    segs = sorted((tuple(map(tuple, s)) for c in ax.collections for s in c.get_segments()))
    assert segs == sorted([((0.62, 0.8), (0.7, 0.8)), ((0.6, 0.7), (0.6, 0.9))])


def test_figures_are_byte_identical_across_processes(tmp_path):
    # SVG ids are salted per process unless the salt is fixed; PNG metadata holds the
    # matplotlib version unless it is dropped. Two fresh interpreters must agree.
    import subprocess
    import sys

    script = ("import sys, pandas as pd; from modelrecovery.analysis import plots;"
              "c = pd.DataFrame({'n_train': [10, 100], 'recovery': [0.4, 0.8],"
              " 'ci_low': [0.2, 0.6], 'ci_high': [0.6, 0.9]});"
              "g = c.assign(generator='a');"
              "plots.save_figure_as(plots.recovery_figure(c, g, 3, 't'),"
              " sys.argv[1] + '.png', sys.argv[1] + '.svg')")
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / run)], check=True,
                       timeout=120)
    for ext in ("png", "svg"):
        first, second = ((tmp_path / f"{run}.{ext}").read_bytes() for run in "ab")
        assert len(first) > 1000 and first == second, ext
    assert b"clip" in (tmp_path / "a.svg").read_bytes()  # the ids the salt fixes exist
