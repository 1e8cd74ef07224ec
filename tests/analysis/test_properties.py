"""Model metadata, the model-properties table and the published properties regression,
on inputs whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelrecovery.analysis import identifiability, properties, pvalues
from modelrecovery.errors import InputError


# --------------------------------------------------------------------------- metadata


def test_model_info_is_read_and_bad_fields_are_refused_naming_the_key():
    good = {"a": {"label": "ResNet-50 $x^2$", "objective": "supervised",
                  "architecture": "CNN", "parameters": 25.6e6, "embedding_dim": 2048},
            "b": {}}
    info = properties.read_model_info(json.dumps(good))
    assert info == good
    assert properties.labels(info, ["a", "b", "c"]) == {"a": "ResNet-50 $x^2$", "b": "b",
                                                         "c": "c"}
    assert properties.groups(info, "architecture") == {"a": "CNN"}
    bad = {"{": "not valid JSON",
           json.dumps(["a"]): "mapping of model names",
           json.dumps({"a": {"size": 3}}): "model_info.a.size: unknown field",
           json.dumps({"a": {"label": "two\nlines"}}): "model_info.a.label",
           json.dumps({"a": {"label": "  "}}): "one line of text",
           json.dumps({"a": {"parameters": -1}}): "a number > 0",
           json.dumps({"a": {"parameters": True}}): "a number > 0",
           json.dumps({"a": {"embedding_dim": 2.5}}): "an integer ≥ 1"}
    for text, phrase in bad.items():
        with pytest.raises(InputError, match="--model-info") as info:
            properties.read_model_info(text)
        assert phrase in str(info.value) and "\n" not in str(info.value), str(info.value)


def orthonormal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(rows, cols))
    a -= a.mean(axis=0)  # centred columns: the singular values are the spectrum
    return np.linalg.qr(a)[0]


def test_properties_table_effective_dimensionality_against_hand_eigenvalues():
    # X = U diag(s) Vᵀ (U centred, orthonormal): covariance eigenvalues s²/(n − 1), so the
    # participation ratio is (Σs²)²/Σs⁴. W = V diag(w) scales the axes: X W = U diag(s·w).
    rng = np.random.default_rng(0)
    n, d = 50, 4
    s = np.array([4.0, 2.0, 1.0, 1.0])
    w = np.array([0.5, 1.0, 3.0, 0.0])
    v = np.linalg.qr(rng.normal(size=(d, d)))[0]
    x = orthonormal(n, d, rng) @ np.diag(s) @ v.T
    geom = pd.DataFrame({"model": ["a"], "geometry_shift": [0.25],
                         "pr_raw": [np.sum(s ** 2) ** 2 / np.sum(s ** 4)],
                         "pr_aligned": [np.sum((s * w) ** 2) ** 2 / np.sum((s * w) ** 4)],
                         "dim": [d]})
    table = properties.model_properties(geom, {"a": x}, {"a": v @ np.diag(w)},
                                         {"a": {"label": "A", "parameters": 1e6}})
    row = table.iloc[0]
    lam_pre, lam_post = s ** 2 / (n - 1), (s * w) ** 2 / (n - 1)
    assert row["ed_pre"] == pytest.approx(lam_pre.sum() ** 2 / np.sum(lam_pre ** 2))
    assert row["ed_post"] == pytest.approx(lam_post.sum() ** 2 / np.sum(lam_post ** 2))
    assert row["delta_ed"] == pytest.approx(row["ed_post"] - row["ed_pre"])
    assert row["label"] == "A" and row["parameters"] == 1e6 and row["objective"] is None
    assert row["embedding_dim"] == d == row["feature_dim"]  # no embedding_dim: d
    assert row["geometry_shift"] == 0.25
    # The intrinsic dimensions are the geometry module's estimates of X and X W.
    from modelrecovery.analysis import geometry

    assert row["twonn_pre"] == pytest.approx(geometry.twonn(x))
    assert row["gride_post"] == pytest.approx(geometry.gride(x @ v @ np.diag(w)))
    assert list(table.columns[:4]) == ["model", "label", "objective", "architecture"]


# --------------------------------------------------------------------------- regression


def test_pair_rows_outcomes_by_hand():
    scores = pd.DataFrame({"experiment": "e", "generator": "a", "n_train": 10, "seed": 0,
                           "candidate": ["a", "b", "c"], "test_acc": [0.6, 0.7, 0.6]})
    props = pd.DataFrame({"model": ["a", "b", "c"], "ed_pre": [1.0, 2.0, 3.0]})
    rows = properties.pair_rows(scores, props, ["ed_pre"]).set_index("candidate")
    assert rows.loc["b", "accuracy_difference"] == pytest.approx(-0.1)
    assert rows.loc["b", "misidentification"] == 1.0   # b fits a's data better
    assert rows.loc["c", "misidentification"] == 0.5   # a tie
    assert rows.loc["c", "ed_pre_generator"] == 1.0 and rows.loc["c", "ed_pre_candidate"] == 3.0
    with pytest.raises(InputError, match="no score of its generator"):
        properties.pair_rows(scores[scores["candidate"] != "a"], props, ["ed_pre"])
    with pytest.raises(InputError, match=r"candidate\(s\) \['c'\]"):
        properties.pair_rows(scores, props.iloc[:2], ["ed_pre"])


def world(models: int = 8, seeds: int = 3, sizes=(100, 1000), seed: int = 1):
    """Scores whose accuracy difference is 0.05·shift(generator) − 0.02·ed_pre(candidate)
    plus noise, and the models' properties (no parameter counts, a constant column)."""
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(models)]
    shift, ed = rng.normal(size=models), rng.normal(size=models)
    props = pd.DataFrame({"model": names, "parameters": np.nan, "embedding_dim": 64,
                          "geometry_shift": shift, "ed_pre": ed,
                          "ed_post": rng.normal(size=models)})
    rows = [{"experiment": "e", "generator": names[g], "n_train": n, "seed": s,
             "candidate": names[c],
             "test_acc": 0.7 - (0 if c == g else 0.05 * shift[g] - 0.02 * ed[c]
                                + rng.normal(scale=0.005))}
            for n in sizes for g in range(models) for s in range(seeds)
            for c in range(models)]
    return pd.DataFrame(rows), props


def test_properties_regression_matches_lstsq_and_notes_what_it_leaves_out():
    scores, props = world()
    out = properties.properties_regression(scores, props, list(properties.DEFAULT_PREDICTORS),
                                           "accuracy_difference", 200,
                                           np.random.default_rng(2), "holm")
    assert list(out.columns) == properties.REGRESSION_COLUMNS
    cell = out[out["n_train"] == 100].set_index("term")
    # Every predictor × role keeps a row; the unusable ones carry the reason.
    assert len(cell) == 10
    assert cell.loc["parameters_generator", "note"] == (
        "left out: no model has a value of parameters")
    assert "same for every model" in cell.loc["embedding_dim_candidate", "note"]
    assert cell.loc[["parameters_candidate", "embedding_dim_generator"], "coef"].isna().all()
    fitted = [f"{p}_{r}" for p in ("geometry_shift", "ed_pre", "ed_post")
              for r in ("generator", "candidate")]
    assert (cell.loc[fitted, "note"] == "").all()
    # The coefficients are lstsq's on the same z-scored design.
    rows = properties.pair_rows(scores[scores["n_train"] == 100], props,
                                ["geometry_shift", "ed_pre", "ed_post"])
    x = rows[fitted].to_numpy()
    design = np.column_stack([np.ones(len(x)), (x - x.mean(axis=0)) / x.std(axis=0)])
    y = rows["accuracy_difference"].to_numpy()
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(cell.loc[fitted, "coef"], beta[1:], rtol=1e-9)
    # The planted effects (the generator's shift, the candidate's ed_pre) are found;
    # p-values are Holm-corrected across the six fitted terms only.
    assert cell.loc["geometry_shift_generator", "std_coef"] > 0.5
    assert cell.loc["ed_pre_candidate", "std_coef"] < -0.2
    np.testing.assert_allclose(cell.loc[fitted, "p_adjusted"],
                               pvalues.adjust_p_values(cell.loc[fitted, "p_value"], "holm"))
    assert (cell.loc[fitted, "n_groups"] == 8).all()
    assert (cell.loc[fitted, "n_obs"] == 8 * 7 * 3).all()
    assert set(cell["property"]) == set(properties.DEFAULT_PREDICTORS)
    assert set(cell["role"]) == {"generator", "candidate"}


def test_properties_regression_misidentification_outcome_and_reproducibility():
    scores, props = world(sizes=(100,))
    run = lambda seed: properties.properties_regression(  # noqa: E731
        scores, props, ["geometry_shift"], "misidentification", 50,
        np.random.default_rng(seed))
    pd.testing.assert_frame_equal(run(5), run(5))
    out = run(5).set_index("term")
    rows = properties.pair_rows(scores, props, ["geometry_shift"])
    ref = identifiability.misidentification_regression(
        rows, ["geometry_shift_generator", "geometry_shift_candidate"], "misidentification",
        50, np.random.default_rng(5), crossed=("generator", "candidate"),
        correction="bonferroni").set_index("term")
    np.testing.assert_allclose(out.loc[ref.index, "coef"], ref["coef"])
    assert (out["outcome"] == "misidentification").all()
    assert (out["correction"] == "bonferroni").all()


def test_too_few_models_keep_their_terms_with_the_reason():
    scores, props = world(models=3, sizes=(100,))
    props = props.assign(embedding_dim=[1, 2, 3])
    out = properties.properties_regression(
        scores, props, ["embedding_dim", "geometry_shift", "ed_pre"], "accuracy_difference",
        20, np.random.default_rng(0))
    assert len(out) == 6 and out["coef"].isna().all()
    assert (out["note"] == "degenerate design: 3 properties need at least 4 models, "
                           "there are 3").all()
    # Two properties fit the three models' columns but are collinear with the intercept
    # once both roles enter: the regression's own refusal becomes the note.
    twins = props.assign(ed_pre=2 * props["geometry_shift"] + 1)
    out = properties.properties_regression(scores, twins, ["geometry_shift", "ed_pre"],
                                           "accuracy_difference", 20,
                                           np.random.default_rng(0))
    assert out["note"].str.startswith("degenerate design: a predictor").all()
    with pytest.raises(InputError, match="outcome"):
        properties.properties_regression(scores, props, ["ed_pre"], "rank", 5,
                                         np.random.default_rng(0))
    with pytest.raises(InputError, match="nope"):
        properties.properties_regression(scores, props, ["nope"], "accuracy_difference", 5,
                                         np.random.default_rng(0))


def test_the_command_line_offers_the_analysis_choices():
    from modelrecovery.cli import analyse_properties as cli

    assert cli.DEFAULT_PREDICTORS == properties.DEFAULT_PREDICTORS
    assert cli.OUTCOMES == properties.OUTCOMES
    assert cli.CORRECTIONS == pvalues.CORRECTIONS
