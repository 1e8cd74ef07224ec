"""One list per option group (fitting, design): the config schema, the options dataclasses
and the CLI agree with it."""

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
    section = {"fitting": fitting, "experiment": experiment}
    # A key the section lacks (an experiment's optional similarity) takes its default.
    assert options == FitOptions(**{s.key: section[s.section].get(s.key, s.default)
                                    for s in SETTINGS})
    assert args.lambdas == [0.1, 1.0]


def test_a_key_the_section_lacks_takes_the_settings_default():
    argv = settings.cli_flags({}, {"lambdas": [1]})
    assert cli_args.fit_options(cli_args.fit_parent().parse_args(argv)) == FitOptions()


# ------------------------------------------------------------------------ design settings


def design_dataclasses() -> dict[str, type]:
    from modelrecovery.design.adaptive import AdaptiveOptions
    from modelrecovery.design.mimic import MimicOptions
    from modelrecovery.design.static import DesignOptions

    return {"design": DesignOptions, "adaptive": AdaptiveOptions, "mimic": MimicOptions}


def test_every_design_option_is_a_design_setting_with_the_same_default():
    for section, cls in design_dataclasses().items():
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        listed = {s.key: s.default for s in settings.DESIGN_SETTINGS if s.section == section}
        assert fields == listed, section


def test_the_schema_holds_the_design_settings_with_their_types_and_defaults():
    design = SCHEMA["properties"]["design"]["properties"]
    for s in settings.DESIGN_SETTINGS:
        prop = design[s.key]
        types = [alt["type"] for alt in prop["oneOf"]] if "oneOf" in prop else [prop["type"]]
        assert JSON_TYPES[s.kind] in types, s.key
        assert ("null" in types) == s.nullable, s.key
        assert prop["default"] == s.default, s.key


def test_design_flags_from_the_config_parse_back_to_the_config_values():
    # A rule's arguments (settings.design_flags) through the CLI's parser give the
    # config's values, null included: object_cap is a number or None end to end.
    from modelrecovery.cli import main

    parser = main.build_parser()
    for cfg in ({}, {"pool_factor": 5, "random_fraction": 0.0, "object_cap": None,
                     "posterior_floor": 0.25},
                {"object_cap": 1.5}):
        flags = settings.design_flags(cfg, ("design", "adaptive"))
        args = parser.parse_args(["design", "next", "--objects", "o", "--folds", "f",
                                  "--responses", "r", "--out", "x", "--candidates", "a=b",
                                  "--batch", "1", "--lambdas", "1", *flags])
        design = cli_args.design_options(args)
        adaptive = cli_args.adaptive_options(args)
        for s in settings.DESIGN_SETTINGS:
            if s.section in ("design", "adaptive"):
                got = getattr(design if s.section == "design" else adaptive, s.key)
                assert got == cfg.get(s.key, s.default), (s.key, flags)
    assert settings.design_flags({"object_cap": None})[-1] == "--no-object-cap"
    # The mimic design's own option, through its command's parser.
    for cfg in ({}, {"mimic_pool": 123}):
        args = parser.parse_args(["design", "mimic", "--objects", "o", "--experiment", "e",
                                  "--out", "x", "--out-json", "y", "--candidates", "a=b",
                                  "--generators", "a=c", "--seed", "0", "--study-seed",
                                  "1", "--n-train-max", "10", "--lambdas", "1",
                                  *settings.design_flags(cfg, ("design", "mimic"))])
        assert args.mimic_pool == cfg.get("mimic_pool", 4000)


def test_a_design_option_out_of_range_is_one_line_naming_it():
    from modelrecovery.cli import main
    from modelrecovery.errors import InputError

    args = main.build_parser().parse_args(
        ["design", "next", "--objects", "o", "--folds", "f", "--responses", "r",
         "--out", "x", "--candidates", "a=b", "--batch", "1", "--lambdas", "1",
         "--object-cap", "0.5"])
    with pytest.raises(InputError, match="object_cap must be ≥ 1"):
        cli_args.design_options(args)
