"""Does a finished study's science depend on where the solver stopped?

    python benchmarks/solver_sensitivity.py --config config/config.yaml   # ~3 minutes

Refits every recovery job of one experiment of a finished run (its simulated shards and
candidate features, read from the results folder) twice: as the config fits (its dtype,
tolerances and warm starts; this should reproduce the stored rows) and converged
(float64, gradient 1e-10, no loss rule, cold starts from W = I). Then compares what the
study reports: each dataset's winner, the λ chosen per candidate, the recovery curve and
every fit's test accuracy. Exits 1 if a winner or the recovery curve differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recovery_jobs as rj  # noqa: E402

from modelrecovery import fitting, io
from modelrecovery.analysis import aggregate
from modelrecovery.fitting.allocator import keep_freed_memory
from modelrecovery.recover import selection

KEY = ["generator", "n_train", "seed", "candidate", "fold", "lambda"]


def candidates(results: Path, stored: pd.DataFrame) -> dict[str, np.ndarray]:
    """The candidates' features (n, d) of ``stored``'s rows, in the order they were fitted."""
    n = len(io.read_objects(results / "world" / "objects.parquet"))
    return {c: io.read_features(results / "world" / "features" / f"{c}.parquet", n)
            for c in dict.fromkeys(stored["candidate"])}


def shards(results: Path, experiment: str, stored: pd.DataFrame
           ) -> dict[tuple[str, int], pd.DataFrame]:
    """The simulated dataset of each (generator, seed) of ``stored``'s rows (one shard
    serves every training size)."""
    return {(gen, int(seed)): pd.read_parquet(results / experiment / "simulated" / "random"
                                              / gen / f"seed{seed}.parquet")
            for gen, seed in dict.fromkeys(zip(stored["generator"], stored["seed"]))}


def refit(cfg: dict, experiment: str, options: fitting.FitOptions, stored: pd.DataFrame,
          cands: dict[str, np.ndarray], data: dict[tuple[str, int], pd.DataFrame]
          ) -> pd.DataFrame:
    """The recovery rows of every (generator, n_train, seed) job in ``stored``, refitted."""
    exp = cfg["experiments"][experiment]
    rows = []
    for (gen, n_train, seed), _ in stored.groupby(["generator", "n_train", "seed"]):
        rows.append(rj.recovery_fits(data[gen, int(seed)], int(n_train), cands, exp["lambdas"],
                                  options,
                                  eval_fraction=cfg["simulation"]["eval_fraction"],
                                  labels={"experiment": experiment, "generator": gen,
                                          "seed": int(seed)}))
    return pd.concat(rows, ignore_index=True)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, object]:
    """What differs between two sets of recovery rows for the same jobs."""
    fits = a.merge(b, on=KEY, suffixes=("_a", "_b"))
    d_acc = (fits["test_acc_a"] - fits["test_acc_b"]).abs()
    s_a, s_b = selection.candidate_scores(a), selection.candidate_scores(b)
    lam = s_a.merge(s_b, on=[*selection.DATASET, "candidate"], suffixes=("_a", "_b"))
    o_a, o_b = aggregate.dataset_outcomes(s_a), aggregate.dataset_outcomes(s_b)
    out = o_a.merge(o_b, on=selection.DATASET, suffixes=("_a", "_b"))
    c_a, c_b = aggregate.recovery_curve(o_a), aggregate.recovery_curve(o_b)
    return {
        "fits": len(fits),
        "fits_with_other_test_acc": int((d_acc > selection.TIE_TOL).sum()),
        "max_test_acc_diff": float(d_acc.max()),
        "max_rel_objective_diff": float(((fits["objective_a"] - fits["objective_b"]).abs()
                                         / fits["objective_b"].abs()).max()),
        "candidates": len(lam),
        "chosen_lambda_differs": int((lam["lambda_a"] != lam["lambda_b"]).sum()),
        "datasets": len(out),
        "winner_differs": out.loc[out["winner_a"] != out["winner_b"],
                                  [*selection.DATASET, "winner_a", "winner_b"]],
        "max_recovery_diff": float((c_a["recovery"] - c_b["recovery"]).abs().max()),
    }


def report(name: str, cmp: dict[str, object]) -> None:
    print(f"{name}: {cmp['fits']} fits; test accuracy differs in "
          f"{cmp['fits_with_other_test_acc']} (max {cmp['max_test_acc_diff']:.3g}); objective "
          f"max rel. diff {cmp['max_rel_objective_diff']:.1e}; chosen λ differs for "
          f"{cmp['chosen_lambda_differs']} of {cmp['candidates']} dataset × candidate; winner "
          f"differs in {len(cmp['winner_differs'])} of {cmp['datasets']} datasets; recovery "
          f"curve max diff {cmp['max_recovery_diff']:.3g}", flush=True)
    if len(cmp["winner_differs"]):
        print(cmp["winner_differs"].to_string(index=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--experiment", default=None, help="default: the config's first")
    ap.add_argument("--results", default=None, help="default: the config's results folder")
    args = ap.parse_args()
    keep_freed_memory()
    cfg = yaml.safe_load(Path(args.config).read_text())
    experiment = args.experiment or next(iter(cfg["experiments"]))
    results = Path(args.results or cfg.get("results", "results"))
    paths = sorted((results / experiment / "recovery" / "random").glob("*/*/*.parquet"))
    if not paths:
        print(f"no recovery rows under {results / experiment / 'recovery'}: run the study "
              "first", file=sys.stderr)
        return 2
    stored = io.read_tables([str(p) for p in paths], aggregate.check_recovery_rows)
    fit, exp = cfg["fitting"], cfg["experiments"][experiment]
    torch.set_num_threads(max(1, int(fit["threads"])))  # as the recovery jobs ran
    as_config = rj.options_from_config(fit, exp)
    converged = dataclasses.replace(as_config, dtype="float64", grad_tol=1e-10,
                                    loss_tol=0.0, max_iter=20_000, warm_start=False)
    cands, data = candidates(results, stored), shards(results, experiment, stored)
    config_rows = refit(cfg, experiment, as_config, stored, cands, data)
    report("stored vs refitted as configured", compare(stored, config_rows))
    cmp = compare(config_rows, refit(cfg, experiment, converged, stored, cands, data))
    report("as configured vs converged (float64, gradient 1e-10, cold)", cmp)
    return 1 if len(cmp["winner_differs"]) or cmp["max_recovery_diff"] > 0 else 0


if __name__ == "__main__":
    sys.exit(main())
