"""RunForm: built from the schema, per-field errors while typing, YAML round trip."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import Field

from simlab.config import PRESETS, Box, RunConfig, load_config
from simlab.widgets.form import RunForm


def _schema_leaves(schema: dict, node: dict | None = None, prefix=()) -> set[str]:
    """Dotted paths of every leaf of a JSON schema, walked independently."""
    defs = schema.get("$defs", {})
    node = schema if node is None else node
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    if node.get("type") == "object" and "properties" in node:
        leaves: set[str] = set()
        for name, sub in node["properties"].items():
            leaves |= _schema_leaves(schema, sub, (*prefix, name))
        return leaves
    return {".".join(prefix)}


def test_form_covers_every_field_of_the_schema():
    form = RunForm()
    expected = _schema_leaves(RunConfig.model_json_schema())
    assert len(expected) > 30
    assert set(form.rows) == expected


def test_a_new_field_appears_without_widget_code():
    class WiderBox(Box):
        margin: float = Field(
            2.5, gt=0, le=10, description="buffer around the zoom region in Mpc/h"
        )

    class ExtendedConfig(RunConfig):
        box: WiderBox = Field(default_factory=WiderBox)

    form = RunForm(model=ExtendedConfig)
    row = form.rows["box.margin"]
    assert row.spec.label == "margin [Mpc/h]"
    assert row.input.value == 2.5
    assert "buffer around the zoom region" in row.help.value
    row.input.value = 20.0
    assert "less than or equal to 10" in row.error_message
    assert form.submit_button.disabled
    row.input.value = 3.0
    assert form.config.box.margin == 3.0


def test_labels_carry_units_and_help_the_allowed_range():
    form = RunForm()
    assert form.rows["box.size"].spec.label == "size [Mpc/h]"
    assert form.rows["cosmology.T_cmb"].spec.label == "T_cmb [K]"
    assert "0 &lt; Omega0 ≤ 2" in form.rows["cosmology.Omega0"].help.value
    assert form.rows["box.particles_per_side"].input.value == 64
    assert [v for _, v in form.rows["gravity.stepping"].input.options] == [
        "loga",
        "a",
        "mixed",
    ]


def test_invalid_value_shows_its_error_and_disables_submit():
    form = RunForm()
    assert form.valid and not form.submit_button.disabled
    omega = form.rows["cosmology.Omega0"]
    omega.input.value = 3.0
    assert not form.valid
    assert form.submit_button.disabled
    assert "allowed: a number in (0, 2]" in omega.error_message
    assert omega.error.layout.display != "none"
    assert form.rows["box.size"].error_message == ""
    assert form.tabs.titles[0].startswith("⚠")
    assert "cosmology.Omega0" in form.summary.value
    omega.input.value = 0.3
    assert form.valid and not form.submit_button.disabled
    assert omega.error_message == ""
    assert form.config.cosmology.Omega0 == 0.3


def test_cross_field_and_engine_errors_land_on_their_field():
    form = RunForm()
    form.rows["box.particles_per_side"].input.value = 32
    form.rows["gravity.mesh"].input.value = "16"
    assert "coarser than 2 x particles per side" in (
        form.rows["gravity.mesh"].error_message
    )
    form.rows["gravity.mesh"].input.value = ""
    form.rows["cosmology.OmegaBaryon"].input.value = 0.5
    assert "smaller than Omega0" in form.rows["cosmology.OmegaBaryon"].error_message
    form.rows["cosmology.OmegaBaryon"].input.value = 0.04
    form.rows["outputs.redshifts"].input.value = "1, 2, abc"
    assert "number values separated by commas" in (
        form.rows["outputs.redshifts"].error_message
    )
    form.rows["outputs.redshifts"].input.value = "1, 200"
    message = form.rows["outputs.redshifts"].error_message
    assert message.startswith("outputs.redshifts.1:") and "not in (a_start" in message
    assert form.submit_button.disabled


def test_preset_fills_its_section():
    form = RunForm()
    form.rows["cosmology.preset"].input.value = "wmap9"
    for name, value in PRESETS["wmap9"].items():
        assert form.rows[f"cosmology.{name}"].input.value == value
    assert form.config.cosmology.sigma8 == PRESETS["wmap9"]["sigma8"]


def test_form_config_equals_the_yaml_it_loads(tmp_path):
    data = {
        "cosmology": {"preset": "planck15", "sigma8": 0.79},
        "box": {"size": 64.0, "particles_per_side": 16},
        "ics": {"z_start": 24.0, "seed": 7, "lpt_order": 1},
        "outputs": {"redshifts": [3.0, 1.0, 0.0], "power_spectra": False},
        "gravity": {"steps": 12, "softening": 0.05},
        "code": {"options": {"checkpoint_every": 5}},
        "resources": {"cores": 1, "memory": "2GB"},
        "metadata": {"name": "round-trip", "tags": ["a", "b"], "project": "p1"},
    }
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump(data))
    form = RunForm()
    form.load_yaml(path)
    assert form.valid, form.errors
    assert form.config == load_config(path)
    assert form.config.cosmology.Omega0 == PRESETS["planck15"]["Omega0"]
    saved = form.save_yaml(tmp_path / "out.yaml")
    assert load_config(saved) == load_config(path)
    assert RunForm(load_config(saved)).config == form.config


def test_loading_an_invalid_file_shows_the_bad_fields(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("box:\n  size: -5\nmetadata:\n  name: 'has space'\n")
    form = RunForm()
    form.load_yaml(path)
    assert not form.valid
    assert "greater than 0" in form.rows["box.size"].error_message
    assert "pattern" in form.rows["metadata.name"].error_message
    assert form.rows["box.size"].input.value == -5.0


def test_load_button_reports_a_missing_file_in_the_form(tmp_path):
    form = RunForm()
    form.path.value = str(tmp_path / "nope.yaml")
    form.load_button.click()
    assert "cannot read" in form.message.value
    assert "nope.yaml" in form.message.value
    assert form.valid  # the form kept its values


def test_cost_estimate_follows_the_inputs():
    form = RunForm()
    before = form.estimate_line.value
    assert "memory ≈" in before and "time ≈" in before
    form.rows["box.particles_per_side"].input.value = 128
    assert form.estimate_line.value != before
    form.rows["cosmology.Omega0"].input.value = 5.0
    assert form.estimate_line.value == ""


def test_known_engines_and_profiles_are_offered():
    form = RunForm()
    assert "pm" in form.rows["code.engine"].input.options
    assert "local" in form.rows["resources.cluster"].input.options


def test_engine_options_follow_the_engine_chosen():
    """Each engine's declared options get their own inputs, checked by the engine."""
    from simlab.engines import registry

    code = {"engine": "gadget4", "executable": "/bin/true"}
    form = RunForm({"code": code, "box": {"particles_per_side": 16}})
    declared = {f"code.options.{n}" for n in registry.get("gadget4").options_schema()}
    assert set(form.option_rows) == declared
    assert form.rows["code.options"].layout.display == "none"
    memory = form.option_rows["code.options.MaxMemSize"]
    memory.input.value = "-5"
    assert not form.valid and form.submit_button.disabled
    assert "an integer in (0, 100000000]" in memory.error_message
    memory.input.value = "2000"
    form.option_rows["code.options.fof"].input.value = True
    assert form.valid
    assert form.config.code.options == {"MaxMemSize": 2000, "fof": True}
    form.rows["code.engine"].input.value = "pm"
    assert set(form.option_rows) == {
        "code.options.time_limit",
        "code.options.checkpoint_every",
        "code.options.allow_coarse_mesh",
    }
    assert form.valid and form.config.code.options == {}
    form.option_rows["code.options.checkpoint_every"].input.value = "10"
    assert form.config.code.options == {"checkpoint_every": 10}


def _form_texts(form: RunForm) -> list[str]:
    """Every help text and section caption of a form."""
    rows = [*form.rows.values(), *form.option_rows.values()]
    captions = [page.children[0].value for page in form.tabs.children]
    return [row.help.value for row in rows] + captions


@pytest.mark.parametrize("engine", ["pm", "gadget4", "concept"])
def test_help_text_is_text_with_limits_as_people_write_them(engine):
    form = RunForm({"code": {"engine": engine}})
    texts = _form_texts(form)
    for text in texts:
        assert "``" not in text and ":class:" not in text, text
        assert not re.search(r"\de[+-]\d", text), text  # no 1e+06, 9.22337e+18
        assert "MAX_OUTPUTS" not in text
    rows = {**form.rows, **form.option_rows}
    assert "<code>preset</code>" in form.tabs.children[0].children[0].value
    assert "\n" not in form.tabs.children[0].children[0].value
    assert rows["resources.cores"].help.value.endswith("1 ≤ cores ≤ 1,000,000</span>")
    seed = rows["ics.seed"].help.value
    assert "seed ≥ 0" in seed and "9,223" not in seed  # an int64 limit says nothing
    assert "<code>radiation</code>" in rows["cosmology.N_eff"].help.value
    assert "`" not in rows["cosmology.N_eff"].input.tooltip


def test_form_wraps_in_a_narrow_panel():
    form = RunForm()
    assert "simlab-form" in form._dom_classes
    css = form.children[0].value
    assert ".simlab-form .lm-TabBar-content { flex-wrap: wrap; }" in css
    assert "min-width: fit-content" in css
    for row in form.rows.values():
        line = row.children[0]
        assert line.layout.flex_flow == "row wrap"
        label, field_input, help_text = line.children
        assert label.layout.min_width and field_input.layout.min_width
        assert help_text.layout.flex.startswith("1 1")
    for button in (form.submit_button, form.save_button, form.load_button):
        assert button.layout.width == "auto"


def test_a_refused_submit_shows_the_services_message_at_its_field(tmp_path):
    import simlab

    form = RunForm(submit=lambda config: simlab.submit(config, cluster="nope"))
    assert form.submit() is None
    row = form.rows["resources.cluster"]
    assert "unknown cluster profile 'nope'; known profiles: local" in row.error_message
    assert "submission refused: 1 invalid field(s)" in form.message.value
    assert "Error:" not in form.message.value  # no exception class names
