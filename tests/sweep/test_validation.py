"""Every point is checked against the notebook and RunConfig before anything runs."""

from __future__ import annotations

import json

import nbformat
import pytest

import simlab
from simlab.service.sweeps.validation import (
    SweepError,
    SweepValidationError,
    config_fields,
    field_names,
    grid_points,
    injected_parameters,
    notebook_parameters,
    validate_points,
)
from simlab.templates import template_path
from tests.sweep.conftest import small_config


def _nothing_created(root):
    return not root.exists() or list(root.rglob("status.json")) == []


def test_unknown_parameter_is_refused_before_any_notebook_starts(tmp_path):
    with pytest.raises(SweepValidationError) as info:
        simlab.sweep(
            "run_simulation",
            grid={"sigma8": [0.8, 0.9], "sigma_8": [0.8]},
            base=small_config(),
            root=tmp_path,
        )
    message = str(info.value)
    assert "unknown parameter 'sigma_8'" in message
    assert "point 0" in message and "point 1" in message
    assert "sigma8" in message.split("has:")[1]  # lists the notebook's parameters
    assert isinstance(info.value, ValueError)
    assert len(info.value.exceptions) == 2
    assert _nothing_created(tmp_path)
    assert not (tmp_path / "sweeps").exists()


def test_ill_typed_and_out_of_range_values_name_the_field(tmp_path):
    with pytest.raises(SweepValidationError) as info:
        simlab.sweep(
            "run_simulation",
            points=[
                {"sigma8": "high", "steps": 4},
                {"sigma8": -0.5, "steps": 4},
                {"sigma8": 0.8, "steps": 2.5},
            ],
            base=small_config(),
            root=tmp_path,
        )
    lines = str(info.value).splitlines()
    assert any("point 0: parameter sigma8 = 'high': expected float" in x for x in lines)
    assert any(
        "point 1: cosmology.sigma8 = -0.5" in x and "allowed: a number in (0, 3]" in x
        for x in lines
    )
    assert any("point 2: parameter steps = 2.5: expected int" in x for x in lines)
    assert _nothing_created(tmp_path)


def test_config_fields_map_bare_and_section_names():
    fields = config_fields()
    assert fields["Omega0"] == "cosmology.Omega0"
    assert fields["particles_per_side"] == "box.particles_per_side"
    assert fields["ics_seed"] == fields["seed"] == "ics.seed"
    # "name" exists only in metadata, "size" only in box: both bare names resolve
    assert fields["size"] == "box.size"


def test_points_get_validated_configs():
    plans = validate_points(
        template_path("run_simulation"),
        grid_points({"sigma8": [0.7, 0.9], "box_size": [100.0]}),
        small_config(),
    )
    configs = [plan.config for plan in plans]
    assert [c.cosmology.sigma8 for c in configs] == [0.7, 0.9]
    assert {c.box.size for c in configs} == {100.0}
    assert {c.ics.seed for c in configs} == {7}  # the base is kept


def test_a_config_field_the_notebook_does_not_declare_sets_the_run_only(tmp_path):
    template = template_path("run_simulation")
    declared = notebook_parameters(template)
    assert "h" not in declared and "run_dir" in declared
    (plan,) = validate_points(template, [{"h": 0.6, "sigma8": 0.7}], small_config())
    assert plan.config.cosmology.h == 0.6
    injected = injected_parameters(
        {"h": 0.6, "sigma8": 0.7}, plan.config, declared, tmp_path
    )
    assert "h" not in injected and injected["sigma8"] == 0.7
    assert injected["run_dir"] == str(tmp_path)


def test_a_notebook_without_run_dir_takes_only_its_declared_names(tmp_path):
    cell = nbformat.v4.new_code_cell("sigma8 = 0.8")
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "plain.ipynb"
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": kernel})
    nbformat.write(notebook, path)
    with pytest.raises(SweepValidationError) as info:
        validate_points(path, [{"h": 0.6}], small_config())
    assert "unknown parameter 'h' = 0.6; plain.ipynb has: sigma8" in str(info.value)
    assert "any RunConfig field" not in str(info.value)


def test_field_names_give_each_field_one_name():
    declared = notebook_parameters(template_path("run_simulation"))
    names = field_names(declared)
    assert set(names) == set(config_fields().values())
    assert len(set(names.values())) == len(names)
    assert names["box.size"] == "box_size"  # the notebook's name
    assert names["ics.seed"] == "seed" and names["gravity.mesh"] == "mesh"
    assert names["cosmology.h"] == "h"
    assert field_names()["box.size"] == "size"  # no notebook: the field's name


def test_template_without_parameters_cell_is_an_error(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(SweepError, match="no cell tagged 'parameters'"):
        simlab.sweep(str(path), grid={"x": [1, 2]}, root=tmp_path / "runs")
    assert _nothing_created(tmp_path / "runs")


def test_grid_and_points_are_exclusive_and_points_must_agree(tmp_path):
    with pytest.raises(ValueError, match="exactly one of grid"):
        simlab.sweep("run_simulation", root=tmp_path)
    with pytest.raises(ValueError, match=r"point 1 sets \['steps'\]"):
        simlab.sweep(
            "run_simulation", points=[{"sigma8": 0.8}, {"steps": 3}], root=tmp_path
        )
    with pytest.raises(ValueError, match=r"grid\['sigma8'\] = \[\]"):
        simlab.sweep("run_simulation", grid={"sigma8": []}, root=tmp_path)
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == "[]"


def test_cli_refuses_an_unknown_parameter_before_anything_runs(tmp_path):
    from click.testing import CliRunner

    from simlab.cli import main

    args = ["sweep", "run_simulation", "-p", "sigma8", "0.7", "0.8"]
    args += ["-p", "sigma_8", "0.9", "--root", str(tmp_path), "--cluster", "local"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "unknown parameter 'sigma_8' = 0.9" in result.output
    assert _nothing_created(tmp_path)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["-p", "sigma8"], "no values: sigma8"),
        (["0.7"], "'0.7': values must follow -p NAME"),
        (["-p"], "no parameter named"),
        (["-p", "sigma8", "0.7", "-p", "sigma8", "0.8"], "expected a new parameter"),
    ],
)
def test_cli_grid_syntax_errors(tmp_path, tokens, message):
    from click.testing import CliRunner

    from simlab.cli import main

    result = CliRunner().invoke(
        main, ["sweep", "run_simulation", *tokens, "--root", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert _nothing_created(tmp_path)
