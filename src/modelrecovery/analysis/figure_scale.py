"""How the figures grow with the number of models: heat-map cells of a fixed size,
cell values written only where they fit, line styles that stay distinct beyond ten
lines, and point labels that cannot overlap. A study of 20 models (THINGS) draws
20 × 20 matrices and 20 curves per panel; a figure sized for six would squeeze them.
"""

from __future__ import annotations

from itertools import cycle, islice

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

# Inches per heat-map cell: room for a rotated model name below each column and a
# name beside each row at 7 pt.
CELL = 0.3
# Cell values are written up to this many columns; beyond, the colour bar reads them.
ANNOTATED_COLUMNS = 12
# Points are labelled beside themselves up to this many; beyond, they are numbered and
# named in a list beside the axes (names of confusable models sit on one spot).
LABELLED_POINTS = 8
_STYLES = ("-", "--", ":", "-.")


def heatmap_inches(rows: int, cols: int) -> tuple[float, float]:
    """Width and height (inches) of one heat-map panel of ``rows`` × ``cols`` cells,
    tick labels included, at least the 3.3-inch panel of a small study."""
    return max(3.3, CELL * cols + 1.4), max(3.3, CELL * rows + 1.6)


def panel_grid(n_panels: int, panel_width: float, page_width: float = 14.0
               ) -> tuple[int, int]:
    """Rows and columns of ``n_panels`` panels of ``panel_width`` inches: as many side
    by side as fit a ``page_width``-inch row, at most ⌈√n⌉."""
    cols = max(1, min(int(np.ceil(np.sqrt(n_panels))), int(page_width // panel_width)))
    return int(np.ceil(n_panels / cols)), cols


def annotate_cells(ax: plt.Axes, values: np.ndarray) -> None:
    """Write each finite cell's value (".25", "1") on a heat map of values in [0, 1],
    when it has at most :data:`ANNOTATED_COLUMNS` columns."""
    if values.shape[1] > ANNOTATED_COLUMNS:
        return
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.2f}".lstrip("0") if v < 1 else "1", ha="center",
                    va="center", fontsize=6, color="w" if v < 0.6 else "k")


def outline_own_cells(ax: plt.Axes, rows: list[str], cols: list[str]) -> None:
    """Frame the cell of each row's own column (a generator recovered as itself): among
    20 candidates the right answer's column is otherwise found by reading labels."""
    for r, name in enumerate(rows):
        if name in cols:
            ax.add_patch(Rectangle((cols.index(name) - 0.5, r - 0.5), 1, 1, fill=False,
                                   edgecolor="tab:red", lw=1.0))


def distinct_lines(ax: plt.Axes, n_lines: int) -> None:
    """Give the next ``n_lines`` lines of ``ax`` distinct colour and dash pairs: the
    default ten colours up to ten lines, twenty colours times four dash styles beyond."""
    if n_lines <= 10:
        return
    colours = plt.get_cmap("tab20").colors
    pairs = [(c, s) for s in _STYLES for c in colours]
    ax.set_prop_cycle(color=[c for c, _ in islice(cycle(pairs), n_lines)],
                      linestyle=[s for _, s in islice(cycle(pairs), n_lines)])


def label_points(ax: plt.Axes, x: np.ndarray, y: np.ndarray, texts: list[str],
                 literal: dict) -> None:
    """Name each point (x, y): beside it for a few points, staggered so that points on
    one spot stay legible; beyond :data:`LABELLED_POINTS`, by a number at the point and
    a numbered list of the texts beside the axes. ``literal`` are the text properties
    that draw users' names as written."""
    if len(texts) <= LABELLED_POINTS:
        for k, i in enumerate(np.lexsort((y, x))):
            ax.annotate(texts[i], (x[i], y[i]), fontsize=7, xytext=(6, 4 - 10 * (k % 3)),
                        textcoords="offset points", **literal)
        return
    for i, (dx, dy) in enumerate(_free_offsets(ax, x, y)):
        ax.annotate(str(i + 1), (x[i], y[i]), fontsize=6, ha="center", va="center",
                    xytext=(dx, dy), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.4",
                                "shrinkA": 3, "shrinkB": 0})
    ax.text(1.03, 1.0, "\n".join(f"{i + 1:>2}  {t}" for i, t in enumerate(texts)),
            transform=ax.transAxes, va="top", ha="left", fontsize=7, family="monospace",
            **literal)


def _free_offsets(ax: plt.Axes, x: np.ndarray, y: np.ndarray, box: float = 10.0
                  ) -> list[tuple[float, float]]:
    """An offset (points) for a number label of each point such that no two labels'
    ``box``-point squares overlap: each point in turn takes the first free place on
    rings of growing radius around it (points on one spot fan out, their labels joined
    to them by a line)."""
    ax.autoscale_view()
    scale = ax.figure.dpi / 72.0
    xy = ax.transData.transform(np.column_stack([x, y])) / scale  # in points
    placed: list[np.ndarray] = []
    offsets = []
    for p in xy:
        for radius in box * np.arange(1, 12):
            ring = max(6, int(2 * np.pi * radius / box))
            angles = 2 * np.pi * np.arange(ring) / ring + np.pi / 4
            spots = p + radius * np.column_stack([np.cos(angles), np.sin(angles)])
            free = [q for q in spots if all(np.abs(q - o).max() >= box for o in placed)]
            if free:
                break
        q = free[0] if free else spots[0]
        placed.append(q)
        offsets.append((float(q[0] - p[0]), float(q[1] - p[1])))
    return offsets
