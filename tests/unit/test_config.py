"""RunConfig: defaults, presets, round trips and one clear error per bad field."""

from __future__ import annotations

import json

import pytest

from simlab.config import (
    PRESETS,
    RunConfig,
    apply_overrides,
    load_config,
    parse_value,
    validate_config,
)
from simlab.errors import ConfigError

INVALID = [
    # (input, field path named in the error, text the message must contain)
    ({"cosmology": {"Omega0": 0}}, "cosmology.Omega0", "(0, 2]"),
    ({"cosmology": {"Omega0": 2.5}}, "cosmology.Omega0", "(0, 2]"),
    ({"cosmology": {"Omega0": "lots"}}, "cosmology.Omega0", "valid number"),
    ({"cosmology": {"OmegaLambda": -0.1}}, "cosmology.OmegaLambda", "[0, 2]"),
    ({"cosmology": {"h": 0.1}}, "cosmology.h", "(0.2, 1.5]"),
    ({"cosmology": {"sigma8": -1}}, "cosmology.sigma8", "(0, 3]"),
    ({"cosmology": {"n_s": 3}}, "cosmology.n_s", "(0.5, 1.5]"),
    ({"cosmology": {"preset": "planck99"}}, "cosmology.preset", "'planck18'"),
    (
        {"cosmology": {"OmegaBaryon": 0.4, "Omega0": 0.3}},
        "cosmology.OmegaBaryon",
        "smaller than Omega0",
    ),
    ({"cosmology": {"Omega_b": 0.04}}, "cosmology.Omega_b", "Extra inputs"),
    ({"box": {"size": 0}}, "box.size", "(0, 100000]"),
    ({"box": {"particles_per_side": 0}}, "box.particles_per_side", "[2, 4096]"),
    ({"box": {"particles_per_side": 5000}}, "box.particles_per_side", "[2, 4096]"),
    ({"box": {"particles_per_side": 32.5}}, "box.particles_per_side", "integer"),
    ({"ics": {"z_start": -1}}, "ics.z_start", "(0, 1000]"),
    ({"ics": {"a_start": 1.5}}, "ics.a_start", "(0, 1)"),
    ({"ics": {"z_start": 49, "a_start": 0.5}}, "ics.a_start", "contradicts z_start"),
    ({"ics": {"lpt_order": 3}}, "ics.lpt_order", "1 or 2"),
    ({"ics": {"transfer": "bbks"}}, "ics.transfer", "eisenstein_hu"),
    ({"ics": {"seed": -5}}, "ics.seed", "[0,"),
    ({"outputs": {"scale_factors": [0.01]}}, "outputs.scale_factors.0", "a_start"),
    ({"outputs": {"scale_factors": [1.2]}}, "outputs.scale_factors.0", "(0, 1]"),
    ({"outputs": {"redshifts": [60.0]}}, "outputs.redshifts.0", "a_start=0.02"),
    (
        {"outputs": {"redshifts": [1.0], "scale_factors": [0.5]}},
        "outputs.scale_factors",
        "not both",
    ),
    ({"gravity": {"mesh": 4}}, "gravity.mesh", "[8, 8192]"),
    ({"gravity": {"steps": 0}}, "gravity.steps", "[1, 100000]"),
    ({"gravity": {"stepping": "sqrt"}}, "gravity.stepping", "'loga'"),
    ({"code": {"engine": "pm; rm -rf /"}}, "code.engine", "pattern"),
    ({"resources": {"cores": 0}}, "resources.cores", "[1,"),
    ({"resources": {"walltime": "soon"}}, "resources.walltime", "pattern"),
    ({"resources": {"memory": "lots"}}, "resources.memory", "pattern"),
    ({"resources": {"cluster": "../etc"}}, "resources.cluster", "pattern"),
    ({"metadata": {"name": "a b"}}, "metadata.name", "pattern"),
    ({"metadata": {"name": "../../escape"}}, "metadata.name", "pattern"),
    ({"metadata": {"tags": ["ok", "not ok"]}}, "metadata.tags.1", "pattern"),
    ({"boxx": {}}, "boxx", "Extra inputs"),
]


@pytest.mark.parametrize(("data", "loc", "text"), INVALID)
def test_invalid_field_is_named_with_value_and_allowed(data, loc, text):
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    locs = {e["loc"]: e for e in info.value.errors}
    assert loc in locs, info.value.errors
    assert text in locs[loc]["msg"], locs[loc]
    assert loc in str(info.value)


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        validate_config(
            {"cosmology": {"Omega0": -1, "h": 9}, "box": {"particles_per_side": 1}}
        )
    assert {e["loc"] for e in info.value.errors} == {
        "cosmology.Omega0",
        "cosmology.h",
        "box.particles_per_side",
    }
    assert info.value.errors[0]["value"] == -1


def test_defaults_are_planck18_and_valid():
    config = RunConfig()
    assert config.cosmology.Omega0 == PRESETS["planck18"]["Omega0"]
    assert config.cosmology.sigma8 == PRESETS["planck18"]["sigma8"]
    assert config.ics.start == pytest.approx(0.02)
    assert config.outputs.times == [1.0]
    assert config.mesh == 2 * config.box.particles_per_side


def test_preset_fills_values_and_explicit_values_win():
    config = RunConfig(cosmology={"preset": "wmap9", "sigma8": 0.7})
    assert config.cosmology.Omega0 == PRESETS["wmap9"]["Omega0"]
    assert config.cosmology.sigma8 == 0.7
    assert RunConfig(cosmology={"Omega_m": 0.25}).cosmology.Omega0 == 0.25


def test_redshifts_become_sorted_scale_factors():
    config = RunConfig(outputs={"redshifts": [0.0, 3.0, 1.0]})
    assert config.outputs.times == pytest.approx([0.25, 0.5, 1.0])


def test_yaml_and_json_round_trip(tmp_path):
    config = RunConfig(
        cosmology={"preset": "planck15"},
        box={"size": 64.0, "particles_per_side": 32},
        outputs={"scale_factors": [0.5, 1.0]},
        metadata={"name": "roundtrip", "tags": ["a", "b"]},
    )
    config.to_yaml(tmp_path / "run.yaml")
    (tmp_path / "run.json").write_text(config.model_dump_json())
    assert load_config(tmp_path / "run.yaml") == config
    assert load_config(tmp_path / "run.json") == config
    assert load_config(tmp_path / "run.yaml").to_yaml() == config.to_yaml()


def test_bad_files_are_reported_with_their_path(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("box: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping, found list"):
        load_config(listing)


def test_overrides_apply_dotted_paths_and_revalidate():
    config = apply_overrides(RunConfig(), {"box.size": 64, "gravity.steps": 12})
    assert (config.box.size, config.gravity.steps) == (64.0, 12)
    wmap = apply_overrides(RunConfig(), {"cosmology.preset": "wmap9"})
    assert wmap.cosmology.h == PRESETS["wmap9"]["h"]
    with pytest.raises(ConfigError, match=r"box\.size"):
        apply_overrides(RunConfig(), {"box.size": -1})
    with pytest.raises(ConfigError, match="no section"):
        apply_overrides(RunConfig(), {"nothing.here": 1})


def test_schema_is_the_one_source_for_every_field():
    schema = RunConfig.model_json_schema()
    sections = set(schema["properties"])
    assert sections == {
        "cosmology",
        "box",
        "ics",
        "outputs",
        "gravity",
        "code",
        "resources",
        "metadata",
    }
    box = schema["$defs"]["Box"]["properties"]
    assert box["particles_per_side"]["maximum"] == 4096
    assert "Mpc/h" in box["size"]["description"]
    json.dumps(schema)  # serialisable for REST and widgets


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2e-9", 2e-9),
        ("[2e-9, 1.0]", [2e-9, 1.0]),  # YAML 1.1 alone leaves '2e-9' text
        ("[1E5, .5, -3, +4]", [1e5, 0.5, -3, 4]),
        ("{A_s: 2.1e-9, n: [1e-3, 7]}", {"A_s": 2.1e-9, "n": [1e-3, 7]}),
        ("[true, FALSE, null, none, ~]", [True, False, None, None, None]),
        # YAML 1.1's yes/on booleans and octal 010 are not the rule's
        ("[yes, on, 010, x y]", ["yes", "on", 10, "x y"]),
        # quoted values stay text, as a quoted value at the top never arises
        ("['2e-9', \"true\", '1']", ["2e-9", "true", "1"]),
        ("{a: }", {"a": None}),
        ("[1, 2", "[1, 2"),  # not YAML: text as typed
    ],
)
def test_nested_values_are_typed_by_the_top_level_rule(text, value):
    parsed = parse_value(text)
    assert parsed == value
    assert [type(x) for x in _leaves(parsed)] == [type(x) for x in _leaves(value)]


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_a_nested_float_override_reaches_the_engine_options():
    config = apply_overrides(
        RunConfig(code={"engine": "concept"}),
        {"code.options": parse_value("{A_s: 2.1e-9}")},
    )
    assert config.code.options["A_s"] == 2.1e-9
    config = apply_overrides(
        RunConfig(), {"outputs.redshifts": parse_value("[1e0, 0]")}
    )
    assert config.outputs.redshifts == [1.0, 0.0]


def test_config_hash_ignores_metadata_but_not_physics():
    a = RunConfig(metadata={"name": "one"})
    b = RunConfig(metadata={"name": "two"})
    c = RunConfig(cosmology={"sigma8": 0.9})
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != c.config_hash()


def test_direct_construction_reports_fields_the_same_way():
    with pytest.raises(ConfigError) as info:
        RunConfig(cosmology={"Omega0": 3.0}, box={"particles_per_side": 0})
    assert [e["loc"] for e in info.value.errors] == [
        "cosmology.Omega0",
        "box.particles_per_side",
    ]
    assert "allowed: a number in (0, 2]" in str(info.value)
    with pytest.raises(ConfigError, match="must be a mapping, found list"):
        validate_config([1, 2])


def test_import_simlab_loads_no_heavy_library():
    """``import simlab`` stays light: each sweep point's kernel and the CLI pay it."""
    import subprocess
    import sys

    code = (
        "import sys, simlab; "
        "print(sorted(m for m in ('distributed', 'xarray', 'scipy') "
        "if m in sys.modules)); "
        "print(sorted(set(simlab.__all__) - set(dir(simlab))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "[]"]
