"""Aggregation on hand-built recovery rows whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelrecovery.analysis import aggregate
from modelrecovery.errors import InputError
from modelrecovery.io import RECOVERY_COLUMNS
from modelrecovery.recover import selection


def rows(generator: str, seed: int, candidate: str, lam: float, val: tuple[float, float],
         test: tuple[float, float], n_train: int = 100, converged: bool = True
         ) -> list[dict]:
    """Two folds of one candidate at one λ; test NLL mirrors test accuracy (1 − acc)."""
    out = []
    for fold, (v, t) in enumerate(zip(val, test)):
        out.append({"experiment": "e", "design": "random", "generator": generator,
                    "candidate": candidate, "n_train": n_train, "seed": seed, "fold": fold, "lambda": lam,
                    "train_nll": 0.9, "val_acc": v, "test_acc": t, "test_nll": 1.0 - t,
                    "iterations": 10, "converged": converged, "seconds": 0.01,
                    "objective": 1.0, "status": "loss", "n_val": 8, "n_test": 8})
    return out


@pytest.fixture(scope="module")
def fits() -> pd.DataFrame:
    r = []
    e = 1 / 8  # accuracies are multiples of 1/n_test (8): exact in binary floating point
    # D1 (generator A, seed 0): λ must be chosen by mean *validation* accuracy.
    # A: λ=0.1 has the best test accuracy (7/8) but worse validation (4.5/8 < 5.5/8).
    r += rows("A", 0, "A", 0.1, (4 * e, 5 * e), (7 * e, 7 * e))
    r += rows("A", 0, "A", 1.0, (6 * e, 5 * e), (5 * e, 6 * e))      # chosen: test 5.5/8
    r += rows("A", 0, "B", 0.1, (5 * e, 5 * e), (4 * e, 4 * e))      # chosen: test 4/8
    r += rows("A", 0, "B", 1.0, (4 * e, 4 * e), (6 * e, 6 * e))
    r += rows("A", 0, "C", 0.1, (3 * e, 3 * e), (2 * e, 2 * e))
    r += rows("A", 0, "C", 1.0, (3 * e, 3 * e), (3 * e, 4 * e))      # val tie → larger λ
    # D2 (generator B): A and B tie for best (6/8) → B gets half the credit.
    r += rows("B", 0, "A", 1.0, (4 * e, 4 * e), (5 * e, 7 * e))
    r += rows("B", 0, "B", 1.0, (4 * e, 4 * e), (6 * e, 6 * e))
    r += rows("B", 0, "C", 1.0, (4 * e, 4 * e), (4 * e, 4 * e))
    # D3 (generator C): C is third.
    r += rows("C", 0, "A", 1.0, (4 * e, 4 * e), (6 * e, 6 * e))
    r += rows("C", 0, "B", 1.0, (4 * e, 4 * e), (5 * e, 5 * e))
    r += rows("C", 0, "C", 1.0, (4 * e, 4 * e), (3 * e, 3 * e))
    # D4 (generator A, seed 1): B and C tie above A → tie, no credit, rank 3.
    r += rows("A", 1, "A", 1.0, (4 * e, 4 * e), (5 * e, 5 * e))
    r += rows("A", 1, "B", 1.0, (4 * e, 4 * e), (7 * e, 7 * e))
    r += rows("A", 1, "C", 1.0, (4 * e, 4 * e), (8 * e, 6 * e))
    # D5 (generator A, seed 0, a larger size): A wins alone; one fit did not converge.
    r += rows("A", 0, "A", 1.0, (4 * e, 4 * e), (7 * e, 7 * e), n_train=200)
    r += rows("A", 0, "B", 1.0, (4 * e, 4 * e), (5 * e, 5 * e), n_train=200,
              converged=False)
    r += rows("A", 0, "C", 1.0, (4 * e, 4 * e), (5 * e, 5 * e), n_train=200)
    frame = pd.DataFrame(r)
    aggregate.check_recovery_rows(frame, "hand-built")
    return frame


def pick(frame: pd.DataFrame, **keys) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for k, v in keys.items():
        mask &= (frame[k] == v).to_numpy()
    return frame[mask]


def test_lambda_selected_by_mean_validation_accuracy(fits):
    scores = selection.candidate_scores(fits)
    d1 = pick(scores, generator="A", seed=0, n_train=100).set_index("candidate")
    assert d1.loc["A", "lambda"] == 1.0 and d1.loc["A", "test_acc"] == 5.5 / 8
    assert d1.loc["A", "val_acc"] == 5.5 / 8
    assert d1.loc["B", "lambda"] == 0.1 and d1.loc["B", "test_acc"] == 4 / 8
    # Validation tie (3/8 at both λ) goes to the larger λ.
    assert d1.loc["C", "lambda"] == 1.0 and d1.loc["C", "test_acc"] == 3.5 / 8
    # One row per dataset × candidate.
    assert len(scores) == 5 * 3
    assert not scores.duplicated(["experiment", "generator", "n_train", "seed",
                                  "candidate"]).any()


def test_outcomes_split_ties_and_rank(fits):
    out = aggregate.dataset_outcomes(selection.candidate_scores(fits))
    assert len(out) == 5
    d1 = pick(out, generator="A", seed=0, n_train=100).iloc[0]
    assert (d1["winner"], d1["credit"], d1["tie"], d1["rank"]) == ("A", 1.0, False, 1)
    d2 = pick(out, generator="B").iloc[0]
    assert d2["winner"] == "A|B" and d2["n_tied"] == 2 and bool(d2["tie"])
    assert d2["credit"] == pytest.approx(0.5) and d2["rank"] == 1
    d3 = pick(out, generator="C").iloc[0]
    assert d3["winner"] == "A" and d3["credit"] == 0.0 and d3["rank"] == 3
    d4 = pick(out, generator="A", seed=1).iloc[0]
    assert d4["winner"] == "B|C" and bool(d4["tie"]) and d4["credit"] == 0.0
    assert d4["rank"] == 3  # two candidates strictly better
    # NLL winner mirrors accuracy here (test_nll = 1 − test_acc).
    assert d2["nll_credit"] == pytest.approx(0.5) and d1["nll_credit"] == 1.0


def test_recovery_curve_mrr_and_intervals(fits):
    out = aggregate.dataset_outcomes(selection.candidate_scores(fits))
    curve = aggregate.recovery_curve(out).set_index("n_train")
    c100 = curve.loc[100]
    assert c100["datasets"] == 4
    assert c100["recovered"] == pytest.approx(1.5)       # 1 + 0.5 + 0 + 0
    assert c100["recovery"] == pytest.approx(0.375)
    assert c100["tie_rate"] == pytest.approx(0.5)
    assert c100["mean_rank"] == pytest.approx(2.0)       # ranks 1, 1, 3, 3
    assert c100["mrr"] == pytest.approx((1 + 1 + 1 / 3 + 1 / 3) / 4)
    assert curve.loc[200, "recovery"] == 1.0 and curve.loc[200, "ci_high"] == 1.0
    assert (curve["ci_low"] <= curve["recovery"]).all()
    assert (curve["recovery"] <= curve["ci_high"]).all()
    gen = aggregate.generator_curves(out)
    a100 = pick(gen, generator="A", n_train=100).iloc[0]
    assert a100["datasets"] == 2 and a100["recovery"] == pytest.approx(0.5)


def test_confusion_rates(fits):
    conf = aggregate.confusion(selection.candidate_scores(fits))
    sums = conf.groupby(["experiment", "n_train", "generator"])["rate"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-12)
    assert len(sums) == 4  # (100: A, B, C) + (200: A)
    rate = conf.set_index(["n_train", "generator", "candidate"])["rate"]
    expected = {(100, "A", "A"): 0.5, (100, "A", "B"): 0.25, (100, "A", "C"): 0.25,
                (100, "B", "A"): 0.5, (100, "B", "B"): 0.5, (100, "B", "C"): 0.0,
                (100, "C", "A"): 1.0, (100, "C", "B"): 0.0, (100, "C", "C"): 0.0,
                (200, "A", "A"): 1.0, (200, "A", "B"): 0.0, (200, "A", "C"): 0.0}
    for key, value in expected.items():
        assert rate.loc[key] == pytest.approx(value), key


def test_summary_reports_fit_health(fits):
    out = aggregate.dataset_outcomes(selection.candidate_scores(fits))
    summ = aggregate.summary(aggregate.recovery_curve(out), fits).set_index("n_train")
    assert summ.loc[200, "fits"] == 6
    assert summ.loc[200, "converged_rate"] == pytest.approx(4 / 6)
    assert summ.loc[100, "converged_rate"] == 1.0
    assert summ.loc[100, "recovery"] == pytest.approx(0.375)


def test_equal_mean_test_accuracies_over_folds_are_ties():
    # With n_test = 15 (the workflow's N/8 at N = 120), fold accuracies are k/15.
    # Candidate A scores (5, 5, 6)/15 and B scores (6, 4, 6)/15 over three folds: both
    # mean 16/45, an exact tie, so generator A must get half the credit. Averaging the
    # floats in different orders gives values one ulp apart, which must not decide it.
    r = []
    for cand, accs in (("A", (5, 5, 6)), ("B", (6, 4, 6))):
        for fold, k in enumerate(accs):
            row = rows("A", 0, cand, 1.0, (0.5, 0.5), (0.5, 0.5))[0]
            row.update(fold=fold, test_acc=k / 15, test_nll=0.7, n_test=15)
            r.append(row)
    out = aggregate.dataset_outcomes(selection.candidate_scores(pd.DataFrame(r))).iloc[0]
    assert bool(out["tie"]) and out["n_tied"] == 2
    assert out["credit"] == pytest.approx(0.5)
    assert out["rank"] == 1


def test_bad_recovery_tables_are_refused(fits):
    with pytest.raises(InputError, match="lacks column"):
        aggregate.check_recovery_rows(fits.drop(columns=["test_nll"]), "f.parquet")
    bad = fits.copy()
    bad.loc[3, "test_acc"] = 1.2
    with pytest.raises(InputError, match="outside"):
        aggregate.check_recovery_rows(bad, "f.parquet")
    bad.loc[3, "test_acc"] = np.nan
    with pytest.raises(InputError):
        aggregate.check_recovery_rows(bad, "f.parquet")
    no_gen = selection.candidate_scores(fits)
    no_gen = no_gen[~((no_gen["generator"] == "C") & (no_gen["candidate"] == "C"))]
    with pytest.raises(InputError, match="not among the candidates"):
        aggregate.dataset_outcomes(no_gen)
    assert set(RECOVERY_COLUMNS) <= set(fits.columns)


def _sidecar(model: str, human: dict, converged: bool = True) -> dict:
    """A calibrated generator's JSON sidecar, as ``modelrecovery calibrate`` writes it."""
    return {"model": model, "experiment": "e", "lambda": 0.1, "temperature": 0.25,
            "expected_accuracy": 0.6, "noise_ceiling_target": 0.6, "human": human,
            "fit": {"converged": converged, "iterations": 12, "status": "loss"},
            "lambdas": [0.1, 1.0], "cv_folds": 2}


def test_alignment_table_rows_follow_the_sidecars(tmp_path):
    human = {"zero_shot_test_acc": 0.4, "probed_test_acc": 0.55, "probed_train_acc": 0.6,
             "cv_val_acc": 0.5}
    paths = []
    for model, converged in (("b", False), ("a", True)):
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps(_sidecar(model, human, converged)))
        paths.append(path)
    table = aggregate.alignment_table(paths)
    assert list(table.columns) == ["model", "lambda", "temperature", "expected_accuracy",
                                   "zero_shot_test_acc", "probed_test_acc",
                                   "probed_train_acc", "cv_val_acc", "converged"]
    assert table["model"].tolist() == ["b", "a"]  # the order given, not sorted
    assert table["converged"].tolist() == [False, True]
    assert table["probed_test_acc"].tolist() == [0.55, 0.55]
    assert table["temperature"].dtype == np.float64
    assert aggregate.alignment_table([]).shape == (0, 0)


def test_alignment_table_refuses_an_incomplete_sidecar(tmp_path):
    meta = _sidecar("a", {"probed_test_acc": 0.5})
    del meta["temperature"]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"a\.json.*lacks key\(s\) \['temperature'\]"):
        aggregate.alignment_table([path])
    meta = _sidecar("a", {"probed_test_acc": 0.5})
    meta["fit"] = {}
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="'fit' with key 'converged'"):
        aggregate.alignment_table([path])
