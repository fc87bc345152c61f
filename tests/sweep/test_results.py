"""simlab.record: scalars to results.json, arrays to groups of results.nc."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

import simlab
from simlab.service.results import load_results
from tests.sweep.conftest import small_config


@pytest.fixture
def run(tmp_path):
    return simlab.create(small_config(), root=tmp_path)


def test_scalars_and_arrays_round_trip(run):
    pk = xr.DataArray(
        [3.0, 2.0, 1.0], coords={"k": [0.1, 0.2, 0.3]}, dims="k", attrs={"units": "x"}
    )
    simlab.record("power_spectrum", pk, run=run)
    simlab.record("ratio", np.float64(1.25), run=run)
    simlab.record("steps", np.int64(6), run=run.path)
    simlab.record("label", "fiducial", run=run)
    simlab.record("image", np.arange(6.0).reshape(2, 3), run=run)
    simlab.record(
        "profile",
        xr.Dataset({"rho": ("r", [1.0, 0.5]), "v": ("r", [0.0, 2.0])}),
        run=run,
    )
    raw = json.loads((run.path / "results.json").read_text())
    assert raw["ratio"] == 1.25 and raw["steps"] == 6 and raw["label"] == "fiducial"
    assert raw["power_spectrum"]["group"] == "power_spectrum"
    assert raw["power_spectrum"]["dims"] == {"k": 3}
    back = load_results(run)
    xr.testing.assert_identical(back["power_spectrum"], pk.rename("power_spectrum"))
    assert back["image"].dims == ("image_dim_0", "image_dim_1")
    np.testing.assert_array_equal(back["image"], np.arange(6.0).reshape(2, 3))
    assert sorted(back["profile"].data_vars) == ["rho", "v"]
    assert back["steps"] == 6 and isinstance(back["steps"], int)


def test_recording_again_replaces_and_a_scalar_drops_the_array(run):
    simlab.record("x", np.ones(4), run=run)
    simlab.record("x", np.zeros(2), run=run)
    assert load_results(run)["x"].values.tolist() == [0.0, 0.0]
    simlab.record("x", 3.0, run=run)
    assert load_results(run)["x"] == 3.0
    with xr.open_datatree(run.path / "results.nc", engine="h5netcdf") as tree:
        assert "x" not in tree.children


def test_default_target_is_the_working_directory(run, tmp_path, monkeypatch):
    monkeypatch.chdir(run.path)
    simlab.record("here", 1)
    assert load_results(run) == {"here": 1}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        simlab.record("there", 1)


def test_bad_names_and_values_are_refused_and_nothing_written(run):
    with pytest.raises(ValueError, match="name 'a b' is not allowed"):
        simlab.record("a b", 1, run=run)
    with pytest.raises(TypeError, match="cannot store a dict"):
        simlab.record("d", {"a": 1}, run=run)
    assert not (run.path / "results.json").exists()
    assert [p for p in os.listdir(run.path) if p.endswith(".tmp")] == []
