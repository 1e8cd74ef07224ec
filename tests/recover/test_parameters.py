"""Parameter recovery: the generator's refitted transform against the generating one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelrecovery import fitting, io, oddoneout, sampling, simulate
from modelrecovery.analysis import parameters
from modelrecovery.recover import parameters as recovered
from modelrecovery.recover.refit import fit_datasets, generator_parameters, recovery_rows

LABELS = {"experiment": "e", "design": "random", "generator": "gen", "seed": 0}



LABELS = {"experiment": "e", "design": "random", "generator": "g", "n_train": 10, "seed": 0}


def refit_scores(x, w, temperature, w_fit, objects, test) -> dict[str, float]:
    """One refit's scores, through the rows a recover job writes (one fold)."""
    row = recovered.parameter_rows(x, w, temperature, {0: (1.0, w_fit)}, {0: objects},
                                   {0: test}, LABELS).iloc[0]
    return {score: float(row[score]) for score in recovered.SCORES}


def planted(seed: int = 3, n: int = 90, d: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) / np.sqrt(d)
    w = np.eye(d) + 0.6 * rng.standard_normal((d, d))
    return x, w, rng


def test_scores_of_the_generating_transform_itself_and_of_its_rescaling():
    x, w, rng = planted()
    test = sampling.sample_triplets(np.arange(90), 400, rng, 90)
    objects = np.arange(30)
    for w_fit in (w, 0.3 * w, w @ np.linalg.qr(rng.standard_normal((4, 4)))[0]):
        # A rescaled W, or W times an orthogonal matrix (the same W Wᵀ): recovered.
        s = refit_scores(x, w, 2.0, w_fit, objects, test)
        assert s["similarity_r"] == pytest.approx(1.0, abs=1e-12)
        assert s["metric_error"] == pytest.approx(0.0, abs=1e-10)
        assert s["accuracy_gap"] == pytest.approx(0.0, abs=1e-12)
    other = rng.standard_normal((4, 4))
    s = refit_scores(x, w, 2.0, other, objects, test)
    assert s["similarity_r"] < 0.9 and s["metric_error"] > 0.3
    # The generating model predicts its own noiseless choices perfectly: any other
    # transform can only be worse on them.
    sim = oddoneout.similarity(x, w)
    logits = oddoneout.pair_logits(sim, test)
    own = test[:, [0, 1, 2]][np.arange(len(test)), :]
    order = np.argsort(-logits, axis=1)[:, 0]  # most similar pair: 0 ij, 1 ik, 2 jk
    odd = np.where(order == 0, own[:, 2], np.where(order == 1, own[:, 1], own[:, 0]))
    rest = [np.setdiff1d(t, [k]) for t, k in zip(own, odd)]
    noiseless = np.array([[r[0], r[1], k] for r, k in zip(rest, odd)])
    s = refit_scores(x, w, 2.0, other, objects, noiseless)
    assert s["accuracy_gap"] > 0


def test_the_metric_error_ignores_directions_the_features_do_not_span():
    # Features in a 2-d subspace of R³: W Wᵀ outside that span changes no similarity.
    x, w, rng = planted(d=3)
    x[:, 2] = 0.0
    w_fit = w.copy()
    w_fit[2] += 5.0
    test = sampling.sample_triplets(np.arange(90), 200, rng, 90)
    s = refit_scores(x, w, 1.0, w_fit, np.arange(40), test)
    assert s["metric_error"] == pytest.approx(0.0, abs=1e-10)


def refit(n_train: int):
    """The generator's own candidate refitted to one simulated dataset of N triplets
    per fold (two folds), at the study's noise: its parameter rows."""
    x, w, rng = planted(n=240)
    temperature = 0.5
    shard = simulate.simulate_dataset(oddoneout.similarity(x, w), temperature, n_train,
                                      n_folds=2, val_fraction=0.3, eval_fraction=0.1,
                                      rng=rng)
    cands = {"gen": x, "other": rng.standard_normal((240, 4)) / 2}
    opts = fitting.FitOptions(dtype="float64", device="cpu", grad_tol=1e-9, loss_tol=1e-12)
    (fits,) = fit_datasets([shard], n_train, cands, [1e-4, 1e-2, 1.0], opts,
                           eval_fraction=0.1)
    rows = recovery_rows(fits, n_train, LABELS)
    return generator_parameters(fits, rows, shard, "gen", x, w, temperature,
                                {**LABELS, "n_train": n_train})


def test_a_generator_refitted_on_many_triplets_recovers_its_own_transform(tmp_path):
    big, small = refit(20_000), refit(100)
    assert list(big.columns) == list(io.PARAMETER_COLUMNS) and len(big) == 2
    assert (big["dim"] == 4).all() and (big["rank"] == 4).all()
    assert all(len(w) == 16 for w in big["weights"])
    assert (big["similarity_r"] > 0.99).all()
    assert (big["metric_error"] < 0.1).all()
    assert (big["accuracy_gap"].abs() < 0.05).all()
    # Fewer triplets, a worse refit.
    assert small["metric_error"].mean() > 2 * big["metric_error"].mean()
    # The contract survives Parquet (list<float64> weights) and rebuilds W.
    io.write_parquet(big, tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    w0 = np.asarray(back["weights"].iloc[0]).reshape(4, 4)
    np.testing.assert_array_equal(w0.ravel(), np.asarray(big["weights"].iloc[0]))
    assert str(back["fold"].dtype) == "int8" and str(back["n_train"].dtype) == "int32"


def test_curves_average_folds_first_then_give_intervals_over_datasets():
    rows = pd.DataFrame({
        "experiment": "e", "design": "random", "generator": "g", "n_train": 100,
        "seed": [0, 0, 1, 1, 2, 2], "fold": [0, 1] * 3,
        "similarity_r": [0.8, 0.9, 0.7, 0.7, 0.95, 0.85],
        "metric_error": [0.5, 0.3, 0.6, 0.6, 0.2, 0.4],
        "accuracy_gap": [0.01, 0.03, 0.02, 0.02, 0.0, 0.0]})
    out = parameters.parameter_curves(rows).iloc[0]
    per_dataset = np.array([0.85, 0.7, 0.9])
    assert out["datasets"] == 3
    assert out["similarity_r"] == pytest.approx(per_dataset.mean())
    half = 4.302652729911275 * per_dataset.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert out["similarity_r_ci_low"] == pytest.approx(per_dataset.mean() - half)
    assert out["metric_error"] == pytest.approx(np.mean([0.4, 0.6, 0.3]))


def test_no_rows_when_the_generator_is_not_a_candidate():
    x, w, rng = planted()
    shard = simulate.simulate_dataset(oddoneout.similarity(x, w), 1.0, 200, n_folds=2,
                                      val_fraction=0.3, eval_fraction=0.1, rng=rng)
    opts = fitting.FitOptions(dtype="float64", device="cpu")
    (fits,) = fit_datasets([shard], 200, {"other": x[:, :3]}, [1e-2], opts,
                           eval_fraction=0.1)
    rows = recovery_rows(fits, 200, {**LABELS, "generator": "gen"})
    out = generator_parameters(fits, rows, shard, "gen", x, w, 1.0,
                               {**LABELS, "n_train": 200})
    assert len(out) == 0 and list(out.columns) == list(io.PARAMETER_COLUMNS)
