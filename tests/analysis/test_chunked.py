"""P(k), projections and FOF halos of a lazily opened snapshot on a real dask
cluster, chunk by chunk (FOF: slab by slab): the same numbers as in memory, with
every chunk handled by a worker, never all at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from dask.utils import key_split

from simlab import plot
from simlab.analysis.fof import find_halos
from simlab.analysis.power import power_spectrum
from simlab.analysis.projection import projection_image
from simlab.io.gadget4 import particle_chunks
from simlab.io.groups import open_groups
from simlab.testing import fake_gadget4_snapshot
from tests.conftest import data_path

NPART, NFILES = 40_000, 4


@contextlib.contextmanager
def _two_workers(snapshot: Path) -> Iterator[tuple[xr.Dataset, Any]]:
    """The snapshot opened lazily, with a LocalCluster of two 2 GB workers as the
    default client, and the stream of the tasks they ran."""
    from distributed import Client, LocalCluster, get_task_stream

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="2GB",
        dashboard_address=None, processes=True,
    )  # fmt: skip
    lazy = xr.open_dataset(snapshot, engine="gadget4", group="PartType1", chunks={})
    with (
        cluster,
        Client(cluster) as client,
        lazy as ds,
        get_task_stream(client) as stream,
    ):
        yield ds, stream


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return fake_gadget4_snapshot(
        tmp_path_factory.mktemp("chunked"), npart=NPART, nfiles=NFILES, box_size=64.0
    )


def test_lazy_chunks_follow_the_snapshot_files(snapshot):
    with xr.open_dataset(
        snapshot, engine="gadget4", group="PartType1", chunks={}
    ) as ds:
        chunks = ds["Coordinates"].chunks[0]
    assert len(chunks) == NFILES and sum(chunks) == NPART
    # big files are split, in whole HDF5 chunks, never across two files
    assert particle_chunks(np.array([10, 7]), chunk_rows=3, target=7) == (6, 4, 6, 1)


@pytest.mark.slow
@pytest.mark.timeout(180)  # a paused worker hangs the compute: fail fast instead
def test_power_spectrum_chunk_by_chunk_on_two_workers_equals_in_memory(snapshot):
    in_memory = power_spectrum(
        xr.open_dataset(snapshot, engine="gadget4", group="PartType1"),
        None, 32, interlace=True,
    )  # fmt: skip
    with _two_workers(snapshot) as (ds, stream):
        chunked = power_spectrum(ds, None, 32, interlace=True, chunked=True)
    # key_split drops the leading underscore of _block_mesh
    deposits = [t for t in stream.data if key_split(t["key"]) == "block_mesh"]
    # one deposit per chunk and per interlacing mesh, spread over both workers
    assert len(deposits) == 2 * NFILES
    assert len({t["worker"] for t in deposits}) == 2
    np.testing.assert_allclose(chunked.values, in_memory.values, rtol=2e-6)
    assert chunked.attrs["n_particles"] == NPART
    assert chunked.attrs["shot_noise"] == pytest.approx(in_memory.attrs["shot_noise"])


def test_auto_reads_what_fits_and_false_always_reads(snapshot, monkeypatch):
    import simlab.analysis.chunked as chunked_module

    calls = []
    real = chunked_module.deposit_chunked
    monkeypatch.setattr(
        "simlab.analysis.power.deposit_chunked",
        lambda *a, **k: calls.append(1) or real(*a, **k),
    )
    with xr.open_dataset(
        snapshot, engine="gadget4", group="PartType1", chunks={}
    ) as ds:
        small = power_spectrum(ds, None, 16)  # 480 kB: fits, read into memory
        assert calls == []
        monkeypatch.setattr("simlab.analysis.power.fits_in_memory", lambda a: False)
        big = power_spectrum(ds, None, 16)  # "does not fit": chunk by chunk
        assert calls == [1]
        power_spectrum(ds, None, 16, chunked=False)
        assert calls == [1]
    np.testing.assert_allclose(big.values, small.values, rtol=2e-6)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_projection_chunk_by_chunk_on_two_workers_equals_in_memory(snapshot):
    slab = {"axis": "y", "slab": (8.0, 40.0), "n_pixels": 48, "log": False}
    smoothings = ("adaptive", "spacing", 1.5, None)
    with xr.open_dataset(snapshot, engine="gadget4", group="PartType1") as ds:
        in_memory = [projection_image(ds, smoothing=s, **slab) for s in smoothings]
    with _two_workers(snapshot) as (ds, stream):
        chunked = [
            projection_image(ds, smoothing=s, chunked=True, **slab) for s in smoothings
        ]
        figure = plot.projection(ds, chunked=True, **slab)
    # one slab task per chunk and map, spread over both workers
    slabs = [t for t in stream.data if key_split(t["key"]) == "chunk_sum"]
    assert len(slabs) == NFILES * (len(smoothings) + 1)
    assert len({t["worker"] for t in slabs}) == 2
    for name, got, want in zip(smoothings, chunked, in_memory, strict=True):
        assert got.shape == want.shape == (48, 48), name
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=str(name))
        assert got.mean() == pytest.approx(1.0), name  # 1 + δ over the slab
    # the figure draws the chunked map
    drawn = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(drawn, in_memory[0], rtol=1e-9)
    # the smoothing was applied chunk by chunk: smoothed maps vary less than bare CIC
    assert chunked[0].std() < chunked[-1].std()
    assert chunked[2].std() < chunked[1].std() < chunked[-1].std()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_fof_slab_by_slab_on_two_workers_equals_in_memory_and_gadget4():
    """The Gadget4 fixture (32³ in two files, Gadget4's own FOF catalogues)."""
    output = data_path("gadget4-small/ngenic32/output")
    numbers = (1, 2, 3)
    snapshots = [output / f"snapdir_00{number}" for number in numbers]
    in_memory = [
        find_halos(xr.open_dataset(s, engine="gadget4", group="PartType1"))
        for s in snapshots
    ]
    chunked = []
    for snapshot in snapshots:
        with _two_workers(snapshot) as (ds, stream):
            assert len(ds["Coordinates"].chunks[0]) == 2  # one chunk per file
            chunked.append(find_halos(ds, chunked=True))
        routes = [t for t in stream.data if key_split(t["key"]) == "route"]
        slabs = [t for t in stream.data if key_split(t["key"]) == "slab_groups"]
        assert len(routes) == 2 and len(slabs) == 2  # a slab per chunk's worth
        assert len({t["worker"] for t in routes + slabs}) == 2
    for number, got, want in zip(numbers, chunked, in_memory, strict=True):
        gadget4 = open_groups(output / f"groups_00{number}")
        assert got.sizes["halo"] == want.sizes["halo"] == gadget4.attrs["Ngroups_Total"]
        assert got.sizes["halo"] > 20
        assert "2 slabs on dask" in got.attrs["finder"]
        np.testing.assert_array_equal(got.GroupLen, want.GroupLen)
        np.testing.assert_array_equal(got.GroupLen, gadget4.GroupLen)
        np.testing.assert_array_equal(got.GroupLenType, want.GroupLenType)
        np.testing.assert_allclose(got.GroupMass, gadget4.GroupMass, rtol=1e-5)
        for name in ("GroupMass", "GroupMassType", "GroupPos", "GroupVel"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)
        assert {k: v for k, v in got.attrs.items() if k != "finder"} == {
            k: v for k, v in want.attrs.items() if k != "finder"
        }


def _straddling(box: float) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """Clumps centred on x = 0 (the periodic edge), x = L/2 and x = L/4 (slab edges
    for 2 and 4 slabs) and x = 3L/8 (inside a slab), a U-shaped chain that leaves
    the slab x < L/2 and comes back, and a sparse background far from them in z."""
    rng = np.random.default_rng(11)
    clumps = [(0.0, 60), (box / 2, 45), (box / 4, 38), (3 * box / 8, 33)]
    parts = [rng.normal((x, box / 2, box / 2), 0.05, size=(n, 3)) for x, n in clumps]
    # U: down x = 0.45 L to past L/2, along y, back below L/2 (steps of 0.1)
    t = np.arange(0.0, 1.0, 0.1 / box)
    u = np.stack([0.45 + 0.1 * np.sin(np.pi * t), 0.1 + 0.3 * t, 0.8 + 0 * t], 1)
    parts.append(u * box)
    parts.append(rng.uniform(0.0, box, size=(3000, 3)) * (1.0, 1.0, 0.25))
    return np.concatenate(parts) % box, [*clumps, (0.0, len(t))]


@pytest.mark.parametrize("n_slabs", [2, 3, 4])
def test_fof_joins_groups_across_slab_edges_and_the_periodic_edge(n_slabs):
    box = 40.0
    x, clumps = _straddling(box)
    rng = np.random.default_rng(4)
    ds = xr.Dataset(
        {
            "Coordinates": (("particle", "xyz"), x.astype(np.float32)),
            "Velocities": (("particle", "xyz"), rng.normal(0, 100.0, x.shape)),
            "Masses": ("particle", rng.uniform(1.0, 2.0, len(x))),
        },
        attrs={"BoxSize": box, "Time": 0.5},
    )
    kwargs = {"linking_length": 0.3, "min_members": 30}
    in_memory = find_halos(ds, **kwargs)
    lazy = ds.chunk({"particle": 700})  # 5 chunks, on dask's threads
    chunked = find_halos(lazy, chunked=True, n_slabs=n_slabs, **kwargs)
    # every clump whole, however the slabs cut it: 60, 45, 38, 33 and the U
    want = sorted((n for _, n in clumps), reverse=True)
    assert chunked.GroupLen.values.tolist()[: len(want)] == want
    assert in_memory.GroupLen.values.tolist() == chunked.GroupLen.values.tolist()
    for name in ("GroupMass", "GroupPos", "GroupVel", "GroupMassType"):
        np.testing.assert_allclose(
            chunked[name], in_memory[name], rtol=1e-6, err_msg=name
        )
    # the clump on the periodic edge is centred there, not at L/2
    row = chunked.GroupLen.values.tolist().index(60)
    gap = (chunked.GroupPos.values[row, 0] + box / 2) % box - box / 2
    assert abs(gap) < 0.05


def test_fof_auto_reads_what_fits_and_false_always_reads(monkeypatch):
    x, _ = _straddling(40.0)
    ds = xr.Dataset(
        {"Coordinates": (("particle", "xyz"), x)}, attrs={"BoxSize": 40.0}
    ).chunk({"particle": 1000})
    fits = find_halos(ds, 0.3, 30)  # 90 kB: fits, read into memory
    assert "dask" not in fits.attrs["finder"]
    monkeypatch.setattr("simlab.analysis.fof.fits_in_memory", lambda a: False)
    big = find_halos(ds, 0.3, 30)  # "does not fit": slab by slab
    assert len(x) == 3576 and "4 slabs on dask" in big.attrs["finder"]  # / 1000
    assert "dask" not in find_halos(ds, 0.3, 30, chunked=False).attrs["finder"]
    np.testing.assert_array_equal(big.GroupLen, fits.GroupLen)
    with pytest.raises(ValueError, match="n_slabs"):
        find_halos(ds, 0.3, 30, chunked=True, n_slabs=1000)
