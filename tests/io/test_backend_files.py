"""What every simlab backend owes its caller: files closed by ``with``, and a
content check that a stray file cannot fool."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from simlab.io import gadget_binary
from simlab.io.concept import ConceptBackendEntrypoint
from tests.conftest import data_path

#: (engine, file or folder under tests/data, node read inside the block)
TREES = [
    ("gadget4", "gadget4-small/icfile16/output/snapshot_001.hdf5", "PartType1"),
    ("gadget4", "gadget4-small/ngenic32/output/snapdir_001", "PartType1"),
    ("gadget4_groups", "gadget4-small/ngenic32/output/groups_003", "Group"),
    ("concept", "concept-small/concept32/output/snapshot_a=1.00.hdf5", "matter"),
]


def _open_hdf5_files() -> set[Path]:
    """Every file the HDF5 library holds open in this process."""
    ids = h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)
    return {Path(fid.name.decode()).resolve() for fid in ids}


@pytest.mark.parametrize(("engine", "relpath", "node"), TREES)
def test_with_block_closes_the_files(engine, relpath, node):
    path = data_path(relpath).resolve()
    files = sorted(path.glob("*.hdf5")) if path.is_dir() else [path]
    with xr.open_datatree(path, engine=engine) as tree:
        first = next(iter(tree[node].data_vars.values()))
        assert np.asarray(first).size > 0
        assert _open_hdf5_files() & set(files)
    assert not _open_hdf5_files() & set(files)


@pytest.mark.parametrize("fmt", [1, 2])
def test_first_int32_of_256_is_not_enough(tmp_path, fmt):
    real = data_path(
        "concept-small/icfile/ic/snapshot_a=0.50_gadget" + ("_fmt1" if fmt == 1 else "")
    )
    assert ConceptBackendEntrypoint().guess_can_open(real)
    head = real.read_bytes()[: 16 * (fmt == 2) + 4 + 256 + 4]
    # the same start, but the header record's trailing marker is wrong
    broken = tmp_path / f"broken{fmt}"
    broken.write_bytes(head[:-4] + np.array([255], "<i4").tobytes() + b"\0" * 64)
    # a text file whose first four bytes read as the little-endian int32 256
    text = tmp_path / "notes.txt"
    text.write_bytes(np.array([256], "<i4").tobytes() + b"x" * 400)
    assert gadget_binary.snapformat(real) == fmt
    for fake in (broken, text):
        assert gadget_binary.snapformat(fake) == 0, fake.name
        assert not ConceptBackendEntrypoint().guess_can_open(fake), fake.name
