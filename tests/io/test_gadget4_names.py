"""The one table of Gadget4 output names, against the real output folders."""

from __future__ import annotations

from simlab.engines.gadget4 import group_catalogue_paths, snapshot_paths
from simlab.io.gadget4_names import GROUP_CATALOGUE, SNAPSHOT
from simlab.io.groups import catalogue_files
from simlab.io.snapshots import find_snapshots
from tests.conftest import data_path


def test_single_files_and_folders_of_the_real_runs():
    single = data_path("gadget4-small/icfile16/output")
    multi = data_path("gadget4-small/ngenic32/output")
    assert SNAPSHOT.find(single) == {n: single / SNAPSHOT.single(n) for n in (0, 1)}
    assert GROUP_CATALOGUE.find(single) == {
        n: single / f"fof_subhalo_tab_{n:03d}.hdf5" for n in (0, 1)
    }
    assert SNAPSHOT.find(multi) == {
        n: multi / f"snapdir_{n:03d}/snapshot_{n:03d}.0.hdf5" for n in range(4)
    }
    assert GROUP_CATALOGUE.find(multi) == {
        n: multi / f"groups_{n:03d}/fof_subhalo_tab_{n:03d}.0.hdf5" for n in range(4)
    }
    # the engine, the run helpers and the readers answer from the same table
    assert (
        snapshot_paths(multi)
        == find_snapshots(multi.parent)
        == [multi / f"snapdir_{n:03d}/snapshot_{n:03d}.0.hdf5" for n in range(4)]
    )
    assert group_catalogue_paths(single) == list(GROUP_CATALOGUE.find(single).values())
    # the catalogue reader finds a folder's piece 0 by the table's name too
    pieces = catalogue_files(multi / "groups_002")
    assert pieces[0] == GROUP_CATALOGUE.find(multi)[2]
    assert [p.name for p in pieces] == [
        f"fof_subhalo_tab_002.{i}.hdf5" for i in range(len(pieces))
    ]


def test_what_is_not_an_output_is_left_out(tmp_path):
    (tmp_path / "snapdir_002").mkdir()  # a folder Gadget4 has not filled yet
    (tmp_path / "snapshot_003.txt").touch()
    (tmp_path / "snapshot_4.hdf5").touch()  # Gadget4 pads numbers to 3 digits
    (tmp_path / "snapshot_005.0.hdf5").touch()  # a piece outside its folder
    (tmp_path / "snapshot_006.hdf5").touch()
    (tmp_path / "snapdir_006").mkdir()
    (tmp_path / "snapdir_006" / "snapshot_006.0.hdf5").touch()
    (tmp_path / "snapdir_007").mkdir()
    (tmp_path / "snapdir_007" / "snapshot_007.1.hdf5").touch()
    assert SNAPSHOT.find(tmp_path) == {6: tmp_path / "snapshot_006.hdf5"}
    assert GROUP_CATALOGUE.find(tmp_path) == {}


def test_a_file_list_names_the_outputs_a_folder_holds(tmp_path):
    names = [
        "snapshot_001.hdf5",
        "snapdir_002/snapshot_002.0.hdf5",
        "snapdir_002/snapshot_002.1.hdf5",
        "snapshot_4.hdf5",
        "snapshot_005.0.hdf5",
        "snapdir_007/snapshot_007.1.hdf5",
        "elsewhere/snapshot_008.hdf5",
        "powerspec_001.nc",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    expected = {1: "snapshot_001.hdf5", 2: "snapdir_002/snapshot_002.0.hdf5"}
    assert SNAPSHOT.among(reversed(names)) == expected  # in number order
    assert SNAPSHOT.find(tmp_path) == {n: tmp_path / p for n, p in expected.items()}
