"""Projected density maps of a slab: what :func:`simlab.plot.projection` draws.

Each particle's mass is spread over a Gaussian whose width follows the local mean
spacing (adaptive, as SPH viewers do), so pixels finer than the spacing are not
left empty. Positions held lazily by dask that do not fit in memory are projected
chunk by chunk on the dask workers (:mod:`simlab.analysis.chunked`): each chunk
adds its slab particles' smoothed mass in Fourier space, and the sum is inverted
once, so the image equals the in-memory one to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from simlab.analysis.chunked import deposit_chunked, fits_in_memory, tree_sum
from simlab.analysis.mesh import deposit, interpolate, is_lazy, particle_positions

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

#: The axes' names, in coordinate order.
AXES = ("x", "y", "z")
LENGTH_UNIT = "Mpc/h"
#: Kernel width at the mean density, in mean interparticle spacings.
SMOOTHING_AT_MEAN_DENSITY = 0.5
#: Kernel widths drawn per factor of 2 (each particle takes the nearest one).
WIDTHS_PER_OCTAVE = 4


def projection_image(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None = None,
    *,
    axis: str = "z",
    slab: tuple[float, float] | None = None,
    n_pixels: int = 256,
    scheme: str = "cic",
    log: bool = True,
    smoothing: str | float | None = "adaptive",
    density: np.ndarray | None = None,
    chunked: bool | None = None,
) -> np.ndarray:
    """The projected density of a slab, as the image :func:`projection` draws.

    Particles with ``slab[0] <= position[axis] < slab[1]`` are assigned to an
    n_pixels² periodic grid of the two other axes (pixel i centred on i L / n, as
    in :func:`simlab.analysis.mesh.deposit`), each spread over a Gaussian of width
    σ (see ``smoothing``), and each pixel's mass is divided by the mean over the
    pixels: 1 + δ, projected.

    Parameters
    ----------
    positions : (N, 3) array or xarray.Dataset
        comoving positions in Mpc/h of every particle of the box (the smoothing
        needs the mean spacing (L³/N)^(1/3) and the density around the slab), or a
        Gadget4 snapshot Dataset (``Coordinates`` variable, ``BoxSize`` attribute);
        positions held lazily by dask that do not fit in memory are projected
        chunk by chunk on the dask workers (the same image)
    box_size : float, optional
        comoving box side in Mpc/h (default: the Dataset's ``BoxSize``)
    axis : {"x", "y", "z"}
        line-of-sight axis the slab is projected along
    slab : (float, float), optional
        the slab's range along ``axis`` in Mpc/h (default: the whole box)
    n_pixels : int
        pixels per side
    scheme : {"ngp", "cic", "tsc"}
        mass-assignment kernel onto the pixels
    log : bool
        return log10(1 + δ), with NaN in empty pixels, instead of 1 + δ
    smoothing : "adaptive", "spacing", float or None
        Gaussian width σ of each particle's projected mass. "adaptive" (default):
        half the local mean spacing, σ = d/2 (ρ̄/ρ)^(1/3), with ρ the density at
        the particle on a CIC mesh of one cell per mean spacing d, like the
        adaptive kernels of SPH viewers (pynbody, yt); "spacing": σ = d/2 for
        every particle; a number: σ in Mpc/h; None: no smoothing (bare
        assignment, which leaves pixels finer than the spacing empty)
    density : (N,) array, optional
        1 + δ at every particle from :func:`local_density`, to reuse it between
        maps of the same particles (adaptive smoothing only)
    chunked : bool or None
        for dask-backed positions: project chunk by chunk (True), read them into
        memory first (False), or chunk by chunk only when they take more than a
        quarter of the free memory (None), as :func:`~simlab.analysis.power.
        power_spectrum` does; a given ``density`` reads them into memory

    Returns
    -------
    (n_pixels, n_pixels) float64
        ``image[row, column]`` with columns along the first remaining axis
        (horizontal) and rows along the second (vertical), as ``imshow`` with
        ``origin="lower"`` shows it

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 0.5], [1.0, 2.0, 9.5]])
    >>> image = projection_image(
    ...     x, 10.0, slab=(0.0, 5.0), n_pixels=10, log=False, smoothing=None
    ... )
    >>> float(image[2, 1]), float(image.mean())
    (100.0, 1.0)
    >>> smooth = projection_image(x, 10.0, slab=(0.0, 5.0), n_pixels=10, log=False)
    >>> bool(smooth.min() > 0), round(float(smooth.mean()), 12)
    (True, 1.0)
    """
    positions, box_size = particle_positions(
        positions, box_size, keep_lazy=chunked is not False
    )
    in_memory = chunked is None and fits_in_memory(positions)
    if is_lazy(positions) and (density is not None or in_memory):
        positions, _ = particle_positions(positions.compute(), box_size)
    if is_lazy(positions):
        line_of_sight = axis_index(axis)
        total, count = _project_chunks(
            positions,
            box_size,
            line_of_sight,
            value_range(slab, box_size, "slab"),
            n_pixels,
            scheme,
            smoothing,
        )
        if count == 0:
            raise _empty_slab(slab, axis, box_size)
    else:
        flat, widths = select_slab(
            positions, box_size, axis=axis, slab=slab, smoothing=smoothing,
            density=density,
        )  # fmt: skip
        total, count = _slab_sum(flat, box_size, n_pixels, scheme, widths), len(flat)
    mass = _slab_mass(total, n_pixels, count)
    mass *= n_pixels**2 / count
    image = mass.T
    return log_image(image) if log else image


def select_slab(
    positions: np.ndarray,
    box_size: float,
    *,
    axis: str,
    slab: tuple[float, float] | None,
    smoothing: str | float | None,
    density: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The slab's particles in the coordinates of the two other axes, and their
    kernel widths (None without smoothing); a ValueError naming the slab when it
    holds no particle. What every map of in-memory positions starts from."""
    line_of_sight = axis_index(axis)
    lo, hi = value_range(slab, box_size, "slab")
    depth = positions[:, line_of_sight]
    inside = (depth >= lo) & (depth < hi)
    count = int(np.count_nonzero(inside))
    if count == 0:
        raise _empty_slab(slab, axis, box_size)
    spacing = box_size / len(positions) ** (1 / 3)

    def contrast() -> np.ndarray:
        if density is None:
            return local_density(positions, box_size, positions[inside])
        return np.asarray(density)[inside]

    widths = kernel_widths(smoothing, spacing, count, contrast)
    return positions[inside][:, _across(line_of_sight)], widths


def log_image(image: np.ndarray) -> np.ndarray:
    """log10 of a map's 1 + δ, NaN in its empty pixels."""
    with np.errstate(divide="ignore"):
        return np.where(image > 0, np.log10(image), np.nan)


def _empty_slab(
    slab: tuple[float, float] | None, axis: str, box_size: float
) -> ValueError:
    return ValueError(
        f"slab={slab!r} along {axis} holds no particles; the box is "
        f"[0, {box_size}) {LENGTH_UNIT}"
    )


def _across(line_of_sight: int) -> list[int]:
    """The two axes of the map: those other than the line of sight, in order."""
    return [a for a in range(3) if a != line_of_sight]


def _slab_sum(
    flat: np.ndarray,
    box_size: float,
    n_pixels: int,
    scheme: str,
    widths: np.ndarray | None,
) -> np.ndarray:
    """What the slab particles (``flat``: their map coordinates) add to the map:
    their mass on the pixels without smoothing, else the Fourier modes of their
    smoothed mass (sums of either over chunks of particles are those of all of
    them)."""
    if widths is None:
        return deposit(flat, box_size, n_pixels, scheme)
    return smoothed_modes(flat, widths, box_size, n_pixels, scheme)


def _slab_mass(total: np.ndarray, n_pixels: int, count: int) -> np.ndarray:
    """The pixels' mass from :func:`_slab_sum`'s total of ``count`` particles."""
    if np.iscomplexobj(total):
        return smoothed_image(total, n_pixels, count)
    return total


def _project_chunks(
    positions: da.Array,
    box_size: float,
    line_of_sight: int,
    slab: tuple[float, float],
    n_pixels: int,
    scheme: str,
    smoothing: str | float | None,
) -> tuple[np.ndarray, int]:
    """:func:`_slab_sum` of dask-backed positions chunk by chunk on the workers,
    and the number of slab particles. Adaptive smoothing reads 1 + δ off a mesh
    deposited chunk by chunk too (float64, as :func:`local_density`'s)."""
    import dask

    n_total = positions.shape[0]
    density_mesh = None
    if smoothing == "adaptive":
        n_mesh = _density_mesh_size(n_total)
        density_mesh = deposit_chunked(
            positions, box_size, n_mesh, "cic", dtype=np.float64
        )
        density_mesh *= n_mesh**3 / n_total
    positions = positions.rechunk({1: -1})
    parts = [
        dask.delayed(_chunk_sum)(
            block, n_total, box_size, line_of_sight, slab, n_pixels, scheme,
            smoothing, density_mesh,
        )
        for block in positions.to_delayed().ravel()
    ]  # fmt: skip
    return dask.compute(tree_sum(parts))[0]


def _chunk_sum(
    block: np.ndarray,
    n_total: int,
    box_size: float,
    line_of_sight: int,
    slab: tuple[float, float],
    n_pixels: int,
    scheme: str,
    smoothing: str | float | None,
    density_mesh: np.ndarray | None,
) -> tuple[np.ndarray, int]:
    """One chunk's :func:`_slab_sum` and its number of slab particles."""
    block = np.asarray(block, dtype=np.float64)
    depth = block[:, line_of_sight]
    selected = block[(depth >= slab[0]) & (depth < slab[1])]
    spacing = box_size / n_total ** (1 / 3)

    def contrast() -> np.ndarray:
        assert density_mesh is not None  # adaptive smoothing only
        return np.maximum(interpolate(density_mesh, selected, box_size, "cic"), 1e-3)

    widths = kernel_widths(smoothing, spacing, len(selected), contrast)
    flat = selected[:, _across(line_of_sight)]
    return _slab_sum(flat, box_size, n_pixels, scheme, widths), len(selected)


def local_density(
    positions: np.ndarray, box_size: float, at: np.ndarray | None = None
) -> np.ndarray:
    """1 + δ at each particle, on a CIC mesh of one cell per mean spacing.

    This is the density the adaptive smoothing of :func:`projection_image` reads
    (σ = d/2 (1 + δ)^(-1/3)); compute it once and pass it as ``density`` to draw
    several maps of the same particles (an interactive viewer's zooms and slabs).

    Parameters
    ----------
    positions : (N, 3) array
        comoving positions in Mpc/h of every particle of the box
    box_size : float
        comoving box side in Mpc/h
    at : (M, 3) array, optional
        where to read it (default: at ``positions``)

    Returns
    -------
    (N,) or (M,) float64, at least 1e-3 (a particle alone in a void still
    reads a part of its own mass)
    """
    n_mesh = _density_mesh_size(len(positions))
    mesh = deposit(positions, box_size, n_mesh, "cic")
    mesh *= n_mesh**3 / len(positions)  # 1 + δ
    where = positions if at is None else at
    return np.maximum(interpolate(mesh, where, box_size, "cic"), 1e-3)


def _density_mesh_size(n_particles: int) -> int:
    """Cells per side of the density mesh: one cell per mean spacing."""
    return max(round(n_particles ** (1 / 3)), 2)


def kernel_widths(
    smoothing: str | float | None,
    spacing: float,
    count: int,
    contrast: Callable[[], np.ndarray],
) -> np.ndarray | None:
    """Gaussian σ in Mpc/h of each of ``count`` slab particles, None without
    smoothing; ``contrast()`` gives their 1 + δ (adaptive smoothing only) and
    ``spacing`` is the box's mean interparticle spacing."""
    if smoothing is None:
        return None
    if isinstance(smoothing, str):
        if smoothing == "spacing":
            return np.full(count, SMOOTHING_AT_MEAN_DENSITY * spacing)
        if smoothing != "adaptive":
            raise ValueError(
                f"smoothing={smoothing!r} is not 'adaptive', 'spacing', a width in "
                f"{LENGTH_UNIT} or None"
            )
        # a particle alone in a void still reads a part of its own mass
        floor = np.maximum(contrast(), 1e-3)
        return SMOOTHING_AT_MEAN_DENSITY * spacing * floor ** (-1 / 3)
    width = float(smoothing)
    if not width >= 0:
        raise ValueError(
            f"smoothing must be a width >= 0 in {LENGTH_UNIT}, got {width}"
        )
    return None if width == 0 else np.full(count, width)


def smoothed_modes(
    flat: np.ndarray,
    widths: np.ndarray,
    box_size: float,
    n_pixels: int,
    scheme: str,
) -> np.ndarray:
    """The rfft2 modes of Σ over particles of a periodic 2D Gaussian of width σ_i.

    Widths are rounded to a ladder of ``WIDTHS_PER_OCTAVE`` per factor 2; the
    particles of one rung are assigned together and convolved with the rung's
    Gaussian sampled on the pixels (a non-negative kernel, so no pixel rings
    below zero), through Fourier space; the sum of the rungs' transforms is
    inverted once (:func:`smoothed_image`).
    """
    pixel = box_size / n_pixels
    rung = np.round(
        WIDTHS_PER_OCTAVE * np.log2(np.maximum(widths, 0.1 * pixel) / pixel)
    ).astype(np.int64)
    offsets = np.fft.fftfreq(n_pixels, d=1.0 / n_pixels)  # periodic pixel offsets
    total = np.zeros((n_pixels, n_pixels // 2 + 1), dtype=np.complex128)
    for level in np.unique(rung):
        members = rung == level
        sigma = 2.0 ** (level / WIDTHS_PER_OCTAVE)  # in pixels
        kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
        kernel /= kernel.sum()
        transfer = np.fft.fft(kernel).real  # even kernel: real transfer
        mesh = deposit(flat[members], box_size, n_pixels, scheme)
        total += np.fft.rfft2(mesh) * (
            transfer[:, None] * transfer[None, : n_pixels // 2 + 1]
        )
    return total


def smoothed_image(total: np.ndarray, n_pixels: int, count: int) -> np.ndarray:
    """The pixels' mass from the :func:`smoothed_modes` of ``count`` particles."""
    image = np.fft.irfft2(total, s=(n_pixels, n_pixels))
    # rounding leaves ~1e-16 of the total where the kernels have underflowed
    image[image < 1e-12 * count] = 0.0
    return image


def smoothed_deposit(
    flat: np.ndarray,
    widths: np.ndarray,
    box_size: float,
    n_pixels: int,
    scheme: str,
) -> np.ndarray:
    """Σ over particles of a periodic 2D Gaussian of width σ_i, per pixel."""
    modes = smoothed_modes(flat, widths, box_size, n_pixels, scheme)
    return smoothed_image(modes, n_pixels, len(flat))


def axis_index(axis: str) -> int:
    """0, 1 or 2 for "x", "y" or "z"."""
    if axis not in AXES:
        raise ValueError(f"axis={axis!r} is not one of {AXES}")
    return AXES.index(axis)


def value_range(
    limits: tuple[float, float] | None, box_size: float, name: str
) -> tuple[float, float]:
    """(low, high) of a slab or a view along one axis: the whole box by default;
    a ValueError naming ``name`` unless low < high."""
    if limits is None:
        return 0.0, box_size
    low, high = (float(v) for v in limits)
    if not low < high:
        raise ValueError(
            f"{name}={limits!r} must be (low, high) with low < high, in {LENGTH_UNIT}"
        )
    return low, high
