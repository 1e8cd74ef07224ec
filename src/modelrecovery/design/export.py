"""A design as people see it: the table to show them (names and THINGS' 1-based image
indices) and the summary the report shows, whose size does not grow with the design.
numpy and pandas only: the export job loads no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.contracts import DESIGN_SUMMARY_COLUMNS
from ..simulate import SPLITS
from .static import uniform_slots

#: Columns of a design table for people: ``image*`` are 1-based object indices (THINGS'
#: convention), ``object*`` their names, in display order.
EXPORT_COLUMNS = ("fold", "split", "position", "image1", "image2", "image3", "object1",
                  "object2", "object3", "utility")



def export_table(design: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """A design's rows as the table to show people (:data:`EXPORT_COLUMNS`)."""
    t = design[["i", "j", "k"]].to_numpy(dtype=np.int64)
    out = design[["fold", "split", "position"]].reset_index(drop=True).copy()
    for c in range(3):
        out[f"image{c + 1}"] = t[:, c] + 1
    for c in range(3):
        out[f"object{c + 1}"] = np.asarray(names, dtype=object)[t[:, c]]
    util = design["utility"] if "utility" in design else np.zeros(len(design))
    out["utility"] = np.asarray(util, dtype=np.float64)
    return out[list(EXPORT_COLUMNS)]


def design_summary(design: pd.DataFrame, folds: list, n_objects: int, records: list[dict],
                   random_fraction: float, file: str, file_bytes: int) -> pd.DataFrame:
    """What the report shows of an exported design (:data:`DESIGN_SUMMARY_COLUMNS`): one
    row per split and one for all splits, whatever the number of triplets.

    ``design``: the exported rows (``fold, split, position, i, j, k``, optionally
    ``utility``); ``folds``: the design's :class:`~modelrecovery.simulate.FoldObjects`;
    ``records``: its per-fold-and-split records (``uninformative`` splits are uniform
    throughout); ``random_fraction``: its share of uniform slots in every prefix.
    """
    trip = design[["i", "j", "k"]].to_numpy(dtype=np.int64)
    utility = (design["utility"].to_numpy(dtype=np.float64) if "utility" in design
               else np.zeros(len(design)))
    splits = design["split"].to_numpy()
    position = design["position"].to_numpy(dtype=np.int64)
    flat = {(int(r["fold"]), str(r["split"])) for r in records if r.get("uninformative")}
    # A triplet is uniform where its position is a uniform slot (the slots depend on the
    # position only, so a prefix keeps them) or where its split's pool told nothing.
    uniform = np.zeros(len(design), dtype=bool)
    for (f, s), idx in design.groupby(["fold", "split"], sort=False).indices.items():
        if (int(f), str(s)) in flat:
            uniform[idx] = True
        else:
            pos = position[idx]
            uniform[idx] = uniform_slots(int(pos.max()) + 1, random_fraction)[pos]
    rows = []
    for split in (*SPLITS, "all"):
        names = SPLITS if split == "all" else (split,)
        mask = np.isin(splits, names)
        members = np.unique(np.concatenate(
            [np.asarray(getattr(fold, s), dtype=np.int64) for fold in folds for s in names]
            or [np.zeros(0, dtype=np.int64)]))
        uses = np.bincount(trip[mask].ravel(), minlength=n_objects)[members]
        some, covered = bool(mask.any()), len(uses) > 0
        rows.append({
            "split": split, "folds": len(folds), "triplets": int(mask.sum()),
            "objects": len(members), "objects_covered": int((uses > 0).sum()),
            "uses_min": int(uses.min()) if covered else 0,
            "uses_median": float(np.median(uses)) if covered else 0.0,
            "uses_max": int(uses.max()) if covered else 0,
            "uniform_share": round(float(uniform[mask].mean()), 4) if some else 0.0,
            "utility_mean": round(float(utility[mask].mean()), 6) if some else 0.0,
            "file": file, "file_bytes": int(file_bytes)})
    return pd.DataFrame(rows, columns=list(DESIGN_SUMMARY_COLUMNS))
