"""Helpers for tests of simlab and of code built on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from simlab.io.gadget4_files import write_snapshot
from simlab.particles import ParticleSet, particle_mass


def fake_particles(
    npart: int = 1000, box_size: float = 50.0, a: float = 0.5, seed: int = 0
) -> ParticleSet:
    """Uniform random particles with small random velocities and ids 1..N."""
    rng = np.random.default_rng(seed)
    return ParticleSet(
        positions=rng.uniform(0, box_size, (npart, 3)),
        velocities=rng.normal(0, 100.0, (npart, 3)),
        ids=np.arange(1, npart + 1, dtype=np.uint32),
        mass=particle_mass(0.3, box_size, npart),
        box_size=box_size,
        a=a,
    )


def fake_gadget4_snapshot(
    tmp_path: str | Path,
    npart: int = 1000,
    nfiles: int = 1,
    box_size: float = 50.0,
    a: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write a small Gadget4-layout snapshot; return what to open it by."""
    tmp_path = Path(tmp_path)
    particles = fake_particles(npart, box_size, a, seed)
    if nfiles == 1:
        path = tmp_path / "snapshot_000.hdf5"
        write_snapshot(path, particles)
        return path
    folder = tmp_path / "snapdir_000"
    folder.mkdir(parents=True, exist_ok=True)
    write_snapshot(folder / "snapshot_000", particles, nfiles=nfiles)
    return folder


def assert_snapshot_equal(a: xr.Dataset, b: xr.Dataset) -> None:
    """Same variables with bitwise-equal values and dtypes, same Header values."""
    assert set(a.data_vars) == set(b.data_vars), (set(a.data_vars), set(b.data_vars))
    for name in a.data_vars:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    for key in ("Time", "BoxSize", "NumPart_Total"):
        np.testing.assert_array_equal(a.attrs[key], b.attrs[key], err_msg=key)
