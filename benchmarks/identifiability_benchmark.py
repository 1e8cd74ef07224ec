"""Data or metric, measured: the identifiability ceiling, the learned decision rule and
the best fit on a study's own simulations.

Runs the study (config/config.yaml, or --config; --seeds for more datasets per point)
through the workflow in a temporary folder and reads its tables: per design and training
size the three recovery curves with exact 95 % intervals (oracle = the generators' own
likelihoods, learned = every candidate's held-out scores read by a classifier trained on
other seeds, best fit = the candidate of best held-out accuracy), and the decomposition of
the best fit's failures into data-limited and metric-limited. It checks that the pooled
oracle is not below the best fit beyond its interval at any size (the ceiling holds in
expectation; a point estimate below is sampling noise).

The last line is the verdict at the random design's largest N:
``ceiling: oracle R_o, learned R_l, best fit R_b at N=…; metric-limited share S``.

    python benchmarks/identifiability_benchmark.py              # ~5 minutes on 2 cores
    python benchmarks/identifiability_benchmark.py --seeds 6    # ~10 minutes
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
from study_run import REPO, run_study


def curves_table(rules: pd.DataFrame) -> pd.DataFrame:
    """One row per design × N: each rule's recovery as ``R [lo, hi]``."""
    cell = rules.assign(text=[f"{r:.3f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in
                              zip(rules["recovery"], rules["ci_low"], rules["ci_high"])])
    wide = cell.pivot_table(index=["design", "n_train"], columns="rule", values="text",
                            aggfunc="first")
    datasets = rules.groupby(["design", "n_train"])["datasets"].first()
    return wide.assign(datasets=datasets)[
        ["datasets", *[r for r in ("oracle", "learned", "best_fit", "best_fit_nll")
                       if r in wide.columns]]].reset_index()


def ceiling_below(rules: pd.DataFrame) -> list[str]:
    """Designs and sizes where the oracle's interval lies below the best fit's estimate."""
    wide = rules.pivot_table(index=["design", "n_train"], columns="rule",
                             values=["recovery", "ci_high"])
    bad = wide[wide[("ci_high", "oracle")] < wide[("recovery", "best_fit")]]
    return [f"{d} at N={n}" for d, n in bad.index]


def verdict(decomposition: pd.DataFrame, design: str = "random") -> str:
    row = (decomposition[decomposition["design"] == design]
           .sort_values("n_train").iloc[-1])
    share = ("none failed" if pd.isna(row["metric_share"])
             else f"{row['metric_share']:.2f}")
    return (f"ceiling: oracle {row['recovery_oracle']:.3f}, learned "
            f"{row['recovery_learned']:.3f}, best fit {row['recovery_best_fit']:.3f} at "
            f"N={int(row['n_train'])}; metric-limited share {share}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--seeds", type=int, default=None,
                        help="simulated datasets per generator (default: the config's)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    tables = run_study(args.config, args.cores, args.seeds,
                       ["decision_rules", "decomposition"])
    rules, dec = tables["decision_rules"], tables["decomposition"]
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(curves_table(rules).to_string(index=False))
        print(dec[["design", "n_train", "recovery_oracle", "recovery_learned",
                   "recovery_best_fit", "data_limited", "metric_limited",
                   "metric_share"]].round(3).to_string(index=False))
    bad = ceiling_below(rules)
    print("the pooled oracle is at or above the best fit within its interval at every N"
          if not bad else "oracle below the best fit beyond its interval: " + "; ".join(bad))
    print(verdict(dec))


if __name__ == "__main__":
    main()
