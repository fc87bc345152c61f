"""simlab's own opens hand xarray the backend class: no plugin discovery on the
first open in a fresh process, and the same names as the installed entry points."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import xarray as xr
import xarray.backends.plugins

from simlab.io.backends import BACKENDS, backend
from simlab.io.snapshots import open_snapshot
from tests.conftest import data_path

SNAPSHOT = "gadget4-small/ngenic32/output/snapdir_000/snapshot_000.0.hdf5"


def test_the_table_names_the_entry_points_of_pyproject():
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    points = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    assert {
        name: tuple(target.split(":"))
        for name, target in points["xarray.backends"].items()
    } == BACKENDS
    for name in BACKENDS:
        assert issubclass(backend(name), xr.backends.BackendEntrypoint)
    assert backend("h5netcdf") == "h5netcdf"  # other engines pass through to xarray


def test_open_snapshot_never_asks_xarray_for_its_plugins(monkeypatch):
    def discovery(*args, **kwargs):
        raise AssertionError("xarray's plugin discovery ran")

    monkeypatch.setattr(xarray.backends.plugins, "list_engines", discovery)
    with open_snapshot(data_path(SNAPSHOT)) as ds:
        assert ds.sizes["particle"] > 0 and "Coordinates" in ds
    with pytest.raises(AssertionError, match="discovery"):  # the patch is live
        xr.open_dataset(data_path(SNAPSHOT), engine="gadget4", group="PartType1")
