"""Strided and partial reads of the gadget4 backend go block by block correctly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

from simlab.io import gadget4
from simlab.testing import fake_gadget4_snapshot


@pytest.fixture
def snapshot(tmp_path):
    folder = fake_gadget4_snapshot(tmp_path, npart=1001, nfiles=3)
    files = sorted(folder.glob("*.hdf5"), key=lambda p: int(p.name.split(".")[-2]))
    parts = []
    for f in files:
        with h5py.File(f, "r") as handle:
            parts.append(handle["PartType1/Coordinates"][...])
    return folder, np.concatenate(parts)


@pytest.mark.parametrize("block_rows", [1, 7, 4096])
@pytest.mark.parametrize(
    "index",
    [
        np.s_[:],
        np.s_[5:990:3],
        np.s_[::-1],
        np.s_[990:5:-11],
        np.s_[:, 0],
        np.s_[100:900, 1:],
        np.s_[::13, 2],
        np.s_[330:340],  # straddles the first file boundary
        np.s_[400:400],
    ],
)
def test_selection_equals_h5py(monkeypatch, snapshot, block_rows, index):
    monkeypatch.setattr(gadget4, "_READ_ROWS", block_rows)
    folder, reference = snapshot
    with xr.open_dataset(folder, engine="gadget4") as ds:
        got = ds.Coordinates[index].to_numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, reference[index])


def test_full_read_goes_straight_into_the_output(monkeypatch, snapshot):
    folder, reference = snapshot
    calls = []
    original = gadget4.Gadget4ArrayWrapper._read_strided
    monkeypatch.setattr(
        gadget4.Gadget4ArrayWrapper,
        "_read_strided",
        staticmethod(lambda *a: calls.append(a) or original(*a)),
    )
    with xr.open_dataset(folder, engine="gadget4") as ds:
        np.testing.assert_array_equal(ds.Coordinates.to_numpy(), reference)
    assert calls == []  # one read_direct per file, no buffer
