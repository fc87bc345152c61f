"""Sweeps end to end on the embedded engine: executed notebooks, xarray results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import simlab
from simlab.cli import main
from simlab.state.catalog import Catalog
from tests.sweep.conftest import FRAGILE, small_config

pytestmark = pytest.mark.slow


def _errors(notebook_path):
    nb = json.loads(Path(notebook_path).read_text())
    return [
        out
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """The 3×2 sweep sigma8 × Omega0 of run_simulation, same seed everywhere."""
    root = tmp_path_factory.mktemp("grid")
    sweep = simlab.sweep(
        "run_simulation",
        grid={"sigma8": [0.7, 0.8, 0.9], "Omega0": [0.28, 0.31]},
        base=small_config(),
        parameters={"figures": False},
        root=root,
        name="grid",
        progress=False,
    )
    return sweep, sweep.collect()


def test_grid_sweep_keeps_every_executed_notebook(grid_sweep):
    sweep, _ = grid_sweep
    assert sweep.states() == ["completed"] * 6
    # each point's run is named after the sweep's base name and its values
    assert [run.config.metadata.name for run in sweep.runs()] == [
        f"grid-sigma8_{s8}-omega0_{om}" for s8 in (0.7, 0.8, 0.9) for om in (0.28, 0.31)
    ]
    for run in sweep.runs():
        notebook = run.path / "notebooks" / "run_simulation.ipynb"
        assert notebook.stat().st_size > 10_000
        assert _errors(notebook) == []
        assert run.config.metadata.sweep == sweep.id
    catalog = Catalog(sweep.root)
    catalog.sync()
    rows, total = catalog.query(sweep=sweep.id, state="completed")
    assert total == 6
    assert {r["id"] for r in rows} == {run.id for run in sweep.runs()}


def test_collect_has_one_dim_per_parameter_and_provenance(grid_sweep):
    sweep, ds = grid_sweep
    assert dict(ds["power_spectrum"].sizes) == {"sigma8": 3, "Omega0": 2, "k": 16}
    assert ds["sigma8"].values.tolist() == [0.7, 0.8, 0.9]
    assert ds["Omega0"].values.tolist() == [0.28, 0.31]
    point = ds.sel(sigma8=0.8, Omega0=0.31)
    run = simlab.Run(sweep.root / str(point["run_id"].item()))
    assert run.config.cosmology.sigma8 == 0.8 and run.config.cosmology.Omega0 == 0.31
    assert point["config_hash"].item() == run.config.config_hash()
    assert point["simlab_version"].item() == simlab.__version__
    assert point["code_version"].item() == simlab.__version__  # the pm engine's
    assert point["notebook"].item().endswith("notebooks/run_simulation.ipynb")
    assert point["time"].item().startswith("20")
    assert len(set(ds["config_hash"].values.ravel())) == 6
    saved = sweep.path / "results.nc"
    import xarray as xr

    with xr.open_dataset(saved, engine="h5netcdf") as back:
        np.testing.assert_allclose(back["power_spectrum"], ds["power_spectrum"])
        assert back.attrs["sweep_id"] == sweep.id


def test_low_k_power_scales_as_sigma8_squared(grid_sweep):
    _, ds = grid_sweep
    low = ds["power_spectrum"].isel(k=slice(0, 2)).mean("k")
    for omega in ds["Omega0"].values:
        column = low.sel(Omega0=omega)
        for s8 in (0.8, 0.9):
            measured = float(column.sel(sigma8=s8) / column.sel(sigma8=0.7))
            expected = (s8 / 0.7) ** 2
            assert measured == pytest.approx(expected, rel=0.05), (omega, s8)
    # a different Omega0 changes the shape, so the test is not trivially passing
    ratio = low.sel(Omega0=0.28) / low.sel(Omega0=0.31)
    assert not np.allclose(ratio, 1.0, rtol=0.01)


def test_cli_status_and_collect(grid_sweep):
    sweep, _ = grid_sweep
    runner = CliRunner()
    status = runner.invoke(main, ["sweep", "status", str(sweep.path)])
    assert status.exit_code == 0, status.output
    assert "completed 6" in status.output
    assert sum(line.endswith("completed") for line in status.output.splitlines()) == 6
    (sweep.path / "results.nc").unlink()
    collect = runner.invoke(main, ["sweep", "collect", str(sweep.path)])
    assert collect.exit_code == 0, collect.output
    assert (sweep.path / "results.nc").stat().st_size > 1000
    assert "power_spectrum" in collect.output


def test_failing_point_is_isolated_and_resume_reruns_only_it(tmp_path):
    marker = tmp_path / "broken"
    marker.write_text("break sigma8 > 0.85")
    sweep = simlab.sweep(
        str(FRAGILE),
        grid={"sigma8": [0.7, 0.8, 0.9]},
        parameters={"broken_marker": str(marker)},
        base=small_config(),
        root=tmp_path / "runs",
        progress=False,
    )
    sweep = simlab.Sweep(sweep.path)
    reasons = [run.status.get("reason") for run in sweep.runs()]
    assert sweep.states() == ["completed", "completed", "failed"], reasons
    broken = sweep.runs()[2]
    assert broken.state.value == "failed"
    assert "injected failure at sigma8=0.9" in broken.status["reason"]
    errors = _errors(broken.path / "notebooks" / "fragile.ipynb")
    assert [e["ename"] for e in errors] == ["RuntimeError"]
    assert "injected failure" in errors[0]["evalue"]
    ds = sweep.collect()
    assert np.isnan(ds["power_spectrum"].sel(sigma8=0.9)).all()
    assert np.isfinite(ds["power_spectrum"].sel(sigma8=[0.7, 0.8])).all()
    assert ds["state"].values.tolist() == ["completed", "completed", "failed"]

    before = [run.id for run in sweep.runs()]
    mtimes = [
        (run.path / "notebooks" / "fragile.ipynb").stat().st_mtime
        for run in sweep.runs()
    ]
    marker.unlink()  # the fix
    sweep.resume(progress=False)
    after = [run.id for run in sweep.runs()]
    assert after[:2] == before[:2] and after[2] != before[2]
    assert [
        (run.path / "notebooks" / "fragile.ipynb").stat().st_mtime
        for run in sweep.runs()[:2]
    ] == mtimes[:2]
    reasons = [run.status.get("reason") for run in sweep.runs()]
    assert sweep.states() == ["completed"] * 3, reasons
    assert simlab.Run(sweep.root / before[2]).state.value == "failed"  # kept
    ds = sweep.collect()
    assert np.isfinite(ds["power_spectrum"]).all()
    low = ds["power_spectrum"].isel(k=0)
    assert float(low.sel(sigma8=0.9) / low.sel(sigma8=0.7)) == pytest.approx(
        (0.9 / 0.7) ** 2, rel=0.05
    )


def test_scattered_points_collect_along_point(tmp_path):
    sweep = simlab.sweep(
        str(FRAGILE),
        points=[{"sigma8": 0.9}, {"sigma8": 0.6}],
        base=small_config(),
        root=tmp_path,
        progress=False,
    )
    ds = sweep.collect()
    assert ds["power_spectrum"].dims == ("point", "k")
    assert ds["sigma8"].dims == ("point",)
    assert ds["sigma8"].values.tolist() == [0.9, 0.6]
    # seed was recorded by the notebook itself, from the run's config
    assert ds["seed"].values.tolist() == [7, 7]
    low = ds["power_spectrum"].isel(k=0)
    assert float(low[0] / low[1]) == pytest.approx((0.9 / 0.6) ** 2, rel=0.05)
