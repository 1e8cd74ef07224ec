"""Config keys model_info and analysis.properties: refused in one line naming the key,
and filled with the published defaults."""

from __future__ import annotations

import copy
import sys

import pytest

from conftest import REPO, base_config

sys.path.insert(0, str(REPO / "workflow" / "lib"))
import config_checks  # noqa: E402

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

BAD = {
    "unknown_model": ({"model_info": {"nope": {"label": "N"}}}, "'model_info'",
                      "unknown model(s) ['nope']"),
    "unknown_field": ({"model_info": {"lin": {"size": 3}}}, "'model_info.lin'", "size"),
    "label_newline": ({"model_info": {"lin": {"label": "a\nb"}}}, "'model_info.lin.label'",
                      "one line of text"),
    "label_blank": ({"model_info": {"lin": {"label": " "}}}, "'model_info.lin.label'",
                    "one line of text"),
    "parameters_zero": ({"model_info": {"lin": {"parameters": 0}}},
                        "'model_info.lin.parameters'", "0"),
    "embedding_float": ({"model_info": {"lin": {"embedding_dim": 2.0}}},
                        "'model_info.lin.embedding_dim'", "integer"),
    "predictor_unknown": ({"analysis": {"properties": {"predictors": ["size"]}}},
                          "'analysis.properties.predictors.0'", "size"),
    "correction_unknown": ({"analysis": {"properties": {"correction": "sidak"}}},
                           "'analysis.properties.correction'", "sidak"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_model_info_or_properties_is_refused_naming_its_key(case):
    overrides, key, phrase = BAD[case]
    cfg = copy.deepcopy(base_config(**overrides))
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.check(cfg, SCHEMA, [])
    message = str(info.value)
    assert key in message and phrase in message, message
    assert "\n" not in message


def test_model_info_passes_and_the_properties_defaults_are_the_published_ones():
    from snakemake.utils import validate

    cfg = base_config(model_info={"lin": {"label": "Linear $x^2$ <b>", "objective": "sup",
                                          "architecture": "CNN", "parameters": 25.6e6,
                                          "embedding_dim": 5},
                                  "rel": {}})
    config_checks.check(cfg, SCHEMA, [])
    validate(cfg, str(SCHEMA))
    props = cfg["analysis"]["properties"]
    assert props == {"predictors": ["parameters", "embedding_dim", "geometry_shift",
                                    "ed_pre", "ed_post"],
                     "outcome": "accuracy_difference", "correction": "bonferroni"}
    plain = base_config()
    validate(plain, str(SCHEMA))
    assert plain["model_info"] == {}
