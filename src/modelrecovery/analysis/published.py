"""The published study's recovery curves (Avitan & Golan, NeurIPS 2025) beside this
project's: curves from imported outcomes (:mod:`modelrecovery.importers.published`),
the models the two studies share, and the figure that puts them side by side.

The curves are :func:`~.aggregate.generator_curves` and :func:`~.aggregate.recovery_curve`
of the published outcomes, one setting (experiment, method, options) at a time: the same
columns, rates and exact 95% intervals as this project's. Nothing here imports torch.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from ..io.contracts import (PUBLISHED_CURVE_COLUMNS, PUBLISHED_RECOVERY_COLUMNS,
                            PUBLISHED_VARIANT_COLUMNS)
from .aggregate import generator_curves, recovery_curve

#: The columns of this project's generator_curves that the comparison reads.
OUR_CURVE_COLUMNS = ("experiment", "generator", "n_train", "recovery", "ci_low", "ci_high")

_SETTING = list(PUBLISHED_VARIANT_COLUMNS)


def published_curves(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recovery curves of the published outcomes
    (:data:`~modelrecovery.io.contracts.PUBLISHED_OUTCOME_COLUMNS`), counting the
    ``complete`` datasets only, as the published analysis does.

    Returns the curves per setting × generator × training size
    (:data:`~modelrecovery.io.contracts.PUBLISHED_CURVE_COLUMNS`) and pooled over
    generators (:data:`~modelrecovery.io.contracts.PUBLISHED_RECOVERY_COLUMNS`):
    ``datasets``, ``recovered`` (datasets the generator won), ``recovery`` (a fraction),
    ``ci_low``/``ci_high`` (95% Clopper–Pearson), ``tie_rate`` (share of datasets whose
    best test accuracy several candidates share), ``nll_recovered``/``nll_recovery`` (won
    by test NLL), ``mean_rank`` and ``mrr`` (the generator's competition rank).
    """
    counted = outcomes[outcomes["complete"]]
    per_generator, pooled = [], []
    for key, group in counted.groupby(_SETTING, sort=True):
        setting = dict(zip(_SETTING, key))
        per_generator.append(generator_curves(group).assign(**setting))
        pooled.append(recovery_curve(group).assign(**setting))
    return (pd.concat(per_generator, ignore_index=True)[list(PUBLISHED_CURVE_COLUMNS)],
            pd.concat(pooled, ignore_index=True)[list(PUBLISHED_RECOVERY_COLUMNS)])


def shared_models(ours: pd.DataFrame, published: pd.DataFrame) -> dict[str, list[str]]:
    """The generators of this project's curves (``ours``) and the published ones matched
    by name: ``both``, ``only_ours`` and ``only_published``, each sorted."""
    mine, theirs = set(ours["generator"]), set(published["generator"])
    return {"both": sorted(mine & theirs), "only_ours": sorted(mine - theirs),
            "only_published": sorted(theirs - mine)}


def _setting_labels(published: pd.DataFrame) -> dict[tuple, str]:
    """A legend label per published setting: its experiment, and the options that tell
    it from the others when the database holds several."""
    settings = published[_SETTING].drop_duplicates().sort_values(_SETTING)
    varying = [c for c in _SETTING[1:] if c != "constraint_type"
               and settings[c].nunique() > 1]
    labels = {}
    for row in settings.itertuples(index=False):
        extra = ", ".join(str(getattr(row, c)) for c in varying)
        labels[tuple(row)] = f"published {row.experiment}" + (f" ({extra})" if extra else "")
    return labels


def comparison_figure(ours: pd.DataFrame, published: pd.DataFrame):
    """Recovery against training size per generator that both studies have: this
    project's random-design curves (``ours``: generator_curves rows, one line per
    experiment) beside the published ones (:func:`published_curves`, dashed, one line
    per setting), each with its exact 95% interval. The models only one study has are
    listed under the panels. Returns a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")  # headless, as every figure of the package
    import matplotlib.pyplot as plt

    models = shared_models(ours, published)
    n = max(1, len(models["both"]))
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, layout="constrained",
                             figsize=(3.6 * cols + 2.4, 3.0 * rows + 1.0))
    labels = _setting_labels(published)
    for ax, model in zip(axes.flat, models["both"]):
        for name, grp in ours[ours["generator"] == model].groupby("experiment", sort=True):
            grp = grp.sort_values("n_train")
            (line,) = ax.plot(grp["n_train"], grp["recovery"], marker="o", lw=1.5,
                              label=f"ours {name}")
            ax.fill_between(grp["n_train"], grp["ci_low"], grp["ci_high"],
                            color=line.get_color(), alpha=0.15, lw=0)
        mine = published[published["generator"] == model]
        for key, grp in mine.groupby(_SETTING, sort=True):
            grp = grp.sort_values("n_train")
            (line,) = ax.plot(grp["n_train"], grp["recovery"], marker="s", lw=1.5, ls="--",
                              label=labels[tuple(key)])
            ax.fill_between(grp["n_train"], grp["ci_low"], grp["ci_high"],
                            color=line.get_color(), alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("training triplets per fold (N)", fontsize=8)
        ax.set_ylabel("recovery accuracy", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    if not models["both"]:
        axes[0][0].text(0.5, 0.5, "no generator is in both studies", ha="center",
                        va="center", transform=axes[0][0].transAxes)
    for ax in list(axes.flat)[len(models["both"]):]:
        ax.set_axis_off()
    handles = {}
    for ax in axes.flat:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    if handles:
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside right")
    unmatched = [f"only in ours: {', '.join(models['only_ours']) or 'none'}",
                 f"only in the published results: "
                 f"{', '.join(models['only_published']) or 'none'}"]
    fig.supxlabel("\n".join(textwrap.fill(t, 110) for t in unmatched), fontsize=7)
    fig.suptitle("Model recovery per generator: this study and the published one")
    return fig
