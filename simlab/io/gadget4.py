"""Gadget4 HDF5 snapshots: the xarray backend ``engine="gadget4"`` (the writer is
``simlab.io.gadget4_writer``).

Three layers, as xarray's own backends: :class:`Gadget4ArrayWrapper` (one particle
field across every file of a snapshot, read lazily), :class:`Gadget4Store` (one
``CachingFileManager`` per file, so datasets pickle and travel to dask workers) and
:class:`Gadget4BackendEntrypoint`. The layout facts come from real Gadget4 outputs
(``tests/data/gadget4-small/README.md``).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import xarray as xr
from xarray.backends import BackendArray, CachingFileManager
from xarray.backends.locks import HDF5_LOCK
from xarray.core import indexing

from simlab.errors import SnapshotError
from simlab.io._backend import GroupedBackend, looks_like
from simlab.io.gadget4_files import NTYPES, snapshot_files
from simlab.io.remote import filesystem, hdf5_managers, is_url, output_paths
from simlab.particles import (
    UNIT_LENGTH_IN_CM,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fsspec import AbstractFileSystem


logger = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Most particles per dask chunk of a lazily opened snapshot (48 MB of float32
#: positions): big enough that a task's overhead is small, small enough for a worker.
CHUNK_PARTICLES = 2**22
#: Header attributes Gadget4 needs in an IC file (ICFormat 3), as observed.
REQUIRED_HEADER = (
    "NumPart_ThisFile",
    "NumPart_Total",
    "MassTable",
    "Time",
    "Redshift",
    "BoxSize",
    "NumFilesPerSnapshot",
)
_LENGTH_UNITS = {3.085678e24: "Mpc/h", 3.085678e21: "kpc/h"}


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return [v.decode(errors="replace") for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_snapshot_file(path: Path) -> bool:
    """HDF5 with a Header holding NumPart_ThisFile and no group-catalogue marks."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != HDF5_SIGNATURE:
                return False
        with h5py.File(path, "r") as f:
            header = f.get("Header")
            return (
                header is not None
                and "NumPart_ThisFile" in header.attrs
                and "Ngroups_ThisFile" not in header.attrs
            )
    except (OSError, ValueError):
        return False


def particle_chunks(
    counts: np.ndarray, chunk_rows: int = 1, target: int = CHUNK_PARTICLES
) -> tuple[int, ...]:
    """Dask chunks along ``particle`` that never cross a file and hold at most
    ``target`` rows, in whole HDF5 chunks of ``chunk_rows`` rows where possible,
    so each task reads contiguous blocks of one file.

    Examples
    --------
    >>> particle_chunks(np.array([5, 0, 3]), target=4)
    (4, 1, 3)
    """
    step = max(target // chunk_rows, 1) * chunk_rows
    sizes = [
        min(step, int(count) - start)
        for count in counts
        for start in range(0, int(count), step)
    ]
    return tuple(sizes) or (0,)


#: What a scan of an unchanged local snapshot found, so opening it again reads no
#: metadata (the scan was 5 of a warm open's 8 ms): keyed by each file's path,
#: inode, size and modification time; the last :data:`SCANS_KEPT` snapshots.
SCANS_KEPT = 64
_scans: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
_scans_lock = threading.Lock()
#: Attributes a scan sets.
_SCANNED = ("attrs", "assumptions", "counts", "fields", "chunk_rows", "length_unit")


def _files_key(files: list[Path] | list[str]) -> tuple | None:
    """Identity of local files as they are now, or None if one cannot be stat'ed."""
    try:
        stats = [os.stat(f) for f in files]
    except OSError:
        return None
    return tuple(
        (os.fspath(f), s.st_ino, s.st_size, s.st_mtime_ns)
        for f, s in zip(files, stats, strict=True)
    )


class Gadget4Store:
    """Open files of one snapshot, with header, parameters and per-file counts."""

    def __init__(
        self, files: list[Path] | list[str], fs: AbstractFileSystem | None = None
    ) -> None:
        self.files = files
        #: file names for messages (``files`` are paths on ``fs`` when it is given)
        self.names = [Path(f).name for f in files]
        self.managers = hdf5_managers(files, fs)
        self.attrs: dict[str, Any] = {}
        self.assumptions: list[str] = []
        self.counts = np.zeros((len(files), NTYPES), dtype=np.int64)
        self.fields: dict[str, dict[str, tuple[tuple[int, ...], np.dtype, dict]]] = {}
        #: rows per HDF5 chunk of each dataset ("PartType1/Coordinates"), if chunked
        self.chunk_rows: dict[str, int] = {}
        key = _files_key(files) if fs is None else None
        with _scans_lock:
            found = _scans.get(key) if key is not None else None
        if found is not None:
            self.__dict__.update(copy.deepcopy(found))
            return
        for i, manager in enumerate(self.managers):
            self._scan(i, manager)
        if key is not None:
            scanned = copy.deepcopy({name: getattr(self, name) for name in _SCANNED})
            with _scans_lock:
                _scans[key] = scanned
                while len(_scans) > SCANS_KEPT:
                    _scans.popitem(last=False)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
    ) -> Gadget4Store:
        """Find the snapshot's files and read their metadata (no particle data).

        ``path`` may be an fsspec URL (``s3://bucket/run/output/snapshot_003.hdf5``),
        read in cached blocks; ``storage_options`` go to its filesystem.
        """
        if not is_url(path):
            return cls(snapshot_files(path))
        fs, root = filesystem(str(path), storage_options)
        files = output_paths(fs, root, "snapshot", "*.0.hdf5", "NumFilesPerSnapshot")
        return cls(files, fs)

    def _scan(self, index: int, manager: CachingFileManager) -> None:
        name = self.names[index]
        try:
            with HDF5_LOCK:
                f = manager.acquire()
                if "Header" not in f:
                    raise SnapshotError(
                        f"{name}: no Header group (found {sorted(f)}); "
                        "not a Gadget4 snapshot"
                    )
                header = f["Header"].attrs
                missing = [
                    k
                    for k in ("NumPart_ThisFile", "BoxSize", "Time")
                    if k not in header
                ]
                if missing:
                    raise SnapshotError(f"{name}: Header lacks {', '.join(missing)}")
                self.counts[index] = header["NumPart_ThisFile"]
                if index == 0:
                    self._read_attrs(f)
                for name in sorted(k for k in f if k.startswith("PartType")):
                    group = f[name]
                    fields = self.fields.setdefault(name, {})
                    for key in group:
                        if key not in fields:
                            dset = group[key]
                            fields[key] = (dset.shape[1:], dset.dtype, dict(dset.attrs))
                            if dset.chunks:
                                self.chunk_rows[f"{name}/{key}"] = dset.chunks[0]
        except SnapshotError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise SnapshotError(f"{name}: cannot read ({exc})") from exc

    def _read_attrs(self, f: h5py.File) -> None:
        self.attrs = {k: _decode(v) for k, v in f["Header"].attrs.items()}
        for group in ("Parameters", "Config"):
            if group in f:
                self.attrs.update(
                    {f"{group}/{k}": _decode(v) for k, v in f[group].attrs.items()}
                )
        unit = self.attrs.get("Parameters/UnitLength_in_cm")
        if unit is None:
            self.assumptions.append(
                "no Parameters group: units assumed Mpc/h, 1e10 Msun/h, km/s"
            )
            logger.info("%s: %s", self.names[0], self.assumptions[-1])
            unit = UNIT_LENGTH_IN_CM
        self.length_unit = _LENGTH_UNITS.get(float(unit), f"{float(unit):g} cm/h")
        if "Redshift" not in self.attrs:
            self.attrs["Redshift"] = 1.0 / self.attrs["Time"] - 1.0
            self.assumptions.append("no Header/Redshift: taken as 1/Time - 1")

    def group_dataset(self, group: str, drop: Iterable[str] = ()) -> xr.Dataset:
        """One particle type as a Dataset of lazy variables."""
        if group not in self.fields:
            raise SnapshotError(
                f"{self.names[0]}: no particles of {group}; groups with "
                f"particles: {', '.join(self.fields) or 'none'}"
            )
        ptype = int(group.removeprefix("PartType"))
        counts = self.counts[:, ptype]
        variables = {}
        for key, (tail, dtype, attrs) in self.fields[group].items():
            if key in drop:
                continue
            wrapper = Gadget4ArrayWrapper(self, f"{group}/{key}", counts, tail, dtype)
            data = indexing.LazilyIndexedArray(wrapper)
            dims = ("particle", "xyz") if tail == (3,) else ("particle",)
            dims += tuple(f"{key}_dim{i}" for i in range(len(tail) - len(dims) + 1))
            rows = self.chunk_rows.get(f"{group}/{key}", 1)
            encoding = {"preferred_chunks": {"particle": particle_chunks(counts, rows)}}
            variables[key] = xr.Variable(
                dims, data, self._var_attrs(key, attrs), encoding=encoding
            )
        coords = (
            {"xyz": ["x", "y", "z"]}
            if any("xyz" in v.dims for v in variables.values())
            else None
        )
        return xr.Dataset(variables, coords=coords, attrs=self.dataset_attrs())

    def _var_attrs(self, key: str, attrs: dict[str, Any]) -> dict[str, Any]:
        out = {k: _decode(v) for k, v in attrs.items()}
        if key == "Coordinates":
            out["units"] = f"{self.length_unit} (comoving)"
        elif key == "Velocities":
            out["units"] = "km/s"
            out["note"] = "stored value is v_peculiar / sqrt(a)"
        elif key == "Masses":
            out["units"] = "1e10 Msun/h"
        return out

    def dataset_attrs(self) -> dict[str, Any]:
        """Header values, Parameters/ and Config/ entries, and assumptions made."""
        return {**self.attrs, "simlab_assumptions": list(self.assumptions)}

    def close(self) -> None:
        """Close every file this store opened."""
        for manager in self.managers:
            manager.close()


class Gadget4ArrayWrapper(BackendArray):
    """A particle field spanning all files of a snapshot, read on demand."""

    def __init__(
        self,
        store: Gadget4Store,
        name: str,
        counts: np.ndarray,
        tail: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        self.managers = store.managers
        self.name = name
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.shape = (int(self.offsets[-1]), *tail)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> np.ndarray:
        first, rest = key[0], list(key[1:])
        # whole trailing axes need no selection: the rows go straight to the output
        while rest and isinstance(rest[-1], slice):
            if rest[-1].indices(self.shape[len(rest)]) != (0, self.shape[len(rest)], 1):
                break
            rest.pop()
        rest = tuple(rest)
        if isinstance(first, int | np.integer):
            row = int(first) % self.shape[0]
            return self._read_rows(slice(row, row + 1), rest)[0]
        return self._read_rows(first, rest)

    def _read_rows(self, rows: slice, rest: tuple[Any, ...]) -> np.ndarray:
        """Rows ``rows`` (any step) of the global field, then ``rest`` on the tail.

        Whole contiguous rows go straight from HDF5 into the output array; strided
        rows or a part of the tail go through a small reused buffer, so no
        temporary ever holds more than :data:`_READ_ROWS` rows.
        """
        start, stop, step = rows.indices(self.shape[0])
        count = len(range(start, stop, step))
        tail = np.empty(self.shape[1:], dtype=bool)[rest].shape if rest else None
        out = np.empty((count, *(self.shape[1:] if tail is None else tail)), self.dtype)
        if count == 0:
            return out
        # the wanted rows in ascending order, filled through a (reversed) view
        low = start if step > 0 else start + (count - 1) * step
        stride = abs(step)
        ascending = out if step > 0 else out[::-1]
        buffer = None
        for i, manager in enumerate(self.managers):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            j0 = max(-(-(lo - low) // stride), 0)
            j1 = min(-(-(hi - low) // stride), count)
            if j0 >= j1:
                continue
            first = low + j0 * stride - lo
            last = low + (j1 - 1) * stride - lo
            target = ascending[j0:j1]
            with HDF5_LOCK:
                dset = manager.acquire()[self.name]
                if stride == 1 and not rest and target.flags.c_contiguous:
                    dset.read_direct(target, source_sel=np.s_[first : last + 1])
                    continue
                rows_needed = min(_READ_ROWS, last - first + 1)
                if buffer is None or len(buffer) < rows_needed:
                    buffer = np.empty((rows_needed, *self.shape[1:]), self.dtype)
                self._read_strided(dset, buffer, target, first, last, stride, rest)
        return out

    @staticmethod
    def _read_strided(
        dset: h5py.Dataset,
        buffer: np.ndarray,
        target: np.ndarray,
        first: int,
        last: int,
        stride: int,
        rest: tuple[Any, ...],
    ) -> None:
        """Rows first, first + stride, … last of ``dset``, then ``rest``, into target.

        The rows are read block by block into ``buffer``: HDF5 copies contiguous
        rows far faster than it walks a strided or column selection.
        """
        block_rows = len(buffer)
        for c0 in range(first, last + 1, block_rows):
            c1 = min(c0 + block_rows, last + 1)
            r0 = first + -(-(c0 - first) // stride) * stride
            if r0 >= c1:
                continue
            block = buffer[: c1 - c0]
            dset.read_direct(block, source_sel=np.s_[c0:c1])
            picked = block[r0 - c0 :: stride]
            j = (r0 - first) // stride
            target[j : j + len(picked)] = picked[(slice(None), *rest)]


#: Rows per block of a strided or partial read (3 MB for float32 triples).
_READ_ROWS = 2**18


class Gadget4BackendEntrypoint(GroupedBackend):
    """Open Gadget4 HDF5 snapshots, single or multi-file, without reading particles.

    Picked automatically for HDF5 files with a Gadget4 ``Header`` (and for
    ``snapdir_NNN`` directories). Each ``PartTypeN`` is a group; ``open_datatree``
    gives one node per type present. Dataset attrs hold the Header values under
    their own names, the Parameters and Config groups as ``Parameters/<name>`` and
    ``Config/<name>``, and ``simlab_assumptions`` (what had to be guessed).

    See Also
    --------
    simlab.io.snapshots.open_snapshot, simlab.io.snapshots.open_series
    """

    description = "Gadget4 HDF5 N-body snapshots (simlab)"
    url = "https://github.com/simlab/simlab/blob/main/docs/architecture.md"
    open_dataset_parameters = (
        *GroupedBackend.open_dataset_parameters,
        "storage_options",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Cheap content check; never raises."""
        return looks_like(filename_or_obj, _is_snapshot_file)

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> xr.Dataset:
        """One particle type (default ``PartType1``) as a lazy Dataset; a URL is
        read through fsspec with ``storage_options``."""
        store = Gadget4Store.open(filename_or_obj, storage_options)
        ds = store.group_dataset(
            (group or "PartType1").strip("/"), drop_variables or ()
        )
        ds.set_close(store.close)
        return ds

    def open_groups_as_dict(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> dict[str, xr.Dataset]:
        """Root (attrs only) plus one Dataset per particle type present."""
        store = Gadget4Store.open(filename_or_obj, storage_options)
        groups = {"/": xr.Dataset(attrs=store.dataset_attrs())}
        for name in store.fields:
            groups[f"/{name}"] = store.group_dataset(name, drop_variables or ())
        groups["/"].set_close(store.close)
        return groups
