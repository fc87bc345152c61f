"""The launcher chain (form → monitor → viewer), the sweep builder and Run display."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest

import simlab
from simlab.config import RunConfig
from simlab.service.submission import create
from simlab.widgets import SweepBuilder, launcher
from simlab.widgets.form import RunForm
from simlab.widgets.interactive import InteractiveViewer
from simlab.widgets.schema import sections

SMALL = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "gravity": {"steps": 6},
    "resources": {"cores": 1},
    "metadata": {"name": "launched"},
}


@pytest.mark.slow
def test_launcher_submits_follows_and_shows_the_last_snapshot():
    app = launcher(SMALL, poll=0.2)
    assert app.tabs.titles == ("New run", "Runs", "Sweep")
    omega = app.form.rows["cosmology.Omega0"]
    omega.input.value = 3.0
    assert app.form.submit_button.disabled
    omega.input.value = 0.31
    app.form.submit_button.click()
    monitor = app.monitor
    assert monitor is not None and app.area.children == (monitor,)
    assert monitor.join(timeout=120)
    assert monitor.state == "completed" and monitor.progress.value == 100.0
    (viewer,) = monitor.viewer_area.children
    assert isinstance(viewer, InteractiveViewer)  # ipympl is in the test extra
    assert np.isfinite(viewer.image_array).any()
    assert monitor.run.config.cosmology.Omega0 == 0.31
    # the Runs tab followed the run's state changes without a manual refresh
    assert [(r["name"], r["state"]) for r in app.table.rows] == [
        ("launched", "completed")
    ]
    app.table.refresh()
    assert [r["name"] for r in app.table.rows] == ["launched"]


def test_sweep_builder_counts_the_grid_and_flags_bad_values():
    builder = SweepBuilder()
    assert builder.launch_button.disabled
    builder.add_parameter("sigma8", "0.7, 0.8, 0.9")
    builder.add_parameter("box_size", "64, 128")
    assert "3 × 2 = <b>6</b> run(s)" in builder.size.value
    grid, problems = builder.grid()
    assert grid == {"sigma8": [0.7, 0.8, 0.9], "box_size": [64.0, 128.0]}
    assert problems == [] and not builder.launch_button.disabled
    builder.add_parameter("particles_per_side", "16, many")
    row = builder.rows_box.children[-1]
    assert "&#x27;many&#x27; is not an integer" in row.error.value
    assert "problem(s)" in builder.size.value
    assert builder.launch_button.disabled
    builder._remove(row)
    assert not builder.launch_button.disabled


def test_sweep_builder_checks_each_value_as_typed_with_the_forms_message():
    builder = SweepBuilder()
    builder.add_parameter("Omega0", "0.3, 5")
    row = builder.rows_box.children[0]
    assert builder.launch_button.disabled  # before Launch, not after
    form = RunForm({"cosmology": {"Omega0": 5}})
    message = form.rows["cosmology.Omega0"].error_message
    assert "allowed: a number in (0, 2]" in message
    # the form's message, word for word (nothing about how the value was read)
    assert f">{html.escape(f'Omega0 = 5: {message}')}</span>" in row.error.value
    row.values.value = "0.3, 0.25"
    assert row.error.value == "" and not builder.launch_button.disabled
    row.values.value = "0.3, 0.3"
    assert "given twice" in row.error.value and builder.launch_button.disabled
    row.name.value = "transfer"
    row.values.value = "camb, ehu"
    assert "not one of eisenstein_hu" in row.error.value


def test_sweep_builder_waits_for_a_valid_base_form():
    form = RunForm({"cosmology": {"Omega0": 5.0}})
    builder = SweepBuilder(base=form)
    builder.add_parameter("sigma8", "0.7, 0.8")
    assert builder.launch_button.disabled
    assert "the base configuration is invalid" in builder.size.value
    assert "cosmology.Omega0" in builder.size.value
    form.rows["cosmology.Omega0"].input.value = 0.3
    builder.update()
    assert not builder.launch_button.disabled
    assert "<b>2</b> run(s)" in builder.size.value


def test_sweep_builder_offers_each_field_once_under_its_name():
    builder = SweepBuilder()
    names = list(builder.fields)
    paths = [spec.key for spec in builder.fields.values()]
    assert len(set(paths)) == len(paths) == len(names)  # no aliases
    sweepable = {
        spec.key
        for section in sections(RunConfig)
        for spec in section.fields
        if spec.kind in ("integer", "number", "enum", "boolean", "string")
    }
    assert set(paths) == sweepable  # every sweepable field is offered
    # the template's own names where it declares one, else the field's name
    assert builder.fields["box_size"].key == "box.size"
    assert builder.fields["steps"].key == "gravity.steps"
    assert builder.fields["mesh"].key == "gravity.mesh"
    assert builder.fields["seed"].key == "ics.seed"
    for alias in ("size", "gravity_steps", "gravity_mesh", "ics_seed"):
        assert alias not in builder.fields
    builder.add_parameter("h", "0.6, 0.7")
    labels = [label for label, _ in builder.rows_box.children[0].name.options]
    assert "h  (cosmology.h)" in labels


def test_launch_shows_what_only_the_sweep_can_tell(tmp_path):
    import dask.config

    builder = SweepBuilder()
    builder.template.value = "no_such_template"
    builder.add_parameter("sigma8", "0.8, 0.9")
    assert not builder.launch_button.disabled
    builder.launch_button.click()
    assert builder.sweep is None
    assert "no_such_template" in builder.message.value
    root = dask.config.get("simlab.run-root")
    assert not list(Path(root).glob("*/status.json"))  # nothing was started


def test_a_run_displays_as_html_outside_a_kernel(tmp_path):
    run = create(
        {"box": {"particles_per_side": 8}, "metadata": {"name": "shown"}}, root=tmp_path
    )
    html = run._repr_html_()
    assert run.id in html and ">created<" in html
    assert "none yet" in html
    assert "#" not in html.split("<b>", 1)[1]  # colours are the Lab theme's only
    run.cancel()
    assert ">cancelled<" in run._repr_html_()
    assert simlab.Run(run.path)._repr_html_().count("<tr>") == 6


def test_a_kernel_shows_a_run_as_a_live_monitor(tmp_path):
    """``import simlab`` in a kernel registers the monitor for Run, by name."""
    from IPython.core.formatters import MimeBundleFormatter

    import simlab as package
    from simlab.widgets.display import run_mimebundle

    formatter = MimeBundleFormatter()
    formatter.for_type_by_name("simlab.service.run", "Run", package._live_run)
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    data, _ = formatter(run)  # (bundle, metadata)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data.keys() == run_mimebundle(run).keys()
