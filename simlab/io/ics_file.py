"""Initial-condition files made elsewhere: their header and particles in simlab's units.

``ics.file`` may name what N-GenIC, MUSIC, monofonIC, Gadget4 or simlab wrote:
Gadget4 HDF5 (one file, any piece ``snapshot_ics_000.N.hdf5`` of a multi-file set,
or its ``snapdir``) or GADGET SnapFormat 1/2 (one file, or ``name.0`` of a
``name.N`` set). Only dark matter of one mass (type 1) is read.

Lengths are whatever the writer used; the file says so only when it carries
Gadget4's ``Parameters/UnitLength_in_cm``. Otherwise :func:`length_unit` takes the
unit that makes the file's box equal the configured one: Mpc/h, or kpc/h (the
GADGET default). Velocities are GADGET's v_peculiar / sqrt(a) in km/s, masses in
1e10 Msun/h, as every one of these writers stores them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from xarray.core import indexing

from simlab.errors import SnapshotError
from simlab.io import gadget_binary
from simlab.io.gadget4_files import snapshot_files
from simlab.particles import UNIT_LENGTH_IN_CM, ParticleSet

#: Relative tolerance of box and time comparisons with a config.
TOLERANCE = 1e-4
_BINARY_PIECE = re.compile(r"^(?P<base>.+)\.(?P<index>\d+)$")


@dataclass(frozen=True)
class ICFileHeader:
    """What an IC file says about itself, in the file's own length unit."""

    files: tuple[Path, ...]
    format: str
    n_particles: int
    #: particles of types other than 1 (gas, stars, ...), which simlab cannot run
    other_particles: int
    box_size: float
    a: float
    omega0: float | None = None
    omega_lambda: float | None = None
    h: float | None = None
    #: Mpc/h per length unit when the file records its unit, else None
    unit_mpc_h: float | None = None


def _positive(value: object) -> float | None:
    """A header number, or None where the writer left it 0 or out."""
    if value is None:
        return None
    number = float(np.asarray(value).ravel()[0])
    return number if number > 0 and math.isfinite(number) else None


def _binary_files(path: Path) -> list[Path]:
    """``path`` alone, or every ``base.N`` of a multi-file GADGET set."""
    numfiles = int(gadget_binary.scan(path).header["NumFiles"])
    match = _BINARY_PIECE.match(path.name)
    if numfiles <= 1 or match is None:
        return [path]
    files = [path.with_name(f"{match['base']}.{i}") for i in range(numfiles)]
    found = [f for f in files if f.is_file()]
    if len(found) != numfiles:
        raise SnapshotError(
            f"{path.name}: header NumFiles is {numfiles} but {len(found)} files "
            f"match {match['base']}.N"
        )
    return files


def _binary_header(path: Path) -> ICFileHeader:
    files = _binary_files(path)
    layouts = [gadget_binary.scan(f) for f in files]
    head = layouts[0].header
    counts = np.sum([lay.header["Npart"] for lay in layouts], axis=0)
    return ICFileHeader(
        files=tuple(files),
        format=f"GADGET SnapFormat {layouts[0].snapformat}",
        n_particles=int(counts[1]),
        other_particles=int(counts.sum() - counts[1]),
        box_size=float(head["BoxSize"]),
        a=float(head["Time"]),
        omega0=_positive(head["Omega0"]),
        omega_lambda=_positive(head["OmegaLambda"]),
        h=_positive(head["HubbleParam"]),
    )


def _hdf5_header(path: Path) -> ICFileHeader:
    files = snapshot_files(path)
    counts = np.zeros(6, dtype=np.int64)
    with h5py.File(files[0], "r") as f:
        head = dict(f["Header"].attrs)
        params = dict(f["Parameters"].attrs) if "Parameters" in f else {}
    for piece in files:
        with h5py.File(piece, "r") as f:
            this = np.asarray(f["Header"].attrs["NumPart_ThisFile"], dtype=np.int64)
            counts[: len(this)] += this

    def either(key: str) -> float | None:
        return _positive(head.get(key, params.get(key)))

    unit = _positive(params.get("UnitLength_in_cm"))
    return ICFileHeader(
        files=tuple(files),
        format="Gadget4 HDF5",
        n_particles=int(counts[1]),
        other_particles=int(counts.sum() - counts[1]),
        box_size=float(head["BoxSize"]),
        a=float(head["Time"]),
        omega0=either("Omega0"),
        omega_lambda=either("OmegaLambda"),
        h=either("HubbleParam"),
        unit_mpc_h=None if unit is None else unit / UNIT_LENGTH_IN_CM,
    )


def read_header(path: str | os.PathLike[str]) -> ICFileHeader:
    """The header of an IC file of any supported format; SnapshotError if none."""
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"no such file: {path}")
    try:
        if path.is_file() and gadget_binary.snapformat(path) > 0:
            return _binary_header(path)
        return _hdf5_header(path)
    except (OSError, KeyError) as exc:
        raise SnapshotError(
            f"{path.name}: neither Gadget4 HDF5 nor GADGET SnapFormat 1/2 initial "
            f"conditions ({exc})"
        ) from exc


def length_unit(header: ICFileHeader, box_size: float) -> float | None:
    """Mpc/h per file length unit: as recorded, else the one (Mpc/h or kpc/h)
    that makes the file's box ``box_size`` Mpc/h; None if neither does (a
    recorded unit is returned even if the boxes then differ).

    Examples
    --------
    >>> head = ICFileHeader((), "GADGET SnapFormat 2", 8, 0, 64000.0, 0.5)
    >>> length_unit(head, 64.0), length_unit(head, 100.0)
    (0.001, None)
    """
    if header.unit_mpc_h is not None:
        return header.unit_mpc_h
    for unit in (1.0, 1e-3):
        if math.isclose(header.box_size * unit, box_size, rel_tol=TOLERANCE):
            return unit
    return None


def read_ic_particles(header: ICFileHeader, unit: float) -> ParticleSet:
    """Every type-1 particle of the file(s), positions and box times ``unit``."""
    if header.format == "Gadget4 HDF5":
        from simlab.io.gadget4_files import read_particles

        particles = read_particles(header.files[0])
        positions, box = particles.positions, particles.box_size
        velocities, ids, mass = particles.velocities, particles.ids, particles.mass
    else:
        pieces = []
        for path in header.files:
            layout = gadget_binary.scan(path)
            arrays = gadget_binary.particle_arrays(layout).get(1, {})
            if "Masses" in arrays:
                raise SnapshotError(
                    f"{path.name}: type-1 particles of different masses; simlab "
                    "runs particles of one mass"
                )
            if arrays:
                every = indexing.BasicIndexer((slice(None),) * 2)
                pieces.append(
                    (
                        arrays["Coordinates"][every],
                        arrays["Velocities"][every],
                        arrays["ParticleIDs"][indexing.BasicIndexer((slice(None),))],
                    )
                )
            mass = float(layout.header["Massarr"][1])
        positions = np.concatenate([p[0] for p in pieces])
        velocities = np.concatenate([p[1] for p in pieces]).astype(np.float64)
        velocities *= np.sqrt(header.a)
        ids = np.concatenate([p[2] for p in pieces])
        box = header.box_size
    return ParticleSet(
        positions=np.asarray(positions, np.float64) * unit,
        velocities=velocities,
        ids=ids,
        mass=mass,
        box_size=box * unit,
        a=header.a,
    )
