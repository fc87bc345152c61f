"""Friends-of-friends: brute force, periodic wrap, Gadget4's own FOF, every format."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from simlab.analysis.fof import find_halos, fof_labels
from simlab.analysis.halos import mass_function
from simlab.io.groups import open_groups
from simlab.particles import ParticleSet
from tests.conftest import data_path

NGENIC32 = "gadget4-small/ngenic32/output"
CONCEPT32 = "concept-small/concept32"


def clustered(n_clumps: int = 30, seed: int = 0, box: float = 20.0) -> np.ndarray:
    """Gaussian clumps of 5 to 60 particles of all widths, plus a background."""
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(0.0, box, size=(800, 3))]
    for _ in range(n_clumps):
        centre = rng.uniform(0.0, box, 3)
        size = rng.integers(5, 60)
        parts.append(rng.normal(centre, rng.uniform(0.05, 0.6), size=(size, 3)))
    return np.concatenate(parts) % box


def brute_force_labels(x: np.ndarray, box: float, link: float) -> np.ndarray:
    """Union-find over every pair with a periodic distance <= link (O(N²))."""
    n = len(x)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        d = x[i + 1 :] - x[i]
        d -= box * np.round(d / box)
        for j in np.flatnonzero((d**2).sum(axis=1) <= link**2) + i + 1:
            parent[root(i)] = root(j)
    return np.array([root(i) for i in range(n)])


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.mark.parametrize("slab_particles", [97, 2**18])
def test_labels_equal_brute_force_whatever_the_slabs(slab_particles):
    x = clustered()
    box, link = 20.0, 0.3
    labels = fof_labels(x, box, link, slab_particles=slab_particles)
    assert labels.dtype == np.int32
    assert same_partition(labels, brute_force_labels(x, box, link))
    # numbered 0 … n - 1 in order of each group's first particle
    first = np.unique(labels, return_index=True)[1]
    assert np.all(np.diff(first) > 0) and labels.max() == len(first) - 1


def test_links_at_the_linking_length_and_across_every_face():
    box = 10.0
    # a chain along the diagonal through the corner, steps of exactly 0.5
    chain = np.array([[9.5, 9.5, 9.5], [9.8, 9.8, 9.8], [0.1, 0.1, 0.1]])
    steps = np.linalg.norm(chain[1] - chain[0])
    far = np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 5.0 + steps * 1.0001]])
    labels = fof_labels(np.concatenate([chain, far]), box, steps)
    assert labels[:3].tolist() == [0, 0, 0]  # d <= link links, as in Gadget4
    assert labels[3] != labels[4]


def test_catalogue_masses_centres_and_velocities():
    rng = np.random.default_rng(5)
    box = 30.0
    # 50 particles around the corner (0, 0, 0) moving together, 40 at (15, 15, 15)
    corner = rng.normal(0.0, 0.1, size=(50, 3)) % box
    middle = rng.normal(15.0, 0.1, size=(40, 3))
    background = rng.uniform(0.0, box, size=(300, 3))
    x = np.concatenate([corner, middle, background])
    v = np.zeros_like(x)
    v[:50] = [100.0, -50.0, 0.0]
    v[50:90] = rng.normal(0.0, 10.0, size=(40, 3))
    mass = np.full(len(x), 2.0)
    mass[:50] = 3.0
    halos = find_halos(x, box_size=box, velocities=v, particle_mass=mass)
    assert halos.GroupLen.values.tolist() == [50, 40]
    np.testing.assert_allclose(halos.GroupMass, [150.0, 80.0])
    centre = halos.GroupPos.values[0]
    wrapped = (centre + box / 2) % box - box / 2
    np.testing.assert_allclose(wrapped, 0.0, atol=0.05)  # not the box centre
    np.testing.assert_allclose(halos.GroupPos.values[1], middle.mean(0), rtol=1e-6)
    np.testing.assert_allclose(halos.GroupVel.values[0], [100.0, -50.0, 0.0])
    np.testing.assert_allclose(halos.GroupVel.values[1], v[50:90].mean(0), rtol=1e-5)
    assert halos.GroupLenType.values[:, 1].tolist() == [50, 40]
    assert halos.GroupLenType.values.sum() == 90
    # no velocities and no mass: GroupVel NaN, masses counted in particles
    bare = find_halos(x, box_size=box)
    assert np.isnan(bare.GroupVel.values).all()
    assert bare.GroupMass.attrs["units"] == "particle masses"
    assert bare.GroupMass.values.tolist() == [50.0, 40.0]
    # a lower threshold keeps smaller groups; none found gives an empty table
    assert find_halos(x, 0.2, 2, box_size=box).sizes["halo"] > 2
    empty = find_halos(background, box_size=box, particle_mass=1.0)
    assert empty.sizes["halo"] == 0 and empty.attrs["Ngroups_Total"] == 0
    assert int(mass_function(empty, bins=[1.0, 10.0])["count"].sum()) == 0


def test_rejects_bad_input():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="box_size"):
        find_halos(x)
    with pytest.raises(ValueError, match="linking_length"):
        find_halos(x, 0.0, box_size=1.0)
    with pytest.raises(ValueError, match="min_members"):
        find_halos(x, min_members=0, box_size=1.0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        find_halos(np.zeros((10, 2)), box_size=1.0)
    with pytest.raises(ValueError, match="neither"):
        find_halos(xr.Dataset({"x": ("p", np.zeros(3))}))


@pytest.mark.parametrize("number", range(4))
def test_same_halos_as_gadget4_own_fof(number):
    """Gadget4 (FOF, b = 0.2, FOF_GROUP_MIN_LEN 32) on the same particles.

    Gadget4 links on its integer positions; the snapshot holds them as float32
    (error ≤ 4e-6 Mpc/h against a 0.4 Mpc/h linking length), so a pair at the
    linking length to 1e-5 could flip. None does here: every group has the same
    particles. Masses agree to float32 rounding: Gadget4 sums them in double and
    writes float32 (1.4e-6 relative at most here), hence rtol 1e-5.
    """
    output = data_path(NGENIC32)
    snapshot = xr.open_dataset(
        output / f"snapdir_00{number}", engine="gadget4", group="PartType1"
    )
    groups = open_groups(output / f"groups_00{number}")
    halos = find_halos(snapshot)  # lazily opened: read here, once
    assert halos.attrs["LinkingLength"] == pytest.approx(0.4, rel=1e-12)
    assert halos.attrs["Time"] == groups.attrs["Time"]
    assert halos.sizes["halo"] == groups.attrs["Ngroups_Total"]
    if halos.sizes["halo"] == 0:
        return
    np.testing.assert_array_equal(halos.GroupLen, groups.GroupLen)  # both sorted
    np.testing.assert_allclose(halos.GroupMass, groups.GroupMass, rtol=1e-5)
    np.testing.assert_allclose(halos.GroupMassType, groups.GroupMassType, rtol=1e-5)
    # the snapshot is written in group order: same particles in every group
    x = snapshot.Coordinates.values
    labels = fof_labels(x, 64.0, halos.attrs["LinkingLength"])
    offsets = groups.GroupOffsetType.values[:, 1]
    for offset, length in zip(offsets, groups.GroupLen.values, strict=True):
        (label,) = np.unique(labels[offset : offset + length])
        assert np.count_nonzero(labels == label) == length
    # GroupVel: Gadget4 writes a v_peculiar = a^1.5 × the stored Velocities
    centres = halos.GroupPos.values
    for i, (offset, length) in enumerate(
        zip(offsets, groups.GroupLen.values, strict=True)
    ):
        members = x[offset : offset + length].astype(np.float64)
        d = members - members[0]
        d -= 64.0 * np.round(d / 64.0)
        cm = (members[0] + d.mean(0)) % 64.0
        gap = (centres - cm + 32.0) % 64.0 - 32.0
        match = int(np.argmin((gap**2).sum(1)))
        np.testing.assert_allclose(gap[match], 0.0, atol=1e-4)
        np.testing.assert_allclose(
            halos.GroupVel.values[match],
            groups.GroupVel.values[i],
            rtol=1e-4,
            atol=1e-3,
        )
    # so the mass function is Gadget4's, bin for bin
    bins = np.logspace(3, 5, 11)
    ours, theirs = mass_function(halos, bins=bins), mass_function(groups, bins=bins)
    np.testing.assert_array_equal(ours["count"], theirs["count"])
    assert ours.attrs == theirs.attrs


def test_layout_is_that_of_the_gadget4_groups_backend():
    output = data_path(NGENIC32)
    groups = open_groups(output / "groups_003")
    halos = find_halos(
        xr.open_dataset(output / "snapdir_003", engine="gadget4", group="PartType1")
    )
    for name, variable in halos.data_vars.items():
        assert variable.dims == groups[name].dims, name
        assert variable.dtype == groups[name].dtype, name
        assert variable.attrs.get("units") == groups[name].attrs.get("units"), name
    assert halos.halo_xyz.values.tolist() == groups.halo_xyz.values.tolist()
    for key in ("BoxSize", "Time", "Redshift", "Ngroups_Total", "table"):
        assert halos.attrs[key] == pytest.approx(groups.attrs[key]), key
    assert halos.attrs["NumFiles"] == 1  # Gadget4 wrote this catalogue in 2 files


def test_concept_hdf5_and_gadget_files_and_particle_sets_agree():
    """The same CONCEPT run written as CONCEPT HDF5 (Mpc, float64) and as GADGET
    binary (kpc/h, float32) gives the same halos in Mpc/h and 1e10 Msun/h."""
    from simlab.io.concept import read_particles

    run = data_path(CONCEPT32)
    hdf5 = run / "output" / "snapshot_a=1.00.hdf5"
    concept = find_halos(xr.open_dataset(hdf5, engine="concept"))
    gadget = find_halos(
        xr.open_dataset(
            run / "output_gadget" / "snapshot_a=1.00",
            engine="concept",
            group="PartType1",
        )
    )
    from_set = find_halos(read_particles(hdf5))
    assert concept.attrs["BoxSize"] == pytest.approx(64.0)
    assert concept.sizes["halo"] > 30
    for other in (gadget, from_set):
        np.testing.assert_array_equal(concept.GroupLen, other.GroupLen)
        np.testing.assert_allclose(concept.GroupMass, other.GroupMass, rtol=1e-6)
        np.testing.assert_allclose(concept.GroupPos, other.GroupPos, atol=1e-4)
        np.testing.assert_allclose(
            concept.GroupVel, other.GroupVel, rtol=1e-4, atol=1e-3
        )
    assert mass_function(concept).attrs["a"] == pytest.approx(1.0)


def test_particle_set_and_dask_backed_dataset():
    rng = np.random.default_rng(2)
    x = clustered(seed=2).astype(np.float32)
    particles = ParticleSet(
        positions=x,
        velocities=rng.normal(0.0, 100.0, size=x.shape).astype(np.float32),
        ids=np.arange(1, len(x) + 1, dtype=np.uint32),
        mass=5.0,
        box_size=20.0,
        a=0.25,
    )
    halos = find_halos(particles, min_members=20)
    assert halos.attrs["Time"] == 0.25 and halos.attrs["Redshift"] == 3.0
    ds = xr.Dataset(
        {"Coordinates": (("particle", "xyz"), x)},
        attrs={"BoxSize": 20.0, "MassTable": [0.0, 5.0, 0, 0, 0, 0], "Time": 0.25},
    ).chunk({"particle": 500})
    lazy = find_halos(ds, min_members=20)
    np.testing.assert_array_equal(lazy.GroupLen, halos.GroupLen)
    np.testing.assert_array_equal(lazy.GroupMass, halos.GroupLen * 5.0)
