"""HDF5 files behind fsspec URLs (s3://, gs://, memory://, file://) for simlab's
readers: which paths are URLs, the files of a remote output, and h5py reading one
lazily through a block cache.

fsspec is imported only once a path has a URL scheme, so reading local files costs
nothing more than before. Credentials never pass through here as files: they come
from the environment, fsspec's own configuration or ``storage_options`` given at
call time. Why fsspec + h5py and not kerchunk references: docs/object-storage.md.
"""

from __future__ import annotations

import atexit
import contextlib
import fnmatch
import os
import re
import weakref
from typing import TYPE_CHECKING, Any

import h5py
from xarray.backends import CachingFileManager

from simlab.errors import SnapshotError, StorageError

if TYPE_CHECKING:
    from pathlib import Path

    from fsspec import AbstractFileSystem

#: ``scheme://`` or a chained ``scheme::`` (as fsspec and xarray recognise URLs)
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)(://|::)")
_PIECE = re.compile(r"^(?P<base>.+)\.(?P<index>\d+)\.hdf5$")
#: Bytes per cached block: a few requests cover HDF5's metadata, while a slab read
#: transfers little more than the rows it asks for (longer reads are one request).
BLOCK_SIZE = 2**18
#: Blocks kept per open file (BLOCK_SIZE * MAX_BLOCKS of memory at most).
MAX_BLOCKS = 32
INSTALL = "pip install 'simlab[remote]'"
EXAMPLES = "s3://bucket/path, gs://bucket/path, memory://path, file:///path"


def is_url(path: Any) -> bool:
    """Whether ``path`` is a string with a URL scheme (``s3://``, ``memory://``)."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def filesystem(
    url: str, storage_options: dict[str, Any] | None = None
) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path in it; StorageError names a
    scheme fsspec does not know, or the package a known one needs."""
    try:
        import fsspec
    except ImportError:
        raise StorageError(f"reading {url!r} needs fsspec: {INSTALL}") from None
    match = _SCHEME.match(url)
    scheme = match["scheme"] if match else ""
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as exc:
        # simlab[remote] brings s3fs; fsspec's message names any other package
        hint = INSTALL if scheme in ("s3", "s3a") else "pip install the package named"
        raise StorageError(
            f"{url!r}: the {scheme}:// scheme needs a package that is not "
            f"installed ({exc}); {hint}"
        ) from None
    except ValueError as exc:
        raise StorageError(
            f"{url!r} is not a usable URL ({exc}); expected a local path or an "
            f"fsspec URL such as {EXAMPLES}"
        ) from None


def hdf5_managers(
    files: list[Path] | list[str], fs: AbstractFileSystem | None
) -> list[CachingFileManager]:
    """One CachingFileManager per file of an output: local paths, or paths on ``fs``
    (the managers pickle, so datasets travel to dask workers either way)."""
    if fs is None:
        return [CachingFileManager(h5py.File, f, mode="r") for f in files]
    return [CachingFileManager(open_hdf5, fs, f, mode="r") for f in files]


def open_hdf5(fs: AbstractFileSystem, path: str, mode: str = "r") -> h5py.File:
    """``path`` on ``fs`` opened by h5py for reading, fetched in cached blocks.

    The opener of a CachingFileManager: ``fs`` pickles by its options, so a
    dataset opened from a URL travels to dask workers, which reopen the file.
    """
    if mode != "r":
        raise StorageError(f"{path}: remote HDF5 files are read-only (mode {mode!r})")
    from simlab.io._block_cache import NAME

    handle = fs.open(
        path,
        "rb",
        block_size=BLOCK_SIZE,
        cache_type=NAME,
        cache_options={"maxblocks": MAX_BLOCKS},
    )
    try:
        return _RemoteHDF5(handle)
    except BaseException:
        handle.close()
        raise


#: Remote files still open, closed at exit by :func:`_close_all`.
_OPEN: weakref.WeakSet[_RemoteHDF5] = weakref.WeakSet()


def _close_all() -> None:
    """Close remote HDF5 files left open (xarray's file cache keeps them) before
    the interpreter tears down the file objects under them: h5py would then read
    through freed objects at exit and crash the process."""
    for f in list(_OPEN):
        with contextlib.suppress(Exception):
            f.close()


class _RemoteHDF5(h5py.File):
    """An h5py.File on an fsspec file object that closes the object with it."""

    def __init__(self, handle: Any) -> None:
        super().__init__(handle, "r")
        self._handle = handle
        if not _OPEN:
            # (re)registered after fsspec's exit hooks (its event loop), which
            # atexit runs last-in first-out: ours closes the files before them
            atexit.unregister(_close_all)
            atexit.register(_close_all)
        _OPEN.add(self)

    def close(self) -> None:
        """Close the HDF5 file, then the fsspec file under it."""
        try:
            super().close()
        finally:
            self._handle.close()


def output_paths(
    fs: AbstractFileSystem, path: str, what: str, first_piece: str, count_key: str
) -> list[str]:
    """Every file of a Gadget4 output on ``fs``, as ``output_files`` finds them
    locally: a single file, one piece ``<base>.<i>.hdf5``, or the folder with them."""
    try:
        kind = fs.info(path)["type"]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no such {what}: {fs.unstrip_protocol(path)}"
        ) from None
    if kind == "directory":
        pieces = sorted(
            p
            for p in fs.ls(path, detail=False)
            if fnmatch.fnmatchcase(os.path.basename(p), first_piece)
        )
        if len(pieces) != 1:
            raise SnapshotError(
                f"{fs.unstrip_protocol(path)}: expected one '{first_piece}' file in "
                f"a {what} directory, found {len(pieces)}"
            )
        path = pieces[0]
    folder, name = os.path.split(path)
    match = _PIECE.match(name)
    if match is None:
        return [path]
    try:
        with open_hdf5(fs, path) as f:
            expected = int(f["Header"].attrs[count_key])
    except (OSError, KeyError) as exc:
        raise SnapshotError(
            f"{name}: no readable Header/{count_key}; not a Gadget4 {what} ({exc})"
        ) from exc
    files = [f"{folder}/{match['base']}.{i}.hdf5" for i in range(expected)]
    present = set(fs.ls(folder, detail=False))
    found = [f for f in files if f in present]
    if len(found) != expected:
        raise SnapshotError(
            f"{name}: Header/{count_key} is {expected} but "
            f"{len(found)} files match {match['base']}.*.hdf5"
        )
    return files
