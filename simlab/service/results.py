"""Values recorded by notebooks into a run directory, and reading them back.

``simlab.record(name, value)`` is the role scrapbook used to play: scalars (numbers,
booleans, text) go to ``results.json``; arrays, DataArrays and Datasets go to
``results.nc`` (h5netcdf), one netCDF group per name so each keeps its own
dimensions and coordinates (P(k) over ``k``, a map over ``x, y``). ``results.json``
lists every name, with a pointer to its group for arrays, so one file says what a
run recorded. Both files are replaced atomically under a lock, so readers never see
half a write and concurrent records do not lose each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import numbers
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.state.rundir import write_json_atomic

if TYPE_CHECKING:
    import xarray as xr

    from simlab.service.run import Run

RESULTS_JSON = "results.json"
RESULTS_NC = "results.nc"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _target(run: str | Path | Run | None) -> Path:
    """The run directory to record into: ``run``, else the working directory.

    ``simlab.sweep`` executes each notebook with its run directory as working
    directory, so a bare ``record(name, value)`` lands in the right run.
    """
    path = Path.cwd() if run is None else Path(getattr(run, "path", run))
    if not (path / "status.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a run directory (no status.json): pass run= to "
            "simlab.record, or execute the notebook through simlab.sweep"
        )
    return path


@contextlib.contextmanager
def _locked(rundir: Path) -> Iterator[None]:
    with open(rundir / ".results.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _scalar(value: Any) -> bool | int | float | str | None:
    """``value`` as a JSON scalar, or None when it is not one."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    shape = getattr(value, "shape", None)
    if shape == () and hasattr(value, "item"):
        return _scalar(value.item())
    return None


def _as_dataset(name: str, value: Any) -> xr.Dataset:
    """An array-like value as a Dataset holding variable ``name`` (or its own vars)."""
    import numpy as np
    import xarray as xr

    if isinstance(value, xr.Dataset):
        return value
    if isinstance(value, xr.DataArray):
        return value.rename(name).to_dataset()
    array = np.asarray(value)
    if array.dtype == object or array.ndim == 0:
        raise TypeError(
            f"simlab.record({name!r}, ...): cannot store a {type(value).__name__}; "
            "allowed: a number, bool, str, numpy array, xarray DataArray or Dataset"
        )
    dims = [f"{name}_dim_{i}" for i in range(array.ndim)]
    return xr.Dataset({name: (dims, array)})


def record(name: str, value: Any, *, run: str | Path | Run | None = None) -> None:
    """Store ``value`` under ``name`` in a run's results (replacing an earlier one).

    Parameters
    ----------
    name
        a Python identifier (it becomes a variable of ``Sweep.collect()``)
    value
        a number, bool or str (kept in ``results.json``), or a numpy array, xarray
        DataArray or Dataset (kept as the netCDF group ``name`` of ``results.nc``)
    run
        the run directory or :class:`~simlab.Run`; default: the working directory,
        which is the run directory when the notebook runs in a sweep

    Examples
    --------
    >>> import simlab, numpy as np
    >>> config = {"box": {"particles_per_side": 8}}
    >>> run = simlab.create(config, root=getfixture("tmp_path"))
    >>> simlab.record("growth", 1.5, run=run)
    >>> simlab.record("spectrum", np.arange(3.0), run=run)
    >>> load_results(run)["growth"], load_results(run)["spectrum"].values
    (1.5, array([0., 1., 2.]))
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"simlab.record: name {name!r} is not allowed; use a Python identifier "
            "of at most 64 characters"
        )
    rundir = _target(run)
    entry: Any = _scalar(value)
    with _locked(rundir):
        results = _read_json(rundir)
        if entry is None:
            dataset = _as_dataset(name, value)
            _write_group(rundir, name, dataset)
            entry = {
                "netcdf": RESULTS_NC,
                "group": name,
                "variables": sorted(str(v) for v in dataset.data_vars),
                "dims": {str(k): int(v) for k, v in dataset.sizes.items()},
            }
        elif isinstance(results.get(name), dict) and "netcdf" in results[name]:
            _write_group(rundir, name, None)
        results[name] = entry
        write_json_atomic(rundir / RESULTS_JSON, results)


def _read_json(rundir: Path) -> dict[str, Any]:
    path = rundir / RESULTS_JSON
    return json.loads(path.read_text()) if path.exists() else {}


def _write_group(rundir: Path, name: str, dataset: xr.Dataset | None) -> None:
    """Rewrite ``results.nc`` with group ``name`` set to ``dataset`` (or dropped)."""
    import xarray as xr

    path = rundir / RESULTS_NC
    groups: dict[str, xr.Dataset] = {}
    if path.exists():
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            groups = {
                node.name: node.to_dataset().load()
                for node in tree.children.values()
                if node.name != name
            }
    if dataset is not None:
        groups[name] = dataset
    fd, tmp = tempfile.mkstemp(dir=rundir, prefix=f".{RESULTS_NC}.", suffix=".tmp")
    os.close(fd)
    try:
        xr.DataTree.from_dict(groups).to_netcdf(tmp, engine="h5netcdf", mode="w")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(run: str | Path | Run) -> dict[str, Any]:
    """Everything a run recorded: scalars as Python values, arrays as xarray objects.

    A name recorded as a DataArray or plain array comes back as a DataArray; a
    Dataset comes back as a Dataset.
    """
    import xarray as xr

    rundir = Path(getattr(run, "path", run))
    results = _read_json(rundir)
    out: dict[str, Any] = {}
    tree = None
    try:
        for name, entry in results.items():
            if isinstance(entry, dict) and "netcdf" in entry:
                if tree is None:
                    tree = xr.open_datatree(rundir / RESULTS_NC, engine="h5netcdf")
                dataset = tree[entry["group"]].to_dataset().load()
                out[name] = (
                    dataset[name] if list(dataset.data_vars) == [name] else dataset
                )
            else:
                out[name] = entry
    finally:
        if tree is not None:
            tree.close()
    return out
