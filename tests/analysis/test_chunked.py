"""P(k) and projections of a lazily opened snapshot on a real dask cluster, chunk by
chunk: the same numbers as in memory, with every chunk handled by a worker, never
all at once."""

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
from simlab.analysis.power import power_spectrum
from simlab.analysis.projection import projection_image
from simlab.io.gadget4 import particle_chunks
from simlab.testing import fake_gadget4_snapshot

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
