"""CONCEPT files: the xarray backend ``engine="concept"``, writers and P(k) files.

- Snapshots: CONCEPT HDF5 (``snapshot_type = 'concept'``) and the GADGET binary
  files CONCEPT writes with ``snapshot_type = 'gadget'`` (SnapFormat 1 or 2, see
  :mod:`simlab.io.gadget_binary`) open as a DataTree with one group per component
  (``matter``) or GADGET particle type (``PartType1``), lazily.
- Writers put simlab's :class:`~simlab.particles.ParticleSet` in CONCEPT's HDF5
  layout or as a GADGET SnapFormat 2 file, the two forms CONCEPT reads as initial
  conditions (it aborts on Gadget4 HDF5).
- Power spectra: CONCEPT's ``powerspec_a=…`` text files, read by
  :func:`simlab.io.concept_powerspec.read_powerspec` (re-exported here) into the
  DataArray shape of :func:`simlab.analysis.power.power_spectrum`.

CONCEPT's units are Mpc, Gyr and 1e10 Msun, without h; its momenta are
``mom = m a² dx/dt`` (comoving x, cosmic t), so the peculiar velocity is
``mom / (m a)``. The layout facts come from ``tests/data/concept-small``.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import xarray as xr
from xarray.backends import BackendArray, CachingFileManager
from xarray.backends.locks import HDF5_LOCK
from xarray.core import indexing

from simlab.errors import SnapshotError
from simlab.io import gadget_binary
from simlab.io._backend import GroupedBackend
from simlab.io.concept_powerspec import powerspec_bins, read_powerspec
from simlab.particles import ParticleSet

if TYPE_CHECKING:
    from collections.abc import Iterable

    from simlab.config import Cosmology

__all__ = [
    "ConceptBackendEntrypoint",
    "is_concept_snapshot",
    "powerspec_bins",
    "read_particles",
    "read_powerspec",
    "read_time",
    "write_concept_snapshot",
    "write_gadget_snapshot",
]

logger = logging.getLogger(__name__)

#: CONCEPT's unit relations (src/commons.py): Julian year, IAU parsec.
SECONDS_PER_GYR = 1e9 * 365.25 * 86400.0
KM_PER_MPC = 1e6 * (648000.0 / math.pi) * 149597870700.0 / 1e3
#: 1 Mpc/Gyr in km/s (977.792…): CONCEPT velocity unit → km/s.
KMS_PER_MPC_GYR = KM_PER_MPC / SECONDS_PER_GYR
#: Root attributes CONCEPT writes and reads; it recognises its files by "Ωcdm".
ROOT_ATTRS = ("H0", "a", "boxsize", "unit length", "unit mass", "unit time")
OMEGA_B, OMEGA_CDM = "Ωb", "Ωcdm"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def hubble_h(H0_per_gyr: float) -> float:
    """h = H0 / (100 km/s/Mpc) from H0 in 1/Gyr (CONCEPT's ``H0`` attribute).

    Examples
    --------
    >>> round(hubble_h(0.06927852206019537), 12)  # the concept32 fixture
    0.6774
    """
    return H0_per_gyr * KMS_PER_MPC_GYR / 100.0


def is_concept_snapshot(path: str | os.PathLike[str]) -> bool:
    """An HDF5 file with CONCEPT's ``Ωcdm`` root attribute; never raises."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != HDF5_SIGNATURE:
                return False
        with h5py.File(path, "r") as f:
            return OMEGA_CDM in f.attrs
    except (OSError, ValueError):
        return False


def read_time(path: str | os.PathLike[str]) -> float:
    """Scale factor stored in a CONCEPT HDF5 or GADGET binary snapshot's header."""
    path = Path(path)
    if gadget_binary.snapformat(path) > 0:
        return float(gadget_binary.scan(path).header["Time"])
    if not is_concept_snapshot(path):
        raise SnapshotError(f"{path.name}: not a CONCEPT or GADGET binary snapshot")
    with h5py.File(path, "r") as f:
        return float(f.attrs["a"])


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


class ConceptArray(BackendArray):
    """One dataset of a CONCEPT snapshot, optionally scaled, read on demand."""

    def __init__(
        self,
        manager: CachingFileManager,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        scale: float | None = None,
    ) -> None:
        self.manager = manager
        self.name = name
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.scale = scale

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> np.ndarray:
        with HDF5_LOCK:
            data = np.asarray(self.manager.acquire()[self.name][key])
        return data if self.scale is None else data * self.scale


class ConceptStore:
    """An open CONCEPT HDF5 snapshot: root attributes and components."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manager = CachingFileManager(h5py.File, path, mode="r")
        self.assumptions: list[str] = []
        try:
            with HDF5_LOCK:
                f = self.manager.acquire()
                self.attrs = {k: _decode(v) for k, v in f.attrs.items()}
                missing = [k for k in (*ROOT_ATTRS, OMEGA_CDM) if k not in self.attrs]
                if missing:
                    raise SnapshotError(
                        f"{path.name}: root attributes {', '.join(missing)} missing; "
                        "not a CONCEPT snapshot"
                    )
                components = f.get("components")
                if components is None:
                    raise SnapshotError(f"{path.name}: no 'components' group")
                self.components = {
                    name: (
                        {k: _decode(v) for k, v in group.attrs.items()},
                        {k: (d.shape, d.dtype) for k, d in group.items()},
                    )
                    for name, group in components.items()
                }
        except SnapshotError:
            self.manager.close()
            raise
        except (OSError, KeyError, ValueError) as exc:
            self.manager.close()
            raise SnapshotError(f"{path.name}: cannot read ({exc})") from exc
        self._check_units()

    def _check_units(self) -> None:
        units = (
            self.attrs["unit length"],
            self.attrs["unit time"],
            self.attrs["unit mass"],
        )
        if units != ("Mpc", "Gyr", "10**(10)*m_sun"):
            raise SnapshotError(
                f"{self.path.name}: units {units} are not CONCEPT's defaults "
                "('Mpc', 'Gyr', '10**(10)*m_sun'); simlab reads only those"
            )

    def dataset_attrs(self) -> dict[str, Any]:
        """The file's attributes plus h, Ω_m and z, with assumptions made."""
        h = hubble_h(self.attrs["H0"])
        omega_m = self.attrs.get(OMEGA_B, 0.0) + self.attrs[OMEGA_CDM]
        return {
            **self.attrs,
            "h": h,
            "Omega0": omega_m,
            "z": 1.0 / self.attrs["a"] - 1.0,
            "snapshot_type": "concept",
            "simlab_assumptions": list(self.assumptions),
        }

    def component_dataset(self, name: str, drop: Iterable[str] = ()) -> xr.Dataset:
        """One component: ``pos``, ``mom`` and the derived peculiar ``velocity``."""
        if name not in self.components:
            raise SnapshotError(
                f"{self.path.name}: no component {name!r}; components: "
                f"{', '.join(self.components) or 'none'}"
            )
        attrs, fields = self.components[name]
        variables: dict[str, xr.Variable] = {}
        units = {
            "pos": ("Mpc (comoving)", "comoving position"),
            "mom": ("1e10 Msun Mpc/Gyr", "canonical momentum m a^2 dx/dt"),
        }
        for key, (shape, dtype) in fields.items():
            if key in drop:
                continue
            wrapper = ConceptArray(
                self.manager, f"components/{name}/{key}", shape, dtype
            )
            dims = ("particle", "xyz") if shape[1:] == (3,) else ("particle",)
            unit, long_name = units.get(key, ("", key))
            variables[key] = xr.Variable(
                dims,
                indexing.LazilyIndexedArray(wrapper),
                {"units": unit, "long_name": long_name} if unit else {},
            )
        if "mom" in fields and "velocity" not in drop:
            shape, dtype = fields["mom"]
            scale = KMS_PER_MPC_GYR / (float(attrs["mass"]) * float(self.attrs["a"]))
            wrapper = ConceptArray(
                self.manager, f"components/{name}/mom", shape, dtype, scale
            )
            variables["velocity"] = xr.Variable(
                ("particle", "xyz"),
                indexing.LazilyIndexedArray(wrapper),
                {
                    "units": "km/s",
                    "long_name": "peculiar velocity a dx/dt = mom / (mass a)",
                },
            )
        ds = xr.Dataset(variables, attrs={**self.dataset_attrs(), **attrs})
        if any("xyz" in v.dims for v in variables.values()):
            ds = ds.assign_coords(xyz=["x", "y", "z"])
        return ds

    def close(self) -> None:
        """Close the file."""
        self.manager.close()


def _gadget_groups(path: Path, drop: Iterable[str]) -> dict[str, xr.Dataset]:
    """A GADGET binary file as ``{"/": attrs, "/PartTypeN": Dataset}``."""
    layout = gadget_binary.scan(path)
    header = layout.header
    assumptions = [
        "GADGET binary: units assumed kpc/h, km/s, 1e10 Msun/h "
        "(CONCEPT's and GADGET's defaults)",
        "GADGET binary: velocities taken as GADGET's v_peculiar / sqrt(a)",
    ]
    attrs = {
        **header,
        "snapshot_type": "gadget",
        "SnapFormat": layout.snapformat,
        "simlab_assumptions": assumptions,
    }
    units = {
        "Coordinates": {"units": "kpc/h (comoving)"},
        "Velocities": {
            "units": "km/s",
            "note": "stored value is v_peculiar / sqrt(a)",
        },
        "Masses": {"units": "1e10 Msun/h"},
    }
    groups = {"/": xr.Dataset(attrs=attrs)}
    for ptype, arrays in gadget_binary.particle_arrays(layout).items():
        variables = {
            key: xr.Variable(
                ("particle", "xyz") if len(arr.shape) == 2 else ("particle",),
                indexing.LazilyIndexedArray(arr),
                units.get(key, {}),
            )
            for key, arr in arrays.items()
            if key not in drop
        }
        ds = xr.Dataset(variables, attrs=attrs)
        if any("xyz" in v.dims for v in variables.values()):
            ds = ds.assign_coords(xyz=["x", "y", "z"])
        groups[f"/PartType{ptype}"] = ds
    return groups


class ConceptBackendEntrypoint(GroupedBackend):
    """Open CONCEPT snapshots (HDF5 or GADGET binary) without reading particles.

    ``open_datatree`` gives one node per component (CONCEPT HDF5: ``matter``) or
    per GADGET particle type (``PartType1``). CONCEPT variables keep their file
    names and units (``pos`` in Mpc, ``mom`` in 1e10 Msun Mpc/Gyr) and gain a lazy
    ``velocity`` (peculiar, km/s); attrs hold the file's attributes plus ``h``,
    ``Omega0`` and ``z``.
    """

    description = "CONCEPT HDF5 and GADGET binary N-body snapshots (simlab)"
    url = "https://github.com/simlab/simlab/blob/main/docs/codes/concept.md"

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """CONCEPT HDF5 (``Ωcdm`` attribute) or GADGET SnapFormat 1/2; never raises."""
        try:
            path = Path(filename_or_obj)
            return path.is_file() and (
                is_concept_snapshot(path) or gadget_binary.snapformat(path) > 0
            )
        except (TypeError, OSError):
            return False

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        group: str | None = None,
    ) -> xr.Dataset:
        """One component (default: the first) or GADGET type as a lazy Dataset."""
        groups = self.open_groups_as_dict(
            filename_or_obj, drop_variables=drop_variables
        )
        names = [g for g in groups if g != "/"]
        wanted = "/" + (group or names[0].lstrip("/")).strip("/")
        if wanted not in groups:
            groups["/"].close()
            raise SnapshotError(
                f"{Path(filename_or_obj).name}: no group {wanted.lstrip('/')!r}; "
                f"groups: {', '.join(n.lstrip('/') for n in names)}"
            )
        ds = groups[wanted]
        ds.set_close(groups["/"].close)
        return ds

    def open_groups_as_dict(
        self, filename_or_obj: Any, *, drop_variables: Iterable[str] | None = None
    ) -> dict[str, xr.Dataset]:
        """Root (attrs only) plus one Dataset per component or particle type."""
        path = Path(filename_or_obj)
        if not path.is_file():
            raise FileNotFoundError(f"no such snapshot: {path}")
        drop = set(drop_variables or ())
        if gadget_binary.snapformat(path) > 0:
            return _gadget_groups(path, drop)
        if not is_concept_snapshot(path):
            raise SnapshotError(
                f"{path.name}: neither a CONCEPT HDF5 snapshot (no 'Ωcdm' root "
                "attribute) nor a GADGET SnapFormat 1/2 file"
            )
        store = ConceptStore(path)
        groups = {"/": xr.Dataset(attrs=store.dataset_attrs())}
        for name in store.components:
            groups[f"/{name}"] = store.component_dataset(name, drop)
        groups["/"].set_close(store.close)
        return groups


def read_particles(path: str | os.PathLike[str]) -> ParticleSet:
    """Particles of a CONCEPT HDF5 or GADGET binary snapshot, in simlab's units.

    Positions in Mpc/h, peculiar velocities in km/s, mass in 1e10 Msun/h, as the
    Gadget4 reader gives them, so every code's output compares directly. CONCEPT
    files must hold one particle component.
    """
    path = Path(path)
    if gadget_binary.snapformat(path) > 0:
        layout = gadget_binary.scan(path)
        header = layout.header
        arrays = gadget_binary.particle_arrays(layout)
        if list(arrays) != [1] or header["Massarr"][1] == 0:
            raise SnapshotError(
                f"{path.name}: simlab reads GADGET files with type-1 particles of "
                f"one mass only; Npart = {header['Npart']}"
            )
        everything = indexing.BasicIndexer((slice(None),))
        every_row = indexing.BasicIndexer((slice(None), slice(None)))
        a = float(header["Time"])
        positions = arrays[1]["Coordinates"][every_row] / gadget_binary.KPC_PER_MPC
        velocities = arrays[1]["Velocities"][every_row].astype(np.float64)
        return ParticleSet(
            positions=positions,
            velocities=velocities * np.sqrt(a),
            ids=arrays[1]["ParticleIDs"][everything],
            mass=float(header["Massarr"][1]),
            box_size=float(header["BoxSize"]) / gadget_binary.KPC_PER_MPC,
            a=a,
        )
    store = ConceptStore(path)
    try:
        particle_components = [
            name for name, (attrs, _) in store.components.items() if "N" in attrs
        ]
        if len(particle_components) != 1:
            raise SnapshotError(
                f"{path.name}: expected one particle component, found "
                f"{particle_components}"
            )
        with store.component_dataset(particle_components[0]) as ds:
            h = ds.attrs["h"]
            a = float(ds.attrs["a"])
            positions = ds["pos"].to_numpy() * h
            velocities = ds["velocity"].to_numpy()
            n = len(positions)
            ids = (
                ds["ids"].to_numpy()
                if "ids" in ds
                else np.arange(1, n + 1, dtype=np.uint32 if n < 2**32 else np.uint64)
            )
            return ParticleSet(
                positions=positions,
                velocities=velocities,
                ids=ids,
                mass=float(ds.attrs["mass"]) * h,
                box_size=float(ds.attrs["boxsize"]) * h,
                a=a,
            )
    finally:
        store.close()


def write_concept_snapshot(
    path: str | os.PathLike[str],
    particles: ParticleSet,
    cosmology: Cosmology,
    *,
    component: str = "matter",
) -> Path:
    """Write ``particles`` in CONCEPT's HDF5 snapshot layout (units without h).

    Positions go from Mpc/h to Mpc (÷ h), the mass from 1e10 Msun/h to 1e10 Msun
    (÷ h), and peculiar velocities v [km/s] to momenta
    ``mom = m a v / (977.79… km/s per Mpc/Gyr)``. The file appears complete or not
    at all. CONCEPT takes a_begin from its parameter file, not from this file.
    """
    path = Path(path)
    h = cosmology.h
    a = float(particles.a)
    mass = float(particles.mass) / h
    box = float(particles.box_size) / h
    positions = np.mod(np.asarray(particles.positions, np.float64) / h, box)
    positions[positions >= box] = 0.0
    momenta = np.asarray(particles.velocities, np.float64) * (
        mass * a / KMS_PER_MPC_GYR
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["H0"] = np.float64(100.0 * h / KMS_PER_MPC_GYR)
            f.attrs["a"] = np.float64(a)
            f.attrs["boxsize"] = np.float64(box)
            f.attrs["unit length"] = "Mpc"
            f.attrs["unit mass"] = "10**(10)*m_sun"
            f.attrs["unit time"] = "Gyr"
            f.attrs[OMEGA_B] = np.float64(cosmology.OmegaBaryon)
            f.attrs[OMEGA_CDM] = np.float64(cosmology.Omega0 - cosmology.OmegaBaryon)
            group = f.create_group("components").create_group(component)
            group.attrs["N"] = np.int64(len(particles))
            group.attrs["mass"] = np.float64(mass)
            group.attrs["species"] = "matter"
            group.create_dataset("pos", data=positions)
            group.create_dataset("mom", data=momenta)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_gadget_snapshot(
    path: str | os.PathLike[str],
    particles: ParticleSet,
    cosmology: Cosmology,
    *,
    fmt: int = 2,
) -> Path:
    """Write ``particles`` as a GADGET binary file the way CONCEPT reads it.

    kpc/h positions, v/sqrt(a) velocities in km/s, uint32 ids, type 1 with the
    mass in ``Massarr`` (1e10 Msun/h), one file.
    """
    a = float(particles.a)
    box = float(particles.box_size) * gadget_binary.KPC_PER_MPC
    positions = np.mod(
        np.asarray(particles.positions, np.float64) * gadget_binary.KPC_PER_MPC, box
    ).astype(np.float32)
    positions[positions >= np.float32(box)] = 0.0
    n = len(particles)
    header = {
        "Npart": [0, n, 0, 0, 0, 0],
        "Nall": [0, n % 2**32, 0, 0, 0, 0],
        "NallHW": [0, n // 2**32, 0, 0, 0, 0],
        "Massarr": [0.0, float(particles.mass), 0.0, 0.0, 0.0, 0.0],
        "Time": a,
        "Redshift": 1.0 / a - 1.0,
        "NumFiles": 1,
        "BoxSize": box,
        "Omega0": cosmology.Omega0,
        "OmegaLambda": cosmology.OmegaLambda,
        "HubbleParam": cosmology.h,
    }
    velocities = np.asarray(particles.velocities, np.float64) / np.sqrt(a)
    return gadget_binary.write_gadget_binary(
        path, positions, velocities, particles.ids, header, fmt=fmt
    )
