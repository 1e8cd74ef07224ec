"""A recovery job's datasets fitted together give each dataset's own fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelrecovery import fitting, io, oddoneout, simulate
from modelrecovery.cli import main, recover
from modelrecovery.recover.refit import fit_candidates, fit_datasets, recovery_rows

TIGHT = dict(dtype="float64", device="cpu", grad_tol=1e-10, loss_tol=1e-14, max_iter=3000)
NUMERIC = ["lambda", "train_nll", "val_acc", "test_acc", "test_nll", "objective"]


@pytest.fixture(scope="module")
def job():
    """Three candidates (d = 3, 4, 3) on 120 objects, and three simulated datasets of
    the first (two folds, 400 training triplets per fold)."""
    rng = np.random.default_rng(5)
    feats = {name: rng.standard_normal((120, d)) / np.sqrt(d)
             for name, d in (("c3", 3), ("c4", 4), ("c3b", 3))}
    sim = oddoneout.similarity(feats["c3"], 3.0 * np.eye(3))
    shards = [simulate.simulate_dataset(sim, 1.0, 400, n_folds=2, val_fraction=0.3,
                                        eval_fraction=0.1, rng=np.random.default_rng(s))
              for s in range(3)]
    return feats, shards


def test_datasets_fitted_in_one_call_are_each_fitted_alone(job):
    # One kernel call over every dataset's candidates × folds × λ: each problem has its
    # own solver state, so each dataset's fits are those of its own call (to round-off).
    feats, shards = job
    lam = [1e-3, 1e-1]
    opts = fitting.FitOptions(**TIGHT)
    together = fit_datasets(shards, 300, feats, lam, opts, eval_fraction=0.1)
    assert len(together) == 3
    for shard, fits in zip(shards, together):
        alone = fit_candidates(shard, 300, feats, lam, opts, eval_fraction=0.1)
        assert fits.names == alone.names and fits.folds == alone.folds
        for key in ("candidate", "fold", "lam"):
            np.testing.assert_array_equal(getattr(fits, key), getattr(alone, key))
        np.testing.assert_allclose(fits.result.objective.numpy(),
                                   alone.result.objective.numpy(), rtol=1e-10)
        np.testing.assert_allclose(fits.result.weights.numpy(), alone.result.weights.numpy(),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(fits.test_nll, alone.test_nll, rtol=1e-8)
        np.testing.assert_allclose(fits.val_acc, alone.val_acc, atol=1e-12)
        assert bool(fits.result.converged.all())
    # Each dataset's share of the call's time, by its number of fits.
    total = together[0].result.seconds
    assert sum(f.seconds for f in together) == pytest.approx(total, rel=0.5)


def test_recovery_rows_of_a_job_are_labelled_per_dataset(job):
    feats, shards = job
    opts = fitting.FitOptions(**TIGHT)
    labels = [{"experiment": "e", "generator": "c3", "seed": s, "design": d}
              for s, d in ((0, "random"), (1, "random"), (0, "static"))]
    together = fit_datasets(shards, 200, feats, [1e-2], opts, eval_fraction=0.1)
    for fits, shard, lab in zip(together, shards, labels):
        rows = recovery_rows(fits, 200, lab)
        alone = fit_datasets([shard], 200, feats, [1e-2], opts, eval_fraction=0.1)[0]
        one = recovery_rows(alone, 200, lab)
        assert list(rows.columns) == list(one.columns)
        assert (rows["seed"] == lab["seed"]).all() and (rows["design"] == lab["design"]).all()
        pd.testing.assert_frame_equal(rows.drop(columns=NUMERIC + ["seconds", "iterations"]),
                                      one.drop(columns=NUMERIC + ["seconds", "iterations"]))
        np.testing.assert_allclose(rows[NUMERIC].to_numpy(float), one[NUMERIC].to_numpy(float),
                                   rtol=1e-8, atol=1e-12)


def test_the_recover_command_gives_the_same_rows_in_any_grouping(job, tmp_path, monkeypatch):
    # The command fits its datasets in groups of TRIPLETS_PER_CALL training triplets:
    # one group of three, or three of one, the rows agree.
    feats, shards = job
    io.write_objects(tmp_path / "objects.parquet", [f"o{i}" for i in range(120)])
    cands = []
    for name, x in feats.items():
        io.write_features(tmp_path / f"{name}.parquet", x)
        cands.append(f"{name}={tmp_path / f'{name}.parquet'}")
    paths = []
    for s, shard in enumerate(shards):
        io.write_parquet(shard, tmp_path / f"shard{s}.parquet")
        paths.append(str(tmp_path / f"shard{s}.parquet"))
    outs = {}
    for per_call in (10**6, 1):
        monkeypatch.setattr(recover, "TRIPLETS_PER_CALL", per_call)
        out = [str(tmp_path / f"out{per_call}_{s}.parquet") for s in range(3)]
        assert main.main(["recover", "--objects", str(tmp_path / "objects.parquet"),
                         "--shard", *paths, "--seed", "0", "1", "2", "--out", *out,
                         "--candidates", *cands, "--n-train", "200", "--experiment", "e",
                         "--generator", "c3", "--lambdas", "0.01", "0.1", "--dtype",
                         "float64", "--grad-tol", "1e-10", "--loss-tol", "1e-14",
                         "--max-iter", "3000"]) == 0
        outs[per_call] = [pd.read_parquet(p) for p in out]
    for a, b in zip(outs[10**6], outs[1]):
        assert a["seed"].tolist() == b["seed"].tolist()
        np.testing.assert_allclose(a[NUMERIC].to_numpy(float), b[NUMERIC].to_numpy(float),
                                   rtol=1e-8, atol=1e-12)


def test_several_participants_fit_as_counts_equal_the_fit_of_their_rows(job):
    # A shard answered by 5 participants per triplet: the job merges each triplet's
    # judgements into at most three counted rows. The count-weighted objective is the
    # mean over judgements, so the fits equal fits to the expanded rows, one per
    # judgement, to the solver's tolerance.
    feats, _ = job
    sim = oddoneout.similarity(feats["c3"], 3.0 * np.eye(3))
    shard = simulate.simulate_dataset(sim, 1.0, 200, n_folds=2, val_fraction=0.3,
                                      eval_fraction=0.1, rng=np.random.default_rng(9),
                                      participants=5)
    lam = [1e-3, 1e-1]
    opts = fitting.FitOptions(**TIGHT)
    counted = fit_candidates(shard, 150, feats, lam, opts, eval_fraction=0.1)
    rows = [simulate.subset(shard, f, "train", 150) for f in counted.folds]
    assert all(len(r) == 5 * 150 for r in rows)
    counts = fitting.TripletSets.from_arrays(rows, collapse_repeats=True,
                                             dtype=opts.torch_dtype)
    assert counts.triplets.shape[1] < 3 * 150 < 5 * 150  # merged, not expanded
    expanded = fitting.TripletSets.from_arrays(rows, dtype=opts.torch_dtype)
    names = list(feats)
    ps = np.tile(np.repeat(np.arange(2), len(lam)), len(names))
    pf = np.repeat(np.arange(len(names)), 2 * len(lam))
    pl = np.tile(lam, 2 * len(names))
    alone = fitting.fit([feats[m] for m in names], expanded, ps, pl, opts,
                        problem_features=pf)
    np.testing.assert_array_equal(counted.candidate, pf)
    np.testing.assert_allclose(counted.result.objective.numpy(), alone.objective.numpy(),
                               rtol=1e-9)
    np.testing.assert_allclose(counted.result.weights.numpy(), alone.weights.numpy(),
                               rtol=1e-4, atol=1e-6)
    # Held-out scores count every judgement: the test NLL is the mean over 5 per triplet.
    test = [simulate.subset(shard, f, "test", counted.n_eval) for f in counted.folds]
    _, nll = fitting.evaluate([feats[m] for m in names], alone.weights,
                              fitting.TripletSets.from_arrays(test, dtype=opts.torch_dtype),
                              ps, problem_features=pf)
    np.testing.assert_allclose(counted.test_nll, nll, rtol=1e-8)


def test_the_subsets_protocol_refits_each_fold_at_its_own_lambda(job):
    # Published simplified protocol: per candidate and fold the λ of best validation
    # accuracy (ties to the smaller λ), refitted on training + validation, scored on test.
    from modelrecovery.recover.refit import refit_chosen
    from modelrecovery.recover.selection import REFIT, candidate_scores

    feats, _ = job
    sim = oddoneout.similarity(feats["c3"], 3.0 * np.eye(3))
    shard = simulate.simulate_subsets(sim, 1.0, 300, n_folds=4, eval_fraction=0.2,
                                      rng=np.random.default_rng(4))
    lam = [1e-3, 1e-1, 10.0]
    opts = fitting.FitOptions(**TIGHT)
    (fits,) = fit_datasets([shard], 200, feats, lam, opts, eval_fraction=0.2)
    refit_chosen([shard], [fits], 200, feats, opts)
    rows = recovery_rows(fits, 200, {"experiment": "e", "generator": "c3", "seed": 0})
    ref = rows[rows["status"] == REFIT]
    assert len(ref) == len(feats) * 4 and len(rows) == len(ref) * (1 + len(lam))
    names = list(feats)
    for _, r in ref.iterrows():
        grid = rows[(rows["status"] != REFIT) & (rows["candidate"] == r["candidate"])
                    & (rows["fold"] == r["fold"])]
        best = grid["val_acc"].max()
        assert r["lambda"] == grid.loc[grid["val_acc"] >= best - 1e-9, "lambda"].min()
        assert r["val_acc"] == best
        # The refit is a fit to training + validation at that λ, scored on test.
        f, c = int(r["fold"]), names.index(r["candidate"])
        n_eval = fits.n_eval
        both = np.concatenate([simulate.subset(shard, f, "train", 200),
                               simulate.subset(shard, f, "val", n_eval)])
        alone = fitting.fit(feats[r["candidate"]],
                            fitting.TripletSets.from_arrays([both], dtype=opts.torch_dtype),
                            np.array([0]), np.array([r["lambda"]]), opts)
        _, nll = fitting.evaluate(feats[r["candidate"]], alone.weights,
                                  fitting.TripletSets.from_arrays(
                                      [simulate.subset(shard, f, "test", n_eval)],
                                      dtype=opts.torch_dtype), np.array([0]))
        assert r["test_nll"] == pytest.approx(float(nll[0]), rel=1e-6), (c, f)
    # The dataset's scores are the refits' means over folds.
    scores = candidate_scores(rows).set_index("candidate")
    means = ref.groupby("candidate")[["test_acc", "test_nll"]].mean()
    np.testing.assert_allclose(scores.loc[means.index, "test_nll"], means["test_nll"])
    np.testing.assert_allclose(scores.loc[means.index, "test_acc"], means["test_acc"])


def test_grid_rows_alone_are_selected_as_before():
    from modelrecovery.recover.selection import candidate_scores

    base = {"experiment": "e", "generator": "g", "n_train": 10, "seed": 0,
            "candidate": "a", "converged": True, "status": "converged"}
    rows = pd.DataFrame([{**base, "fold": f, "lambda": lam, "val_acc": v, "test_acc": t,
                          "test_nll": 1.0}
                         for f, lam, v, t in [(0, 0.1, 0.5, 0.6), (1, 0.1, 0.7, 0.8),
                                              (0, 1.0, 0.6, 0.2), (1, 1.0, 0.6, 0.4)]])
    got = candidate_scores(rows)
    # Mean validation accuracy ties at 0.6: the larger λ wins, test 0.3.
    assert got["lambda"].tolist() == [1.0] and got["test_acc"].tolist() == [
        pytest.approx(0.3)]
