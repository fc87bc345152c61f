"""Friends-of-friends halos of a lazily opened snapshot: in memory against slab by
slab on dask (:mod:`simlab.analysis.fof_chunked`).

Each step opens the cached clustered Gadget4-layout snapshot (4 files, 256 Mpc/h)
with ``chunks={}`` and calls :func:`simlab.analysis.fof.find_halos` (b = 0.2, 32
members):

- in memory (``chunked=False``): the floor, read once and linked in this process;
- chunked on dask's threads (``chunked=True``, no cluster);
- chunked on a LocalCluster of two single-threaded worker processes, started in
  the untimed setup (as a simlab profile's cluster would be running already).

``× floor`` is the chunked time over the in-memory one; ``particles_per_s`` the
throughput. Peak RSS is the calling process's: the workers' memory is not in it.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks._data import snapshot
from benchmarks._harness import measure

NFILES = 4


def case_fof(n_side: int, mode: str) -> Callable[[], dict]:
    """``find_halos`` of the snapshot, in memory or chunked (threads, cluster)."""
    import xarray as xr

    from simlab.analysis.fof import find_halos

    path = snapshot(n_side, NFILES)
    if mode == "cluster":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="2GB",
            dashboard_address=None, processes=True,
        )  # fmt: skip
        Client(cluster)  # the default client until the process ends

    def step() -> dict:
        with xr.open_dataset(
            path, engine="gadget4", group="PartType1", chunks={}
        ) as ds:
            halos = find_halos(ds, chunked=mode != "memory")
        return {"halos": int(halos.sizes["halo"]), "finder": halos.attrs["finder"]}

    return step


CASES = {"fof": case_fof}
MODES = (
    ("in memory (chunked=False)", "memory"),
    ("chunked, dask threads", "threads"),
    ("chunked, LocalCluster 2 workers", "cluster"),
)


def run(quick: bool = False) -> list[dict]:
    """The three modes on 128³ particles in 4 files (64³ with ``quick``)."""
    n_side = 64 if quick else 128
    size = f"{n_side}^3 particles, {NFILES} files"
    records = []
    for tool, mode in MODES:
        rec = measure(
            "bench_fof",
            "fof",
            {"n_side": n_side, "mode": mode},
            tool=tool,
            operation="FOF halos (b = 0.2)",
            size=size,
            repeat=3 if quick else 2,
            warmup=1,
            floor=mode == "memory",
        )
        if rec["min_s"]:
            rec["extra"]["particles_per_s"] = round(n_side**3 / rec["min_s"])
        records.append(rec)
    return records
