"""Friends-of-friends halos for any snapshot, as a Gadget4-style ``Group`` table.

Two particles are friends when their periodic distance is at most the linking
length ``b d``, with d the mean interparticle spacing (V / N)^(1/3) and b = 0.2 by
default; a halo is a connected set of friends with at least ``min_members``
particles (32 by default, Gadget4's ``FOF_GROUP_MIN_LEN``). This is Gadget4's
definition (``src/fof/fof.cc``): its ``LinkL = FOF_LINKLENGTH (m̄ / ρ̄_m)^(1/3)``
with ρ̄_m = Ω_m ρ_crit is the same length whenever the particles hold Ω_m ρ_crit V,
and its tree walk links pairs with ``d² <= LinkL²``, as here.

The pairs come from :meth:`scipy.spatial.cKDTree.query_pairs` (periodic
``boxsize``) and the groups from :func:`scipy.sparse.csgraph.connected_components`.
The particles are taken in slabs along x, a few hundred thousand at a time: the
pairs of a slab and of the particles within one linking length of it are found,
merged into the group labels found so far and dropped, so memory stays a few
times the positions however clustered the snapshot is.

:func:`find_halos` returns the layout of ``xr.open_dataset(path,
engine="gadget4_groups")`` (dimension ``halo``, ``GroupLen``, ``GroupMass``,
``GroupPos``, ``GroupVel``, ``GroupLenType``, ``GroupMassType``, Header-like attrs
``BoxSize``, ``Time``, ``Redshift``, ``Ngroups_Total``), so
:func:`simlab.analysis.halos.mass_function` takes a PM, CONCEPT or Gadget4 snapshot's
halos alike. ``GroupPos`` is the periodic centre of mass (what Gadget4 writes
without SUBFIND; with SUBFIND Gadget4 writes the potential minimum instead) and
``GroupVel`` the mean velocity in Gadget4's catalogue convention, its internal
a² dx/dt = a v_peculiar: Gadget4's ``GroupVel`` is a^1.5 times the mean of the
snapshot's stored ``Velocities`` (v_peculiar / √a), as measured on the fixture
catalogues.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.analysis.chunked import fits_in_memory
from simlab.analysis.mesh import is_lazy

if TYPE_CHECKING:
    import xarray as xr

    from simlab.particles import ParticleSet

#: Gadget4's particle type count: the width of the ``...Type`` columns.
NTYPES = 6
#: Particles per slab of the pair search (a few tens of MB of pairs at z = 0).
_SLAB_PARTICLES = 2**18


@dataclass
class FofParticles:
    """Positions in Mpc/h and what the catalogue needs besides them."""

    positions: np.ndarray
    box_size: float
    velocities: np.ndarray | None  # Gadget4 catalogue convention, a v_peculiar
    masses: np.ndarray | float | None  # per particle or one value, 1e10 Msun/h
    ptype: int
    attrs: dict[str, Any]


@dataclass
class GroupSums:
    """Per-group sums (float64) from which the catalogue columns follow: of whole
    groups, of the parts of groups a slab holds, or of single particles."""

    length: np.ndarray  # particles
    first: np.ndarray  # lowest particle index, which orders groups of equal length
    reference: np.ndarray  # (G, 3) position of that first particle
    mass: np.ndarray  # sum of the particle masses (1 each without masses)
    offset: np.ndarray  # (G, 3) mass-weighted sum of periodic offsets from reference
    velocity: np.ndarray | None  # (G, 3) mass-weighted sum of velocities


def find_halos(
    snapshot: xr.Dataset | np.ndarray | ParticleSet,
    linking_length: float = 0.2,
    min_members: int = 32,
    *,
    box_size: float | None = None,
    velocities: np.ndarray | None = None,
    particle_mass: float | np.ndarray | None = None,
    spacing: float | None = None,
    chunked: bool | None = None,
    n_slabs: int | None = None,
) -> xr.Dataset:
    """Friends-of-friends halos of a snapshot, as a Gadget4 ``Group`` table.

    Parameters
    ----------
    snapshot : xarray.Dataset, (N, 3) array or ParticleSet
        one particle type of a snapshot, opened lazily or not: Gadget4 layout
        (``xr.open_dataset(path, engine="gadget4", group="PartType1")``, also
        simlab's PM snapshots and CONCEPT's GADGET files) or CONCEPT HDF5
        (``engine="concept"``); or comoving positions in Mpc/h
    linking_length : float
        b, the linking length in units of the mean interparticle spacing
    min_members : int
        smallest group kept (Gadget4's ``FOF_GROUP_MIN_LEN`` is 32)
    box_size : float, optional
        comoving box side in Mpc/h; needed for an array, read from a Dataset
    velocities : (N, 3) array, optional
        for an array input: velocities to average into ``GroupVel`` (as given);
        without them ``GroupVel`` is NaN
    particle_mass : float or (N,) array, optional
        for an array input: mass per particle in 1e10 Msun/h; without it
        ``GroupMass`` counts particles (units "particle masses")
    spacing : float, optional
        mean interparticle spacing in Mpc/h (default (V / N)^(1/3) of the
        particles given; set it when passing a subset of a snapshot)
    chunked : bool or None
        for a Dataset held lazily by dask: find the halos slab by slab on the dask
        workers (True, :mod:`simlab.analysis.fof_chunked`), read it into memory
        (False), or choose (None: read it when its positions take less than a
        quarter of the free memory); the same halos either way
    n_slabs : int, optional
        slabs along x of the chunked path (default: one per largest chunk's worth
        of particles, at least 2)

    Returns
    -------
    xarray.Dataset
        one row per halo along ``halo``, largest first: ``GroupLen`` (int32),
        ``GroupMass`` (float32, 1e10 Msun/h), ``GroupPos`` (periodic centre of
        mass, comoving Mpc/h), ``GroupVel`` (km/s, mean a v_peculiar, as
        Gadget4's),
        ``GroupLenType``/``GroupMassType`` (``halo_type``, 6 columns); attrs
        ``BoxSize``, ``Time``, ``Redshift`` (when known), ``Ngroups_Total``,
        ``Ngroups_ThisFile``, ``Nsubhalos_Total`` (0), ``NumFiles`` (1),
        ``table`` ("Group"), ``LinkingLength`` (comoving Mpc/h),
        ``LinkingLengthFactor`` (b), ``GroupMinLen`` and ``finder``.

    See Also
    --------
    fof_labels : the group number of every particle
    simlab.analysis.halos.mass_function : dn/dln M of the table

    Examples
    --------
    Two tight clumps of 40 and 35 particles and a sparse background in a 50 Mpc/h
    box; the smaller clump straddles the periodic boundary:

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> clumps = [rng.normal(c, 0.05, size=(n, 3)) for c, n in [(10.0, 40), (0.0, 35)]]
    >>> background = rng.uniform(0.0, 50.0, size=(2000, 3))
    >>> x = np.concatenate([*clumps, background]) % 50.0
    >>> halos = find_halos(x, box_size=50.0, particle_mass=2.0)
    >>> halos.GroupLen.values.tolist(), halos.GroupMass.values.tolist()
    ([40, 35], [80.0, 70.0])
    >>> np.abs(halos.GroupPos.values[1] - [0.0, 0.0, 0.0] + 25) % 50 - 25 < 0.05
    array([ True,  True,  True])
    """
    particles = _particles(
        snapshot, box_size, velocities, particle_mass, keep_lazy=chunked is not False
    )
    lazy = is_lazy(particles.positions)
    if lazy and chunked is None and fits_in_memory(particles.positions):
        particles, lazy = _loaded(particles), False
    n = len(particles.positions)
    if n == 0:
        raise ValueError("the snapshot holds no particles")
    if not linking_length > 0:
        raise ValueError(
            f"linking_length must be > 0 (in mean spacings), got {linking_length}"
        )
    if int(min_members) < 1:
        raise ValueError(f"min_members must be >= 1, got {min_members}")
    mean_spacing = (
        particles.box_size / n ** (1 / 3) if spacing is None else float(spacing)
    )
    link = linking_length * mean_spacing
    finder = "simlab.analysis.fof (scipy cKDTree + connected_components)"
    if lazy:
        from simlab.analysis.fof_chunked import slab_group_sums

        sums, slabs = slab_group_sums(particles, link, int(min_members), n_slabs)
        finder = finder.replace(")", f", {slabs} slabs on dask)")
    else:
        labels = fof_labels(particles.positions, particles.box_size, link)
        sums = _member_sums(particles, labels, int(min_members))
    table = _catalogue(particles, sums, int(min_members))
    table.attrs.update(
        LinkingLength=link,
        LinkingLengthFactor=float(linking_length),
        GroupMinLen=int(min_members),
        finder=finder,
    )
    return table


def fof_labels(
    positions: np.ndarray,
    box_size: float,
    link: float,
    *,
    slab_particles: int = _SLAB_PARTICLES,
) -> np.ndarray:
    """The friends-of-friends group of every particle.

    Parameters
    ----------
    positions : (N, 3) array
        comoving positions in Mpc/h (wrapped into the box)
    box_size : float
        comoving box side L in Mpc/h (periodic)
    link : float
        linking length in Mpc/h: particles at most this far apart are friends
    slab_particles : int
        particles whose pairs are searched at a time (bounds the memory of pairs)

    Returns
    -------
    (N,) int32
        group numbers 0 … n_groups - 1, equal for friends of friends; every
        particle without friends has a group of its own

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.1, 5.0, 5.0], [9.9, 5.0, 5.0], [5.0, 5.0, 5.0]])
    >>> fof_labels(x, 10.0, 0.3).tolist()  # the first two are friends across x = 0
    [0, 0, 1]
    """
    from scipy.spatial import cKDTree

    x = wrapped_positions(positions, box_size)
    n = len(x)
    check_link(link, box_size)
    # slabs along x of slab_particles each; a slab's pairs are those of the
    # particles within one linking length of it (periodically), found by one
    # cKDTree.query_pairs; pairs found by two neighbouring slabs merge harmlessly
    order = np.argsort(x[:, 0], kind="stable")
    along = x[order, 0]
    labels = np.arange(n, dtype=np.int32)
    step = max(int(slab_particles), 1)
    for start in range(0, n, step):
        stop = min(start + step, n)
        low, high = along[start] - link, along[stop - 1] + link
        if high - low >= box_size - link:
            members = order
        else:
            pieces = [
                order[
                    np.searchsorted(along, low) : np.searchsorted(
                        along, high, side="right"
                    )
                ]
            ]
            if low < 0:
                pieces.append(order[np.searchsorted(along, low + box_size) :])
            if high >= box_size:
                pieces.append(
                    order[: np.searchsorted(along, high - box_size, side="right")]
                )
            members = np.concatenate(pieces)
        tree = cKDTree(x[members], boxsize=box_size, balanced_tree=False)
        pairs = tree.query_pairs(link, output_type="ndarray")
        del tree
        if len(pairs) == 0:
            continue
        first, second = labels[members[pairs[:, 0]]], labels[members[pairs[:, 1]]]
        del pairs
        keep = first != second
        if not keep.any():
            continue
        labels = _merge(labels, first[keep], second[keep])
        del first, second, keep
    # number groups 0 … in order of their first particle
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int32, copy=False)


def check_link(link: float, box_size: float) -> None:
    """Refuse a linking length a periodic pair search cannot use."""
    if not 0 < link < box_size / 2:
        raise ValueError(
            f"the linking length must be in (0, L/2) = (0, {box_size / 2:g}) Mpc/h, "
            f"got {link}"
        )


def _merge(labels: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Labels after joining the groups ``first[i]`` and ``second[i]`` for every i."""
    nodes, smallest = joined_labels(first, second)
    lookup = np.arange(len(labels), dtype=np.int32)
    lookup[nodes] = smallest
    return lookup[labels]


def joined_labels(
    first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The labels in the pairs (sorted) and the smallest label each is joined to
    through them: only the labels that take part are put in the graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, ends = np.unique(np.concatenate([first, second]), return_inverse=True)
    count = len(first)
    graph = coo_matrix(
        (np.ones(count, np.int8), (ends[:count], ends[count:])),
        shape=(len(nodes), len(nodes)),
    )
    n_joined, joined = connected_components(graph, directed=False)
    smallest = np.full(n_joined, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, joined, nodes)
    return nodes, smallest[joined]


def wrapped_positions(positions: np.ndarray, box_size: float) -> np.ndarray:
    """float64 positions in [0, L), as cKDTree's periodic ``boxsize`` requires."""
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"positions must be an (N, 3) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("positions hold NaN or infinite values")
    x = np.mod(x, box_size)
    x[x >= box_size] = 0.0  # np.mod can round a tiny negative value up to L
    return x


def _member_sums(
    particles: FofParticles, labels: np.ndarray, min_members: int
) -> GroupSums:
    """The sums of the labelled groups with ``min_members`` or more particles."""
    counts = np.bincount(labels)
    big = counts >= min_members
    index = np.flatnonzero(big[labels])
    compact = np.cumsum(big) - 1
    parts = particle_sums(
        particles.positions, index, particles.velocities, particles.masses
    )
    groups = compact[labels[index]]
    return combine_sums(parts, groups, int(big.sum()), particles.box_size)


def particle_sums(
    positions: np.ndarray,
    index: np.ndarray,
    velocities: np.ndarray | None,
    masses: np.ndarray | float | None,
) -> GroupSums:
    """The particles ``index`` of the arrays as one-particle :class:`GroupSums`."""
    n = len(index)
    weight = (
        np.ones(n) if np.ndim(masses) == 0 else np.asarray(masses, np.float64)[index]
    )
    velocity = None
    if velocities is not None:
        velocity = np.asarray(velocities[index], np.float64) * weight[:, None]
    return GroupSums(
        length=np.ones(n, np.int64),
        first=np.asarray(index, np.int64),
        reference=np.asarray(positions[index], np.float64),
        mass=weight,
        offset=np.zeros((n, 3)),
        velocity=velocity,
    )


def combine_sums(
    parts: GroupSums, groups: np.ndarray, n_groups: int, box: float
) -> GroupSums:
    """The sums of the groups ``0 … n_groups - 1`` made of ``parts``, part i in
    ``groups[i]``: each group's reference is the first particle of the part that
    holds it and the parts' offsets are moved onto it (periodic)."""
    length = np.bincount(groups, parts.length, minlength=n_groups).astype(np.int64)
    mass = np.bincount(groups, parts.mass, minlength=n_groups)
    first = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, groups, parts.first)
    leads = parts.first == first[groups]
    reference = np.zeros((n_groups, 3))
    reference[groups[leads]] = parts.reference[leads]
    offset = np.empty((n_groups, 3))
    velocity = None if parts.velocity is None else np.empty((n_groups, 3))
    for axis in range(3):
        d = parts.reference[:, axis] - reference[groups, axis]
        d -= box * np.round(d / box)
        d *= parts.mass
        d += parts.offset[:, axis]
        offset[:, axis] = np.bincount(groups, d, minlength=n_groups)
        if velocity is not None:
            velocity[:, axis] = np.bincount(
                groups, parts.velocity[:, axis], minlength=n_groups
            )
    return GroupSums(length, first, reference, mass, offset, velocity)


def _catalogue(
    particles: FofParticles, sums: GroupSums, min_members: int
) -> xr.Dataset:
    """The Group table of the groups of ``sums`` with ``min_members`` or more
    particles, largest first, then by their lowest particle index."""
    import xarray as xr

    from simlab.io.groups import UNITS

    kept = np.flatnonzero(sums.length >= min_members)
    kept = kept[np.lexsort((sums.first[kept], -sums.length[kept]))]
    n_halos = len(kept)
    box = particles.box_size
    length = sums.length[kept]
    denominator = sums.mass[kept]  # mass-weighted means (particle means unweighted)
    masses = particles.masses
    scale = float(masses) if masses is not None and np.ndim(masses) == 0 else 1.0
    mass = denominator * scale
    pos = np.mod(sums.reference[kept] + sums.offset[kept] / denominator[:, None], box)
    pos[pos >= box] = 0.0
    vel = np.full((n_halos, 3), np.nan)
    if sums.velocity is not None:
        vel = sums.velocity[kept] / denominator[:, None]

    len_type = np.zeros((n_halos, NTYPES), np.int32)
    len_type[:, particles.ptype] = length
    mass_type = np.zeros((n_halos, NTYPES), np.float32)
    mass_type[:, particles.ptype] = mass
    mass_units = "particle masses" if masses is None else UNITS["Mass"]
    table = xr.Dataset(
        {
            "GroupLen": ("halo", length.astype(np.int32)),
            "GroupLenType": (("halo", "halo_type"), len_type),
            "GroupMass": ("halo", mass.astype(np.float32), {"units": mass_units}),
            "GroupMassType": (
                ("halo", "halo_type"),
                mass_type,
                {"units": mass_units},
            ),
            "GroupPos": (
                ("halo", "halo_xyz"),
                pos.astype(np.float32),
                {"units": UNITS["Pos"], "long_name": "periodic centre of mass"},
            ),
            "GroupVel": (
                ("halo", "halo_xyz"),
                vel.astype(np.float32),
                {
                    "units": UNITS["Vel"],
                    "long_name": "mean velocity a v_peculiar (Gadget4's convention)",
                },
            ),
        },
        coords={"halo_xyz": ["x", "y", "z"]},
        attrs={
            **particles.attrs,
            "BoxSize": box,
            "NumFiles": 1,
            "Ngroups_ThisFile": n_halos,
            "Ngroups_Total": n_halos,
            "Nsubhalos_ThisFile": 0,
            "Nsubhalos_Total": 0,
            "Nids_Total": int(length.sum()),
            "table": "Group",
        },
    )
    return table


def _particles(
    snapshot: Any,
    box_size: float | None,
    velocities: np.ndarray | None,
    particle_mass: float | np.ndarray | None,
    keep_lazy: bool = False,
) -> FofParticles:
    """Positions (Mpc/h), velocities, masses and time of any supported input; with
    ``keep_lazy`` a Dataset's dask arrays stay unread."""
    import xarray as xr

    from simlab.particles import ParticleSet

    if isinstance(snapshot, ParticleSet):
        a = float(snapshot.a)
        return FofParticles(
            np.asarray(snapshot.positions),
            float(snapshot.box_size),
            np.asarray(snapshot.velocities, np.float64) * a,
            float(snapshot.mass),
            1,
            _time_attrs(a),
        )
    if isinstance(snapshot, xr.Dataset):
        if "Coordinates" in snapshot:
            return _gadget_particles(snapshot, box_size, keep_lazy)
        if "pos" in snapshot:
            return _concept_particles(snapshot, box_size, keep_lazy)
        raise ValueError(
            "the Dataset has neither 'Coordinates' (Gadget4 layout) nor 'pos' "
            f"(CONCEPT) positions; it has {sorted(map(str, snapshot.data_vars))}"
        )
    if box_size is None:
        raise ValueError("box_size is None; give the box side in Mpc/h for an array")
    positions = np.asarray(snapshot)
    if velocities is not None and np.shape(velocities) != positions.shape:
        raise ValueError(
            f"velocities {np.shape(velocities)} must have the shape of the "
            f"positions {positions.shape}"
        )
    if np.ndim(particle_mass) == 1 and len(particle_mass) != len(positions):
        raise ValueError(
            f"particle_mass has {len(particle_mass)} values for "
            f"{len(positions)} particles"
        )
    return FofParticles(
        positions, _positive_box(box_size), velocities, particle_mass, 1, {}
    )


def _loaded(particles: FofParticles) -> FofParticles:
    """``particles`` with its dask arrays read, all in one pass over the files."""
    import dask

    positions, velocities, masses = dask.compute(
        particles.positions, particles.velocities, particles.masses
    )
    return dataclasses.replace(
        particles, positions=positions, velocities=velocities, masses=masses
    )


def _values(ds: xr.Dataset, name: str, keep_lazy: bool) -> Any:
    """A variable's array: its dask array unread with ``keep_lazy``, else numpy."""
    return ds[name].data if keep_lazy else ds[name].to_numpy()


def _gadget_particles(
    ds: xr.Dataset, box_size: float | None, keep_lazy: bool = False
) -> FofParticles:
    """A Gadget4-layout type (Gadget4, simlab PM, CONCEPT's GADGET files)."""
    attrs = ds.attrs
    units = str(ds["Coordinates"].attrs.get("units", "Mpc/h"))
    to_mpc = 1e-3 if units.startswith("kpc") else 1.0
    positions = _values(ds, "Coordinates", keep_lazy)
    if to_mpc != 1.0:
        positions = positions * to_mpc
    if box_size is None:
        if "BoxSize" not in attrs:
            raise ValueError(
                "box_size is None and the Dataset has no 'BoxSize' attribute; give "
                "the box side in Mpc/h"
            )
        box_size = float(attrs["BoxSize"]) * to_mpc
    ptype = _ptype(ds)
    table = attrs.get("MassTable", attrs.get("Massarr"))
    masses: np.ndarray | float | None = None
    if "Masses" in ds:
        masses = _values(ds, "Masses", keep_lazy)
    elif table is not None and float(np.asarray(table)[ptype]) > 0:
        masses = float(np.asarray(table)[ptype])
    time = attrs.get("Time")
    velocities = None
    if "Velocities" in ds and time is not None:
        # stored v_peculiar / sqrt(a) (Gadget4, PM, GADGET binary) → a v_peculiar
        velocities = _values(ds, "Velocities", keep_lazy) * float(time) ** 1.5
    return FofParticles(
        positions,
        _positive_box(box_size),
        velocities,
        masses,
        ptype,
        {} if time is None else _time_attrs(float(time)),
    )


def _concept_particles(
    ds: xr.Dataset, box_size: float | None, keep_lazy: bool = False
) -> FofParticles:
    """A CONCEPT HDF5 component: Mpc and 1e10 Msun without h, peculiar velocity."""
    attrs = ds.attrs
    h = float(attrs["h"])
    a = float(attrs["a"])
    positions = _values(ds, "pos", keep_lazy) * h
    box = float(attrs["boxsize"]) * h if box_size is None else box_size
    velocities = _values(ds, "velocity", keep_lazy) * a if "velocity" in ds else None
    mass = float(attrs["mass"]) * h if "mass" in attrs else None
    return FofParticles(
        positions, _positive_box(box), velocities, mass, 1, _time_attrs(a)
    )


def _ptype(ds: xr.Dataset) -> int:
    """The Gadget particle type of a Dataset: the one type whose total count is the
    Dataset's number of particles (1, dark matter, when that is not unique)."""
    counts = ds.attrs.get("NumPart_Total", ds.attrs.get("Npart"))
    if counts is None:
        return 1
    n = ds["Coordinates"].shape[0]
    matching = [t for t, count in enumerate(np.ravel(counts)) if int(count) == n]
    return matching[0] if len(matching) == 1 and matching[0] < NTYPES else 1


def _time_attrs(a: float) -> dict[str, float]:
    return {"Time": a, "Redshift": 1.0 / a - 1.0}


def _positive_box(box_size: float) -> float:
    box = float(box_size)
    if not box > 0:
        raise ValueError(f"box_size must be a positive length in Mpc/h, got {box_size}")
    return box
