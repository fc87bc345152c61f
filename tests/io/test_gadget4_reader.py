"""The gadget4 xarray backend against real Gadget4 outputs and simlab's own writer."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from simlab.errors import SnapshotError
from simlab.io.gadget4 import (
    REQUIRED_HEADER,
    Gadget4BackendEntrypoint,
)
from simlab.io.gadget4_files import read_particles, write_snapshot
from simlab.io.snapshots import find_snapshots, open_series
from simlab.testing import assert_snapshot_equal, fake_particles
from tests.conftest import data_path

NGENIC = "gadget4-small/ngenic32"
#: (relative path, files, particles per file) from the fixture README
FIXTURE_SNAPSHOTS = [
    (f"{NGENIC}/output/snapdir_000", 2, [16564, 16204]),
    (f"{NGENIC}/output/snapdir_001", 2, [16985, 15783]),
    (f"{NGENIC}/output/snapdir_002", 2, [17572, 15196]),
    (f"{NGENIC}/output/snapdir_003", 2, [17847, 14921]),
    (f"{NGENIC}/ics/snapdir_000", 2, None),
    ("gadget4-small/icfile16/output/snapshot_000.hdf5", 1, [4096]),
    ("gadget4-small/icfile16/output/snapshot_001.hdf5", 1, [4096]),
    ("gadget4-small/icfile16/ics.hdf5", 1, [4096]),
]


def _h5py_concat(files, key):
    return np.concatenate([h5py.File(f, "r")[f"PartType1/{key}"][...] for f in files])


def _files(path, nfiles):
    if nfiles == 1:
        return [path]
    return sorted(path.glob("*.hdf5"), key=lambda p: int(p.name.split(".")[-2]))


class SnapshotReaderContract:
    """Behaviour every snapshot backend shares; subclasses set engine and roundtrip."""

    engine: str

    def roundtrip(self, particles, tmp_path):
        raise NotImplementedError

    def test_roundtrip_is_exact_in_float32(self, tmp_path):
        particles = fake_particles(2000)
        ds = self.roundtrip(particles, tmp_path)
        np.testing.assert_array_equal(
            ds.Coordinates.values, particles.positions.astype(np.float32)
        )
        np.testing.assert_array_equal(ds.ParticleIDs.values, particles.ids)
        back = ds.Velocities.values * np.sqrt(ds.attrs["Time"])
        np.testing.assert_allclose(back, particles.velocities, rtol=1e-6)
        assert ds.attrs["BoxSize"] == particles.box_size

    def test_lazy_and_picklable(self, tmp_path):
        ds = self.roundtrip(fake_particles(500), tmp_path)
        assert not ds.Coordinates.variable._in_memory
        clone = pickle.loads(pickle.dumps(ds))
        np.testing.assert_array_equal(clone.Coordinates.values, ds.Coordinates.values)


class TestGadget4Reader(SnapshotReaderContract):
    engine = "gadget4"

    def roundtrip(self, particles, tmp_path):
        path = tmp_path / "snapshot_000.hdf5"
        write_snapshot(path, particles)
        return xr.open_dataset(path, engine=self.engine)

    @pytest.mark.parametrize(("relpath", "nfiles", "counts"), FIXTURE_SNAPSHOTS)
    def test_fixture_equals_h5py_bitwise(self, relpath, nfiles, counts):
        path = data_path(relpath)
        files = _files(path, nfiles)
        ds = xr.open_dataset(path, engine="gadget4")
        assert not ds.Coordinates.variable._in_memory
        for key in ("Coordinates", "Velocities", "ParticleIDs"):
            ref = _h5py_concat(files, key)
            assert ds[key].dtype == ref.dtype
            assert np.array_equal(ds[key].values, ref), key
        if counts is not None:
            per_file = [
                int(h5py.File(f)["Header"].attrs["NumPart_ThisFile"][1]) for f in files
            ]
            assert per_file == counts
            assert ds.sizes["particle"] == sum(counts) == ds.attrs["NumPart_Total"][1]
        with h5py.File(files[0]) as f:
            assert ds.attrs["Time"] == f["Header"].attrs["Time"]
            assert ds.attrs["BoxSize"] == f["Header"].attrs["BoxSize"]
        if "ics.hdf5" not in relpath:  # the h5py-written IC file has no unit attrs
            assert ds.Coordinates.attrs["a_scaling"] == 1.0
            assert ds.Velocities.attrs["a_scaling"] == 0.5

    def test_pieces_and_directory_open_the_same_snapshot(self):
        folder = data_path(f"{NGENIC}/output/snapdir_002")
        whole = xr.open_dataset(folder, engine="gadget4")
        for piece in ("snapshot_002.0.hdf5", "snapshot_002.1.hdf5"):
            assert_snapshot_equal(
                whole, xr.open_dataset(folder / piece, engine="gadget4")
            )
        assert whole.attrs["Config/PMGRID"] == 64.0
        assert whole.attrs["Parameters/Omega0"] == pytest.approx(0.3089)
        assert whole.Coordinates.attrs["units"].startswith("Mpc/h")
        tree = xr.open_datatree(folder, engine="gadget4")
        assert list(tree.children) == ["PartType1"]

    @pytest.mark.parametrize(
        "index",
        [
            np.s_[16000:17000],  # straddles the file boundary
            np.s_[::7],
            np.s_[::-13],
            np.s_[16563:16566, 1],
            np.s_[5],
            np.s_[-1],
        ],
    )
    def test_lazy_selections_equal_h5py(self, index):
        folder = data_path(f"{NGENIC}/output/snapdir_000")
        ref = _h5py_concat(_files(folder, 2), "Coordinates")
        ds = xr.open_dataset(folder, engine="gadget4")
        assert np.array_equal(ds.Coordinates[index].values, ref[index])

    def test_chunked_sum_on_a_local_cluster(self):
        from distributed import Client, LocalCluster

        folder = data_path(f"{NGENIC}/output/snapdir_003")
        ref = _h5py_concat(_files(folder, 2), "Coordinates").astype(np.float64)
        ds = xr.open_dataset(folder, engine="gadget4", chunks={"particle": 10000})
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=2, dashboard_address=None
            ) as cluster,
            Client(cluster),
        ):
            total = ds.Coordinates.astype(np.float64).sum().compute()
        assert float(total) == pytest.approx(ref.sum(), rel=1e-12)

    def test_guess_can_open(self, tmp_path):
        entry = Gadget4BackendEntrypoint()
        assert entry.guess_can_open(data_path(f"{NGENIC}/output/snapdir_001"))
        assert entry.guess_can_open(
            data_path("gadget4-small/icfile16/output/snapshot_000.hdf5")
        )
        groups = data_path(f"{NGENIC}/output/groups_003/fof_subhalo_tab_003.0.hdf5")
        assert not entry.guess_can_open(groups)
        text = tmp_path / "notes.txt"
        text.write_text("hello")
        junk = tmp_path / "junk.hdf5"
        junk.write_bytes(np.random.default_rng(0).bytes(5000))
        for path in (text, junk, tmp_path / "missing.hdf5", 12345):
            assert entry.guess_can_open(path) is False

    def test_unreadable_files_name_themselves(self, tmp_path):
        source = data_path("gadget4-small/icfile16/output/snapshot_000.hdf5")
        truncated = tmp_path / "snapshot_009.hdf5"
        truncated.write_bytes(source.read_bytes()[:1000])
        with pytest.raises(SnapshotError, match=r"snapshot_009\.hdf5"):
            xr.open_dataset(truncated, engine="gadget4")
        other = tmp_path / "other.hdf5"
        with h5py.File(other, "w") as f:
            f.create_dataset("x", data=[1, 2])
        with pytest.raises(
            SnapshotError, match=r"other.hdf5: no Header group \(found \['x'\]\)"
        ):
            xr.open_dataset(other, engine="gadget4")
        with pytest.raises(FileNotFoundError, match=r"nothing\.hdf5"):
            xr.open_dataset(tmp_path / "nothing.hdf5", engine="gadget4")

    def test_missing_piece_is_reported_with_counts(self, tmp_path):
        folder = data_path(f"{NGENIC}/output/snapdir_001")
        copy = tmp_path / "snapdir_001"
        shutil.copytree(folder, copy)
        (copy / "snapshot_001.1.hdf5").unlink()
        with pytest.raises(
            SnapshotError, match=r"NumFilesPerSnapshot is 2 but 1 files"
        ):
            xr.open_dataset(copy, engine="gadget4")

    def test_open_series_aligns_particles_in_time(self):
        output = data_path(f"{NGENIC}/output")
        series = open_series(output)
        assert series.sizes["snapshot"] == 4
        found = find_snapshots(output)
        assert found == [
            output / f"snapdir_{i:03d}" / f"snapshot_{i:03d}.0.hdf5" for i in range(4)
        ]
        times = [h5py.File(p)["Header"].attrs["Time"] for p in found]
        np.testing.assert_array_equal(series.a.values, times)
        assert np.all(np.diff(series.a.values) > 0)
        ids = series.ParticleIDs.values
        assert np.all(ids == ids[0])  # same particle at every index and time


def test_reopening_an_unchanged_snapshot_reads_no_metadata(tmp_path, monkeypatch):
    from simlab.io import gadget4

    (path,) = write_snapshot(tmp_path / "snapshot_000.hdf5", fake_particles(500))
    first = xr.open_dataset(path, engine="gadget4")
    scans = []
    scan = gadget4.Gadget4Store._scan
    monkeypatch.setattr(
        gadget4.Gadget4Store,
        "_scan",
        lambda self, i, manager: scans.append(i) or scan(self, i, manager),
    )
    again = xr.open_dataset(path, engine="gadget4")
    assert scans == []
    xr.testing.assert_identical(again, first)
    # what a Dataset's user changes is its own, not the next opening's
    again.attrs["BoxSize"] = -1.0
    assert (
        xr.open_dataset(path, engine="gadget4").attrs["BoxSize"]
        == (first.attrs["BoxSize"])
    )
    # a file written again (new size, time and contents) is scanned again
    write_snapshot(tmp_path / "snapshot_000.hdf5", fake_particles(700))
    rewritten = xr.open_dataset(path, engine="gadget4")
    assert scans == [0]
    assert rewritten.sizes["particle"] == 700


class TestGadget4Writer:
    def test_ic_file_has_what_gadget4_requires(self, tmp_path):
        particles = fake_particles(300, a=0.1)
        (path,) = write_snapshot(tmp_path / "ics.hdf5", particles, ic=True)
        with h5py.File(path) as f:
            header = f["Header"].attrs
            assert set(REQUIRED_HEADER) <= set(header)
            assert header["NumPart_ThisFile"].dtype == np.uint64
            assert header["NumPart_ThisFile"].shape == (6,)
            assert header["MassTable"].dtype == np.float64
            assert header["NumFilesPerSnapshot"].dtype == np.int32
            assert "Config" not in f
            vel = f["PartType1/Velocities"][...]
            np.testing.assert_allclose(
                vel * np.sqrt(0.1), particles.velocities, rtol=1e-6, atol=1e-3
            )
            ids = f["PartType1/ParticleIDs"][...]
            assert ids.min() > 0 and len(np.unique(ids)) == 300
            pos = f["PartType1/Coordinates"][...]
            assert pos.min() >= 0 and pos.max() < particles.box_size

    def test_multi_file_split_adds_up(self, tmp_path):
        particles = fake_particles(1001)
        files = write_snapshot(tmp_path / "snapshot_004", particles, nfiles=3)
        counts = [
            int(h5py.File(f)["Header"].attrs["NumPart_ThisFile"][1]) for f in files
        ]
        assert sum(counts) == 1001 and max(counts) - min(counts) <= 1
        back = read_particles(files[1])
        np.testing.assert_array_equal(back.ids, particles.ids)

    def test_interrupted_write_leaves_nothing(self, tmp_path, monkeypatch):
        def boom(self, *args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(h5py.Group, "create_dataset", boom)
        with pytest.raises(OSError, match="disk full"):
            write_snapshot(tmp_path / "snapshot_000.hdf5", fake_particles(10))
        assert list(tmp_path.iterdir()) == []
