"""Conveniences over the gadget4 backend: one snapshot, a run's snapshots, a series."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simlab.io.backends import backend
from simlab.io.gadget4_names import SNAPSHOT


def open_snapshot(path: str | Path, group: str = "PartType1", **kwargs) -> xr.Dataset:
    """One particle type of a Gadget4-layout snapshot as a lazy Dataset."""
    return xr.open_dataset(path, engine=backend("gadget4"), group=group, **kwargs)


def find_snapshots(directory: str | Path) -> list[Path]:
    """One path per snapshot, sorted by number: ``snapshot_NNN.hdf5``, or the
    first piece ``snapdir_NNN/snapshot_NNN.0.hdf5`` of a multi-file one.

    ``directory`` is an output folder or a run directory holding ``output/``.
    """
    directory = Path(directory)
    if (directory / "output").is_dir():
        directory = directory / "output"
    return list(SNAPSHOT.find(directory).values())


def open_series(path: str | Path, group: str = "PartType1") -> xr.Dataset:
    """All snapshots of a run folder along a ``snapshot`` dimension with ``a`` and
    ``z`` (:func:`stack_snapshots` of :func:`find_snapshots`)."""
    snapshots = find_snapshots(path)
    if not snapshots:
        raise FileNotFoundError(f"no snapshot_NNN.hdf5 or snapdir_NNN in {path}")
    return stack_snapshots(snapshots, group)


def stack_snapshots(
    snapshots: Sequence[str | Path], group: str = "PartType1", **kwargs: Any
) -> xr.Dataset:
    """Snapshots (paths or URLs, in time order) along a ``snapshot`` dimension
    with ``a`` and ``z``; ``kwargs`` (``storage_options``) go to each opening.

    Particles are put in ParticleIDs order in every snapshot, so index i is the same
    particle at every time. Each snapshot stays lazy (dask) until used; the ID sort
    reads the IDs once per snapshot.
    """
    datasets = []
    for number, snap in enumerate(snapshots):
        ds = open_snapshot(snap, group=group, chunks={}, **kwargs)
        order = np.argsort(ds.ParticleIDs.values, kind="stable")
        ds = ds.isel(particle=order)
        datasets.append(
            ds.expand_dims(snapshot=[number]).assign_coords(
                a=("snapshot", [ds.attrs["Time"]]),
                z=("snapshot", [ds.attrs["Redshift"]]),
            )
        )
    return xr.concat(datasets, dim="snapshot", combine_attrs="drop_conflicts")
