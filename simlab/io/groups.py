"""Gadget4 FOF / Subfind catalogues (``fof_subhalo_tab_NNN``) as lazy xarray data.

The same three layers as :mod:`simlab.io.gadget4`: the array wrapper of that module
(one table column spanning every file, read on demand), :class:`GroupCatalogueStore`
(one ``CachingFileManager`` per file, counts from each file's Header) and
:class:`GroupCatalogueBackendEntrypoint` (``engine="gadget4_groups"``). ``Group``
rows are FOF groups (dimension ``halo``), ``Subhalo`` rows Subfind subhalos
(dimension ``subhalo``). Layout facts come from real catalogues
(``tests/data/gadget4-small/README.md``): datasets carry no unit attributes
(the snapshot's units apply), and a catalogue without groups has no ``Group``,
``Subhalo`` or ``IDs`` group at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import xarray as xr
from xarray.backends.locks import HDF5_LOCK
from xarray.core import indexing

from simlab.errors import SnapshotError
from simlab.io._backend import GroupedBackend, looks_like
from simlab.io.gadget4 import (
    HDF5_SIGNATURE,
    Gadget4ArrayWrapper,
    _decode,
)
from simlab.io.gadget4_files import output_files
from simlab.io.gadget4_names import GROUP_CATALOGUE
from simlab.io.remote import filesystem, hdf5_managers, is_url, output_paths

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fsspec import AbstractFileSystem
    from xarray.backends import CachingFileManager

#: What a catalogue is called, the glob of its piece 0, the Header count of pieces.
CATALOGUE_LAYOUT = GROUP_CATALOGUE.layout
#: Table → (Header count attribute per file, row dimension).
TABLES = {
    "Group": ("Ngroups_ThisFile", "halo"),
    "Subhalo": ("Nsubhalos_ThisFile", "subhalo"),
}
#: Units of the columns (Gadget4 internal units, those of the snapshots).
UNITS = {
    "Pos": "Mpc/h (comoving)",
    "CM": "Mpc/h (comoving)",
    "Vel": "km/s",
    "Mass": "1e10 Msun/h",
    "M_": "1e10 Msun/h",
    "R_": "Mpc/h (comoving)",
    "Rad": "Mpc/h (comoving)",
    "Vmax": "km/s",
    "VelDisp": "km/s",
}


def _is_catalogue_file(path: Path) -> bool:
    """HDF5 whose Header holds Ngroups_ThisFile (what snapshots never have)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != HDF5_SIGNATURE:
                return False
        with h5py.File(path, "r") as f:
            header = f.get("Header")
            return header is not None and "Ngroups_ThisFile" in header.attrs
    except (OSError, ValueError):
        return False


def catalogue_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every file of the catalogue at ``path`` (a piece, a single file, or its
    ``groups_NNN`` directory), in file order."""
    return output_files(path, *CATALOGUE_LAYOUT)


class GroupCatalogueStore:
    """Open files of one catalogue: header, per-file row counts, column layout."""

    def __init__(
        self, files: list[Path] | list[str], fs: AbstractFileSystem | None = None
    ) -> None:
        self.files = files
        #: file names for messages (``files`` are paths on ``fs`` when it is given)
        self.names = [Path(f).name for f in files]
        self.managers = hdf5_managers(files, fs)
        self.counts = {table: np.zeros(len(files), np.int64) for table in TABLES}
        self.columns: dict[str, dict[str, tuple[tuple[int, ...], np.dtype]]] = {
            table: {} for table in TABLES
        }
        self.attrs: dict[str, Any] = {}
        for i, manager in enumerate(self.managers):
            self._scan(i, manager)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
    ) -> GroupCatalogueStore:
        """Find the catalogue's files and read their metadata (no table data);
        ``path`` may be an fsspec URL, with ``storage_options`` for its filesystem.
        """
        if not is_url(path):
            return cls(catalogue_files(path))
        fs, root = filesystem(str(path), storage_options)
        files = output_paths(fs, root, *CATALOGUE_LAYOUT)
        return cls(files, fs)

    def _scan(self, index: int, manager: CachingFileManager) -> None:
        name = self.names[index]
        try:
            with HDF5_LOCK:
                f = manager.acquire()
                header = f["Header"].attrs
                for table, (count_key, _) in TABLES.items():
                    self.counts[table][index] = int(header[count_key])
                    if table in f:
                        for key, dset in f[table].items():
                            self.columns[table].setdefault(
                                key, (dset.shape[1:], dset.dtype)
                            )
                if index == 0:
                    self.attrs = {k: _decode(v) for k, v in header.items()}
                    for group in ("Parameters", "Config"):
                        if group in f:
                            self.attrs.update(
                                {
                                    f"{group}/{k}": _decode(v)
                                    for k, v in f[group].attrs.items()
                                }
                            )
        except KeyError as exc:
            raise SnapshotError(
                f"{name}: {exc}; not a Gadget4 group catalogue"
            ) from exc
        except OSError as exc:
            raise SnapshotError(f"{name}: cannot read ({exc})") from exc

    def table(self, table: str, drop: Iterable[str] = ()) -> xr.Dataset:
        """One table (``Group`` or ``Subhalo``) as a Dataset of lazy columns."""
        if table not in TABLES:
            raise SnapshotError(
                f"{self.names[0]}: no table {table!r}; tables: {', '.join(TABLES)}"
            )
        dim = TABLES[table][1]
        counts = self.counts[table]
        variables = {}
        for key, (tail, dtype) in self.columns[table].items():
            if key in drop:
                continue
            wrapper = Gadget4ArrayWrapper(self, f"{table}/{key}", counts, tail, dtype)
            dims = (dim, *(f"{dim}_{'xyz' if n == 3 else 'type'}" for n in tail))
            unit = next((u for part, u in UNITS.items() if part in key), None)
            attrs = {} if unit is None else {"units": unit}
            variables[key] = xr.Variable(
                dims, indexing.LazilyIndexedArray(wrapper), attrs
            )
        ds = xr.Dataset(variables, attrs={**self.attrs, "table": table})
        if f"{dim}_xyz" in ds.dims:
            ds = ds.assign_coords({f"{dim}_xyz": ["x", "y", "z"]})
        return ds

    def close(self) -> None:
        """Close every file this store opened."""
        for manager in self.managers:
            manager.close()


class GroupCatalogueBackendEntrypoint(GroupedBackend):
    """Open Gadget4 FOF/Subfind catalogues, single or multi-file, lazily.

    Picked automatically for HDF5 files whose Header has ``Ngroups_ThisFile`` (and
    for ``groups_NNN`` directories). ``group`` chooses the table: ``"Group"``
    (default, one row per FOF halo) or ``"Subhalo"``. An empty catalogue gives a
    table without columns whose attrs still hold the Header counts.

    See Also
    --------
    simlab.io.gadget4.Gadget4BackendEntrypoint, halo_particles
    """

    description = "Gadget4 FOF/Subfind group catalogues (simlab)"
    url = "https://github.com/simlab/simlab/blob/main/docs/codes/gadget4.md"
    open_dataset_parameters = (
        *GroupedBackend.open_dataset_parameters,
        "storage_options",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Cheap content check; never raises."""
        return looks_like(filename_or_obj, _is_catalogue_file)

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> xr.Dataset:
        """One table (default ``Group``) as a lazy Dataset; a URL is read through
        fsspec with ``storage_options``."""
        store = GroupCatalogueStore.open(filename_or_obj, storage_options)
        ds = store.table((group or "Group").strip("/"), drop_variables or ())
        ds.set_close(store.close)
        return ds

    def open_groups_as_dict(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> dict[str, xr.Dataset]:
        """Root (Header attrs) plus the ``Group`` and ``Subhalo`` tables."""
        store = GroupCatalogueStore.open(filename_or_obj, storage_options)
        groups = {"/": xr.Dataset(attrs=store.attrs)}
        for table in TABLES:
            groups[f"/{table}"] = store.table(table, drop_variables or ())
        groups["/"].set_close(store.close)
        return groups


def open_groups(
    path: str | os.PathLike[str], table: str = "Group", **kwargs: Any
) -> xr.Dataset:
    """Open one table of a Gadget4 group catalogue (``Group`` or ``Subhalo``);
    keywords (``storage_options``, ``chunks``) go to ``xr.open_dataset``."""
    return xr.open_dataset(
        path, engine=GroupCatalogueBackendEntrypoint, group=table, **kwargs
    )


def halo_particles(
    groups: xr.Dataset, snapshot: xr.Dataset, index: int, ptype: int = 1
) -> xr.Dataset:
    """The snapshot rows of FOF group (or subhalo) ``index`` of type ``ptype``.

    Gadget4 writes the snapshot belonging to a catalogue in group order, so the
    particles of row i are ``GroupOffsetType[i, t]`` onwards, ``GroupLenType[i, t]``
    of them (``Subhalo...`` columns for a Subhalo table). The snapshot must be the
    one written together with the catalogue (same number).
    """
    prefix = "Subhalo" if groups.attrs.get("table") == "Subhalo" else "Group"
    offsets, lengths = f"{prefix}OffsetType", f"{prefix}LenType"
    if offsets not in groups or lengths not in groups:
        raise SnapshotError(
            f"the catalogue has no {offsets}/{lengths} columns (found "
            f"{', '.join(groups.data_vars) or 'none'}); cannot link to particles"
        )
    n = groups.sizes[groups[offsets].dims[0]]
    if not 0 <= index < n:
        raise IndexError(f"row {index} out of range: the table has {n} rows")
    start = int(groups[offsets][index, ptype])
    count = int(groups[lengths][index, ptype])
    return snapshot.isel(particle=slice(start, start + count))
