"""One list of fitting settings: the config schema, FitOptions and the CLI agree with it."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from conftest import REPO
from modelrecovery import settings
from modelrecovery.cli import args as cli_args
from modelrecovery.fitting import FitOptions
from modelrecovery.settings import SETTINGS

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
# FitOptions fields that are the kernel's own switches, not the user's: the tests and
# benchmarks set them, no config key does.
KERNEL_ONLY = {"max_line_search", "gather", "reduce_rank", "symmetric", "carry_history"}


def schema_property(setting: settings.Setting) -> dict:
    if setting.section == "fitting":
        return SCHEMA["properties"]["fitting"]["properties"][setting.key]
    experiment = SCHEMA["properties"]["experiments"]["additionalProperties"]
    return experiment["properties"][setting.key]


def test_every_fitoptions_field_is_a_setting_with_the_same_default_or_kernel_only():
    fields = {f.name: f.default for f in dataclasses.fields(FitOptions)}
    for s in SETTINGS:
        assert s.key in fields, f"{s.key} is a setting but not a FitOptions field"
        assert fields[s.key] == s.default, s.key
        assert isinstance(s.default, s.kind), s.key
    assert set(fields) - {s.key for s in SETTINGS} == KERNEL_ONLY


def test_the_schema_holds_exactly_the_settings_with_their_types_choices_and_defaults():
    fitting = SCHEMA["properties"]["fitting"]["properties"]
    assert set(fitting) == set(settings.FITTING_KEYS) | set(settings.PROCESS_KEYS)
    for s in SETTINGS:
        prop = schema_property(s)
        if "enum" in prop:
            assert tuple(prop["enum"]) == s.choices, s.key
        else:
            assert prop["type"] == JSON_TYPES[s.kind], s.key
            assert s.choices is None, s.key
        if "default" in prop:
            assert prop["default"] == s.default, s.key


def test_the_cli_takes_one_flag_per_setting_with_its_default():
    parser = cli_args.fit_parent()
    args = parser.parse_args(["--lambdas", "1"])
    assert FitOptions(**settings.option_values(args)) == FitOptions()
    flags = {a.dest: a.option_strings for a in parser._actions}
    for s in SETTINGS:
        assert s.flag in flags[s.key], s.key


def off_default(s: settings.Setting) -> object:
    if s.choices:
        return next(c for c in s.choices if c != s.default)
    return {bool: lambda v: not v, int: lambda v: v + 7, float: lambda v: v * 3,
            str: lambda v: "cpu" if s.key == "device" else "low_rank:2"}[s.kind](s.default)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_a_rules_flags_reach_the_options_the_config_says(setting):
    fitting = {s.key: s.default for s in SETTINGS if s.section == "fitting"}
    experiment = {"method": "full", "regulariser": "eye_distance", "lambdas": [0.1, 1]}
    (experiment if setting.section == "experiment" else fitting)[setting.key] = \
        off_default(setting)
    argv = settings.cli_flags(fitting, experiment)
    args = cli_args.fit_parent().parse_args(argv)
    options = cli_args.fit_options(args)
    assert getattr(options, setting.key) == off_default(setting)
    assert options == FitOptions.from_config(fitting, experiment)
    assert args.lambdas == [0.1, 1.0]


def test_a_key_the_section_lacks_takes_the_settings_default():
    argv = settings.cli_flags({}, {"lambdas": [1]})
    assert cli_args.fit_options(cli_args.fit_parent().parse_args(argv)) == FitOptions()
