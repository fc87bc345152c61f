"""Compiled (numba) mass-assignment kernels behind :mod:`simlab.analysis.mesh`.

They follow the numpy path of ``mesh.py`` exactly (grid convention, kernels,
wrapping, float64 weights) but go one particle at a time with no temporaries,
where the numpy path builds p³ indices and weights per particle and scatters them
with ``np.add.at``. Depositing particles in random order is bound by memory
latency; threads (numba ``prange``) own disjoint slabs of x-planes, so they
overlap that latency without races or per-thread mesh copies, and the mesh does
not depend on the number of threads. CIC has its own leaner loop.

numba is optional (the ``fast`` extra); without it, or with ``SIMLAB_NO_NUMBA=1``
in the environment, ``mesh.py`` uses its numpy path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

#: ``SIMLAB_NO_NUMBA=1`` turns the kernels off; numba is then not even imported
#: (importing it costs ~55 MB of Python objects and ~130 MB of RSS with LLVM).
DISABLED = os.environ.get("SIMLAB_NO_NUMBA", "") not in ("", "0")

numba = None
if not DISABLED:
    try:  # numba is an optional accelerator
        import numba
    except ImportError:  # pragma: no cover - exercised where numba is absent
        numba = None


def available() -> bool:
    """Whether the compiled kernels can be used (numba importable, not disabled)."""
    return numba is not None and os.environ.get("SIMLAB_NO_NUMBA", "") in ("", "0")


def _axis_stencil(u: float, n: int, order: int) -> tuple[int, float, float, float]:
    """First stencil point and the p weights along one axis of cell coordinate u.

    ``u`` is first wrapped into [0, n] as numpy's ``np.mod`` would.
    """
    if not (u >= 0.0 and u < n):
        u = u - np.floor(u / n) * n
    if order == 1:
        return int(np.floor(u + 0.5)), 1.0, 0.0, 0.0
    if order == 2:
        first = np.floor(u)
        d = u - first
        return int(first), 1.0 - d, d, 0.0
    first = np.floor(u + 0.5)
    d = u - first
    w0 = 0.5 * (0.5 - d) ** 2
    w1 = 0.75 - d * d
    return int(first) - 1, w0, w1, 1.0 - w0 - w1


def _deposit3(
    positions: np.ndarray,
    scale: float,
    shift: float,
    order: int,
    weights: np.ndarray,
    use_weights: bool,
    out: np.ndarray,
    owners: int,
) -> int:
    """Add each particle's stencil to the (n, n, n) ``out``; return non-finite count.

    The scatter is bound by memory latency (particles in random order touch random
    mesh cells), which threads overlap: each of ``owners`` threads owns a slab of
    x-planes and goes through every particle, writing only into its own planes.
    No races, no per-thread mesh copy, and the result does not depend on the
    number of threads.
    """
    n = out.shape[0]
    bad = np.zeros(owners, dtype=np.int64)
    for owner in numba.prange(owners):
        lo = owner * n // owners
        hi = (owner + 1) * n // owners
        for i in range(positions.shape[0]):
            ux = positions[i, 0] * scale + shift
            if not np.isfinite(ux):
                bad[owner] += 1
                continue
            fx, x0, x1, x2 = _axis_stencil(ux, n, order)
            mine = False
            for a in range(order):
                plane = _wrap_index(fx + a, n)
                mine = mine or (lo <= plane < hi)
            if not mine:
                continue
            uy = positions[i, 1] * scale + shift
            uz = positions[i, 2] * scale + shift
            if not (np.isfinite(uy) and np.isfinite(uz)):
                bad[owner] += 1
                continue
            fy, y0, y1, y2 = _axis_stencil(uy, n, order)
            fz, z0, z1, z2 = _axis_stencil(uz, n, order)
            if use_weights:
                x0 *= weights[i]
                x1 *= weights[i]
                x2 *= weights[i]
            wx = (x0, x1, x2)
            wy = (y0, y1, y2)
            wz = (z0, z1, z2)
            for a in range(order):
                ix = _wrap_index(fx + a, n)
                if ix < lo or ix >= hi:
                    continue
                for b in range(order):
                    iy = _wrap_index(fy + b, n)
                    wxy = wx[a] * wy[b]
                    for c in range(order):
                        out[ix, iy, _wrap_index(fz + c, n)] += wxy * wz[c]
    return bad.sum()


def _wrap_index(i: int, n: int) -> int:
    """A stencil index in [-1, n + 1] taken periodically into [0, n)."""
    if i < 0:
        return i + n
    if i >= n:
        return i - n
    return i


def _cic_axis(u: float, n: int) -> tuple[int, int, float, bool]:
    """CIC along one axis: lower and upper point, distance to the lower, finite.

    ``u`` in [0, n) (the common case) costs one comparison; anything else is
    wrapped as numpy's ``np.mod`` would, and NaN or infinity is reported.
    """
    if not (u >= 0.0 and u < n):
        if not np.isfinite(u):
            return 0, 0, 0.0, False
        u = u - np.floor(u / n) * n
    low = int(u)
    d = u - low
    if low >= n:
        low -= n
    high = low + 1
    if high >= n:
        high -= n
    return low, high, d, True


def _cic3(
    positions: np.ndarray,
    scale: float,
    shift: float,
    weights: np.ndarray,
    use_weights: bool,
    out: np.ndarray,
    owners: int,
) -> int:
    """CIC special case of :func:`_deposit3`: the same result with less work."""
    n = out.shape[0]
    bad = np.zeros(owners, dtype=np.int64)
    for owner in numba.prange(owners):
        lo = owner * n // owners
        hi = (owner + 1) * n // owners
        for i in range(positions.shape[0]):
            ix, jx, dx, ok = _cic_axis(positions[i, 0] * scale + shift, n)
            if not ok:
                bad[owner] += 1
                continue
            own_i = lo <= ix < hi
            own_j = lo <= jx < hi
            if not (own_i or own_j):
                continue
            iy, jy, dy, ok_y = _cic_axis(positions[i, 1] * scale + shift, n)
            iz, jz, dz, ok_z = _cic_axis(positions[i, 2] * scale + shift, n)
            if not (ok_y and ok_z):
                bad[owner] += 1
                continue
            ex = 1.0 - dx
            if use_weights:
                ex *= weights[i]
                dx *= weights[i]
            ey = 1.0 - dy
            ez = 1.0 - dz
            if own_i:
                w = ex * ey
                out[ix, iy, iz] += w * ez
                out[ix, iy, jz] += w * dz
                w = ex * dy
                out[ix, jy, iz] += w * ez
                out[ix, jy, jz] += w * dz
            if own_j:
                w = dx * ey
                out[jx, iy, iz] += w * ez
                out[jx, iy, jz] += w * dz
                w = dx * dy
                out[jx, jy, iz] += w * ez
                out[jx, jy, jz] += w * dz
    return bad.sum()


def _interpolate3(
    mesh: np.ndarray, positions: np.ndarray, scale: float, order: int, out: np.ndarray
) -> int:
    """The field at each particle, the transpose of ``_deposit3``; non-finite count."""
    n = mesh.shape[0]
    bad = 0
    for i in numba.prange(positions.shape[0]):
        ux = positions[i, 0] * scale
        uy = positions[i, 1] * scale
        uz = positions[i, 2] * scale
        if not (np.isfinite(ux) and np.isfinite(uy) and np.isfinite(uz)):
            bad += 1
            out[i] = np.nan
            continue
        fx, x0, x1, x2 = _axis_stencil(ux, n, order)
        fy, y0, y1, y2 = _axis_stencil(uy, n, order)
        fz, z0, z1, z2 = _axis_stencil(uz, n, order)
        wx = (x0, x1, x2)
        wy = (y0, y1, y2)
        wz = (z0, z1, z2)
        total = 0.0
        for a in range(order):
            ix = fx + a
            ix = ix + n if ix < 0 else (ix - n if ix >= n else ix)
            for b in range(order):
                iy = fy + b
                iy = iy + n if iy < 0 else (iy - n if iy >= n else iy)
                wxy = wx[a] * wy[b]
                for c in range(order):
                    iz = fz + c
                    iz = iz + n if iz < 0 else (iz - n if iz >= n else iz)
                    total += wxy * wz[c] * mesh[ix, iy, iz]
        out[i] = total
    return bad


def _gradient_field(
    delta_k: np.ndarray,
    green: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    gz: np.ndarray,
    lattice_green: np.ndarray,
    tx: np.ndarray,
    ty: np.ndarray,
    tz: np.ndarray,
    weight: float,
    out: np.ndarray,
) -> None:
    """out = i δ_k [(1 - w) g G + w t G_lattice] in one pass, g = gx gy gz.

    One of the per-axis factors is the gradient, the other two are ones. The lattice
    term is skipped when ``weight`` is 0 (its arrays may then be dummies).
    """
    nx, ny, nz = delta_k.shape
    lattice = weight > 0.0
    conventional = 1.0 - weight
    for i in numba.prange(nx):
        for j in range(ny):
            gxy = conventional * gx[i] * gy[j]
            txy = weight * tx[i] * ty[j] if lattice else 0.0
            for k in range(nz):
                factor = gxy * gz[k] * green[i, j, k]
                if lattice:
                    factor += txy * tz[k] * lattice_green[i, j, k]
                value = delta_k[i, j, k]
                out[i, j, k] = complex(-factor * value.imag, factor * value.real)


def _compile(function: Callable, parallel: bool = False) -> Callable:
    return numba.njit(cache=True, nogil=True, parallel=parallel, boundscheck=False)(
        function
    )


if numba is not None:
    _axis_stencil = _compile(_axis_stencil)
    _wrap_index = _compile(_wrap_index)
    _cic_axis = _compile(_cic_axis)
    _cic3 = _compile(_cic3, parallel=True)
    _deposit3 = _compile(_deposit3, parallel=True)
    _interpolate3 = _compile(_interpolate3, parallel=True)
    _gradient_field = _compile(_gradient_field, parallel=True)


def deposit3(
    positions: np.ndarray,
    box_size: float,
    order: int,
    weights: np.ndarray | None,
    shift: float,
    out: np.ndarray,
) -> None:
    """Add the particles to the zeroed cubic ``out`` (see ``mesh.deposit``)."""
    use_weights = weights is not None
    w = weights if use_weights else np.empty(0)
    n = out.shape[0]
    owners = max(min(numba.get_num_threads(), n), 1)
    scale, shift = n / box_size, float(shift)
    if order == 2:
        bad = _cic3(positions, scale, shift, w, use_weights, out, owners)
    else:
        bad = _deposit3(positions, scale, shift, order, w, use_weights, out, owners)
    if bad:
        raise ValueError(f"positions contain NaN or infinite values ({bad} particles)")


def interpolate3(
    mesh: np.ndarray, positions: np.ndarray, box_size: float, order: int
) -> np.ndarray:
    """The cubic ``mesh`` read at each position (see ``mesh.interpolate``)."""
    out = np.empty(len(positions))
    bad = _interpolate3(mesh, positions, mesh.shape[0] / box_size, order, out)
    if bad:
        raise ValueError(f"positions contain NaN or infinite values ({bad} particles)")
    return out


def gradient_field(
    delta_k: np.ndarray,
    green: np.ndarray,
    gradient: np.ndarray,
    axis: int,
    weight: float = 0.0,
    lattice_green: np.ndarray | None = None,
    lattice_gradient: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The Fourier modes of one force component of the PM solver.

    i δ_k [(1 - w) g(k_axis) G + w t(k_axis) G_lattice]: ``delta_k`` is complex128
    in ``rfftn`` layout, ``green`` and ``lattice_green`` float64 of its shape, the
    gradients g and t real factors along ``axis``.
    """
    if out is None:
        out = np.empty_like(delta_k)
    ones = [np.ones(size) for size in delta_k.shape]
    g = list(ones)
    g[axis] = np.ascontiguousarray(gradient, dtype=np.float64)
    if weight > 0.0:
        if lattice_green is None or lattice_gradient is None:
            raise ValueError("weight > 0 needs lattice_green and lattice_gradient")
        t = list(ones)
        t[axis] = np.ascontiguousarray(lattice_gradient, dtype=np.float64)
    else:
        lattice_green, t = np.zeros((1, 1, 1)), ones
    _gradient_field(delta_k, green, *g, lattice_green, *t, float(weight), out)
    return out
