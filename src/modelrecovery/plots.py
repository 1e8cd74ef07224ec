"""Figures (matplotlib, headless): recovery curves and confusion matrices, PNG + SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402

# Fixed metadata keeps SVG/PNG bytes identical across reruns of the same numbers.
_SVG_META = {"Date": None, "Creator": None}
_PNG_META = {"Software": None}


def save_figure(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically and close the figure."""
    out = []
    for ext, meta in (("png", _PNG_META), ("svg", _SVG_META)):
        path = Path(f"{stem}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
        out.append(path)
    plt.close(fig)
    return out


def recovery_figure(curve: pd.DataFrame, per_generator: pd.DataFrame, n_candidates: int,
                    title: str) -> plt.Figure:
    """Recovery accuracy against training size: pooled curve with its exact 95% interval,
    thin lines per generator, and chance (1 / number of candidates)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for gen, grp in per_generator.groupby("generator", sort=True):
        ax.plot(grp["n_train"], grp["recovery"], lw=1, alpha=0.6, marker=".", label=gen)
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
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def confusion_figure(conf: pd.DataFrame, title: str) -> plt.Figure:
    """One heat map per training size: rows generators, columns winners, cells win share."""
    sizes = sorted(conf["n_train"].unique())
    gens = sorted(conf["generator"].unique())
    cands = sorted(conf["candidate"].unique())
    cols = int(np.ceil(np.sqrt(len(sizes))))
    rows = int(np.ceil(len(sizes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 1.8, 3.3 * rows + 0.6),
                             squeeze=False, layout="constrained")
    image = None
    for n_ax, (ax, size) in enumerate(zip(axes.flat, sizes)):
        m = (conf[conf["n_train"] == size]
             .pivot(index="generator", columns="candidate", values="rate")
             .reindex(index=gens, columns=cands).to_numpy())
        image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (r, c), v in np.ndenumerate(m):
            ax.text(c, r, f"{v:.2f}".lstrip("0") if v < 1 else "1", ha="center", va="center",
                    fontsize=6, color="w" if v < 0.6 else "k")
        ax.set_title(f"N = {size}", fontsize=9)
        ax.set_xticks(range(len(cands)), cands, rotation=60, ha="right", fontsize=7)
        first_col = n_ax % cols == 0
        ax.set_yticks(range(len(gens)), gens if first_col else [], fontsize=7)
        ax.set_xlabel("winning candidate", fontsize=8)
        if first_col:
            ax.set_ylabel("generator", fontsize=8)
    for ax in list(axes.flat)[len(sizes):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of datasets won")
    fig.suptitle(title)
    return fig
