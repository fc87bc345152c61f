"""Friends-of-friends halos of particles that never sit in one process.

The box is cut into ``n_slabs`` slabs of equal width along x. One dask task per
chunk of the snapshot (``xr.open_dataset(..., chunks={})``: one per file) sends each
of its particles to its own slab, and to the neighbouring slab as a ghost when it
lies within one linking length of the edge between them (periodically). One task
per slab then runs :func:`simlab.analysis.fof.fof_labels` on the slab's particles
and ghosts, so every pair with a particle in the slab is found there, and returns

- the sums of :class:`simlab.analysis.fof.GroupSums` of its own particles for each
  of its groups that is big enough or reaches an edge (not for lone particles
  away from the edges), and
- the global index and group of each particle in a ghost layer, its own or a
  neighbour's.

A particle within a linking length of an edge is in two slabs (three when two
edges are that close); the client joins the groups that share one
(:func:`simlab.analysis.fof.joined_labels`) and adds their sums
(:func:`simlab.analysis.fof.combine_sums`). Only those per-group sums and the
ghost layers travel to the client; a slab's particles must fit in a worker, the
snapshot need not. The halos are those of the in-memory path: same members, and
centres and velocities equal to rounding.

With a ``distributed.Client`` active the tasks run on its cluster (a LocalCluster,
or the dask-jobqueue workers of a simlab profile); otherwise on dask's threads.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.analysis.fof import (
    GroupSums,
    check_link,
    combine_sums,
    fof_labels,
    joined_labels,
    particle_sums,
    wrapped_positions,
)

if TYPE_CHECKING:
    from simlab.analysis.fof import FofParticles

#: A ghost layer is this much wider than the linking length, so the rounding of
#: x - edge never leaves out a partner (an extra ghost only costs a pair search).
_GHOST_MARGIN = 1.0 + 1e-9


@dataclass
class _Piece:
    """Particles of one slab (its own and its ghosts) from one or more chunks."""

    index: np.ndarray  # global particle index, int64
    positions: np.ndarray  # (n, 3) float64 in [0, L)
    velocities: np.ndarray | None
    masses: np.ndarray | None  # per particle; a single mass is applied at the end
    own: np.ndarray  # in this slab (else a ghost from a neighbour)
    edge: np.ndarray  # within a ghost layer: also in a neighbouring slab


def slab_group_sums(
    particles: FofParticles, link: float, min_members: int, n_slabs: int | None
) -> tuple[GroupSums, int]:
    """The :class:`GroupSums` of every group that may be a halo (all with
    ``min_members`` or more particles) of dask-backed ``particles``, found slab by
    slab on the dask workers, and the number of slabs."""
    import dask

    box = particles.box_size
    check_link(link, box)
    ghost = link * _GHOST_MARGIN
    blocks = _blocks(particles)
    slabs = _slab_count(particles.positions, box, ghost, n_slabs)
    starts = np.cumsum((0, *particles.positions.chunks[0][:-1]))
    routed = [
        dask.delayed(_route, nout=slabs)(*block, int(start), box, ghost, slabs)
        for block, start in zip(blocks, starts, strict=True)
    ]
    tasks = [
        dask.delayed(_slab_groups)(
            [pieces[t] for pieces in routed], box, link, min_members
        )
        for t in range(slabs)
    ]
    results = dask.compute(*tasks)
    return _joined_sums(results, box), slabs


def _blocks(particles: FofParticles) -> list[tuple[Any, Any, Any]]:
    """Positions, velocities and per-particle masses (or None) chunk by chunk, as
    delayed arrays with the rows of the positions' chunks."""
    import dask.array as da

    positions = particles.positions.rechunk({1: -1})
    rows = positions.chunks[0]
    columns = [positions]
    for extra, shape in (
        (particles.velocities, (rows, 3)),
        (particles.masses, (rows,)),
    ):
        lazy = extra is not None and np.ndim(extra) > 0
        columns.append(da.asarray(extra).rechunk(shape) if lazy else None)
    delayed = [
        [None] * len(rows) if c is None else list(c.to_delayed().ravel())
        for c in columns
    ]
    return list(zip(*delayed, strict=True))


def _slab_count(positions: Any, box: float, ghost: float, n_slabs: int | None) -> int:
    """``n_slabs``, or one slab per largest chunk's worth of particles (so a slab
    holds about what a chunk does when they are spread evenly), at least 2; never
    narrower than a ghost layer."""
    if n_slabs is None:
        n_slabs = max(2, math.ceil(positions.shape[0] / max(positions.chunks[0])))
    widest = max(1, math.floor(box / ghost))
    if not 1 <= int(n_slabs) <= widest:
        raise ValueError(
            f"n_slabs must be in [1, {widest}] (slabs no narrower than the "
            f"linking length), got {n_slabs}"
        )
    return int(n_slabs)


def _route(
    positions: np.ndarray,
    velocities: np.ndarray | None,
    masses: np.ndarray | None,
    start: int,
    box: float,
    ghost: float,
    n_slabs: int,
) -> tuple[_Piece, ...]:
    """One chunk's particles split into the slabs they belong to, each with the
    particles within ``ghost`` of it as ghosts (periodic along x)."""
    x = wrapped_positions(positions, box)
    width = box / n_slabs
    slab = np.minimum((x[:, 0] // width).astype(np.int64), n_slabs - 1)
    low = x[:, 0] - slab * width <= ghost  # a ghost of the slab below
    high = (slab + 1) * width - x[:, 0] <= ghost  # a ghost of the slab above
    edge = low | high
    below, above = (slab - 1) % n_slabs, (slab + 1) % n_slabs
    pieces = []
    for target in range(n_slabs):
        own = slab == target
        take = np.flatnonzero(
            own | (low & (below == target)) | (high & (above == target))
        )
        pieces.append(
            _Piece(
                index=start + take,
                positions=x[take],
                velocities=None if velocities is None else velocities[take],
                masses=None if masses is None else masses[take],
                own=own[take],
                edge=edge[take],
            )
        )
    return tuple(pieces)


def _slab_groups(
    pieces: list[_Piece], box: float, link: float, min_members: int
) -> tuple[GroupSums, np.ndarray, np.ndarray]:
    """A slab's FOF: the sums of its own particles per group that is big enough
    or reaches a ghost layer, and the global index and group (row of the sums) of
    the slab's particles in ghost layers."""
    piece = _concatenated(pieces)
    labels = fof_labels(piece.positions, box, link)
    own_count = np.bincount(labels[piece.own], minlength=labels.max(initial=-1) + 1)
    wanted = own_count >= min_members
    wanted[labels[piece.edge]] = True
    wanted &= own_count > 0  # a group of ghosts only is found in their own slabs
    row = np.cumsum(wanted) - 1
    members = np.flatnonzero(piece.own & wanted[labels])
    sums = combine_sums(
        particle_sums(piece.positions, members, piece.velocities, piece.masses),
        row[labels[members]],
        int(wanted.sum()),
        box,
    )
    sums.first = piece.index[sums.first]  # rises with the row: chunks come in order
    edge = np.flatnonzero(piece.edge & wanted[labels])
    return sums, piece.index[edge], row[labels[edge]]


def _joined_sums(
    results: tuple[tuple[GroupSums, np.ndarray, np.ndarray], ...], box: float
) -> GroupSums:
    """The sums of whole groups: the slabs' groups that share a particle joined."""
    sums = [result[0] for result in results]
    offsets = np.cumsum([0, *(len(s.length) for s in sums)])
    index = np.concatenate([result[1] for result in results])
    node = np.concatenate(
        [result[2] + offset for result, offset in zip(results, offsets, strict=False)]
    )
    order = np.argsort(index, kind="stable")
    index, node = index[order], node[order]
    same = np.flatnonzero(index[1:] == index[:-1])
    group = np.arange(offsets[-1], dtype=np.int64)
    if len(same):
        nodes, smallest = joined_labels(node[same], node[same + 1])
        group[nodes] = smallest
    _, group = np.unique(group, return_inverse=True)
    return combine_sums(_concatenated(sums), group, int(group.max(initial=-1)) + 1, box)


def _concatenated(items: list[Any]) -> Any:
    """The rows of dataclass ``items`` of one type (:class:`_Piece`,
    :class:`GroupSums`) in one: each array field concatenated, None kept."""
    kind = type(items[0])
    columns = {}
    for field in dataclasses.fields(kind):
        arrays = [getattr(item, field.name) for item in items]
        columns[field.name] = None if arrays[0] is None else np.concatenate(arrays)
    return kind(**columns)
