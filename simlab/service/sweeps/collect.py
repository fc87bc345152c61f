"""Collecting a sweep: what every point's notebook recorded, as one xarray Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.__about__ import __version__
from simlab.dispatch.notebook_task import NOTEBOOK_FAILED
from simlab.state.rundir import now
from simlab.state.states import State

if TYPE_CHECKING:
    import xarray as xr

    from simlab.service.run import Run
    from simlab.service.sweeps.driver import Sweep


def point_state(status: dict[str, Any]) -> str:
    """A point's state: ``failed`` if its notebook failed, ``running`` while its
    notebook still runs after the run ended, else its run's state."""
    notebook = status.get("notebook") or {}
    if notebook.get("state") == NOTEBOOK_FAILED:
        return NOTEBOOK_FAILED
    if status["state"] == State.COMPLETED.value and not notebook:
        return State.RUNNING.value
    return status["state"]


#: Per-point provenance kept as coordinates of the collected Dataset.
PROVENANCE = (
    "run_id",
    "state",
    "config_hash",
    "simlab_version",
    "code_version",
    "notebook",
    "time",
)


def _point_provenance(run: Run) -> dict[str, str]:
    status = run.status
    notebook = status.get("notebook") or {}
    provenance = status.get("provenance") or {}
    return {
        "run_id": run.id,
        "state": point_state(status),
        "config_hash": provenance.get("config_hash") or run.config.config_hash(),
        "simlab_version": provenance.get("simlab_version", ""),
        "code_version": provenance.get("code_version", ""),
        "notebook": notebook.get("path", ""),
        "time": notebook.get("finished", status.get("updated", "")),
    }


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Recorded Datasets become one variable per data variable, ``name_var``."""
    import xarray as xr

    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, xr.Dataset):
            for var in value.data_vars:
                flat[name if var == name else f"{name}_{var}"] = value[var]
        else:
            flat[name] = value
    return flat


def _stack(name: str, values: list[Any]) -> xr.DataArray:
    """One variable over ``point``: missing (failed) points are NaN or ''."""
    import numpy as np
    import xarray as xr

    present = [v for v in values if v is not None]
    first = present[0]
    if isinstance(first, xr.DataArray):
        blank = xr.full_like(first, np.nan, dtype=float)
        arrays = [blank if v is None else v for v in values]
        return xr.concat(
            arrays, dim="point", join="outer", combine_attrs="drop_conflicts"
        )
    if all(isinstance(v, str) for v in present):
        data = np.array(["" if v is None else v for v in values], dtype=object)
    else:
        data = np.array([np.nan if v is None else v for v in values], dtype=float)
    return xr.DataArray(data, dims="point", name=name)


def collect(handle: Sweep) -> xr.Dataset:
    """Every point's recorded results over the sweep's dimensions (see
    :meth:`Sweep.collect`)."""
    import numpy as np
    import xarray as xr

    from simlab.service.results import load_results

    runs = handle.runs()
    provenance = [_point_provenance(run) for run in runs]
    results = [
        _flatten(load_results(run)) if p["state"] == State.COMPLETED.value else {}
        for run, p in zip(runs, provenance, strict=True)
    ]
    names: list[str] = []
    for values in results:
        names += [n for n in values if n not in names]
    dataset = xr.Dataset(
        {name: _stack(name, [values.get(name) for values in results]) for name in names}
    )
    coords: dict[str, Any] = {
        key: ("point", np.array([p[key] for p in provenance], dtype=object))
        for key in PROVENANCE
    }
    if handle.dims == ["point"]:
        coords["point"] = np.arange(len(runs))
        for key in handle.points[0]:
            coords[key] = ("point", [point[key] for point in handle.points])
        dataset = dataset.assign_coords(coords)
    else:
        for key in handle.dims:
            coords[key] = ("point", [point[key] for point in handle.points])
        dataset = dataset.assign_coords(coords)
        if len(handle.dims) == 1:
            dataset = dataset.swap_dims(point=handle.dims[0])
        else:
            dataset = dataset.set_index(point=handle.dims).unstack("point")
        grid = handle._data["grid"]
        dataset = dataset.reindex({key: grid[key] for key in handle.dims})
        dataset = dataset.transpose(*handle.dims, ...)
    dataset.attrs.update(
        sweep_id=handle.id,
        template=str(handle.template),
        sweep_created=handle._data["created"],
        collected=now(),
        simlab_version=__version__,
        points=len(runs),
        points_completed=sum(p["state"] == State.COMPLETED.value for p in provenance),
    )
    return dataset


def save_dataset(dataset: xr.Dataset, path: Path) -> None:
    """Write ``dataset`` to netCDF (h5netcdf) atomically."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        dataset.to_netcdf(tmp, engine="h5netcdf", mode="w")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
