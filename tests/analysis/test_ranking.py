"""The published study's ranking analyses (analysis/ranking.py) on hand-built tables whose
answers are worked out by hand, and their command's refusals of malformed input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.integrate import trapezoid

from modelrecovery import io
from modelrecovery.analysis import aggregate, identifiability, ranking
from modelrecovery.cli import main


def score_rows(generator: str, seed: int, accs: dict[str, float], n_train: int = 100,
               experiment: str = "e") -> list[dict]:
    """One dataset's candidate scores (test NLL mirrors accuracy)."""
    return [{"experiment": experiment, "generator": generator, "n_train": n_train,
             "seed": seed, "candidate": c, "test_acc": a, "test_nll": 1.0 - a}
            for c, a in accs.items()]


@pytest.fixture()
def scores() -> pd.DataFrame:
    """Candidates A, B, C; generators A and B (C only a candidate), two seeds each."""
    r = []
    r += score_rows("A", 0, {"A": 0.750, "B": 0.500, "C": 0.250})   # ranks A1 B2 C3
    r += score_rows("A", 1, {"A": 0.625, "B": 0.625, "C": 0.250})   # A1.5 B1.5 C3
    r += score_rows("B", 0, {"A": 0.250, "B": 0.750, "C": 0.500})   # B1 C2 A3
    r += score_rows("B", 1, {"A": 0.750, "B": 0.500, "C": 0.250})   # A1 B2 C3
    return pd.DataFrame(r)


def random_scores(seed: int, generators: int = 3, seeds: int = 6,
                  sizes: tuple[int, ...] = (100, 1000)) -> pd.DataFrame:
    """Scores on a coarse grid of accuracies (eighths), so ties are frequent."""
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(generators)]
    rows = []
    for g in models:
        for n in sizes:
            for s in range(seeds):
                rows += score_rows(g, s, dict(zip(models, rng.integers(2, 8, generators) / 8)),
                                   n_train=n)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ties


def test_tie_positions_give_average_ranks_and_shared_places():
    ahead, tied = ranking.tie_positions(np.array([0.5, 0.5 + 1e-12, 0.5, 0.9, 0.1]))
    np.testing.assert_array_equal(ahead, [1, 1, 1, 0, 4])
    np.testing.assert_array_equal(tied, [3, 3, 3, 1, 1])
    rank = ahead + (tied + 1) / 2
    np.testing.assert_array_equal(rank, stats.rankdata([-0.5, -0.5, -0.5, -0.9, -0.1]))
    # At k = 2 one place is left for the three tied candidates: a third each.
    np.testing.assert_allclose(np.clip((2 - ahead) / tied, 0, 1), [1 / 3] * 3 + [1, 0])


# --------------------------------------------------------------------------- AUC


def test_log_axis_is_log_n_scaled_to_the_unit_interval():
    np.testing.assert_allclose(ranking.log_axis(np.array([100, 1000, 10000])), [0, .5, 1])
    np.testing.assert_allclose(ranking.log_axis(np.array([100, 300, 1000])),
                               [0, np.log(3) / np.log(10), 1])
    assert np.isnan(ranking.log_axis(np.array([100]))).all()


def test_recovery_auc_by_hand_and_as_the_area_of_the_generator_curve():
    credit = {("A", 0): [0, 1, 1], ("A", 1): [0.5, 0, 1],
              ("B", 0): [1, 1, 1], ("B", 1): [0, 0, 1]}
    outcomes = pd.DataFrame([
        {"experiment": "e", "generator": g, "seed": s, "n_train": n, "credit": c,
         "tie": False, "rank": 1, "nll_credit": c}
        for (g, s), cs in credit.items() for n, c in zip((100, 1000, 10000), cs)])
    auc = ranking.recovery_auc(outcomes, 99, np.random.default_rng(0)).set_index("generator")
    # Seed areas on x = 0, 1/2, 1: A 0.75 and 0.375, B 1 and 0.25.
    assert auc.loc["A", "auc"] == pytest.approx((0.75 + 0.375) / 2)
    assert auc.loc["B", "auc"] == pytest.approx((1.0 + 0.25) / 2)
    assert auc.loc[ranking.POOLED, "auc"] == pytest.approx((0.5625 + 0.625) / 2)
    assert auc.loc["A", ["sizes", "n_min", "n_max", "seeds"]].tolist() == [3, 100, 10000, 2]
    curves = aggregate.generator_curves(outcomes)
    for g in ("A", "B"):
        c = curves[curves["generator"] == g].sort_values("n_train")
        assert auc.loc[g, "auc"] == pytest.approx(trapezoid(c["recovery"], [0, .5, 1]))


def test_recovery_auc_interval_is_scipys_bca_over_seeds():
    outcomes = aggregate.dataset_outcomes(random_scores(3, generators=3, seeds=8,
                                                        sizes=(100, 300, 1000)))
    one = outcomes[outcomes["generator"] == "m0"]
    auc = ranking.recovery_auc(one, 999, np.random.default_rng(7)).iloc[0]
    wide = one.pivot(index="seed", columns="n_train", values="credit").sort_index()
    areas = trapezoid(wide.to_numpy(), ranking.log_axis(np.array([100, 300, 1000])), axis=1)
    ci = stats.bootstrap((areas,), np.mean, n_resamples=999, method="BCa",
                         rng=np.random.default_rng(7)).confidence_interval
    assert auc["auc"] == pytest.approx(areas.mean())
    assert (auc["ci_low"], auc["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)


# --------------------------------------------------------------------------- precision/recall


def test_precision_recall_at_every_k_by_hand(scores):
    t = ranking.precision_recall_at_k(scores, ["test_acc"]).set_index(["k", "model"])
    expected = {  # (in_top_k, true_positives, precision, recall)
        (1, "A"): (2.5, 1.5, 0.6, 0.75), (1, "B"): (1.5, 1.0, 2 / 3, 0.5),
        (1, "C"): (0.0, 0.0, np.nan, np.nan),
        (2, "A"): (3.0, 2.0, 2 / 3, 1.0), (2, "B"): (4.0, 2.0, 0.5, 1.0),
        (2, "C"): (1.0, 0.0, 0.0, np.nan),
        (3, "A"): (4.0, 2.0, 0.5, 1.0), (3, "B"): (4.0, 2.0, 0.5, 1.0),
        (3, "C"): (4.0, 0.0, 0.0, np.nan)}
    for key, values in expected.items():
        got = t.loc[key, ["in_top_k", "true_positives", "precision", "recall"]]
        np.testing.assert_allclose(got.to_numpy(dtype=float), values, err_msg=str(key))
    assert t.loc[(1, "A"), "generated"] == 2 and t.loc[(1, "C"), "generated"] == 0
    assert t.loc[(2, "A"), "precision_mean_k"] == pytest.approx((0.6 + 2 / 3 + 0.5) / 3)
    assert t.loc[(2, "A"), "recall_mean_k"] == pytest.approx((0.75 + 1 + 1) / 3)
    assert t.loc[(1, "C"), "precision_mean_k"] == 0.0        # NaN at k = 1 skipped
    assert np.isnan(t.loc[(1, "C"), "recall_mean_k"])
    assert set(t["candidates"]) == {3}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_equal_one_is_the_existing_precision_and_recall(seed):
    scores = random_scores(seed)
    at_k = ranking.precision_recall_at_k(scores)
    one = at_k[(at_k["k"] == 1) & (at_k["ranked_by"] == "test_acc")]
    existing = identifiability.precision_recall_f1(aggregate.confusion(scores))
    both = one.merge(existing, on=["experiment", "n_train", "model"], suffixes=("", "_f1"))
    assert len(both) == len(existing) == len(one)
    np.testing.assert_allclose(both["precision"], both["precision_f1"], rtol=1e-12)
    np.testing.assert_allclose(both["recall"], both["recall_f1"], rtol=1e-12)
    # Ranked by NLL, recall at k = 1 is the outcomes' NLL recovery (ties split).
    nll = at_k[(at_k["k"] == 1) & (at_k["ranked_by"] == "test_nll")]
    outcomes = aggregate.dataset_outcomes(scores)
    by_gen = outcomes.groupby(["n_train", "generator"])["nll_credit"].mean()
    got = nll.set_index(["n_train", "model"])["recall"]
    np.testing.assert_allclose(got.loc[by_gen.index], by_gen.to_numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- false rank


def test_false_and_correct_rank_by_hand(scores):
    t = ranking.false_rank(scores, 99, np.random.default_rng(0)).set_index("model")
    assert t.loc["A", "false_rank"] == pytest.approx((3 + 1) / 2)          # on B's data
    assert t.loc["B", "false_rank"] == pytest.approx((2 + 1.5) / 2)        # on A's data
    assert t.loc["C", "false_rank"] == pytest.approx(((3 + 3) / 2 + (2 + 3) / 2) / 2)
    assert t.loc["A", "correct_rank"] == pytest.approx((1 + 1.5) / 2)
    assert t.loc["B", "correct_rank"] == pytest.approx((1 + 2) / 2)
    assert np.isnan(t.loc["C", "correct_rank"]) and np.isnan(t.loc["C", "correct_ci_low"])
    assert t.loc["C", "other_generators"] == 2 and t.loc["A", "other_generators"] == 1
    assert (t["chance_rank"] == 2.0).all()
    # C ranks 3 on every dataset of A: constant, so no resample moves it, yet B's
    # datasets vary; the interval is scipy's and holds the point.
    assert t.loc["C", "false_ci_low"] <= 2.75 <= t.loc["C", "false_ci_high"]


def test_false_rank_interval_is_scipys_bca_stratified_by_generator():
    scores = random_scores(5, generators=3, seeds=8, sizes=(100,))
    row = ranking.false_rank(scores, 999, np.random.default_rng(11)).iloc[0]
    assert row["model"] == "m0"
    r = ranking.ranked(scores)
    mine = r[r["candidate"] == "m0"]
    x, y = (mine.loc[mine["generator"] == g, "rank"].to_numpy() for g in ("m1", "m2"))
    ci = stats.bootstrap((x, y), lambda a, b, axis: (a.mean(axis) + b.mean(axis)) / 2,
                         n_resamples=999, method="BCa", vectorized=True,
                         rng=np.random.default_rng(11)).confidence_interval
    assert row["false_rank"] == pytest.approx((x.mean() + y.mean()) / 2)
    assert (row["false_ci_low"], row["false_ci_high"]) == pytest.approx((ci.low, ci.high),
                                                                        rel=1e-12)


def test_bca_interval_edge_cases():
    rng = np.random.default_rng(0)
    assert ranking.bca_interval([np.array([2.0, 2.0, 2.0])], 99, rng) == (2.0, 2.0)
    assert all(np.isnan(ranking.bca_interval([np.array([1.0])], 99, rng)))
    assert all(np.isnan(ranking.bca_interval([], 99, rng)))


def test_false_rank_correlation_with_each_external_group_by_hand():
    ranks = pd.DataFrame({"experiment": "e", "n_train": 100, "model": list("ABCD"),
                          "false_rank": [1.5, 2.0, 2.5, 3.0]})
    external = pd.DataFrame(
        [{"model": m, "metric": "n1", "group": "neural", "score": v}
         for m, v in zip("ABCD", [0.9, 0.8, 0.7, 0.6])]
        + [{"model": m, "metric": "n2", "group": "neural", "score": v}
           for m, v in zip("ABCD", [0.5, 0.6, 0.4, 0.3])]
        + [{"model": m, "metric": "b1", "group": "behavioural", "score": v}
           for m, v in zip("ABCD", [0.1, 0.2, 0.3, 0.4])])
    ext = ranking.external_rankings(external).set_index(["group", "model"])
    # neural: mean ranks A 3.5, B 3.5, C 2, D 1 (4 = best) → external ranks 1.5 1.5 3 4.
    np.testing.assert_allclose(ext.loc["neural", "external_rank"], [1.5, 1.5, 3, 4])
    t = ranking.false_rank_correlation(ranks, external, 200, np.random.default_rng(1))
    t = t.set_index("group")
    assert t.loc["neural", "spearman"] == pytest.approx(np.sqrt(0.9))  # 4.5 / √(5·4.5)
    assert t.loc["behavioural", "spearman"] == pytest.approx(-1.0)
    assert t.loc["neural", "metrics"] == 2 and t.loc["neural", "n_models"] == 4
    assert t.loc["neural", "ci_low"] <= t.loc["neural", "spearman"] <= t.loc["neural",
                                                                             "ci_high"]
    empty = ranking.false_rank_correlation(ranks, None, 200, np.random.default_rng(1))
    assert empty.empty and "spearman" in empty.columns


# --------------------------------------------------------------------------- command


def run(argv: list[str]) -> int:
    return main.main(argv)


def ranking_argv(tmp_path, scores_path) -> list[str]:
    names = ["recovery_auc", "precision_recall_at_k", "false_rank", "false_rank_correlation"]
    return ["analyse-ranking", "--scores", str(scores_path), "--experiment", "e",
            "--n-boot", "50", "--study-seed", "3",
            "--out-parquet", *(f"{n}={tmp_path / n}.parquet" for n in names),
            "--out-csv", *(f"{n}={tmp_path / n}.csv" for n in names)]


def test_analyse_ranking_writes_its_tables(tmp_path, scores):
    path = tmp_path / "scores.parquet"
    io.write_parquet(pd.concat([scores, scores.assign(n_train=1000)]), path)
    assert run(ranking_argv(tmp_path, path)) == 0
    auc = pd.read_csv(tmp_path / "recovery_auc.csv")
    assert set(auc["generator"]) == {"A", "B", ranking.POOLED}
    assert len(pd.read_parquet(tmp_path / "precision_recall_at_k.parquet")) == 2 * 2 * 3 * 3


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="test_nll"), "lacks column(s) ['test_nll']"),
    (lambda f: f.assign(test_acc=np.where(np.arange(len(f)) == 3, 1.5, f["test_acc"])),
     "row 3 has test_acc = 1.5"),
    (lambda f: f[~((f["generator"] == "B") & (f["seed"] == 1) & (f["n_train"] == 1000))],
     "generator 'B', seed 1 lacks n_train [1000]"),
    (lambda f: f[~((f["generator"] == "A") & (f["seed"] == 0) & (f["candidate"] == "C"))],
     "has candidates ['A', 'B']"),
])
def test_analyse_ranking_refuses_a_malformed_scores_table_in_one_line(
        tmp_path, capsys, scores, change, message):
    path = tmp_path / "scores.parquet"
    io.write_parquet(change(pd.concat([scores, scores.assign(n_train=1000)],
                                      ignore_index=True)), path)
    assert run(ranking_argv(tmp_path, path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err
    assert not list(tmp_path.glob("recovery_auc*"))
