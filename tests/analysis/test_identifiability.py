"""Identifiability analyses on hand-built tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, spearmanr
from scipy.stats import t as student_t

from modelrecovery.analysis import aggregate, identifiability, stats


def score_rows(generator: str, seed: int, accs: dict[str, float], n_train: int = 100,
               experiment: str = "e") -> list[dict]:
    """One dataset's candidate scores (test NLL mirrors accuracy)."""
    return [{"experiment": experiment, "generator": generator, "n_train": n_train,
             "seed": seed, "candidate": c, "test_acc": a, "test_nll": 1.0 - a}
            for c, a in accs.items()]


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    r = []
    # Generator A, four datasets: wins alone; ties with B; third; second.
    r += score_rows("A", 0, {"A": 0.750, "B": 0.500, "C": 0.250})
    r += score_rows("A", 1, {"A": 0.625, "B": 0.625, "C": 0.250})
    r += score_rows("A", 2, {"A": 0.250, "B": 0.500, "C": 0.750})
    r += score_rows("A", 3, {"A": 0.500, "B": 0.750, "C": 0.250})
    # Generator B, two datasets: wins alone; loses to A.
    r += score_rows("B", 0, {"A": 0.250, "B": 0.750, "C": 0.500})
    r += score_rows("B", 1, {"A": 0.750, "B": 0.500, "C": 0.250})
    return pd.DataFrame(r)


# --------------------------------------------------------------------------- ranks


def test_rank_table_on_hand_built_outcomes(scores):
    outcomes = aggregate.dataset_outcomes(scores)
    t = identifiability.rank_table(outcomes).set_index("generator")
    a = t.loc["A"]
    assert a["datasets"] == 4
    assert a["mean_rank"] == pytest.approx((1 + 1 + 3 + 2) / 4)
    assert a["median_rank"] == 1.5 and a["worst_rank"] == 3
    assert a["mrr"] == pytest.approx((1 + 1 + 1 / 3 + 1 / 2) / 4)
    assert a["first_share"] == pytest.approx(1.5 / 4)      # the tie gives half a win
    assert a["first_or_tied"] == pytest.approx(2 / 4)
    assert a["tie_rate"] == pytest.approx(1 / 4)
    lo, hi = stats.clopper_pearson(np.array([1.5]), np.array([4]))
    assert (a["first_ci_low"], a["first_ci_high"]) == pytest.approx((lo[0], hi[0]))
    b = t.loc["B"]
    assert b["mean_rank"] == 1.5 and b["mrr"] == pytest.approx(0.75)
    assert b["first_share"] == 0.5 and b["tie_rate"] == 0.0


# --------------------------------------------------------------------------- confusion


def test_precision_recall_f1_hand_built_confusion():
    rows = []
    for gen, datasets, wins in [("A", 10, {"A": 6.0, "B": 2.5, "C": 1.5, "D": 0.0}),
                                ("B", 4, {"A": 1.0, "B": 3.0, "C": 0.0, "D": 0.0})]:
        for cand, w in wins.items():
            rows.append({"experiment": "e", "n_train": 100, "generator": gen,
                         "candidate": cand, "wins": w, "datasets": datasets,
                         "rate": w / datasets})
    prf = identifiability.precision_recall_f1(pd.DataFrame(rows)).set_index("model")
    assert list(prf.index) == ["A", "B", "C", "D"]
    p_a, r_a = 6 / 7, 0.6
    assert prf.loc["A", "precision"] == pytest.approx(p_a)
    assert prf.loc["A", "recall"] == pytest.approx(r_a)
    assert prf.loc["A", "f1"] == pytest.approx(2 * p_a * r_a / (p_a + r_a))
    p_b, r_b = 3 / 5.5, 0.75
    assert prf.loc["B", "precision"] == pytest.approx(p_b)
    assert prf.loc["B", "f1"] == pytest.approx(2 * p_b * r_b / (p_b + r_b))
    assert not prf.loc["A", "f1_undefined"] and not prf.loc["B", "f1_undefined"]
    # C never generated data (recall undefined) but won 1.5 datasets, none rightly.
    assert np.isnan(prf.loc["C", "recall"]) and prf.loc["C", "precision"] == 0.0
    assert prf.loc["C", "won"] == 1.5
    # D never generated and never won: both undefined.
    assert np.isnan(prf.loc["D", "precision"]) and np.isnan(prf.loc["D", "recall"])
    for m in "CD":
        assert prf.loc[m, "f1"] == 0.0 and prf.loc[m, "f1_undefined"]


def test_recall_equals_generator_recovery(scores):
    conf = aggregate.confusion(scores)
    prf = identifiability.precision_recall_f1(conf).set_index("model")
    gen = aggregate.generator_curves(aggregate.dataset_outcomes(scores)).set_index("generator")
    for g in ["A", "B"]:
        assert prf.loc[g, "recall"] == pytest.approx(gen.loc[g, "recovery"])
    # A wins 1 + 0.5 (own) + 1 (from B's second dataset): precision 1.5 / 2.5.
    assert prf.loc["A", "precision"] == pytest.approx(1.5 / 2.5)


# --------------------------------------------------------------------------- regression


def simulated_rows(seed: int = 0, groups: int = 40, per_group: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = groups * per_group
    raw = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.4], [0.0, 1.0]])  # correlated
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)                      # exact z-scores
    y = 2.0 * z[:, 0] - 1.0 * z[:, 1] + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"shift": 5.0 + 3.0 * z[:, 0], "dim": -2.0 + 0.1 * z[:, 1],
                         "miss": y, "sim": np.repeat(np.arange(groups), per_group)})


def test_regression_recovers_known_coefficients():
    rows = simulated_rows()
    out = identifiability.misidentification_regression(
        rows, ["shift", "dim"], "miss", n_boot=300, rng=np.random.default_rng(1),
        group="sim").set_index("term")
    assert out.loc["shift", "coef"] == pytest.approx(2.0, abs=0.05)
    assert out.loc["dim", "coef"] == pytest.approx(-1.0, abs=0.05)
    for term, truth in [("shift", 2.0), ("dim", -1.0)]:
        assert out.loc[term, "ci_low"] < truth < out.loc[term, "ci_high"]
        assert out.loc[term, "ci_high"] - out.loc[term, "ci_low"] < 0.2
    # Fully standardised coefficients are the slopes of z-scored y.
    sd_y = rows["miss"].std(ddof=0)
    np.testing.assert_allclose(out["std_coef"], out["coef"] / sd_y)
    # R² against an independent fit.
    design = np.column_stack([np.ones(len(rows)), rows[["shift", "dim"]]])
    beta = np.linalg.lstsq(design, rows["miss"], rcond=None)[0]
    r2 = np.corrcoef(design @ beta, rows["miss"])[0, 1] ** 2
    assert out["r2"].iloc[0] == pytest.approx(r2)
    assert out["r2_ci_low"].iloc[0] < r2 < out["r2_ci_high"].iloc[0]
    assert out["n_obs"].iloc[0] == 1000 and out["n_groups"].iloc[0] == 40
    assert out["n_boot_valid"].iloc[0] == 300


def test_regression_bootstrap_is_reproducible():
    rows = simulated_rows(seed=2, groups=12, per_group=10)

    def run(seed: int, group: str | None = "sim") -> pd.DataFrame:
        return identifiability.misidentification_regression(
            rows, ["shift", "dim"], "miss", n_boot=200, rng=np.random.default_rng(seed),
            group=group)

    pd.testing.assert_frame_equal(run(7), run(7))
    assert not np.allclose(run(7)["ci_low"], run(8)["ci_low"])
    assert run(7, group=None)["n_groups"].iloc[0] == len(rows)


def test_regression_refuses_bad_input():
    rows = simulated_rows(groups=3, per_group=4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="lacks"):
        identifiability.misidentification_regression(rows, ["nope"], "miss", 10, rng, "sim")
    bad = rows.assign(dim=np.where(np.arange(len(rows)) == 3, np.nan, rows["dim"]))
    with pytest.raises(ValueError, match="row 3"):
        identifiability.misidentification_regression(bad, ["dim"], "miss", 10, rng, "sim")
    with pytest.raises(ValueError, match="degenerate"):
        identifiability.misidentification_regression(rows.assign(dim=1.0), ["shift", "dim"],
                                                     "miss", 10, rng, "sim")


def test_corrections_against_hand_holm_bonferroni_and_scipy_bh():
    from scipy.stats import false_discovery_control

    from modelrecovery.analysis import pvalues

    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    # Holm by hand over the m = 4 finite ones: ascending 0.005, 0.01, 0.03, 0.04 times
    # 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then the running maximum: 0.02, 0.03, 0.06, 0.06.
    np.testing.assert_allclose(pvalues.adjust_p_values(p, "holm"),
                               [0.03, 0.06, 0.06, np.nan, 0.02])
    np.testing.assert_allclose(pvalues.adjust_p_values(p, "bonferroni"),
                               [0.04, 0.16, 0.12, np.nan, 0.02])
    bh = pvalues.adjust_p_values(p, "bh")
    np.testing.assert_allclose(bh[[0, 1, 2, 4]],
                               false_discovery_control(p[[0, 1, 2, 4]], method="bh"))
    assert np.isnan(bh[3])
    np.testing.assert_allclose(pvalues.adjust_p_values([0.5, 0.4], "holm"), [0.8, 0.8])
    assert pvalues.adjust_p_values([0.6, 0.9], "bonferroni").tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown correction"):
        pvalues.adjust_p_values(p, "sidak")


def test_bootstrap_p_values_as_the_published_code_takes_them():
    from modelrecovery.analysis import pvalues

    # Column 0: 1 of 9 finite resamples ≤ 0, so p = 2 (1 + 1) / 10; column 1: all > 0
    # but one equal to 0, counted on both sides: 2 (1 + 1) / 10; the NaN row is left out.
    r = np.array([[-1.0, 0.0]] + [[1.0, 2.0]] * 8 + [[np.nan, 1.0]])
    np.testing.assert_allclose(pvalues.bootstrap_p_values(r), [0.4, 0.4])
    # Centred resamples give p = 1, not more; too few resamples give NaN.
    assert pvalues.bootstrap_p_values(np.array([[-1.0], [1.0]]))[0] == 1.0
    assert np.isnan(pvalues.bootstrap_p_values(np.array([[1.0]]))[0])


def test_crossed_resample_enters_each_pair_as_often_as_its_models_were_drawn():
    first = np.array([0, 0, 1, 2, 2])
    second = np.array([1, 2, 0, 0, 1])
    counts = np.array([2, 1, 0])  # model 0 drawn twice, model 1 once, model 2 not at all
    idx = identifiability._crossed_rows(first, second, counts)
    assert idx.tolist() == [0, 0, 2, 2]  # (0, 1): 2·1 times; (1, 0): 1·2; model 2: none


def pair_design(models: int = 9, seeds: int = 2, seed: int = 3) -> pd.DataFrame:
    """Generator × candidate (≠) × seed rows, each model with two properties."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=models), rng.normal(size=models)
    rows = [{"g": f"m{i}", "c": f"m{j}", "seed": s, "a_g": a[i], "b_g": b[i], "a_c": a[j],
             "b_c": b[j], "y": 0.5 * a[i] - 0.2 * b[j] + rng.normal(scale=0.05)}
            for i in range(models) for j in range(models) if i != j for s in range(seeds)]
    return pd.DataFrame(rows)


def test_crossed_regression_matches_lstsq_on_the_z_scored_design():
    rows = pair_design()
    terms = ["a_g", "b_g", "a_c", "b_c"]
    out = identifiability.misidentification_regression(
        rows, terms, "y", 300, np.random.default_rng(4), crossed=("g", "c"),
        correction="bonferroni").set_index("term")
    x = rows[terms].to_numpy()
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    design = np.column_stack([np.ones(len(rows)), z])
    beta = np.linalg.lstsq(design, rows["y"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(out.loc[terms, "coef"], beta[1:], rtol=1e-10)
    y = rows["y"].to_numpy()
    beta_z = np.linalg.lstsq(design, (y - y.mean()) / y.std(), rcond=None)[0]
    np.testing.assert_allclose(out.loc[terms, "std_coef"], beta_z[1:], rtol=1e-10)
    assert out["n_groups"].iloc[0] == 9 and out["n_obs"].iloc[0] == 9 * 8 * 2
    # The real effects are far from 0 in every resample; Bonferroni multiplies by 4.
    for term in ("a_g", "b_c"):
        assert out.loc[term, "p_value"] == pytest.approx(2 / (out["n_boot_valid"].iloc[0] + 1))
        assert out.loc[term, "p_adjusted"] == pytest.approx(4 * out.loc[term, "p_value"])
        assert out.loc[term, "ci_low"] < beta[1 + terms.index(term)] < out.loc[term, "ci_high"]
    assert 0.3 * 300 < out["n_boot_valid"].iloc[0] <= 300
    with pytest.raises(ValueError, match="either group or crossed"):
        identifiability.misidentification_regression(rows, terms, "y", 5, np.random.default_rng(0),
                                                     group="seed", crossed=("g", "c"))


# --------------------------------------------------------------------------- trade-off


def test_accuracy_vs_identifiability_intervals():
    human = pd.DataFrame({
        "experiment": ["full"] * 4 + ["zero_shot"] * 3 + ["solo"],
        "model": ["a", "b", "c", "d", "a", "b", "c", "a"],
        "probed_test_acc": [0.60, 0.62, 0.64, 0.66, 0.30, 0.34, 0.38, 0.5],
    })
    curve = pd.DataFrame({
        "experiment": ["full", "full", "zero_shot", "solo"],
        "n_train": [100, 1000, 1000, 50],
        "datasets": [10, 10, 10, 8],
        "recovered": [3.0, 7.0, 9.0, 4.0],
    })
    out = identifiability.accuracy_vs_identifiability(human, curve).set_index("experiment")
    full = out.loc["full"]
    accs = np.array([0.60, 0.62, 0.64, 0.66])
    lo, hi = student_t.interval(0.95, df=3, loc=accs.mean(),
                                scale=accs.std(ddof=1) / np.sqrt(4))
    assert full["human_acc"] == pytest.approx(0.63)
    assert (full["human_ci_low"], full["human_ci_high"]) == pytest.approx((lo, hi))
    assert full["n_train"] == 1000 and full["recovery"] == pytest.approx(0.7)
    ci = binomtest(7, 10).proportion_ci(0.95, method="exact")
    assert (full["recovery_ci_low"], full["recovery_ci_high"]) == pytest.approx(
        (ci.low, ci.high))
    zs = out.loc["zero_shot"]
    ci = binomtest(9, 10).proportion_ci(0.95, method="exact")
    assert zs["recovery_ci_high"] == pytest.approx(ci.high) and zs["n_models"] == 3
    solo = out.loc["solo"]
    assert solo["human_acc"] == 0.5 and np.isnan(solo["human_ci_low"])


# --------------------------------------------------------------------------- metrics


def test_metric_agreement_against_scipy():
    scores = pd.DataFrame({
        "model": ["f", "a", "c", "b", "e", "d"],
        "zero_shot": [0.30, 0.35, 0.40, 0.33, 0.31, 0.45],
        "probed": [0.50, 0.55, 0.55, 0.60, 0.52, 0.58],        # a tie
        "rsa": [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],                   # constant
        "recovery": [0.9, np.nan, 0.5, 0.7, 0.8, 0.6],           # one missing
        "converged": [True] * 6,                                  # not a metric
    })
    table, rho = identifiability.metric_agreement(scores)
    assert list(table["model"]) == list("abcdef")
    assert list(rho.index) == list(rho.columns) == ["zero_shot", "probed", "rsa", "recovery"]
    expected = spearmanr(scores["zero_shot"], scores["probed"]).statistic
    assert rho.loc["zero_shot", "probed"] == pytest.approx(expected)
    assert rho.loc["probed", "zero_shot"] == rho.loc["zero_shot", "probed"]
    ok = scores["recovery"].notna()
    expected = spearmanr(scores.loc[ok, "probed"], scores.loc[ok, "recovery"]).statistic
    assert rho.loc["probed", "recovery"] == pytest.approx(expected)
    assert rho.loc[["zero_shot", "probed", "recovery"], "rsa"].isna().all()
    assert np.isnan(rho.loc["rsa", "rsa"]) and rho.loc["probed", "probed"] == 1.0
    _, rho3 = identifiability.metric_agreement(scores, ["zero_shot", "recovery"],
                                               min_models=6)
    assert np.isnan(rho3.loc["zero_shot", "recovery"])   # only 5 models have both
