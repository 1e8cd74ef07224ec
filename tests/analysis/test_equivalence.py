"""Equivalence of regularisers (analysis/equivalence.py): the paired TOST against a case
computed by hand, the pairs a config forms, the table, and the command's refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from modelrecovery import io
from modelrecovery.analysis import equivalence
from modelrecovery.cli import main

# Five paired accuracies: differences b − a = 0.01, 0.02, −0.01, 0.03, 0.00.
A = np.array([0.70, 0.72, 0.68, 0.75, 0.71])
B = A + np.array([0.01, 0.02, -0.01, 0.03, 0.00])
# By hand: mean 0.01; squared deviations 0, 1e-4, 4e-4, 4e-4, 1e-4 sum to 1e-3, so the
# SD is √(1e-3 / 4) and the standard error √(2.5e-4 / 5) = √5e-5; 4 degrees of freedom.
MEAN, SE, DF = 0.01, np.sqrt(5e-5), 4


def test_tost_equals_two_one_sided_t_tests_by_hand():
    r = equivalence.tost_paired(A, B, margin=0.05, alpha=0.05)
    t_lower, t_upper = (MEAN + 0.05) / SE, (MEAN - 0.05) / SE       # 8.485, −5.657
    assert r["difference"] == pytest.approx(MEAN) and r["se"] == pytest.approx(SE)
    assert r["t_lower"] == pytest.approx(t_lower) and r["t_upper"] == pytest.approx(t_upper)
    assert r["p_lower"] == pytest.approx(student_t.sf(t_lower, DF))
    assert r["p_upper"] == pytest.approx(student_t.cdf(t_upper, DF))
    assert r["p_tost"] == pytest.approx(max(r["p_lower"], r["p_upper"]))
    half = student_t.ppf(0.95, DF) * SE                              # 2.132 · SE
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((MEAN - half, MEAN + half))
    assert r["ci_level"] == pytest.approx(0.90)
    assert r["equivalent"] and r["p_tost"] < 0.01
    assert r["n"] == 5 and r["mean_b"] - r["mean_a"] == pytest.approx(MEAN)


def test_a_narrow_margin_is_not_shown_equivalent():
    r = equivalence.tost_paired(A, B, margin=0.02, alpha=0.05)
    t_upper = (MEAN - 0.02) / SE                                     # −1.414
    assert r["p_upper"] == pytest.approx(student_t.cdf(t_upper, DF))  # ≈ 0.115
    assert r["p_tost"] == pytest.approx(r["p_upper"]) and r["p_tost"] > 0.05
    assert not r["equivalent"]
    assert r["ci_high"] > 0.02                 # the 90% interval leaves the margin


def test_tost_limits():
    r = equivalence.tost_paired(A, A + 0.01, margin=0.05)           # constant differences
    assert r["p_tost"] == 0.0 and r["equivalent"]
    r = equivalence.tost_paired(A[:1], B[:1], margin=0.05)
    assert np.isnan(r["p_tost"]) and not r["equivalent"]
    with pytest.raises(ValueError, match="margin"):
        equivalence.tost_paired(A, B, margin=0.0)


EXPERIMENTS = {"full_eye": ("full", "eye_distance"), "full_l2": ("full", "l2"),
               "diag_l2": ("diagonal", "l2"), "diag_l1": ("diagonal", "l1"),
               "diag_eye": ("diagonal", "eye_distance"),
               "lr_eye": ("low_rank:4", "eye_distance"),
               "zs_l2": ("zero_shot", "l2"), "zs_eye": ("zero_shot", "eye_distance")}


def test_pairs_share_the_method_differ_in_regulariser_and_skip_zero_shot():
    assert equivalence.regulariser_pairs(EXPERIMENTS) == [
        ("diagonal", "diag_l1", "diag_eye"), ("diagonal", "diag_l2", "diag_eye"),
        ("diagonal", "diag_l2", "diag_l1"), ("full", "full_l2", "full_eye")]
    assert equivalence.regulariser_pairs({"only": ("full", "eye_distance")}) == []
    # Rigid to flexible: diagonal, orthogonal, low_rank:k by k, full.
    methods = {f"{m}_{r}": (m, r) for m in ("full", "low_rank:8", "low_rank:2",
                                            "orthogonal", "diagonal")
               for r in ("l2", "eye_distance")}
    assert [p[0] for p in equivalence.regulariser_pairs(methods)] == [
        "diagonal", "orthogonal", "low_rank:2", "low_rank:8", "full"]


def test_the_table_pairs_by_model_and_by_generator_and_size():
    experiments = {"l2": ("full", "l2"), "eye": ("full", "eye_distance")}
    alignment = pd.DataFrame({"experiment": ["l2"] * 5 + ["eye"] * 5,
                              "model": list("abcde") * 2,
                              "probed_test_acc": np.concatenate([A, B])})
    curves = pd.DataFrame({"experiment": ["l2"] * 4 + ["eye"] * 4,
                           "generator": ["a", "a", "b", "b"] * 2,
                           "n_train": [100, 300] * 4,
                           "recovery": [0.5, 0.6, 0.7, 0.8, 0.5, 0.9, 0.7, 0.8]})
    t = equivalence.regulariser_equivalence(experiments, alignment, curves, 0.05)
    assert list(t.columns) == list(equivalence.EQUIVALENCE_COLUMNS)
    acc = t.set_index("quantity").loc["probed_test_acc"]
    assert (acc["experiment_a"], acc["experiment_b"]) == ("l2", "eye")   # eye − l2
    assert acc["p_tost"] == pytest.approx(equivalence.tost_paired(A, B, 0.05)["p_tost"])
    rec = t.set_index("quantity").loc["recovery"]
    assert rec["n"] == 4 and rec["difference"] == pytest.approx(0.3 / 4)
    assert rec["alpha"] == 0.05                                   # one pair per quantity
    empty = equivalence.regulariser_equivalence({"l2": ("full", "l2")}, alignment, curves,
                                                0.05)
    assert empty.empty and list(empty.columns) == list(equivalence.EQUIVALENCE_COLUMNS)


def compare_argv(tmp_path, alignment_paths, curve_paths) -> list[str]:
    out = tmp_path / "out"
    return ["compare-regularisers", "--experiments", "l2", "eye", "--methods", "full",
            "full", "--regularisers", "l2", "eye_distance",
            "--alignment", *map(str, alignment_paths),
            "--generator-curves", *map(str, curve_paths), "--margin", "0.05",
            "--out-parquet", f"regulariser_equivalence={out}.parquet",
            "--out-csv", f"regulariser_equivalence={out}.csv"]


def inputs(tmp_path, drop: str | None = None):
    paths = {}
    for exp, values in (("l2", A), ("eye", B)):
        table = pd.DataFrame({"model": list("abcde"), "probed_test_acc": values})
        paths[("alignment", exp)] = tmp_path / f"{exp}_alignment.parquet"
        io.write_parquet(table.drop(columns=drop) if drop and exp == "eye" else table,
                         paths[("alignment", exp)])
        paths[("curves", exp)] = tmp_path / f"{exp}_curves.parquet"
        io.write_parquet(pd.DataFrame({"experiment": exp, "generator": ["a", "b"],
                                       "n_train": 100, "recovery": [0.5, 0.75]}),
                         paths[("curves", exp)])
    return ([paths[("alignment", e)] for e in ("l2", "eye")],
            [paths[("curves", e)] for e in ("l2", "eye")])


def test_compare_regularisers_writes_the_table(tmp_path):
    assert main.main(compare_argv(tmp_path, *inputs(tmp_path))) == 0
    t = pd.read_csv(tmp_path / "out.csv")
    assert list(t["quantity"]) == ["probed_test_acc", "recovery"] and t["equivalent"][0]


def test_compare_regularisers_pairs_only_experiments_of_one_similarity(tmp_path):
    argv = compare_argv(tmp_path, *inputs(tmp_path))
    assert main.main([*argv, "--similarities", "dot", "cosine"]) == 0
    t = pd.read_parquet(tmp_path / "out.parquet")
    assert t.empty and list(t.columns) == list(equivalence.EQUIVALENCE_COLUMNS)


def test_compare_regularisers_refuses_a_table_without_its_column_in_one_line(tmp_path,
                                                                             capsys):
    alignment, curves = inputs(tmp_path, drop="probed_test_acc")
    assert main.main(compare_argv(tmp_path, alignment, curves)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(alignment[1]) in err and "lacks column(s) ['probed_test_acc']" in err
    assert not (tmp_path / "out.csv").exists()
