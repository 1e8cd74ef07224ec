"""Data or metric, measured: the identifiability ceiling, the learned decision rule and
the best fit on a study's own simulations, and the designs aimed at the mimic.

Part 1 runs the study (config/config.yaml, or --config; --seeds for more datasets per
point) with every design, the mimic design included, through the workflow in a temporary
folder and reads its tables: per design and training size the three recovery curves with
exact 95 % intervals (oracle = the generators' own likelihoods, learned = every
candidate's held-out scores read by a classifier trained on other seeds, best fit = the
candidate of best held-out accuracy), the decomposition of the best fit's failures into
data-limited and metric-limited, the nested pair's recovery per design at the largest N,
each design's recovery minus random's at equal N, and the savings factor at random's
largest-N recovery. It checks that the pooled oracle
is not below the best fit beyond its interval at any size (the ceiling holds in
expectation; a point estimate below is sampling noise).

Part 2 builds a world of models that differ on a few objects only (two models of one
family, one of which misrepresents 6 of 300 objects, beside two others; 4 seeds, N = 100,
300, 1,000) and reports how many fewer triplets each design needs to reach random's
recovery at its largest N, with its interval.

The last line is the verdict at the random design's largest N in part 1:
``ceiling: oracle R_o, learned R_l, best fit R_b at N=…; metric-limited share S``.

    python benchmarks/identifiability_benchmark.py              # ~8 minutes on 2 cores
    python benchmarks/identifiability_benchmark.py --seeds 6    # part 1 with 6 seeds
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from study_run import add_study_arguments, run_study

from modelrecovery.analysis.designs import design_outcomes


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


DESIGNS = ["random", "static", "adaptive", "mimic"]
NESTED = ("linear_a", "linear_a_twin")


def few_objects_config(config: Path, out: Path) -> Path:
    """``config``'s study in a world of models that differ on a few objects only."""
    cfg = yaml.safe_load(config.read_text())
    cfg["world"]["synthetic"]["models"] = [
        {"name": "base", "transform": "linear", "dim": 10, "family": "f"},
        {"name": "variant", "transform": "linear", "dim": 10, "family": "f",
         "misrepresents": 6},
        {"name": "relu_b", "transform": "relu", "dim": 12, "noise": 0.3},
        {"name": "noisy_e", "transform": "linear", "dim": 10, "noise": 3.0},
    ]
    cfg["simulation"].update(training_sizes=[100, 300, 1000], seeds=4)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def with_designs(config: Path, out: Path) -> Path:
    cfg = yaml.safe_load(config.read_text())
    cfg["designs"] = DESIGNS
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def pair_recovery(outcomes: pd.DataFrame, pair: tuple[str, str]) -> pd.DataFrame:
    """Recovery of the pair's datasets per design at the largest N, exact interval."""
    from modelrecovery.analysis.stats import clopper_pearson

    last = outcomes[(outcomes["n_train"] == outcomes["n_train"].max())
                    & outcomes["generator"].isin(pair)]
    out = last.groupby("design")["credit"].agg(["sum", "size"]).reset_index()
    out["recovery"] = out["sum"] / out["size"]
    out["ci_low"], out["ci_high"] = clopper_pearson(out["sum"].to_numpy(),
                                                    out["size"].to_numpy())
    return out.rename(columns={"size": "datasets", "sum": "recovered"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_study_arguments(parser)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="identifiability-") as tmp:
        study = with_designs(args.config, Path(tmp) / "study.yaml")
        few = few_objects_config(study, Path(tmp) / "few.yaml")
        tables = run_study(study, args.cores, args.seeds,
                           ["decision_rules", "decomposition", "design_curves",
                            "design_savings", "mimic_divergence"], recovery=True)
        few_tables = run_study(few, args.cores, None,
                               ["design_curves", "design_savings", "mimic_divergence"])
    rules, dec = tables["decision_rules"], tables["decomposition"]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(curves_table(rules).to_string(index=False))
        print(dec[["design", "n_train", "recovery_oracle", "recovery_learned",
                   "recovery_best_fit", "data_limited", "metric_limited",
                   "metric_share"]].round(3).to_string(index=False))
        print("the nested pair at the largest N, per design:")
        print(pair_recovery(design_outcomes(tables["recovery"]), NESTED).round(3)
              .to_string(index=False))
        print(tables["design_curves"][["design", "n_train", "recovery",
                                        "recovery_vs_random", "vs_random_ci_low",
                                        "vs_random_ci_high"]].round(3).to_string(index=False))
        sav = tables["design_savings"]
        print(sav[sav["target"] == "random_at_largest_n"][
            ["design", "target_recovery", "n_needed", "savings", "savings_bound",
             "savings_ci_low", "savings_ci_high"]].round(3).to_string(index=False))
        div = tables["mimic_divergence"]
        print(div[div["generator"].isin(NESTED) & div["candidate"].isin(NESTED)][
            ["generator", "candidate", "divergence_uniform", "divergence_design",
             "design_gain", "n_train_needed_uniform", "n_train_needed_design",
             "won_random", "won_mimic"]].round(4).to_string(index=False))
        print("a world of models that differ on 6 of 300 objects (4 seeds):")
        print(few_tables["design_curves"][["design", "n_train", "recovery", "ci_low",
                                            "ci_high", "recovery_vs_random",
                                            "vs_random_ci_low", "vs_random_ci_high"]]
              .round(3).to_string(index=False))
        sav = few_tables["design_savings"]
        print(sav[sav["target"] == "random_at_largest_n"][
            ["design", "target_recovery", "n_needed", "savings", "savings_bound",
             "savings_ci_low", "savings_ci_high"]].round(3).to_string(index=False))
    bad = ceiling_below(rules)
    print("the pooled oracle is at or above the best fit within its interval at every N"
          if not bad else "oracle below the best fit beyond its interval: " + "; ".join(bad))
    print(verdict(dec))

if __name__ == "__main__":
    main()
