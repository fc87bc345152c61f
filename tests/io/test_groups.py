"""Gadget4 FOF/Subfind catalogues: every fixture catalogue against h5py and physics."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from simlab.errors import SnapshotError
from simlab.io.gadget4 import Gadget4BackendEntrypoint
from simlab.io.groups import (
    GroupCatalogueBackendEntrypoint,
    catalogue_files,
    halo_particles,
    open_groups,
)
from tests.conftest import data_path

#: Every group catalogue in tests/data (multi-file directories and single files).
CATALOGUES = [f"ngenic32/output/groups_00{i}" for i in range(4)] + [
    f"icfile16/output/fof_subhalo_tab_00{i}.hdf5" for i in range(2)
]
#: Ngroups_Total / Nsubhalos_Total listed in the fixture README.
TOTALS = {0: (0, 0), 1: (24, 24), 2: (57, 58), 3: (64, 69)}


def _h5_concat(files, table, column):
    parts = []
    for path in files:
        with h5py.File(path, "r") as f:
            if table in f:
                parts.append(f[table][column][...])
    return np.concatenate(parts)


@pytest.mark.parametrize("relpath", CATALOGUES)
def test_catalogue_matches_h5py_bitwise(relpath):
    path = data_path(f"gadget4-small/{relpath}")
    files = catalogue_files(path)
    for table, count_key in (("Group", "Ngroups"), ("Subhalo", "Nsubhalos")):
        with h5py.File(files[0], "r") as f:
            total = int(f["Header"].attrs[f"{count_key}_Total"])
        ds = open_groups(path, table)
        dim = "halo" if table == "Group" else "subhalo"
        assert ds.sizes.get(dim, 0) == total
        for column in ds.data_vars:
            expected = _h5_concat(files, table, column)
            values = ds[column].values
            assert values.dtype == expected.dtype
            assert values.tobytes() == expected.tobytes(), column
        ds.close()


@pytest.mark.parametrize("number", range(4))
def test_counts_and_masses_match_the_headers(number):
    path = data_path(f"gadget4-small/ngenic32/output/groups_00{number}")
    groups = open_groups(path)
    subhalos = open_groups(path, "Subhalo")
    assert (groups.attrs["Ngroups_Total"], groups.attrs["Nsubhalos_Total"]) == (
        TOTALS[number]
    )
    if TOTALS[number][0] == 0:
        assert "GroupMass" not in groups
        return
    snapshot = path.parent / f"snapdir_00{number}"
    with xr.open_dataset(snapshot, engine="gadget4") as snap:
        particle_mass = snap.attrs["MassTable"][1]
    assert int(groups.GroupLen.sum()) == groups.attrs["Nids_Total"]
    # GroupMass is a float32 sum of up to 255 particle masses: n * 6e-8 at most
    np.testing.assert_allclose(
        groups.GroupMass, groups.GroupLen * particle_mass, rtol=2e-5
    )
    assert float(groups.GroupMass.sum()) == pytest.approx(
        groups.attrs["Nids_Total"] * particle_mass, rel=1e-5
    )
    assert int(groups.GroupNsubs.sum()) == subhalos.sizes["subhalo"]
    assert int(subhalos.SubhaloGroupNr.max()) < groups.sizes["halo"]
    assert np.all(np.diff(groups.GroupLen.values) <= 0)  # largest first


def test_final_catalogue_numbers_from_the_code_log():
    """FOF's own summary in stdout: 64 groups, largest 255, 5788 in groups."""
    path = data_path("gadget4-small/ngenic32/output/groups_003")
    groups = open_groups(path)
    assert groups.sizes["halo"] == 64
    assert int(groups.GroupLen.max()) == 255
    assert int(groups.GroupLen.sum()) == 5788
    assert groups.GroupLen.values[:5].tolist() == [255, 245, 217, 207, 207]


def test_halo_particles_are_friends_of_friends():
    """Each member of a FOF group lies within the linking length (0.4) of another."""
    from scipy.spatial import cKDTree

    out = data_path("gadget4-small/ngenic32/output")
    groups = open_groups(out / "groups_003")
    with xr.open_dataset(out / "snapdir_003", engine="gadget4") as snap:
        box = float(snap.attrs["BoxSize"])
        for index in range(groups.sizes["halo"]):
            members = halo_particles(groups, snap, index)
            x = members.Coordinates.values.astype(np.float64) % box
            assert len(x) == int(groups.GroupLen[index])
            nearest, _ = cKDTree(x, boxsize=box).query(x, k=2)
            assert nearest[:, 1].max() <= 0.4 * (1 + 1e-5), index
    with pytest.raises(IndexError, match="64 rows"):
        halo_particles(groups, snap, 64)


def test_lazy_picklable_and_dask_ready():
    path = data_path("gadget4-small/ngenic32/output/groups_002")
    ds = open_groups(path)
    assert ds.GroupMass.variable._in_memory is False
    again = pickle.loads(pickle.dumps(ds))
    total = float(again.chunk({"halo": 10}).GroupMass.sum().compute())
    assert total == float(np.sum(ds.GroupMass.values, dtype=np.float32))


def test_datatree_and_engine_guessing():
    out = data_path("gadget4-small/ngenic32/output")
    tree = xr.open_datatree(out / "groups_003", engine="gadget4_groups")
    assert tree["Group"].sizes["halo"] == 64
    assert tree["Subhalo"].sizes["subhalo"] == 69
    piece = out / "groups_003" / "fof_subhalo_tab_003.1.hdf5"
    snapshot = out / "snapdir_003" / "snapshot_003.0.hdf5"
    assert GroupCatalogueBackendEntrypoint().guess_can_open(piece)
    assert not GroupCatalogueBackendEntrypoint().guess_can_open(snapshot)
    assert not Gadget4BackendEntrypoint().guess_can_open(piece)
    assert not GroupCatalogueBackendEntrypoint().guess_can_open(out / "info.txt")


def test_missing_piece_is_named(tmp_path):
    out = data_path("gadget4-small/ngenic32/output")
    copy = tmp_path / "groups_003"
    shutil.copytree(out / "groups_003", copy)
    (copy / "fof_subhalo_tab_003.1.hdf5").unlink()
    with pytest.raises(SnapshotError, match="NumFiles is 2 but 1 files match"):
        open_groups(copy / "fof_subhalo_tab_003.0.hdf5")
    with pytest.raises(FileNotFoundError):
        open_groups(tmp_path / "nothing")
