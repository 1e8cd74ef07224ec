"""Figures drawn from tables whose intervals are awkward but legitimate."""

import numpy as np
import pandas as pd
from matplotlib.text import Text

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


def svg_text(fig) -> str:
    """The figure as SVG with its text kept as text (not glyph paths)."""
    import io

    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg")
    return buf.getvalue()


LABELS = {"a": "$x^2$", "b": "<b>"}


def test_confusion_ticks_show_labels_as_literal_text():
    conf = pd.DataFrame({"n_train": 10, "generator": ["a", "a", "b", "b"],
                         "candidate": ["a", "b", "a", "b"], "rate": [0.7, 0.3, 0.2, 0.8]})
    fig = plots.confusion_figure(conf, "t", LABELS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["$x^2$", "<b>"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["$x^2$", "<b>"]
    svg = svg_text(fig)
    # Mathtext would draw x and a superscript 2 and drop the dollars; the SVG writer
    # escapes markup, so "<b>" is text, never an element.
    assert "$x^2$" in svg and "&lt;b&gt;" in svg and "<b>" not in svg
    # Without labels the names stay, and a model without a label keeps its name.
    plain = plots.confusion_figure(conf, "t", {"b": "B"}).axes[0]
    assert [t.get_text() for t in plain.get_xticklabels()] == ["a", "B"]


def test_curve_legends_and_inversion_ticks_use_labels():
    c = pd.DataFrame({"n_train": [10, 100], "recovery": [0.4, 0.8], "ci_low": [0.2, 0.6],
                      "ci_high": [0.6, 0.9]})
    per_gen = pd.concat([c.assign(generator="a"), c.assign(generator="b")])
    fig = plots.recovery_figure(c, per_gen, 2, "t", LABELS)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["$x^2$", "<b>"]
    assert "$x^2$" in svg_text(fig)
    inv = pd.DataFrame({"rule": "best_fit", "design": "random", "n_train": 10,
                        "generator": ["a", "a", "b"], "winner": ["a", "a|b", "b"],
                        "p_generator_given_winner": [1.0, 0.5, 1.0]})
    ax = plots.inversion_figure(inv, "t", LABELS).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["$x^2$", "$x^2$|<b>", "<b>"]


def test_mds_annotations_use_labels_and_colour_by_objective():
    mds = pd.DataFrame({"model": ["a", "b", "c"], "mds1": [0.0, 1.0, 2.0],
                        "mds2": [0.0, 1.0, 0.0]})
    geom = pd.DataFrame({"model": ["a", "b", "c"], "geometry_shift": [0.1, 0.2, 0.3]})
    fig = plots.mds_figure(mds, geom, "t", LABELS, {"a": "supervised", "b": "$self$"})
    ax = fig.axes[0]
    notes = sorted(t.get_text() for t in ax.texts)
    assert notes == ["$x^2$ (shift 0.10)", "<b> (shift 0.20)", "c (shift 0.30)"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "$self$", "supervised", "unspecified"]
    assert len(ax.collections) == 3  # one scatter per group
    svg = svg_text(fig)
    assert "$x^2$ (shift 0.10)" in svg and "$self$" in svg


# ----------------------------------------------------------------- 20 models (THINGS)

MODELS = [f"net{i:02d}" for i in range(1, 21)]


def test_twenty_by_twenty_confusion_matrices_keep_their_cells_and_names_legible():
    # Cells wide enough for a rotated 7-pt name per column (the THINGS study's 20
    # candidates); values are left to the colour bar where they would not fit; each
    # generator's own column is framed.
    rng = np.random.default_rng(0)
    conf = pd.DataFrame([{"n_train": n, "generator": g, "candidate": c, "rate": rng.random()}
                         for n in (1000, 10_000, 100_000) for g in MODELS[:5] + ["x"]
                         for c in MODELS])
    fig = plots.confusion_figure(conf, "t")
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.images and ax.get_xticklabels()]
    assert len(panels) == 3
    for ax in panels:
        box = ax.get_window_extent()
        cell_inches = box.width / fig.dpi / len(MODELS)
        assert cell_inches >= 0.25, cell_inches
        assert len(ax.texts) == 0  # no values crammed into 20 columns
        framed = [p for p in ax.patches if not p.get_fill()]
        assert sorted((p.get_x() + 0.5, p.get_y() + 0.5) for p in framed) == [
            (float(c), float(r)) for r, c in enumerate(range(5))]
    small = plots.confusion_figure(conf[conf["candidate"].isin(MODELS[:4])], "t")
    assert len([ax for ax in small.axes if ax.images][0].texts) == 6 * 4


def test_twenty_models_on_one_spot_are_numbered_without_overlap_and_named_beside():
    rng = np.random.default_rng(1)
    mds = pd.DataFrame({"model": MODELS, "mds1": np.r_[1.0, 1e-3 * rng.random(19)],
                        "mds2": np.r_[0.0, 1e-3 * rng.random(19)]})
    geom = pd.DataFrame({"model": MODELS, "geometry_shift": 0.5})
    fig = plots.mds_figure(mds, geom, "t", {"net02": "$x^2$"})
    fig.canvas.draw()
    ax = fig.axes[0]
    numbers = [t for t in ax.texts if t.get_text().isdigit()]
    assert sorted(int(t.get_text()) for t in numbers) == list(range(1, 21))
    # The numbers' own boxes (an annotation's extent includes its leader line).
    boxes = [Text.get_window_extent(t) for t in numbers]
    overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    assert overlaps == []
    (names,) = [t.get_text() for t in ax.texts if not t.get_text().isdigit()]
    assert names.splitlines()[1] == " 2  $x^2$ (shift 0.50)"  # literal, not mathtext
    assert len(names.splitlines()) == 20


def test_twenty_generator_curves_differ_in_colour_or_dash():
    c = pd.DataFrame({"n_train": [10, 100], "recovery": [0.4, 0.8], "ci_low": [0.2, 0.6],
                      "ci_high": [0.6, 0.9]})
    per_gen = pd.concat([c.assign(generator=m) for m in MODELS])
    ax = plots.recovery_figure(c, per_gen, 20, "t").axes[0]
    styles = {(tuple(line.get_color()), line.get_linestyle()) for line in ax.lines[:20]}
    assert len(styles) == 20
