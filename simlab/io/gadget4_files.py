"""Gadget4 HDF5 files with h5py alone: a snapshot's pieces, and a ParticleSet
written (snapshots, IC files) and read back whole.

Apart from the xarray backend (``simlab.io.gadget4``) so that the PM engine and IC
files, which need only these, pay for importing h5py and numpy, not xarray.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from simlab.__about__ import __version__
from simlab.errors import SnapshotError
from simlab.particles import (
    UNIT_LENGTH_IN_CM,
    UNIT_MASS_IN_G,
    UNIT_VELOCITY_IN_CM_PER_S,
    ParticleSet,
)

if TYPE_CHECKING:
    from simlab.config import Cosmology

#: Particle types of the Gadget4 layout (only PartType1, dark matter, is written).
NTYPES = 6
_PIECE = re.compile(r"^(?P<base>.+)\.(?P<index>\d+)\.hdf5$")

#: Per-dataset scaling attributes Gadget4 writes (value_cgs = v a^a h^h to_cgs).
SCALING = {
    "Coordinates": {
        "a_scaling": 1.0,
        "h_scaling": -1.0,
        "length_scaling": 1.0,
        "mass_scaling": 0.0,
        "velocity_scaling": 0.0,
        "to_cgs": UNIT_LENGTH_IN_CM,
    },
    "Velocities": {
        "a_scaling": 0.5,
        "h_scaling": 0.0,
        "length_scaling": 0.0,
        "mass_scaling": 0.0,
        "velocity_scaling": 1.0,
        "to_cgs": UNIT_VELOCITY_IN_CM_PER_S,
    },
}


def _header(particles: ParticleSet, counts: np.ndarray, nfiles: int) -> dict[str, Any]:
    mass = np.zeros(NTYPES)
    mass[1] = particles.mass
    total = np.zeros(NTYPES, dtype=np.uint64)
    total[1] = len(particles)
    return {
        "BoxSize": np.float64(particles.box_size),
        "MassTable": mass,
        "NumFilesPerSnapshot": np.int32(nfiles),
        "NumPart_ThisFile": counts.astype(np.uint64),
        "NumPart_Total": total,
        "Redshift": np.float64(1.0 / particles.a - 1.0),
        "Time": np.float64(particles.a),
        "Git_commit": np.bytes_(f"simlab {__version__}"),
        "Git_date": np.bytes_("unknown"),
    }


def _parameters(
    particles: ParticleSet, cosmology: Cosmology | None, extra: dict[str, Any] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "BoxSize": particles.box_size,
        "ComovingIntegrationOn": 1.0,
        "Hubble": 100.0,
        "UnitLength_in_cm": UNIT_LENGTH_IN_CM,
        "UnitMass_in_g": UNIT_MASS_IN_G,
        "UnitVelocity_in_cm_per_s": UNIT_VELOCITY_IN_CM_PER_S,
    }
    if cosmology is not None:
        params.update(
            Omega0=cosmology.Omega0,
            OmegaLambda=cosmology.OmegaLambda,
            OmegaBaryon=cosmology.OmegaBaryon,
            HubbleParam=cosmology.h,
        )
    params.update(extra or {})
    return params


def _attr(value: Any) -> Any:
    if isinstance(value, str):
        return np.bytes_(value)
    if isinstance(value, bool | int | float | np.number):
        return np.float64(value)
    return value


def _write_file(
    path: Path,
    particles: ParticleSet,
    rows: slice,
    header: dict[str, Any],
    parameters: dict[str, Any] | None,
    config: dict[str, Any] | None,
) -> None:
    """Write one file under a temporary name, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            group = f.create_group("Header")
            for key, value in header.items():
                group.attrs[key] = value
            for name, values in (("Parameters", parameters), ("Config", config)):
                if values is not None:
                    group = f.create_group(name)
                    for key, value in values.items():
                        group.attrs[key] = _attr(value)
            group = f.create_group("PartType1")
            box = np.float32(particles.box_size)
            pos = np.asarray(particles.positions[rows], dtype=np.float32)
            pos = np.mod(pos, box)
            pos[pos >= box] = 0.0  # float32 rounding can land exactly on L
            vel = np.asarray(particles.velocities[rows], dtype=np.float64)
            vel = (vel / np.sqrt(particles.a)).astype(np.float32)
            ids = np.asarray(particles.ids[rows])
            id_type = np.uint32 if ids.size == 0 or ids.max() < 2**32 else np.uint64
            for key, data in (("Coordinates", pos), ("Velocities", vel)):
                dset = group.create_dataset(key, data=data)
                for attr, value in SCALING[key].items():
                    dset.attrs[attr] = np.float64(value)
            group.create_dataset("ParticleIDs", data=ids.astype(id_type))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_snapshot(
    path: str | os.PathLike[str],
    particles: ParticleSet,
    *,
    nfiles: int = 1,
    cosmology: Cosmology | None = None,
    parameters: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    ic: bool = False,
) -> list[Path]:
    """Write ``particles`` in the Gadget4 HDF5 layout; return the files written.

    ``nfiles=1`` writes ``path`` itself. With ``nfiles > 1``, ``path`` is the base
    name (``.../snapdir_003/snapshot_003``) and the pieces are ``<base>.<i>.hdf5``,
    each holding a contiguous part of the particles. ``ic=True`` writes an initial
    conditions file for ICFormat 3 (Header and particles; no Config). Velocities are
    stored as v_pec / sqrt(a), Gadget4's convention. Each file appears complete or
    not at all.
    """
    path = Path(path)
    if nfiles < 1:
        raise ValueError(f"nfiles must be a positive integer, got {nfiles}")
    bounds = np.linspace(0, len(particles), nfiles + 1).astype(np.int64)
    params = _parameters(particles, cosmology, parameters)
    cfg = None if ic else {"PERIODIC": "", "NTYPES": NTYPES, **(config or {})}
    written = []
    path.parent.mkdir(parents=True, exist_ok=True)
    for i in range(nfiles):
        target = path if nfiles == 1 else path.with_name(f"{path.name}.{i}.hdf5")
        counts = np.zeros(NTYPES, dtype=np.uint64)
        counts[1] = bounds[i + 1] - bounds[i]
        header = _header(particles, counts, nfiles)
        rows = slice(int(bounds[i]), int(bounds[i + 1]))
        _write_file(target, particles, rows, header, params, cfg)
        written.append(target)
    return written


def snapshot_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every file of the snapshot at ``path``, in file order.

    ``path`` may be a single-file snapshot, any piece ``snapshot_003.1.hdf5`` of a
    multi-file snapshot, or its ``snapdir_003`` directory.
    """
    return output_files(path, "snapshot", "*.0.hdf5", "NumFilesPerSnapshot")


def output_files(
    path: str | os.PathLike[str], what: str, first_piece: str, count_key: str
) -> list[Path]:
    """Every file of a Gadget4 output (``what``: snapshot, group catalogue), given
    a single file, one of its pieces ``<base>.<i>.hdf5``, or the folder holding
    them (where the glob ``first_piece`` finds piece 0); ``count_key`` is the
    Header attribute with the number of pieces."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such {what}: {path}")
    if path.is_dir():
        pieces = sorted(path.glob(first_piece))
        if len(pieces) != 1:
            raise SnapshotError(
                f"{path}: expected one '{first_piece}' file in a {what} directory, "
                f"found {len(pieces)}"
            )
        path = pieces[0]
    match = _PIECE.match(path.name)
    if match is None:
        return [path]
    try:
        with h5py.File(path, "r") as f:
            expected = int(f["Header"].attrs[count_key])
    except (OSError, KeyError) as exc:
        raise SnapshotError(
            f"{path.name}: no readable Header/{count_key}; not a Gadget4 {what} ({exc})"
        ) from exc
    base = match["base"]
    files = [path.with_name(f"{base}.{i}.hdf5") for i in range(expected)]
    found = [f for f in files if f.exists()]
    if len(found) != expected:
        raise SnapshotError(
            f"{path.name}: Header/{count_key} is {expected} but "
            f"{len(found)} files match {base}.*.hdf5"
        )
    return files


def read_particles(path: str | os.PathLike[str]) -> ParticleSet:
    """Read the dark-matter particles of a snapshot or IC file, every piece of it,
    with peculiar velocities (Gadget4 stores v / sqrt(a))."""
    files = snapshot_files(path)
    positions, velocities, ids = [], [], []
    for file in files:
        try:
            with h5py.File(file, "r") as f:
                header = f["Header"].attrs
                if file == files[0]:
                    a = float(header["Time"])
                    box_size = float(header["BoxSize"])
                    mass = float(header["MassTable"][1])
                if int(header["NumPart_ThisFile"][1]) == 0:
                    continue
                group = f["PartType1"]
                positions.append(group["Coordinates"][...])
                velocities.append(group["Velocities"][...])
                ids.append(group["ParticleIDs"][...])
        except KeyError as exc:
            raise SnapshotError(f"{file.name}: no {exc.args[0]}") from None
        except OSError as exc:
            raise SnapshotError(f"{file.name}: cannot read ({exc})") from exc
    if not positions:
        raise SnapshotError(f"{Path(path).name}: no PartType1 particles")
    return ParticleSet(
        positions=np.concatenate(positions),
        velocities=np.concatenate(velocities).astype(np.float64) * np.sqrt(a),
        ids=np.concatenate(ids),
        mass=mass,
        box_size=box_size,
        a=a,
    )


def parameters_cosmology(attrs: dict[str, Any]) -> Cosmology:
    """The cosmology Gadget4 ran with, from a snapshot's ``Parameters/`` attributes
    (as simlab's backend puts them in a Dataset's attrs)."""
    from simlab.config import Cosmology

    return Cosmology(
        preset=None,
        Omega0=attrs["Parameters/Omega0"],
        OmegaLambda=attrs["Parameters/OmegaLambda"],
        OmegaBaryon=attrs["Parameters/OmegaBaryon"],
        h=attrs["Parameters/HubbleParam"],
        sigma8=attrs["Parameters/Sigma8"],
        n_s=attrs["Parameters/PrimordialIndex"],
    )
