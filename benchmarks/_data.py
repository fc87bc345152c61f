"""Synthetic inputs: clustered particles written as Gadget4-layout snapshots.

Positions are half uniform and half in 4096 Gaussian "haloes" whose sizes and
occupations follow power laws, so deposits hit crowded and empty cells alike and
spatial selections are uneven, as in a real late-time snapshot. Everything is
written once per (particles, files) into :data:`benchmarks._harness.DATA_DIR` with
simlab's own writer and reused by later runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks._harness import DATA_DIR

BOX_SIZE = 256.0  # Mpc/h


def clustered_positions(n_side: int, box_size: float = BOX_SIZE, seed: int = 9):
    """(n_side³, 3) float32 positions in [0, box_size): half in haloes, half uniform."""
    rng = np.random.default_rng(seed)
    n = n_side**3
    n_halo_particles = n // 2
    n_haloes = 4096
    weight = rng.pareto(1.0, n_haloes) + 1.0
    members = rng.multinomial(n_halo_particles, weight / weight.sum())
    centres = rng.uniform(0.0, box_size, (n_haloes, 3))
    radii = 0.3 * (box_size / 256.0) * (members / members.mean() + 0.1) ** (1 / 3)
    which = np.repeat(np.arange(n_haloes), members)
    halo = centres[which] + rng.normal(size=(n_halo_particles, 3)) * radii[which, None]
    field = rng.uniform(0.0, box_size, (n - n_halo_particles, 3))
    positions = np.concatenate([halo, field]).astype(np.float32)
    rng.shuffle(positions)
    np.mod(positions, np.float32(box_size), out=positions)
    positions[positions >= box_size] = 0.0
    return positions


def positions_file(n_side: int) -> Path:
    """A cached ``.npy`` of :func:`clustered_positions` for ``n_side``."""
    path = DATA_DIR / f"positions_{n_side}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, clustered_positions(n_side))
        tmp.replace(path)
    return path


def snapshot(n_side: int, nfiles: int) -> Path:
    """A cached Gadget4-layout snapshot of clustered particles; what to open it by.

    One file gives ``snapshot_000.hdf5``; several give the first piece
    ``snapdir_000/snapshot_000.0.hdf5`` (every reader accepts that name).
    """
    from simlab.config import Cosmology
    from simlab.io.gadget4_files import write_snapshot
    from simlab.particles import ParticleSet, particle_mass

    folder = DATA_DIR / f"snap_{n_side}_{nfiles}"
    if nfiles == 1:
        target = folder / "snapshot_000.hdf5"
    else:
        target = folder / "snapdir_000" / "snapshot_000.0.hdf5"
    if target.exists():
        return target
    positions = np.load(positions_file(n_side))
    rng = np.random.default_rng(n_side)
    particles = ParticleSet(
        positions=positions,
        velocities=rng.normal(0.0, 300.0, positions.shape).astype(np.float32),
        ids=np.arange(1, len(positions) + 1, dtype=np.uint32),
        mass=particle_mass(0.3, BOX_SIZE, len(positions)),
        box_size=BOX_SIZE,
        a=1.0,
    )
    write_snapshot(
        target if nfiles == 1 else target.parent / "snapshot_000",
        particles,
        nfiles=nfiles,
        cosmology=Cosmology(),
    )
    return target
