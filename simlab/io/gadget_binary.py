"""GADGET binary snapshots (SnapFormat 1 and 2): read lazily, write one file.

CONCEPT, GADGET-2 and many older codes write this format; CONCEPT reads it as
initial conditions (it refuses Gadget4 HDF5). The layout, checked against
``tests/data/concept-small`` (README "GADGET snapshot layout"):

- SnapFormat 1: Fortran records ``[int32 size][data][int32 size]`` for the blocks
  HEAD (256 bytes), POS (float32 N×3), VEL (float32 N×3), ID (uint32 or uint64 N)
  and MASS (float32, only for types whose ``Massarr`` entry is 0).
- SnapFormat 2: each block is preceded by a label record
  ``[int32 8][4-char name][int32 next_block_size + 8][int32 8]``.

Units are not stored in the file. simlab assumes GADGET's (and CONCEPT's default)
kpc/h, km/s and 1e10 Msun/h, and that velocities are GADGET's internal v/sqrt(a);
both assumptions are recorded in ``attrs["simlab_assumptions"]``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

from simlab.errors import SnapshotError

NTYPES = 6
HEADER_BYTES = 256
#: The 256-byte GADGET header (GADGET-2 ``io_header``), little endian, no padding.
HEADER_FIELDS: list[tuple[str, str, int]] = [
    ("Npart", "i4", 6),
    ("Massarr", "f8", 6),
    ("Time", "f8", 1),
    ("Redshift", "f8", 1),
    ("FlagSfr", "i4", 1),
    ("FlagFeedback", "i4", 1),
    ("Nall", "u4", 6),
    ("FlagCooling", "i4", 1),
    ("NumFiles", "i4", 1),
    ("BoxSize", "f8", 1),
    ("Omega0", "f8", 1),
    ("OmegaLambda", "f8", 1),
    ("HubbleParam", "f8", 1),
    ("FlagAge", "i4", 1),
    ("FlagMetals", "i4", 1),
    ("NallHW", "u4", 6),
    ("flag_entr_ics", "i4", 1),
]
#: kpc/h per Mpc/h: GADGET files from CONCEPT store positions in kpc/h.
KPC_PER_MPC = 1000.0


def _header_dtype(endian: str) -> np.dtype:
    """The header as a structured dtype of exactly 256 bytes (padding at the end)."""
    names, formats, offsets, position = [], [], [], 0
    for name, kind, count in HEADER_FIELDS:
        names.append(name)
        formats.append((f"{endian}{kind}", (count,)))
        offsets.append(position)
        position += np.dtype(kind).itemsize * count
    return np.dtype(
        {
            "names": names,
            "formats": formats,
            "offsets": offsets,
            "itemsize": HEADER_BYTES,
        }
    )


@dataclass
class Block:
    """Where one data block sits in the file: offset of its data and its size."""

    name: str
    offset: int
    size: int


@dataclass
class GadgetBinaryLayout:
    """A scanned GADGET binary file: format, byte order, header and blocks."""

    path: Path
    snapformat: int
    endian: str
    header: dict[str, Any]
    blocks: list[Block] = field(default_factory=list)

    def block(self, name: str) -> Block:
        """The block called ``name`` (SnapFormat 1 blocks are named by position)."""
        for block in self.blocks:
            if block.name == name:
                return block
        raise SnapshotError(
            f"{self.path.name}: no {name!r} block; blocks found: "
            f"{', '.join(b.name for b in self.blocks)}"
        )


def snapformat(path: str | os.PathLike[str]) -> int:
    """1 or 2 for a GADGET binary file, 0 for anything else; never raises.

    The header record must be whole: a 256-byte record with matching leading
    and trailing Fortran markers, preceded in SnapFormat 2 by an 8-byte ``HEAD``
    label record whose size field is 256 + 8.
    """
    label = 4 + 8 + 4
    try:
        with open(path, "rb") as fh:
            start = fh.read(label + 4 + HEADER_BYTES + 4)
    except OSError:
        return 0
    for endian in "<>":
        if _header_record(start, 0, endian):
            return 1
        if (
            len(start) >= label
            and _int32(start, 0, endian) == 8
            and start[4:8] == b"HEAD"
            and _int32(start, 8, endian) == HEADER_BYTES + 8
            and _int32(start, 12, endian) == 8
            and _header_record(start, label, endian)
        ):
            return 2
    return 0


def _int32(data: bytes, at: int, endian: str) -> int:
    """The int32 at byte ``at`` of ``data``."""
    return int(np.frombuffer(data, f"{endian}i4", count=1, offset=at)[0])


def _header_record(data: bytes, at: int, endian: str) -> bool:
    """Whether ``data`` holds a 256-byte Fortran record at byte ``at``."""
    end = at + 4 + HEADER_BYTES
    return (
        len(data) >= end + 4
        and _int32(data, at, endian) == HEADER_BYTES
        and _int32(data, end, endian) == HEADER_BYTES
    )


def scan(path: str | os.PathLike[str]) -> GadgetBinaryLayout:
    """Read the header and locate every block of a GADGET binary file."""
    path = Path(path)
    fmt = snapformat(path)
    if fmt == 0:
        raise SnapshotError(
            f"{path.name}: not a GADGET binary snapshot (SnapFormat 1 or 2): "
            "the first record is neither a HEAD label nor a 256-byte header"
        )
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(4)
    endian = "<" if int(np.frombuffer(raw, "<i4")[0]) in (8, HEADER_BYTES) else ">"
    blocks: list[Block] = []
    names_fmt1 = ["HEAD", "POS", "VEL", "ID", "MASS"]
    with open(path, "rb") as fh:
        position = 0
        while position < size:
            name = None
            if fmt == 2:
                label = _record(fh, position, endian, path)
                name = label[0][:4].decode(errors="replace").strip()
                position = label[1]
            fh.seek(position)
            length = int(np.frombuffer(fh.read(4), f"{endian}i4")[0])
            end = position + 4 + length + 4
            if length < 0 or end > size:
                raise SnapshotError(
                    f"{path.name}: truncated block at byte {position} "
                    f"(record of {length} bytes in a {size}-byte file)"
                )
            fh.seek(position + 4 + length)
            trailer = int(np.frombuffer(fh.read(4), f"{endian}i4")[0])
            if trailer != length:
                raise SnapshotError(
                    f"{path.name}: record at byte {position} starts with {length} "
                    f"and ends with {trailer}; the file is corrupt"
                )
            if name is None:
                index = len(blocks)
                name = names_fmt1[index] if index < len(names_fmt1) else f"BLK{index}"
            blocks.append(Block(name=name, offset=position + 4, size=length))
            position = end
    if not blocks or blocks[0].name != "HEAD" or blocks[0].size != HEADER_BYTES:
        raise SnapshotError(f"{path.name}: the first block is not a 256-byte HEAD")
    with open(path, "rb") as fh:
        fh.seek(blocks[0].offset)
        record = np.frombuffer(fh.read(HEADER_BYTES), _header_dtype(endian))[0]
    header = {}
    for name, _, count in HEADER_FIELDS:
        value = record[name]
        header[name] = value.tolist() if count > 1 else value[0].item()
    return GadgetBinaryLayout(path, fmt, endian, header, blocks)


def _record(fh: Any, position: int, endian: str, path: Path) -> tuple[bytes, int]:
    """The payload of the record at ``position`` and the position after it."""
    fh.seek(position)
    length = int(np.frombuffer(fh.read(4), f"{endian}i4")[0])
    if length != 8:
        raise SnapshotError(
            f"{path.name}: expected an 8-byte block label at byte {position}, "
            f"found a {length}-byte record"
        )
    payload = fh.read(length)
    fh.read(4)
    return payload, position + 4 + length + 4


class GadgetBinaryArray(BackendArray):
    """One particle type's slice of a block, read through ``np.memmap`` on demand."""

    def __init__(
        self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self.path = path
        self.offset = offset
        self.shape = shape
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> np.ndarray:
        data = np.memmap(
            self.path, self.dtype, "r", offset=self.offset, shape=self.shape
        )
        return np.array(data[key], dtype=self.dtype.newbyteorder("="))


def particle_arrays(layout: GadgetBinaryLayout) -> dict[int, dict[str, Any]]:
    """Lazy ``Coordinates``, ``Velocities``, ``ParticleIDs`` (and ``Masses``) per type.

    Returns ``{ptype: {name: (array, unit)}}`` for every type with particles.
    """
    counts = np.asarray(layout.header["Npart"], dtype=np.int64)
    total = int(counts.sum())
    id_block = layout.block("ID")
    id_size = id_block.size // total if total else 4
    if id_size not in (4, 8) or id_size * total != id_block.size:
        raise SnapshotError(
            f"{layout.path.name}: ID block of {id_block.size} bytes does not hold "
            f"{total} 4- or 8-byte ids"
        )
    id_dtype = np.dtype(f"{layout.endian}u{id_size}")
    vec = np.dtype(f"{layout.endian}f4")
    for name in ("POS", "VEL"):
        if layout.block(name).size != total * 12:
            raise SnapshotError(
                f"{layout.path.name}: {name} block has {layout.block(name).size} "
                f"bytes, expected {total * 12} for {total} float32 vectors"
            )
    massarr = layout.header["Massarr"]
    with_mass = [t for t in range(NTYPES) if counts[t] and massarr[t] == 0]
    out: dict[int, dict[str, Any]] = {}
    start = 0
    mass_start = 0
    for ptype in range(NTYPES):
        n = int(counts[ptype])
        if n == 0:
            continue
        arrays = {
            "Coordinates": GadgetBinaryArray(
                layout.path, layout.block("POS").offset + 12 * start, (n, 3), vec
            ),
            "Velocities": GadgetBinaryArray(
                layout.path, layout.block("VEL").offset + 12 * start, (n, 3), vec
            ),
            "ParticleIDs": GadgetBinaryArray(
                layout.path, id_block.offset + id_size * start, (n,), id_dtype
            ),
        }
        if ptype in with_mass:
            arrays["Masses"] = GadgetBinaryArray(
                layout.path, layout.block("MASS").offset + 4 * mass_start, (n,), vec
            )
            mass_start += n
        out[ptype] = arrays
        start += n
    return out


def write_gadget_binary(
    path: str | os.PathLike[str],
    positions_kpc_h: np.ndarray,
    velocities: np.ndarray,
    ids: np.ndarray,
    header: dict[str, Any],
    *,
    fmt: int = 2,
) -> Path:
    """Write one type-1 particle set as a single GADGET binary file.

    Parameters
    ----------
    path : path
        file to write; it appears complete or not at all
    positions_kpc_h : (N, 3) array
        comoving positions in the file's length unit (kpc/h for CONCEPT)
    velocities : (N, 3) array
        GADGET internal velocities v_peculiar / sqrt(a) in km/s
    ids : (N,) integer array
        particle ids, written as uint32 (uint64 when an id needs it)
    header : dict
        header values by name (see ``HEADER_FIELDS``); missing ones are 0
    fmt : {1, 2}
        SnapFormat
    """
    if fmt not in (1, 2):
        raise ValueError(f"fmt must be SnapFormat 1 or 2, got {fmt!r}")
    path = Path(path)
    ids = np.asarray(ids)
    id_type = "<u4" if ids.size == 0 or int(ids.max()) < 2**32 else "<u8"
    record = np.zeros(1, _header_dtype("<"))
    for name, _, count in HEADER_FIELDS:
        if name in header:
            record[name] = np.reshape(header[name], (count,))
    blocks = [
        ("HEAD", record.tobytes()),
        ("POS", np.ascontiguousarray(positions_kpc_h, "<f4").tobytes()),
        ("VEL", np.ascontiguousarray(velocities, "<f4").tobytes()),
        ("ID", np.ascontiguousarray(ids, id_type).tobytes()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for name, data in blocks:
                size = np.array([len(data)], "<i4").tobytes()
                if fmt == 2:
                    fh.write(np.array([8], "<i4").tobytes())
                    fh.write(name.ljust(4).encode())
                    fh.write(np.array([len(data) + 8], "<i4").tobytes())
                    fh.write(np.array([8], "<i4").tobytes())
                fh.write(size + data + size)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
