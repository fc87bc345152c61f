"""Snapshot reading: simlab's Gadget4 backend against raw h5py, yt, pynbody, Pylians.

Operations, each timed from a path to the data in memory (files opened and closed
inside every timed step, so no tool serves a repeat from its own cache):

- ``open``: open the snapshot and read what is needed to plan a read (yt builds
  its particle index here, as any yt analysis must);
- ``positions``: all PartType1 ``Coordinates`` as one (N, 3) array;
- ``x``: the x component of PartType1 positions as one (N,) array;
- ``sub-box``: the positions of particles inside [0, L/2)³ (1/8 of the volume).

The floor is h5py ``read_direct`` into one preallocated array (plus a numpy view
or mask for ``x`` and ``sub-box``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._data import BOX_SIZE, snapshot
from benchmarks._harness import installed, measure, missing

OPERATIONS = {
    "open": "open snapshot",
    "positions": "read all positions",
    "x": "read x of PartType1",
    "subbox": "read sub-box (1/8 volume)",
}
HALF = BOX_SIZE / 2


def _files(path: str) -> list[str]:
    from simlab.io.gadget4_files import snapshot_files

    return [str(f) for f in snapshot_files(path)]


def _inside(pos: np.ndarray) -> np.ndarray:
    mask = pos[:, 0] < HALF
    mask &= pos[:, 1] < HALF
    mask &= pos[:, 2] < HALF
    return pos[mask]


def _summary(array: Any) -> dict[str, Any]:
    array = np.asarray(array)
    return {"rows": int(array.shape[0]), "dtype": str(array.dtype)}


def _from_positions(pos: np.ndarray, op: str) -> dict[str, Any]:
    """What ``op`` keeps of tools that read all positions at once: all of them,
    the x column, or those in the sub-box."""
    if op == "x":
        return _summary(pos[:, 0])
    if op == "subbox":
        return _summary(_inside(pos))
    return _summary(pos)


def case_h5py(path: str, op: str) -> Callable[[], dict]:
    """The floor: h5py, one ``read_direct`` per file into one preallocated array."""
    import h5py

    files = _files(path)

    def read_all() -> np.ndarray:
        handles = [h5py.File(f, "r") for f in files]
        counts = [int(h["Header"].attrs["NumPart_ThisFile"][1]) for h in handles]
        out = np.empty((sum(counts), 3), np.float32)
        offset = 0
        for handle, count in zip(handles, counts, strict=True):
            handle["PartType1/Coordinates"].read_direct(out[offset : offset + count])
            offset += count
            handle.close()
        return out

    def step() -> dict:
        if op == "open":
            for f in files:
                with h5py.File(f, "r") as handle:
                    header = handle["Header"].attrs
                    _ = header["NumPart_ThisFile"], header["BoxSize"]
            return {}
        return _from_positions(read_all(), op)

    return step


def case_simlab(path: str, op: str, dask: bool = False) -> Callable[[], dict]:
    """simlab's xarray backend, eager (numpy) or lazy with dask (``chunks={}``)."""
    import xarray as xr

    kwargs = {"chunks": {}} if dask else {}

    def step() -> dict:
        with xr.open_dataset(path, engine="gadget4", **kwargs) as ds:
            if op == "open":
                return {}
            coords = ds["Coordinates"]
            if op == "x":
                return _summary(coords[:, 0].to_numpy())
            if op == "subbox":
                if dask:
                    data = coords.data
                    inside = (data < HALF).all(axis=1)
                    return _summary(data[inside].compute())
                return _summary(_inside(coords.to_numpy()))
            return _summary(coords.to_numpy())

    return step


def case_yt(path: str, op: str) -> Callable[[], dict]:
    """yt 4: ``yt.load`` plus its particle index, then a data object's field."""
    import yt

    yt.set_log_level(50)
    yt.funcs.get_pbar = _no_pbar(yt.funcs.get_pbar)

    def step() -> dict:
        ds = yt.load(path)
        ds.index  # noqa: B018 - building the index is part of opening in yt
        if op == "open":
            return {}
        if op == "subbox":
            box = ds.box([0.0, 0.0, 0.0], [HALF, HALF, HALF])
            return _summary(box["PartType1", "Coordinates"].d)
        ad = ds.all_data()
        if op == "x":
            return _summary(ad["PartType1", "particle_position_x"].d)
        return _summary(ad["PartType1", "Coordinates"].d)

    return step


def _no_pbar(get_pbar: Callable) -> Callable:
    def quiet(title: str, maxval: int, *args: Any, **kwargs: Any) -> Any:
        return get_pbar(title, maxval, *args, **{**kwargs, "disable": True})

    return quiet


def case_pynbody(path: str, op: str) -> Callable[[], dict]:
    """pynbody 2: ``pynbody.load`` then the dark-matter family's arrays.

    A multi-file snapshot is opened by its base name (given piece 0 it would
    read that file alone).
    """
    import pynbody

    base = path.removesuffix(".0.hdf5")

    def step() -> dict:
        snap = pynbody.load(base)
        if op == "open":
            return {}
        if op == "x":
            return _summary(snap.dm["x"])
        if op == "subbox":
            cube = pynbody.filt.Cuboid(0.0, 0.0, 0.0, HALF, HALF, HALF)
            return _summary(snap.dm[cube]["pos"])
        return _summary(snap.dm["pos"])

    return step


def case_pylians(path: str, op: str) -> Callable[[], dict]:
    """Pylians ``readgadget``: header, then ``read_block`` (it reads all files)."""
    import readgadget

    base = path.removesuffix(".0.hdf5")

    def step() -> dict:
        if op == "open":
            readgadget.header(base)
            return {}
        return _from_positions(readgadget.read_block(base, "POS ", [1]), op)

    return step


CASES = {
    "h5py": case_h5py,
    "simlab": case_simlab,
    "yt": case_yt,
    "pynbody": case_pynbody,
    "pylians": case_pylians,
}
#: (label, case, case args, module needed, repeats for small / large snapshots)
TOOLS = (
    ("h5py read_direct (floor)", "h5py", {}, "h5py", (7, 5)),
    ("simlab (numpy)", "simlab", {}, "simlab", (7, 5)),
    ("simlab (dask)", "simlab", {"dask": True}, "dask", (5, 3)),
    ("yt", "yt", {}, "yt", (3, 2)),
    ("pynbody", "pynbody", {}, "pynbody", (3, 3)),
    ("Pylians readgadget", "pylians", {}, "readgadget", (3, 3)),
)


def run(quick: bool = False) -> list[dict]:
    """Every operation on every snapshot for every tool; missing peers reported."""
    snapshots = [(128, 1), (128, 2)] if quick else [(128, 1), (256, 1), (256, 2)]
    records = []
    for n_side, nfiles in snapshots:
        path = str(snapshot(n_side, nfiles))
        size = f"{n_side}^3" + (f", {nfiles} files" if nfiles > 1 else "")
        for op, operation in OPERATIONS.items():
            for label, case, args, module, repeats in TOOLS:
                if not installed(module):
                    records.append(
                        missing(label, operation, size, f"{module} not installed")
                    )
                    continue
                repeat = repeats[n_side > 128]
                if op == "open":
                    repeat = 25 if case in ("h5py", "simlab", "pylians") else repeat
                records.append(
                    measure(
                        "bench_snapshot",
                        case,
                        {"path": path, "op": op, **args},
                        tool=label,
                        operation=operation,
                        size=size,
                        repeat=1 if quick and case == "yt" else repeat,
                        warmup=0 if case == "yt" else 1,
                        floor=case == "h5py",
                    )
                )
    return records


def targets(records: list[dict]) -> list[dict]:
    """Open ≤ 5 ms and all positions ≤ 1.10× the floor, on the largest 2-file size."""
    two_file = [r for r in records if "2 files" in r["size"]]
    if not two_file:
        return []
    size = two_file[-1]["size"]

    def find(tool: str, operation: str) -> dict | None:
        return next(
            (
                r
                for r in records
                if r["tool"] == tool
                and r["operation"] == operation
                and r["size"] == size
                and r["min_s"] is not None
            ),
            None,
        )

    out = []
    opened = find("simlab (numpy)", OPERATIONS["open"])
    if opened:
        out.append(
            {
                "target": f"open snapshot ({size}) ≤ 5 ms",
                "value": opened["min_s"] * 1e3,
                "limit": 5.0,
                "met": opened["min_s"] <= 0.005,
            }
        )
    floor = find("h5py read_direct (floor)", OPERATIONS["positions"])
    simlab = find("simlab (numpy)", OPERATIONS["positions"])
    if floor and simlab:
        ratio = simlab["min_s"] / floor["min_s"]
        out.append(
            {
                "target": f"all positions ({size}) ≤ 1.10 × read_direct floor",
                "value": ratio,
                "limit": 1.10,
                "met": ratio <= 1.10,
            }
        )
    return out
