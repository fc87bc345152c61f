"""Mesh deposits of particles that never sit in one process.

A snapshot opened lazily (``xr.open_dataset(..., chunks={})``) holds its positions
as a dask array whose chunks follow the snapshot's files. Each chunk is deposited
on its own mesh by whichever dask worker holds it, and the meshes are summed
pairwise in a tree, so no process ever holds more than one chunk of particles and
a few meshes. The caller (``power_spectrum``) transforms the summed mesh as it
would the in-memory one: the result is the same up to float32 rounding.

With a ``distributed.Client`` active the tasks run on its cluster (a LocalCluster,
or the dask-jobqueue workers of a simlab profile); otherwise on dask's threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.analysis.mesh import deposit

if TYPE_CHECKING:
    import dask.array as da


def fits_in_memory(array: Any, share: float = 0.25) -> bool:
    """Whether ``array`` takes less than ``share`` of this machine's free memory."""
    import psutil  # only lazy inputs ask: no 45 ms import for in-memory arrays

    return array.nbytes < share * psutil.virtual_memory().available


def deposit_chunked(
    positions: da.Array,
    box_size: float,
    n_mesh: int,
    scheme: str = "cic",
    weights: da.Array | np.ndarray | None = None,
    shift: float = 0.0,
    dtype: type = np.float32,
) -> np.ndarray:
    """The mass mesh (float32 by default) of dask-backed (N, 3) ``positions``,
    chunk by chunk."""
    import dask
    import dask.array as da

    positions = positions.rechunk({1: -1})
    blocks = positions.to_delayed().ravel()
    if weights is None:
        weight_blocks = [None] * len(blocks)
    else:
        weights = da.asarray(weights).rechunk((positions.chunks[0],))
        weight_blocks = list(weights.to_delayed().ravel())
    meshes = [
        dask.delayed(_block_mesh)(block, box_size, n_mesh, scheme, w, shift, dtype)
        for block, w in zip(blocks, weight_blocks, strict=True)
    ]
    (mesh,) = dask.compute(tree_sum(meshes))
    return mesh


def tree_sum(parts: list[Any]) -> Any:
    """The delayed sum of delayed ``parts`` (arrays, or tuples of them summed item
    by item) in a tree: log2(len) rounds of two parts per task, so no task holds
    more than two."""
    import dask

    while len(parts) > 1:
        pairs = [parts[i : i + 2] for i in range(0, len(parts), 2)]
        parts = [
            dask.delayed(_sum)(*pair) if len(pair) == 2 else pair[0] for pair in pairs
        ]
    return parts[0]


def _block_mesh(
    block: np.ndarray,
    box_size: float,
    n_mesh: int,
    scheme: str,
    weights: np.ndarray | None,
    shift: float,
    dtype: type,
) -> np.ndarray:
    """One chunk's particles on their own mesh."""
    mesh = np.zeros((n_mesh,) * 3, dtype=dtype)
    if len(block):
        deposit(block, box_size, n_mesh, scheme, weights, out=mesh, shift=shift)
    return mesh


def _sum(first: Any, second: Any) -> Any:
    """``first + second`` in ``first``'s memory (each part is used by one task);
    tuples item by item."""
    if isinstance(first, tuple):
        return tuple(_sum(a, b) for a, b in zip(first, second, strict=True))
    first += second
    return first
