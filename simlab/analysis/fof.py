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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from simlab.particles import ParticleSet

#: Gadget4's particle type count: the width of the ``...Type`` columns.
NTYPES = 6
#: Particles per slab of the pair search (a few tens of MB of pairs at z = 0).
_SLAB_PARTICLES = 2**18


@dataclass
class _Particles:
    """Positions in Mpc/h and what the catalogue needs besides them."""

    positions: np.ndarray
    box_size: float
    velocities: np.ndarray | None  # Gadget4 catalogue convention, a v_peculiar
    masses: np.ndarray | float | None  # per particle or one value, 1e10 Msun/h
    ptype: int
    attrs: dict[str, Any]


def find_halos(
    snapshot: xr.Dataset | np.ndarray | ParticleSet,
    linking_length: float = 0.2,
    min_members: int = 32,
    *,
    box_size: float | None = None,
    velocities: np.ndarray | None = None,
    particle_mass: float | np.ndarray | None = None,
    spacing: float | None = None,
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
    particles = _particles(snapshot, box_size, velocities, particle_mass)
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
    labels = fof_labels(particles.positions, particles.box_size, link)
    table = _catalogue(particles, labels, int(min_members))
    table.attrs.update(
        LinkingLength=link,
        LinkingLengthFactor=float(linking_length),
        GroupMinLen=int(min_members),
        finder="simlab.analysis.fof (scipy cKDTree + connected_components)",
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

    x = _wrapped(positions, box_size)
    n = len(x)
    if not 0 < link < box_size / 2:
        raise ValueError(
            f"the linking length must be in (0, L/2) = (0, {box_size / 2:g}) Mpc/h, "
            f"got {link}"
        )
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


def _merge(labels: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Labels after joining the groups ``first[i]`` and ``second[i]`` for every i.

    Only the labels that take part are put in the graph; every group of joined
    labels takes its smallest label.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, ends = np.unique(np.concatenate([first, second]), return_inverse=True)
    count = len(first)
    graph = coo_matrix(
        (np.ones(count, np.int8), (ends[:count], ends[count:])),
        shape=(len(nodes), len(nodes)),
    )
    n_joined, joined = connected_components(graph, directed=False)
    smallest = np.full(n_joined, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(smallest, joined, nodes)
    lookup = np.arange(len(labels), dtype=np.int32)
    lookup[nodes] = smallest[joined]
    return lookup[labels]


def _wrapped(positions: np.ndarray, box_size: float) -> np.ndarray:
    """float64 positions in [0, L), as cKDTree's periodic ``boxsize`` requires."""
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"positions must be an (N, 3) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("positions hold NaN or infinite values")
    x = np.mod(x, box_size)
    x[x >= box_size] = 0.0  # np.mod can round a tiny negative value up to L
    return x


def _catalogue(
    particles: _Particles, labels: np.ndarray, min_members: int
) -> xr.Dataset:
    """The Group table of the labelled particles with ``min_members`` or more."""
    import xarray as xr

    from simlab.io.groups import UNITS

    counts = np.bincount(labels)
    kept = np.flatnonzero(counts >= min_members)
    # largest first, then by the lowest particle index (the label order)
    kept = kept[np.argsort(-counts[kept], kind="stable")]
    row = np.full(len(counts), -1, dtype=np.int64)
    row[kept] = np.arange(len(kept))
    n_halos = len(kept)
    member = row[labels] >= 0
    index = np.flatnonzero(member)
    halo = row[labels[index]]
    box = particles.box_size

    masses = particles.masses
    weight = None if np.ndim(masses) == 0 else np.asarray(masses, np.float64)[index]
    length = np.bincount(halo, minlength=n_halos)
    if masses is None:
        mass = length.astype(np.float64)
    elif weight is None:
        mass = length * float(masses)
    else:
        mass = np.bincount(halo, weight, minlength=n_halos)

    # periodic centre of mass: offsets from each halo's first particle
    first = np.full(n_halos, len(labels), dtype=np.int64)
    np.minimum.at(first, halo, index)
    denominator = length if weight is None else mass  # mass-weighted means
    pos = np.empty((n_halos, 3))
    vel = np.full((n_halos, 3), np.nan)
    for axis in range(3):
        coordinate = particles.positions[:, axis]
        reference = np.asarray(coordinate[first], np.float64)
        offset = np.asarray(coordinate[index], np.float64) - reference[halo]
        offset -= box * np.round(offset / box)
        w = offset if weight is None else offset * weight
        shift = np.bincount(halo, w, minlength=n_halos)
        pos[:, axis] = np.mod(reference + shift / denominator, box)
        if particles.velocities is not None:
            v = np.asarray(particles.velocities[index, axis], np.float64)
            v = v if weight is None else v * weight
            vel[:, axis] = np.bincount(halo, v, minlength=n_halos) / denominator
    pos[pos >= box] = 0.0

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
) -> _Particles:
    """Positions (Mpc/h), velocities, masses and time of any supported input."""
    import xarray as xr

    from simlab.particles import ParticleSet

    if isinstance(snapshot, ParticleSet):
        a = float(snapshot.a)
        return _Particles(
            np.asarray(snapshot.positions),
            float(snapshot.box_size),
            np.asarray(snapshot.velocities, np.float64) * a,
            float(snapshot.mass),
            1,
            _time_attrs(a),
        )
    if isinstance(snapshot, xr.Dataset):
        if "Coordinates" in snapshot:
            return _gadget_particles(snapshot, box_size)
        if "pos" in snapshot:
            return _concept_particles(snapshot, box_size)
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
    return _Particles(
        positions, _positive_box(box_size), velocities, particle_mass, 1, {}
    )


def _gadget_particles(ds: xr.Dataset, box_size: float | None) -> _Particles:
    """A Gadget4-layout type (Gadget4, simlab PM, CONCEPT's GADGET files)."""
    attrs = ds.attrs
    units = str(ds["Coordinates"].attrs.get("units", "Mpc/h"))
    to_mpc = 1e-3 if units.startswith("kpc") else 1.0
    positions = ds["Coordinates"].to_numpy()
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
        masses = ds["Masses"].to_numpy()
    elif table is not None and float(np.asarray(table)[ptype]) > 0:
        masses = float(np.asarray(table)[ptype])
    time = attrs.get("Time")
    velocities = None
    if "Velocities" in ds and time is not None:
        # stored v_peculiar / sqrt(a) (Gadget4, PM, GADGET binary) → a v_peculiar
        velocities = ds["Velocities"].to_numpy() * float(time) ** 1.5
    return _Particles(
        positions,
        _positive_box(box_size),
        velocities,
        masses,
        ptype,
        {} if time is None else _time_attrs(float(time)),
    )


def _concept_particles(ds: xr.Dataset, box_size: float | None) -> _Particles:
    """A CONCEPT HDF5 component: Mpc and 1e10 Msun without h, peculiar velocity."""
    attrs = ds.attrs
    h = float(attrs["h"])
    a = float(attrs["a"])
    positions = ds["pos"].to_numpy() * h
    box = float(attrs["boxsize"]) * h if box_size is None else box_size
    velocities = ds["velocity"].to_numpy() * a if "velocity" in ds else None
    mass = float(attrs["mass"]) * h if "mass" in attrs else None
    return _Particles(
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
