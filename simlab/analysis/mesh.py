"""Periodic mass assignment: particles to a mesh (deposit) and back (interpolate).

Grid convention (as in nbodykit, Pylians and Gadget): with cell size h = L / n, mesh
point i sits at position x = i h, i = 0 … n - 1, in a periodic box [0, L). In cell
units u = x / h a particle is assigned, per axis, with the kernels

- NGP: all of it to the nearest point, round(u);
- CIC: 1 - d to floor(u) and d to floor(u) + 1, with d = u - floor(u);
- TSC: (1/2 - d)²/2, 3/4 - d² and (1/2 + d)²/2 to j - 1, j and j + 1, with
  j = round(u), d = u - j;

and the weight on the mesh is the product of the axes' weights. Indices wrap
periodically, so the weights of every particle sum to 1 and mass is conserved.
Meshes are C-ordered: ``mesh[i, j, k]`` is the point (i h, j h, k h).

With numba installed (the ``fast`` extra) both operations on 3D meshes run as
compiled loops (:mod:`simlab.analysis._compiled`: no temporaries, two threads,
~25% less CPU than the numpy path for CIC); ``SIMLAB_NO_NUMBA=1`` selects the
numpy path below, which gives the same mesh up to rounding. The numpy path goes
through the particles in chunks (1 MB temporaries however many particles there
are) and scatters with one ``np.add.at`` per chunk. numpy ≥ 1.25 runs ``add.at``
with no per-call work proportional to the mesh, unlike
``np.bincount(..., minlength=n³)``; measured here it is as fast or faster than
``bincount`` on every mesh from 32³ to 256³.
Positions may be float32 or float64; they are converted to float64 cell units one
chunk at a time (one particle at a time when compiled), never copied whole.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from simlab.analysis import _compiled

if TYPE_CHECKING:
    import xarray as xr

#: Kernel order p of each scheme: support of p points per axis, window sinc^p.
SCHEMES: dict[str, int] = {"ngp": 1, "cic": 2, "tsc": 3}

#: Stencil entries (particles × p^D) per chunk: 1 MB arrays, which stay in L2 cache.
_CHUNK_ENTRIES = 2**17


def scheme_order(scheme: str) -> int:
    """The kernel order p (1, 2, 3) of a mass-assignment scheme name.

    Examples
    --------
    >>> scheme_order("tsc")
    3
    """
    try:
        return SCHEMES[scheme]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(s) for s in SCHEMES)
        raise ValueError(
            f"scheme={scheme!r} is not a mass-assignment scheme; use one of {allowed}"
        ) from None


def is_lazy(array: object) -> bool:
    """Whether ``array`` is a dask array (its data not read yet)."""
    return type(array).__module__.startswith("dask.")


def particle_positions(
    data: np.ndarray | xr.Dataset, box_size: float | None, keep_lazy: bool = False
) -> tuple[np.ndarray, float]:
    """Positions and box side from an (N, 3) array or a Gadget4 snapshot Dataset.

    A Dataset (from simlab's Gadget4 reader) must hold a ``Coordinates`` variable
    in Mpc/h; its ``BoxSize`` attribute is used when ``box_size`` is None. With
    ``keep_lazy``, dask-backed positions are returned unread (shape checked only).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"Coordinates": (("particle", "axis"), np.zeros((2, 3)))},
    ...     attrs={"BoxSize": 50.0},
    ... )
    >>> positions, box = particle_positions(ds, None)
    >>> positions.shape, box
    ((2, 3), 50.0)
    """
    xr = sys.modules.get("xarray")  # a Dataset exists only once xarray is loaded
    if xr is not None and isinstance(data, xr.Dataset):
        if "Coordinates" not in data:
            raise ValueError(
                "the Dataset has no 'Coordinates' variable; it has "
                f"{sorted(map(str, data.data_vars))}"
            )
        if box_size is None:
            if "BoxSize" not in data.attrs:
                raise ValueError(
                    "box_size is None and the Dataset has no 'BoxSize' attribute; "
                    "give the box side in Mpc/h"
                )
            box_size = data.attrs["BoxSize"]
        data = data["Coordinates"].data if keep_lazy else data["Coordinates"].to_numpy()
    if box_size is None:
        raise ValueError("box_size is None; give the box side in Mpc/h")
    if keep_lazy and is_lazy(data):
        _check_shape(data.shape)
        return data, _check_box(box_size)
    return _check_positions(data), _check_box(box_size)


def deposit(
    positions: np.ndarray,
    box_size: float,
    n_mesh: int,
    scheme: str = "cic",
    weights: np.ndarray | None = None,
    out: np.ndarray | None = None,
    shift: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Assign particles to a periodic mesh and return the mass per mesh point.

    Parameters
    ----------
    positions : (N, D) float32 or float64, D = 3 (or 2 for a projected map)
        comoving positions in Mpc/h; values outside [0, box_size) are wrapped
    box_size : float
        comoving box side L in Mpc/h
    n_mesh : int
        mesh points per side n; point i sits at x = i L / n (see the module notes)
    scheme : {"ngp", "cic", "tsc"}
        mass-assignment kernel
    weights : (N,) array, optional
        mass of each particle, in any unit (default 1 per particle)
    out : (n,) * D float64 or float32 array, optional
        mesh to fill; it is zeroed first. float32 halves the memory at ~1e-7
        relative rounding per point. It may be a strided view, such as the real
        rows of an in-place FFT buffer.
    shift : float or (D,) array
        move every particle by ``shift`` cells (+shift h along each axis, or one
        shift per axis) before the assignment, e.g. 0.5 for the second mesh of
        interlacing

    Returns
    -------
    (n,) * D ndarray
        float64 (or ``out``'s dtype) mass per mesh point in the unit of ``weights``;
        it sums to N (or ``weights.sum()``) up to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> mesh = deposit(np.array([[0.5, 0.0, 0.0]]), box_size=4.0, n_mesh=4)
    >>> mesh[:2, 0, 0]
    array([0.5, 0.5])
    >>> float(mesh.sum())
    1.0
    """
    positions = _check_positions(positions)
    box_size = _check_box(box_size)
    weights = _check_weights(weights, len(positions))
    order = scheme_order(scheme)
    out = _output_mesh(out, n_mesh, positions.shape[1])
    if positions.shape[1] == 3 and _compiled.available():
        _compiled.deposit3(positions, box_size, order, weights, shift, out)
        return out
    if not out.flags.c_contiguous:
        out[...] = deposit(positions, box_size, n_mesh, scheme, weights, None, shift)
        return out
    flat = out.reshape(-1)
    kernel = _Kernel(n_mesh, order, positions.shape[1], box_size)
    for start, stop in kernel.chunks(len(positions)):
        chunk_weights = None if weights is None else weights[start:stop]
        index, weight = kernel(positions[start:stop], shift, chunk_weights, out.dtype)
        np.add.at(flat, index, weight)
    return out


def interpolate(
    mesh: np.ndarray,
    positions: np.ndarray,
    box_size: float,
    scheme: str = "cic",
    shift: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Read a periodic field at particle positions with a mass-assignment kernel.

    This is the transpose of :func:`deposit` with the same kernel, so
    ``(f * deposit(x)).sum() == interpolate(f, x).sum()`` up to rounding, as PM
    force interpolation needs to conserve momentum.

    Parameters
    ----------
    mesh : (n,) * D array
        field values at the mesh points x = i L / n
    positions : (N, D) float32 or float64
        comoving positions in Mpc/h; values outside [0, box_size) are wrapped
    box_size : float
        comoving box side L in Mpc/h
    scheme : {"ngp", "cic", "tsc"}
        kernel
    shift : float or (D,) array
        move every particle by this many cells first, as in :func:`deposit`

    Returns
    -------
    (N,) float64
        the field at each particle, in the unit of ``mesh``

    Examples
    --------
    >>> import numpy as np
    >>> field = np.zeros((4, 4, 4))
    >>> field[1] = 2.0
    >>> interpolate(field, np.array([[0.25, 0.0, 0.0]]), box_size=4.0)
    array([0.5])
    """
    mesh = np.asarray(mesh)
    positions = _check_positions(positions)
    box_size = _check_box(box_size)
    order = scheme_order(scheme)
    n_mesh = mesh.shape[0]
    if mesh.shape != (n_mesh,) * positions.shape[1]:
        raise ValueError(
            f"mesh must be a cubic array with one axis per position column, got "
            f"{mesh.shape} for positions {positions.shape}"
        )
    if positions.shape[1] == 3 and _compiled.available():
        return _compiled.interpolate3(mesh, positions, box_size, order, shift)
    flat = np.ascontiguousarray(mesh).reshape(-1)
    values = np.empty(len(positions))
    kernel = _Kernel(n_mesh, order, positions.shape[1], box_size)
    gathered = np.empty(kernel.chunk * kernel.size, dtype=flat.dtype)
    for start, stop in kernel.chunks(len(positions)):
        index, weight = kernel(positions[start:stop], shift)
        weight *= np.take(flat, index, out=gathered[: index.size], mode="clip")
        weight.reshape(kernel.size, -1).sum(axis=0, out=values[start:stop])
    return values


def window_factors(
    n_mesh: int, scheme: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The assignment window per axis, broadcastable to the ``rfftn`` layout.

    W(k) = Π_i sinc(π k_i / (2 k_Nyq))^p with k_Nyq = π n / L and p = 1, 2, 3 for
    NGP, CIC, TSC; sinc(x) = sin(x) / x. In mesh frequency units m_i = k_i L / (2π)
    the argument is π m_i / n, so the window does not depend on L.

    Returns
    -------
    tuple of float64 arrays
        shapes (n, 1, 1), (1, n, 1), (1, 1, n // 2 + 1), frequencies in
        ``numpy.fft.fftfreq`` / ``rfftfreq`` order

    Examples
    --------
    >>> wx, wy, wz = window_factors(4, "cic")
    >>> wz.ravel().round(4)
    array([1.    , 0.8106, 0.4053])
    """
    order = scheme_order(scheme)
    full = np.sinc(np.fft.fftfreq(n_mesh)) ** order
    half = np.sinc(np.fft.rfftfreq(n_mesh)) ** order
    return full[:, None, None], full[None, :, None], half[None, None, :]


def assignment_window(n_mesh: int, scheme: str) -> np.ndarray:
    """The assignment window W(k) on the full ``rfftn`` grid, (n, n, n // 2 + 1).

    Divide δ_k by it once to undo one assignment (or by W² for assignment plus
    interpolation). See :func:`window_factors` for the formula.

    Examples
    --------
    >>> assignment_window(8, "tsc").shape
    (8, 8, 5)
    """
    wx, wy, wz = window_factors(n_mesh, scheme)
    return wx * wy * wz


def overdensity(mesh: np.ndarray) -> np.ndarray:
    """The density contrast δ = mesh / mean(mesh) - 1, as a new float array.

    Examples
    --------
    >>> import numpy as np
    >>> overdensity(np.array([1.0, 3.0]))
    array([-0.5,  0.5])
    """
    mesh = np.asarray(mesh)
    mean = float(mesh.mean(dtype=np.float64))
    if not mean > 0:
        raise ValueError(f"mesh has mean {mean}; the overdensity needs a positive mean")
    delta = mesh / mean
    delta -= 1
    return delta


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2 or shape[1] not in (2, 3):
        raise ValueError(f"positions must have shape (N, 3) (or (N, 2)), got {shape}")


def _check_positions(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions)
    _check_shape(positions.shape)
    if positions.dtype.kind != "f":
        positions = positions.astype(np.float64)
    return positions


def _check_box(box_size: float) -> float:
    if not box_size > 0:
        raise ValueError(f"box_size must be a positive length in Mpc/h, got {box_size}")
    return float(box_size)


def _check_weights(weights: np.ndarray | None, n_particles: int) -> np.ndarray | None:
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_particles,):
        raise ValueError(
            f"weights must have shape ({n_particles},) like positions, "
            f"got {weights.shape}"
        )
    return weights


def _output_mesh(out: np.ndarray | None, n_mesh: int, ndim: int) -> np.ndarray:
    if isinstance(n_mesh, bool) or not isinstance(n_mesh, int | np.integer):
        raise TypeError(f"n_mesh must be an int, got {n_mesh!r}")
    if n_mesh < 1:
        raise ValueError(f"n_mesh must be at least 1, got {n_mesh}")
    shape = (int(n_mesh),) * ndim
    if out is None:
        return np.zeros(shape)
    if out.shape != shape or out.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"out must be a float32 or float64 array of shape {shape}, "
            f"got {out.dtype} {out.shape}"
        )
    out.fill(0)
    return out


class _Kernel:
    """The stencil of one scheme on a periodic n^D mesh: flat indices and weights.

    Arrays are laid out (p, …, p, C) with the C particles of a chunk innermost, so
    every numpy loop runs over a long contiguous axis, and they live in buffers
    reused from chunk to chunk: fresh megabyte-sized temporaries per chunk cost
    page faults that can take longer than the arithmetic.
    """

    def __init__(self, n_mesh: int, order: int, ndim: int, box_size: float) -> None:
        self.n_mesh = n_mesh
        self.order = order
        self.size = order**ndim
        self.chunk = max(_CHUNK_ENTRIES // self.size, 1)
        self._scale = n_mesh / box_size
        # periodic index of points -1 … n + 2 times each axis' stride in the flat
        # mesh; a stencil's first point is ≥ -1 and its last ≤ n + 2
        periodic = np.arange(-1, n_mesh + 3) % n_mesh
        self._tables = [periodic * n_mesh**a for a in reversed(range(ndim))]
        self._offsets = np.arange(1, order + 1)[:, None]
        self._buffers: dict[str, np.ndarray] = {}

    def chunks(self, n_particles: int) -> list[tuple[int, int]]:
        """(start, stop) of consecutive particle chunks of at most ``chunk``."""
        step = self.chunk
        return [(s, min(s + step, n_particles)) for s in range(0, n_particles, step)]

    def __call__(
        self,
        positions: np.ndarray,
        shift: float | np.ndarray = 0.0,
        weights: np.ndarray | None = None,
        dtype: type = np.float64,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices and weights (``dtype``), both (p^D C,), of C positions.

        The arrays are the kernel's buffers, overwritten by the next call.
        """
        first, axis_weight = self._axis_stencils(self._cell_units(positions, shift))
        if weights is not None:
            axis_weight[:, 0] *= weights
        n_chunk = positions.shape[0]
        index = self._points(0, first[0])
        weight = axis_weight[:, 0]
        for axis in range(1, len(self._tables)):
            shape = (*index.shape[:-1], self.order, n_chunk)
            last = axis == len(self._tables) - 1
            index = np.add(
                index[..., None, :],
                self._points(axis, first[axis]),
                out=self._buffer(f"index{axis}", shape, np.intp),
            )
            weight = np.multiply(
                weight[..., None, :],
                axis_weight[:, axis],
                out=self._buffer(f"weight{axis}", shape, dtype if last else np.float64),
            )
        return index.reshape(-1), weight.reshape(-1)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A C-contiguous (shape) view of the reusable buffer ``name``."""
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            capacity = max(size, size // shape[-1] * self.chunk)
            buffer = self._buffers[name] = np.empty(capacity, dtype)
        return buffer[:size].reshape(shape)

    def _cell_units(
        self, positions: np.ndarray, shift: float | np.ndarray
    ) -> np.ndarray:
        """Float64 positions in cells, (D, C), wrapped into [0, n] (n by rounding)."""
        cells = self._buffer("cells", positions.shape[::-1], np.float64)
        np.multiply(positions.T, self._scale, out=cells, dtype=np.float64)
        if np.any(shift):
            cells += np.broadcast_to(shift, (len(cells),))[:, None]
        if cells.size and not (cells.min() >= 0 and cells.max() < self.n_mesh):
            np.mod(cells, self.n_mesh, out=cells)
            if not np.isfinite(cells).all():
                raise ValueError("positions contain NaN or infinite values")
        return cells

    def _points(self, axis: int, first: np.ndarray) -> np.ndarray:
        """Flat-index contribution of the p stencil points along ``axis``, (p, C)."""
        shape = (self.order, first.shape[0])
        unwrapped = self._buffer("unwrapped", shape, np.intp)
        np.add(first, self._offsets, out=unwrapped)
        points = self._buffer(f"points{axis}", shape, np.intp)
        return np.take(self._tables[axis], unwrapped, out=points, mode="clip")

    def _axis_stencils(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First stencil point (D, C) and the p weights from it, (p, D, C)."""
        weight = self._buffer("axis_weight", (self.order, *cells.shape), np.float64)
        first = self._buffer("first", cells.shape, np.float64)
        if self.order == 1:
            np.add(cells, 0.5, out=first)
            np.floor(first, out=first)
            weight.fill(1.0)
        elif self.order == 2:
            np.floor(cells, out=first)
            d = np.subtract(cells, first, out=weight[1])
            np.subtract(1.0, d, out=weight[0])
        else:
            np.add(cells, 0.5, out=first)
            np.floor(first, out=first)
            d = np.subtract(cells, first, out=cells)
            np.subtract(0.5, d, out=weight[0])
            np.square(weight[0], out=weight[0])
            weight[0] *= 0.5
            np.square(d, out=weight[1])
            np.subtract(0.75, weight[1], out=weight[1])
            # the third weight, (1/2 + d)²/2, as 1 minus the others: they sum to 1
            np.subtract(1.0, weight[0], out=weight[2])
            weight[2] -= weight[1]
            first -= 1
        first_index = self._buffer("first_index", cells.shape, np.intp)
        np.copyto(first_index, first, casting="unsafe")
        return first_index, weight
