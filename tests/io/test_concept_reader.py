"""CONCEPT snapshots, GADGET binary files and CONCEPT power spectra, against the
real files of tests/data/concept-small."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import xarray as xr

from simlab.analysis.power import power_spectrum
from simlab.config import RunConfig
from simlab.errors import SnapshotError
from simlab.ics import make_particles
from simlab.io import gadget_binary
from simlab.io.concept import (
    ConceptBackendEntrypoint,
    read_particles,
    read_powerspec,
    write_concept_snapshot,
    write_gadget_snapshot,
)
from tests.conftest import data_path

SNAPSHOTS = ["snapshot_a=0.50.hdf5", "snapshot_a=1.00.hdf5"]
GADGET_FILES = [
    ("concept32/output_gadget/snapshot_a=1.00", 2),
    ("icfile/ic/snapshot_a=0.50_gadget", 2),
    ("icfile/ic/snapshot_a=0.50_gadget_fmt1", 1),
]
PLANCK15 = RunConfig(cosmology={"preset": "planck15"}).cosmology


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_concept_snapshot_matches_h5py_bitwise(name):
    path = data_path(f"concept-small/concept32/output/{name}")
    tree = xr.open_datatree(path, engine="concept")
    assert set(tree.children) == {"matter"}
    matter = tree["matter"].to_dataset()
    with h5py.File(path, "r") as f:
        for key in ("pos", "mom"):
            raw = f[f"components/matter/{key}"][...]
            assert matter[key].dtype == raw.dtype
            assert np.array_equal(matter[key].to_numpy(), raw)
            assert np.array_equal(matter[key][100:200:7].to_numpy(), raw[100:200:7])
            picked = matter[key].isel(particle=[5, 1, 3]).to_numpy()
            assert np.array_equal(picked, raw[[5, 1, 3]])
        for key, value in f.attrs.items():
            stored = value.decode() if isinstance(value, bytes) else value
            assert tree.attrs[key] == stored, key
        for key, value in f["components/matter"].attrs.items():
            assert matter.attrs[key] == value, key
    assert matter["pos"].attrs["units"] == "Mpc (comoving)"
    assert math.isclose(tree.attrs["h"], 0.6774, rel_tol=1e-12)
    assert math.isclose(tree.attrs["Omega0"], 0.3089, rel_tol=1e-12)


def test_open_dataset_is_lazy_and_picks_components(tmp_path):
    path = data_path("concept-small/concept32/output/snapshot_a=1.00.hdf5")
    with xr.open_dataset(path, engine="concept", chunks={}) as ds:
        assert ds["pos"].chunks is not None  # dask-backed: nothing read yet
        assert ds["velocity"].attrs["units"] == "km/s"
    with pytest.raises(SnapshotError, match="no group 'baryons'; groups: matter"):
        xr.open_dataset(path, engine="concept", group="baryons")


@pytest.mark.parametrize(
    ("hdf5", "gadget"),
    [
        (
            "concept32/output/snapshot_a=1.00.hdf5",
            "concept32/output_gadget/snapshot_a=1.00",
        ),
        ("concept32/output/snapshot_a=0.50.hdf5", "icfile/ic/snapshot_a=0.50_gadget"),
    ],
)
def test_velocities_from_momenta_match_concepts_gadget_output(hdf5, gadget):
    # the same run wrote both files; GADGET stores v_peculiar / sqrt(a) in km/s
    concept = xr.open_dataset(data_path(f"concept-small/{hdf5}"), engine="concept")
    other = xr.open_dataset(data_path(f"concept-small/{gadget}"), engine="concept")
    a = concept.attrs["a"]
    expected = other["Velocities"].to_numpy().astype(np.float64) * np.sqrt(a)
    np.testing.assert_allclose(
        concept["velocity"].to_numpy(), expected, rtol=2e-6, atol=1e-3
    )
    # positions: Mpc versus kpc/h
    h = concept.attrs["h"]
    np.testing.assert_allclose(
        concept["pos"].to_numpy() * h * 1000, other["Coordinates"].to_numpy(), atol=0.02
    )


@pytest.mark.parametrize(("name", "fmt"), GADGET_FILES)
def test_gadget_binary_fixture_matches_a_raw_read(name, fmt):
    path = data_path(f"concept-small/{name}")
    n = 32768
    # README layout: a label record (16 B) before each block in SnapFormat 2
    label = 16 if fmt == 2 else 0
    header = np.fromfile(path, dtype="<i4", count=6, offset=label + 4)
    pos_at = label + 4 + 256 + 4 + label + 4
    vel_at = pos_at + 12 * n + 4 + label + 4
    ids_at = vel_at + 12 * n + 4 + label + 4
    tree = xr.open_datatree(path, engine="concept")
    assert set(tree.children) == {"PartType1"}
    ds = tree["PartType1"]
    assert list(header) == [0, n, 0, 0, 0, 0] == tree.attrs["Npart"]
    assert tree.attrs["SnapFormat"] == fmt
    assert tree.attrs["BoxSize"] == 64000.0 and tree.attrs["HubbleParam"] == 0.6774
    for key, offset, shape, dtype in [
        ("Coordinates", pos_at, (n, 3), "<f4"),
        ("Velocities", vel_at, (n, 3), "<f4"),
        ("ParticleIDs", ids_at, (n,), "<u4"),
    ]:
        raw = np.fromfile(path, dtype=dtype, count=math.prod(shape), offset=offset)
        assert np.array_equal(ds[key].to_numpy(), raw.reshape(shape)), key
    assert np.array_equal(ds["ParticleIDs"].to_numpy(), np.arange(n))


def test_snapformat_1_and_2_hold_the_same_particles():
    fmt2 = data_path("concept-small/icfile/ic/snapshot_a=0.50_gadget")
    fmt1 = data_path("concept-small/icfile/ic/snapshot_a=0.50_gadget_fmt1")
    one, two = read_particles(fmt1), read_particles(fmt2)
    assert np.array_equal(one.positions, two.positions)
    assert np.array_equal(one.velocities, two.velocities)


@pytest.mark.parametrize("fmt", [1, 2])
def test_gadget_binary_round_trip(tmp_path, fmt):
    config = RunConfig(box={"size": 50.0, "particles_per_side": 8})
    particles = make_particles(config)
    path = write_gadget_snapshot(
        tmp_path / "snap", particles, config.cosmology, fmt=fmt
    )
    assert gadget_binary.snapformat(path) == fmt
    records = (256 + 8) + 2 * (12 * 512 + 8) + (4 * 512 + 8)  # HEAD POS VEL ID
    labels = 4 * 16 if fmt == 2 else 0
    assert path.stat().st_size == records + labels
    back = read_particles(path)
    np.testing.assert_allclose(
        back.positions, particles.positions, rtol=1e-6, atol=1e-5
    )
    np.testing.assert_allclose(
        back.velocities, particles.velocities, rtol=1e-6, atol=1e-4
    )
    assert np.array_equal(back.ids, particles.ids)
    assert (back.mass, back.box_size, back.a) == (
        particles.mass,
        particles.box_size,
        particles.a,
    )
    header = gadget_binary.scan(path).header
    assert header["Omega0"] == config.cosmology.Omega0
    assert header["Redshift"] == pytest.approx(1 / particles.a - 1, rel=1e-15)
    # and the raw layer reads back exactly what it wrote
    raw = xr.open_dataset(path, engine="concept", group="PartType1")
    again = gadget_binary.write_gadget_binary(
        tmp_path / "again",
        raw.Coordinates.to_numpy(),
        raw.Velocities.to_numpy(),
        raw.ParticleIDs.to_numpy(),
        header,
        fmt=fmt,
    )
    assert again.read_bytes() == path.read_bytes()


def test_concept_writer_reproduces_concepts_own_file(tmp_path):
    # read a real CONCEPT snapshot into simlab units, write it back: same numbers
    source = data_path("concept-small/concept32/output/snapshot_a=0.50.hdf5")
    particles = read_particles(source)
    written = write_concept_snapshot(tmp_path / "copy.hdf5", particles, PLANCK15)
    with h5py.File(source, "r") as want, h5py.File(written, "r") as got:
        for key in ("H0", "a", "boxsize", "Ωb", "Ωcdm"):
            assert math.isclose(got.attrs[key], want.attrs[key], rel_tol=1e-14), key
        for key in ("unit length", "unit mass", "unit time"):
            assert got.attrs[key] == want.attrs[key]
        w, g = want["components/matter"], got["components/matter"]
        assert g.attrs["N"] == w.attrs["N"] and g.attrs["species"] == "matter"
        assert math.isclose(g.attrs["mass"], w.attrs["mass"], rel_tol=1e-14)
        np.testing.assert_allclose(g["pos"][...], w["pos"][...], rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(g["mom"][...], w["mom"][...], rtol=1e-12, atol=1e-3)


def test_gadget4_files_and_garbage_are_refused(tmp_path):
    from simlab.io.gadget4_files import write_snapshot

    config = RunConfig(box={"size": 50.0, "particles_per_side": 4})
    gadget4 = write_snapshot(tmp_path / "g4.hdf5", make_particles(config))[0]
    assert not ConceptBackendEntrypoint().guess_can_open(gadget4)
    with pytest.raises(SnapshotError, match=r"g4\.hdf5: neither a CONCEPT HDF5"):
        xr.open_datatree(gadget4, engine="concept")
    path = write_gadget_snapshot(
        tmp_path / "snap", make_particles(config), config.cosmology
    )
    truncated = tmp_path / "truncated"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SnapshotError, match="truncated: truncated block"):
        read_particles(truncated)
    with pytest.raises(SnapshotError, match="not a CONCEPT power spectrum"):
        read_powerspec(gadget4)


@pytest.mark.parametrize("a", ["0.50", "1.00"])
def test_simlab_power_matches_concepts_own_within_2_percent(a):
    root = data_path("concept-small/concept32/output")
    particles = read_particles(root / f"snapshot_a={a}.hdf5")
    h = 0.6774
    theirs = read_powerspec(root / f"powerspec_a={a}", h=h)
    # same bins (recovered from the mode counts), same window treatment
    # (deconvolved, interlaced, on the same 64³ grid), shot noise kept in both
    edges = np.append(theirs.k_edges_low.to_numpy(), theirs.k_edges_high[-1].item())
    ours = power_spectrum(
        particles.positions,
        particles.box_size,
        theirs.attrs["n_mesh"],
        scheme="tsc",
        interlace=True,
        k_bins=edges,
    )
    assert np.array_equal(ours.n_modes.to_numpy(), theirs.n_modes.to_numpy())
    ratio = ours.to_numpy() / theirs.to_numpy()
    assert np.max(np.abs(ratio - 1)) < 0.02, ratio
    # shot noise would be 7% of the last bin at a=0.5: handled the same way
    assert ours.attrs["shot_noise"] / theirs[-1].item() > 0.05


def test_powerspec_reader_recovers_concepts_bins():
    path = data_path("concept-small/concept32/output/powerspec_a=1.00")
    table = np.loadtxt(path)
    spectrum = read_powerspec(path)
    assert spectrum.attrs["units"] == "Mpc^3" and spectrum.attrs["a"] == 1.0
    assert spectrum.attrs["n_mesh"] == 64 and spectrum.sizes["k"] == 16
    np.testing.assert_array_equal(spectrum.to_numpy(), table[:, 2])
    np.testing.assert_array_equal(spectrum.power_linear.to_numpy(), table[:, 3])
    # CONCEPT's k is the mode-weighted geometric mean |k| of each bin: recompute
    # it from the recovered shells, k_f = 2π / (64 Mpc/h / h)
    k_f = 2 * np.pi / (64 / 0.6774)
    low = (spectrum.k_edges_low.to_numpy() / k_f) ** 2 + 0.5
    high = (spectrum.k_edges_high.to_numpy() / k_f) ** 2 - 0.5
    m = np.arange(-32, 32)
    q = (m[:, None, None] ** 2 + m[None, :, None] ** 2 + m[None, None, :] ** 2).ravel()
    for i, (lo, hi) in enumerate(zip(low.round(), high.round(), strict=True)):
        shell = q[(q >= lo) & (q <= hi)]
        assert len(shell) == 2 * table[i, 1]
        k_bin = k_f * np.exp(np.mean(0.5 * np.log(shell)))
        assert math.isclose(k_bin, table[i, 0], rel_tol=1e-7)
    in_h = read_powerspec(path, h=0.6774)
    np.testing.assert_allclose(in_h.k * 0.6774, table[:, 0], rtol=1e-15)
    np.testing.assert_allclose(in_h / 0.6774**3, table[:, 2], rtol=1e-15)
    assert math.isclose(in_h.attrs["box_size"], 64.0, rel_tol=1e-7)
