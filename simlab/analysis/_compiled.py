"""Compiled (numba) mass-assignment kernels behind :mod:`simlab.analysis.mesh`.

They follow the numpy path of ``mesh.py`` exactly (grid convention, kernels,
wrapping, float64 weights) but go one particle at a time with no temporaries,
where the numpy path builds p³ indices and weights per particle and scatters them
with ``np.add.at``. Depositing particles in random order is bound by memory
latency; threads (numba ``prange``) own disjoint slabs of x-planes, so they
overlap that latency without races or per-thread mesh copies, and the mesh does
not depend on the number of threads. CIC has its own leaner loop, which asks the
CPU for the mesh lines of the particle :data:`AHEAD` places on while it adds the
current one (a software prefetch), so several cache misses are in flight at once.

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

#: How many particles ahead the CIC loop prefetches the mesh lines it will add to
#: (16-32 measured best for 256³ shuffled particles; 25% off the deposit).
AHEAD = 16


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
    shifts: np.ndarray,
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
            ux = positions[i, 0] * scale + shifts[0]
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
            uy = positions[i, 1] * scale + shifts[1]
            uz = positions[i, 2] * scale + shifts[2]
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


def _prefetch_cic(
    positions: np.ndarray,
    k: int,
    scale: float,
    shifts: np.ndarray,
    lo: int,
    hi: int,
    out: np.ndarray,
) -> None:
    """Prefetch the lines of ``out`` particle ``k``'s CIC stencil adds to in this
    owner's x-planes ``[lo, hi)``; a particle outside [0, n) gets no hint."""
    n = out.shape[0]
    u = positions[k, 0] * scale + shifts[0]
    v = positions[k, 1] * scale + shifts[1]
    w = positions[k, 2] * scale + shifts[2]
    if not (u >= 0.0 and u < n and v >= 0.0 and v < n and w >= 0.0 and w < n):
        return
    ix, iy, iz = int(u), int(v), int(w)
    jx = ix + 1 if ix + 1 < n else 0
    jy = iy + 1 if iy + 1 < n else 0
    if lo <= ix < hi:
        _prefetch(out, ix, iy, iz)
        _prefetch(out, ix, jy, iz)
    if lo <= jx < hi:
        _prefetch(out, jx, iy, iz)
        _prefetch(out, jx, jy, iz)


def _cic3(
    positions: np.ndarray,
    scale: float,
    shifts: np.ndarray,
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
            if i + AHEAD < positions.shape[0]:
                _prefetch_cic(positions, i + AHEAD, scale, shifts, lo, hi, out)
            ix, jx, dx, ok = _cic_axis(positions[i, 0] * scale + shifts[0], n)
            if not ok:
                bad[owner] += 1
                continue
            own_i = lo <= ix < hi
            own_j = lo <= jx < hi
            if not (own_i or own_j):
                continue
            iy, jy, dy, ok_y = _cic_axis(positions[i, 1] * scale + shifts[1], n)
            iz, jz, dz, ok_z = _cic_axis(positions[i, 2] * scale + shifts[2], n)
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
    mesh: np.ndarray,
    positions: np.ndarray,
    scale: float,
    shifts: np.ndarray,
    order: int,
    out: np.ndarray,
) -> int:
    """The field at each particle, the transpose of ``_deposit3``; non-finite count."""
    n = mesh.shape[0]
    bad = 0
    for i in numba.prange(positions.shape[0]):
        ux = positions[i, 0] * scale + shifts[0]
        uy = positions[i, 1] * scale + shifts[1]
        uz = positions[i, 2] * scale + shifts[2]
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


def _green_at(
    green: tuple[
        float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
    ],
    i: int,
    j: int,
    k: int,
) -> float:
    """c / (p_x p_y p_z (s_x + s_y + s_z)) at mode (i, j, k), 0 where the
    denominator is not positive: a Green's function from its per-axis factors."""
    c, px, py, pz, sx, sy, sz = green
    denominator = px[i] * py[j] * pz[k] * (sx[i] + sy[j] + sz[k])
    return c / denominator if denominator > 0.0 else 0.0


def _gradient_field(
    delta_k: np.ndarray,
    green: tuple,
    gx: np.ndarray,
    gy: np.ndarray,
    gz: np.ndarray,
    lattice_green: tuple,
    tx: np.ndarray,
    ty: np.ndarray,
    tz: np.ndarray,
    weight: float,
    scale: float,
    out: np.ndarray,
) -> None:
    """out = i s δ_k [(1 - w) g G + w t G_lattice] in one pass, g = gx gy gz.

    One of the per-axis factors is the gradient, the other two are ones. The Green's
    functions are made from their per-axis factors mode by mode (:func:`_green_at`).
    The lattice term is skipped when ``weight`` is 0 (its factors may be dummies).
    """
    nx, ny, nz = delta_k.shape
    lattice = weight > 0.0
    conventional = (1.0 - weight) * scale
    for i in numba.prange(nx):
        for j in range(ny):
            gxy = conventional * gx[i] * gy[j]
            txy = weight * scale * tx[i] * ty[j] if lattice else 0.0
            for k in range(nz):
                factor = gxy * gz[k] * _green_at(green, i, j, k)
                if lattice:
                    factor += txy * tz[k] * _green_at(lattice_green, i, j, k)
                value = delta_k[i, j, k]
                out[i, j, k] = complex(-factor * value.imag, factor * value.real)


def _potential_modes(delta_k: np.ndarray, green: tuple, scale: float) -> None:
    """δ_k *= s G in place: the modes of the potential, with no second array."""
    nx, ny, nz = delta_k.shape
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                delta_k[i, j, k] *= scale * _green_at(green, i, j, k)


def _wrapped_line(low: int, n: int) -> tuple[int, int, int, int, int, int]:
    """Indices low - 2 … low + 3 taken periodically into [0, n)."""
    return (
        (low - 2) % n,
        (low - 1) % n,
        low,
        (low + 1) % n,
        (low + 2) % n,
        (low + 3) % n,
    )


def _cic_gradient(
    psi: np.ndarray,
    positions: np.ndarray,
    scale: float,
    shifts: np.ndarray,
    inverse_12h: float,
    out: np.ndarray,
) -> int:
    """CIC-read 4-point gradient of ``psi`` at each particle into ``out``; bad count.

    The gradient along an axis at mesh point j is
    [8 (ψ_{j+1} - ψ_{j-1}) - (ψ_{j+2} - ψ_{j-2})] / (12 h), the real-space form of
    the Fourier factor i (8 sin kh - sin 2kh) / (6 h); the CIC weights are those
    of :func:`_cic3`, so this equals interpolating three gradient meshes.
    """
    n = psi.shape[0]
    bad = 0
    for i in numba.prange(positions.shape[0]):
        ix, _, dx, ok_x = _cic_axis(positions[i, 0] * scale + shifts[0], n)
        iy, _, dy, ok_y = _cic_axis(positions[i, 1] * scale + shifts[1], n)
        iz, _, dz, ok_z = _cic_axis(positions[i, 2] * scale + shifts[2], n)
        if not (ok_x and ok_y and ok_z):
            bad += 1
            for c in range(3):
                out[i, c] = np.nan
            continue
        lx = _wrapped_line(ix, n)
        ly = _wrapped_line(iy, n)
        lz = _wrapped_line(iz, n)
        wx = (1.0 - dx, dx)
        wy = (1.0 - dy, dy)
        wz = (1.0 - dz, dz)
        gx = gy = gz = 0.0
        for a in range(2):
            for b in range(2):
                # x-derivative on the line (·, ly[2 + a], lz[2 + b]), and so on
                y, z = ly[2 + a], lz[2 + b]
                low = 8.0 * (psi[lx[3], y, z] - psi[lx[1], y, z]) - (
                    psi[lx[4], y, z] - psi[lx[0], y, z]
                )
                high = 8.0 * (psi[lx[4], y, z] - psi[lx[2], y, z]) - (
                    psi[lx[5], y, z] - psi[lx[1], y, z]
                )
                gx += wy[a] * wz[b] * (wx[0] * low + wx[1] * high)
                x, z = lx[2 + a], lz[2 + b]
                low = 8.0 * (psi[x, ly[3], z] - psi[x, ly[1], z]) - (
                    psi[x, ly[4], z] - psi[x, ly[0], z]
                )
                high = 8.0 * (psi[x, ly[4], z] - psi[x, ly[2], z]) - (
                    psi[x, ly[5], z] - psi[x, ly[1], z]
                )
                gy += wx[a] * wz[b] * (wy[0] * low + wy[1] * high)
                x, y = lx[2 + a], ly[2 + b]
                low = 8.0 * (psi[x, y, lz[3]] - psi[x, y, lz[1]]) - (
                    psi[x, y, lz[4]] - psi[x, y, lz[0]]
                )
                high = 8.0 * (psi[x, y, lz[4]] - psi[x, y, lz[2]]) - (
                    psi[x, y, lz[5]] - psi[x, y, lz[1]]
                )
                gz += wx[a] * wy[b] * (wz[0] * low + wz[1] * high)
        out[i, 0] = gx * inverse_12h
        out[i, 1] = gy * inverse_12h
        out[i, 2] = gz * inverse_12h
    return bad


def _kick(p: np.ndarray, force: np.ndarray, factor: float) -> None:
    """p += factor F in place, one pass, no temporary."""
    for i in numba.prange(p.shape[0]):
        for c in range(3):
            p[i, c] += factor * force[i, c]


def _kick_drift(
    x: np.ndarray,
    p: np.ndarray,
    force: np.ndarray,
    kick: float,
    drift: float,
    box_size: float,
) -> None:
    """p += kick F, then x += drift p wrapped into [0, L), in place in one pass."""
    for i in numba.prange(x.shape[0]):
        for c in range(3):
            p[i, c] += kick * force[i, c]
            value = x[i, c] + drift * p[i, c]
            if not (value >= 0.0 and value < box_size):
                value = value % box_size
            x[i, c] = value


def _compile(function: Callable, parallel: bool = False) -> Callable:
    return numba.njit(cache=True, nogil=True, parallel=parallel, boundscheck=False)(
        function
    )


def _prefetch_intrinsic() -> Callable:
    """``_prefetch(array, i, j, k)``: LLVM's prefetch-for-write of ``array[i, j, k]``'s
    cache line; a hint that changes no value."""
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _prefetch(typingctx, array, i, j, k):
        signature = numba.types.void(array, i, j, k)

        def codegen(context, builder, sig, args):
            kind = sig.args[0]
            data = context.make_array(kind)(context, builder, args[0])
            index = [
                context.cast(builder, v, t, numba.types.intp)
                for v, t in zip(args[1:], sig.args[1:], strict=True)
            ]
            pointer = cgutils.get_item_pointer(
                context, builder, kind, data, index, wraparound=False
            )
            byte = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
                "llvm.prefetch.p0i8",
            )
            # write, keep in all cache levels, data cache
            flags = [ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)]
            builder.call(fn, [builder.bitcast(pointer, byte), *flags])
            return context.get_dummy_value()

        return signature, codegen

    return _prefetch


if numba is not None:
    _prefetch = _prefetch_intrinsic()
    _prefetch_cic = _compile(_prefetch_cic)
    _axis_stencil = _compile(_axis_stencil)
    _wrap_index = _compile(_wrap_index)
    _cic_axis = _compile(_cic_axis)
    _wrapped_line = _compile(_wrapped_line)
    _cic3 = _compile(_cic3, parallel=True)
    _deposit3 = _compile(_deposit3, parallel=True)
    _interpolate3 = _compile(_interpolate3, parallel=True)
    _green_at = _compile(_green_at)
    _gradient_field = _compile(_gradient_field, parallel=True)
    _potential_modes = _compile(_potential_modes, parallel=True)
    _cic_gradient = _compile(_cic_gradient, parallel=True)
    _kick = _compile(_kick, parallel=True)
    _kick_drift = _compile(_kick_drift, parallel=True)


def axis_shifts(shift: float | np.ndarray) -> np.ndarray:
    """A shift in cells, one for all axes or one per axis, as 3 contiguous floats."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(shift, float), (3,)))


def deposit3(
    positions: np.ndarray,
    box_size: float,
    order: int,
    weights: np.ndarray | None,
    shift: float | np.ndarray,
    out: np.ndarray,
) -> None:
    """Add the particles to the zeroed cubic ``out`` (see ``mesh.deposit``)."""
    use_weights = weights is not None
    w = weights if use_weights else np.empty(0)
    n = out.shape[0]
    owners = max(min(numba.get_num_threads(), n), 1)
    scale, shifts = n / box_size, axis_shifts(shift)
    if order == 2:
        bad = _cic3(positions, scale, shifts, w, use_weights, out, owners)
    else:
        bad = _deposit3(positions, scale, shifts, order, w, use_weights, out, owners)
    _check_finite(bad)


def interpolate3(
    mesh: np.ndarray,
    positions: np.ndarray,
    box_size: float,
    order: int,
    shift: float | np.ndarray = 0.0,
) -> np.ndarray:
    """The cubic ``mesh`` read at each position (see ``mesh.interpolate``)."""
    out = np.empty(len(positions))
    scale = mesh.shape[0] / box_size
    bad = _interpolate3(mesh, positions, scale, axis_shifts(shift), order, out)
    _check_finite(bad)
    return out


def _check_finite(bad: int) -> None:
    """Raise if ``bad`` particles had NaN or infinite positions."""
    if bad:
        raise ValueError(f"positions contain NaN or infinite values ({bad} particles)")


#: A Green's function as (c, p_x, p_y, p_z, s_x, s_y, s_z): G = c / (p_x p_y p_z
#: (s_x + s_y + s_z)), 0 where that denominator is not positive (see
#: :class:`simlab.engines.pm_solver.Green`).
GreenFactors = tuple[
    float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]


def gradient_field(
    delta_k: np.ndarray,
    green: GreenFactors,
    gradient: np.ndarray,
    axis: int,
    weight: float = 0.0,
    lattice_green: GreenFactors | None = None,
    lattice_gradient: np.ndarray | None = None,
    out: np.ndarray | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """The Fourier modes of one force component of the PM solver.

    i s δ_k [(1 - w) g(k_axis) G + w t(k_axis) G_lattice]: ``delta_k`` is complex128
    in ``rfftn`` layout, ``green`` and ``lattice_green`` the per-axis factors of
    the Green's functions, the gradients g and t real factors along ``axis``, s the
    scale of the density.
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
        lattice_green, t = green, ones
    _gradient_field(
        delta_k, green, *g, lattice_green, *t, float(weight), float(scale), out
    )
    return out


def potential_modes(delta_k: np.ndarray, green: GreenFactors, scale: float) -> None:
    """Turn the density modes into the potential's, s G δ_k, in place."""
    _potential_modes(delta_k, green, float(scale))


def gradient_at(
    psi: np.ndarray,
    positions: np.ndarray,
    box_size: float,
    shift: np.ndarray,
    out: np.ndarray,
) -> None:
    """The 4-point gradient of the cubic mesh ``psi``, CIC-read at each position.

    ``out`` (N, 3) float64 receives it; ``shift`` moves the particles by that many
    cells per axis first, as in :func:`deposit3`.
    """
    scale = psi.shape[0] / box_size
    shifts = axis_shifts(shift)
    _check_finite(_cic_gradient(psi, positions, scale, shifts, scale / 12.0, out))


def kick(p: np.ndarray, force: np.ndarray, factor: float) -> None:
    """p += factor F in place (both (N, 3) float64, C-contiguous)."""
    _kick(p, force, float(factor))


def kick_drift(
    x: np.ndarray,
    p: np.ndarray,
    force: np.ndarray,
    kick: float,
    drift: float,
    box_size: float,
) -> None:
    """p += kick F; x += drift p, wrapped into [0, L); in place, in one pass."""
    _kick_drift(x, p, force, float(kick), float(drift), float(box_size))
