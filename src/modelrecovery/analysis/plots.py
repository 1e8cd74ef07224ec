"""Figures (matplotlib, headless): recovery curves and confusion matrices, PNG + SVG.

Functions that show model names take ``labels`` (model → display name, e.g.
:func:`.properties.labels` of the config's ``model_info``); a name without one is shown
as it is. Labels are users' text: they are drawn literally, never as mathtext or TeX.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io.outputs import atomic_path
from .figure_scale import (annotate_cells, distinct_lines, heatmap_inches, label_points,
                           outline_own_cells, panel_grid)

# Fixed metadata and a fixed salt for the ids of clip paths and markers (random per
# process otherwise) keep SVG and PNG bytes identical across reruns of the same numbers.
_SVG_META = {"Date": None, "Creator": None}
_PNG_META = {"Software": None}
_RC = {"svg.hashsalt": "modelrecovery"}
# Text from users' files ("$x^2$", "50% <b>") is drawn as written: no mathtext, no TeX.
_LITERAL = {"parse_math": False, "usetex": False}


def _names(names: list[str], labels: dict[str, str] | None) -> list[str]:
    """Display names of ``names`` (a model without a label keeps its name; tied models
    "a|b" are shown part by part)."""
    labels = labels or {}
    return ["|".join(str(labels.get(part, part)) for part in str(n).split("|"))
            for n in names]


def _legend(ax: plt.Axes, **kwargs):
    """``ax.legend(**kwargs)`` with its texts drawn literally."""
    legend = ax.legend(**kwargs)
    for text in legend.get_texts():
        text.update(_LITERAL)
    return legend


def save_figure_as(fig: plt.Figure, png: str | Path, svg: str | Path) -> list[Path]:
    """Write the figure to ``png`` and ``svg`` atomically and close it."""
    out = []
    for ext, meta, target in (("png", _PNG_META, png), ("svg", _SVG_META, svg)):
        path = Path(target)
        with atomic_path(path) as tmp, matplotlib.rc_context(_RC):
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
        out.append(path)
    plt.close(fig)
    return out


def recovery_figure(curve: pd.DataFrame, per_generator: pd.DataFrame, n_candidates: int,
                    title: str, labels: dict[str, str] | None = None) -> plt.Figure:
    """Recovery accuracy against training size: pooled curve with its exact 95% interval,
    thin lines per generator (legend: their ``labels``), and chance (1 / number of
    candidates)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    distinct_lines(ax, per_generator["generator"].nunique())
    for gen, grp in per_generator.groupby("generator", sort=True):
        ax.plot(grp["n_train"], grp["recovery"], lw=1, alpha=0.6, marker=".",
                label=_names([gen], labels)[0])
    ax.fill_between(curve["n_train"], curve["ci_low"], curve["ci_high"], color="k", alpha=0.12,
                    lw=0, label="95% CI (pooled)")
    ax.plot(curve["n_train"], curve["recovery"], color="k", lw=2.5, marker="o",
            label="all generators")
    ax.axhline(1.0 / n_candidates, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training triplets per fold (N)")
    ax.set_ylabel("recovery accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    _legend(ax, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def confusion_figure(conf: pd.DataFrame, title: str, labels: dict[str, str] | None = None
                     ) -> plt.Figure:
    """One heat map per training size: rows generators, columns winners, cells win share;
    models shown by their ``labels``."""
    sizes = sorted(conf["n_train"].unique())
    gens = sorted(conf["generator"].unique())
    cands = sorted(conf["candidate"].unique())
    width, height = heatmap_inches(len(gens), len(cands))
    rows, cols = panel_grid(len(sizes), width)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.8, height * rows + 0.6),
                             squeeze=False, layout="constrained")
    image = None
    for n_ax, (ax, size) in enumerate(zip(axes.flat, sizes)):
        image = _confusion_panel(ax, conf[conf["n_train"] == size], gens, cands,
                                 f"N = {size}", n_ax % cols == 0, labels)
    for ax in list(axes.flat)[len(sizes):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of datasets won")
    fig.suptitle(title)
    return fig


def _confusion_panel(ax: plt.Axes, conf: pd.DataFrame, gens: list[str], cands: list[str],
                     title: str, label_rows: bool, labels: dict[str, str] | None = None):
    """One confusion matrix (rows generators, columns winners, cells win share; each
    generator's own column framed)."""
    m = (conf.pivot(index="generator", columns="candidate", values="rate")
         .reindex(index=gens, columns=cands).to_numpy())
    image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    annotate_cells(ax, m)
    outline_own_cells(ax, gens, cands)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(len(cands)), _names(cands, labels), rotation=60, ha="right",
                  fontsize=7, **_LITERAL)
    ax.set_yticks(range(len(gens)), _names(gens, labels) if label_rows else [], fontsize=7,
                  **_LITERAL)
    ax.set_xlabel("winning candidate", fontsize=8)
    if label_rows:
        ax.set_ylabel("generator", fontsize=8)
    return image


def design_figure(curves: pd.DataFrame, confusion: pd.DataFrame, n_candidates: int,
                  title: str, labels: dict[str, str] | None = None) -> plt.Figure:
    """Left: recovery against training size per design, each with its exact 95%
    interval. Right: each design's confusion matrix at the largest training size
    (models by their ``labels``)."""
    designs = sorted(curves["design"].unique(), key=lambda d: (d != "random", d))
    width, height = heatmap_inches(confusion["generator"].nunique(),
                                   confusion["candidate"].nunique())
    fig, axes = plt.subplots(1, 1 + len(designs), layout="constrained",
                             figsize=(4.6 + (width - 0.4) * len(designs), max(3.9, height)),
                             gridspec_kw={"width_ratios": [4.4] + [width] * len(designs)})
    ax = axes[0]
    for design in designs:
        c = curves[curves["design"] == design].sort_values("n_train")
        line, = ax.plot(c["n_train"], c["recovery"], marker="o", lw=2, label=design)
        ax.fill_between(c["n_train"], c["ci_low"], c["ci_high"], color=line.get_color(),
                        alpha=0.15, lw=0)
    ax.axhline(1.0 / n_candidates, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training triplets per fold (N)")
    ax.set_ylabel("recovery accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    largest = confusion["n_train"].max()
    gens = sorted(confusion["generator"].unique())
    cands = sorted(confusion["candidate"].unique())
    image = None
    for k, design in enumerate(designs):
        conf = confusion[(confusion["design"] == design) & (confusion["n_train"] == largest)]
        image = _confusion_panel(axes[k + 1], conf, gens, cands, f"{design}, N = {largest}",
                                 k == 0, labels)
    if image is not None:
        fig.colorbar(image, ax=list(axes[1:]), shrink=0.7, label="share of datasets won")
    fig.suptitle(title)
    return fig


def mds_figure(mds: pd.DataFrame, geometry: pd.DataFrame, title: str,
               labels: dict[str, str] | None = None,
               groups: dict[str, str] | None = None) -> plt.Figure:
    """Models placed by 2-D classical MDS of 1 − RSA of their aligned geometries; marker
    size grows with the geometry shift the alignment induced. Models are named by their
    ``labels`` and, with ``groups`` (model → e.g. training objective), coloured by group
    with a legend."""
    merged = mds.merge(geometry[["model", "geometry_shift"]], on="model")
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    sizes = 40 + 400 * merged["geometry_shift"].clip(lower=0).to_numpy()
    if groups:
        kinds = merged["model"].map(lambda m: groups.get(m, "unspecified"))
        for kind in sorted(set(kinds)):
            pick = (kinds == kind).to_numpy()
            ax.scatter(merged["mds1"][pick], merged["mds2"][pick], s=sizes[pick], alpha=0.6,
                       label=kind)
        _legend(ax, fontsize=7, loc="best", markerscale=0.5)
    else:
        ax.scatter(merged["mds1"], merged["mds2"], s=sizes, alpha=0.6)
    # Confusable models sit on top of each other: their names must stay legible.
    label_points(ax, merged["mds1"].to_numpy(), merged["mds2"].to_numpy(),
                 [f"{name} (shift {shift:.2f})" for name, shift in
                  zip(_names(list(merged["model"]), labels), merged["geometry_shift"])],
                 _LITERAL)
    ax.set_xlabel("MDS 1")
    ax.set_ylabel("MDS 2")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def misidentification_figure(reg: pd.DataFrame, title: str) -> plt.Figure:
    """Standardised coefficients with bootstrap 95% intervals per training size."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    ok = reg.dropna(subset=["std_coef"]) if "std_coef" in reg else reg.iloc[0:0]
    for k, (pred, grp) in enumerate(ok.groupby("term", sort=True)):
        x = np.log10(grp["n_train"].to_numpy(dtype=float)) + 0.03 * (k - 0.5)
        (line,) = ax.plot(x, grp["std_coef"], marker="o", label=pred)
        # Drawn as the interval itself, not as error lengths around the estimate: a
        # percentile bootstrap interval need not contain it (skewed resamples at small N).
        ax.vlines(x, grp["std_ci_low"], grp["std_ci_high"], color=line.get_color())
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel("log10 training triplets per fold")
    ax.set_ylabel("standardised coefficient")
    ax.set_title(title)
    if len(ok):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "every generator was recovered: nothing to explain",
                ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return fig


def tradeoff_figure(tradeoff: pd.DataFrame) -> plt.Figure:
    """Human-data test accuracy (x) against recovery accuracy (y), one point per method."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for _, r in tradeoff.iterrows():
        # Intervals drawn as they are (see misidentification_figure).
        (pt,) = ax.plot(r["human_acc"], r["recovery"], marker="o")
        ax.hlines(r["recovery"], r["human_ci_low"], r["human_ci_high"], color=pt.get_color())
        ax.vlines(r["human_acc"], r["recovery_ci_low"], r["recovery_ci_high"],
                  color=pt.get_color())
        ax.annotate(str(r["experiment"]), (r["human_acc"], r["recovery"]), fontsize=8,
                    xytext=(5, 5), textcoords="offset points")
    ax.set_xlabel("human test accuracy (mean over models)")
    ax.set_ylabel("recovery accuracy at the largest N")
    ax.set_title("Accuracy vs identifiability")
    ax.grid(alpha=0.3)
    return fig


def agreement_figure(rho: pd.DataFrame, groups: dict[str, str] | None = None
                     ) -> plt.Figure:
    """Spearman rank correlations across models between alignment metrics, each label
    prefixed by its group (the study's own or an external benchmark's)."""
    m = rho.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * len(rho), 1.2 + 0.5 * len(rho)),
                           layout="constrained")
    image = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                fontsize=7)
    groups = groups or {}
    labels = [f"{groups[n]} · {n}" if n in groups else str(n) for n in rho.index]
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.7, label="Spearman ρ across models")
    ax.set_title("How aligned are alignment metrics?")
    return fig


def variance_figure(variance: pd.DataFrame) -> plt.Figure:
    """The share of each aggregate's variance across models that each group (left) and
    each metric (right) explains, one bar per aggregation."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    hows = list(dict.fromkeys(variance["aggregation"]))
    for ax, level in zip(axes, ("group", "metric")):
        sub = variance[variance["level"] == level]
        names = list(dict.fromkeys(sub["name"]))
        width = 0.8 / max(1, len(hows))
        for i, how in enumerate(hows):
            vals = sub[sub["aggregation"] == how].set_index("name")["explained_variance"]
            ax.bar(np.arange(len(names)) + (i - (len(hows) - 1) / 2) * width,
                   vals.reindex(names).to_numpy(dtype=float), width, label=how)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of the aggregate's variance (R²)")
        ax.set_title(f"by {level}")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(title="aggregate", fontsize=7)
    return fig


def parameter_figure(params: pd.DataFrame, recovery: pd.DataFrame, title: str,
                     labels: dict[str, str] | None = None) -> plt.Figure:
    """Parameter recovery against N next to model recovery, per generator (random
    design): recovery as generator, similarity correlation, scale-aligned error of
    W Wᵀ and the accuracy gap, each mean with its 95 % interval over datasets."""
    panels = [("recovery", recovery, "model recovery (as generator)", (-0.02, 1.02)),
              ("similarity_r", params, "r(S, Ŝ) over object pairs", (None, 1.01)),
              ("metric_error", params, "‖cŴŴᵀ − WWᵀ/T‖ / ‖WWᵀ/T‖", (0, None)),
              ("accuracy_gap", params, "test accuracy: generating − refitted", (None, None))]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    for ax, (col, frame, label, ylim) in zip(axes, panels):
        distinct_lines(ax, frame["generator"].nunique())
        for gen, grp in frame.groupby("generator", sort=True):
            grp = grp.sort_values("n_train")
            (line,) = ax.plot(grp["n_train"], grp[col], marker=".", lw=1,
                              label=_names([gen], labels)[0])
            low, high = (("ci_low", "ci_high") if col == "recovery"
                         else (f"{col}_ci_low", f"{col}_ci_high"))
            ax.fill_between(grp["n_train"], grp[low], grp[high], color=line.get_color(),
                            alpha=0.12, lw=0)
        if col == "accuracy_gap":
            ax.axhline(0.0, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(*ylim)
        ax.set_xlabel("training triplets per fold (N)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    _legend(axes[-1], fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
            frameon=False)
    fig.suptitle(title)
    return fig


def ceiling_figure(ceiling: pd.DataFrame, best: pd.DataFrame, learned: pd.DataFrame,
                   title: str) -> plt.Figure:
    """Per design, recovery against N: the identifiability ceiling (the generators' own
    likelihoods), the learned rule (held-out scores of every candidate, cross-validated
    by seed) and the best fit (held-out accuracy, and held-out NLL), each with its
    95 % interval; the gap between ceiling and best fit is what the metric loses, the
    gap above the ceiling what the data cannot tell."""
    designs = sorted(ceiling["design"].unique(), key=lambda d: (d != "random", d))
    fig, axes = plt.subplots(1, len(designs), figsize=(4.2 * len(designs), 3.6),
                             layout="constrained", squeeze=False)
    for ax, design in zip(axes[0], designs):
        top = ceiling[ceiling["design"] == design].sort_values("n_train")
        fit = best[best["design"] == design].sort_values("n_train")
        rule = learned[learned["design"] == design].sort_values("n_train")
        gap = top.merge(fit, on="n_train", suffixes=("", "_fit"))
        ax.fill_between(gap["n_train"], gap["recovery_fit"], gap["recovery"],
                        color="tab:red", alpha=0.12, lw=0, label="lost by the metric")
        for frame, col, style, label in ((top, "recovery", dict(color="black"),
                                          "ceiling (generators' likelihood)"),
                                         (rule, "recovery", dict(color="tab:green"),
                                          "learned rule (all scores)"),
                                         (fit, "recovery", dict(color="tab:blue"),
                                          "best fit (accuracy)"),
                                         (fit, "nll_recovery",
                                          dict(color="tab:blue", ls="--"),
                                          "best fit (NLL)")):
            if len(frame):
                ax.plot(frame["n_train"], frame[col], marker=".", lw=1.2, label=label,
                        **style)
        for frame, colour in ((top, "black"), (rule, "tab:green"), (fit, "tab:blue")):
            ax.fill_between(frame["n_train"], frame["ci_low"], frame["ci_high"],
                            color=colour, alpha=0.08, lw=0)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(design)
        ax.set_xlabel("training triplets per fold (N)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("recovery")
    axes[0][-1].legend(fontsize=7, loc="lower right", frameon=False)
    fig.suptitle(title)
    return fig


def inversion_figure(inversion: pd.DataFrame, title: str,
                     labels: dict[str, str] | None = None) -> plt.Figure:
    """At the largest N, one heat map per design (columns) and rule (rows): rows
    generators, columns winners (models by their ``labels``), cells p(generator |
    winner) under the prior."""
    from .decision import RULES

    last = inversion[inversion["n_train"] == inversion["n_train"].max()]
    designs = sorted(last["design"].unique(), key=lambda d: (d != "random", d))
    rules = [r for r in RULES if r in set(last["rule"])]
    gens = sorted(last["generator"].unique())
    # The same columns in every panel, so that panels read side by side; a winner a
    # rule never elects is a blank column.
    winners = sorted(last["winner"].unique())
    width, height = heatmap_inches(len(gens), len(winners))
    fig, axes = plt.subplots(len(rules), len(designs), squeeze=False, layout="constrained",
                             figsize=(width * len(designs) + 1.6, height * len(rules) + 0.6))
    image = None
    for i, rule in enumerate(rules):
        for j, design in enumerate(designs):
            cell = last[(last["rule"] == rule) & (last["design"] == design)]
            m = (cell.pivot(index="generator", columns="winner",
                            values="p_generator_given_winner")
                 .reindex(index=gens, columns=winners).to_numpy())
            ax = axes[i][j]
            image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            annotate_cells(ax, m)
            ax.set_title(f"{design}: {rule.replace('_', ' ')}", fontsize=9)
            ax.set_xticks(range(len(winners)), _names(winners, labels), rotation=60,
                          ha="right", fontsize=7, **_LITERAL)
            ax.set_yticks(range(len(gens)), _names(gens, labels) if j == 0 else [],
                          fontsize=7, **_LITERAL)
            ax.set_xlabel("winner", fontsize=8)
            if j == 0:
                ax.set_ylabel("generator", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="p(generator | winner)")
    fig.suptitle(f"{title} (N = {int(last['n_train'].max())})")
    return fig
