"""The matter power spectrum P(k) of particles or of a mesh, as an xarray DataArray.

Conventions (k in h/Mpc, P in (Mpc/h)³, box side L, n mesh points per side):

- δ_k is ``scipy.fft.rfftn`` of the overdensity δ on the mesh (no normalisation),
  and P(k) = L³ / n⁶ |δ_k|², the estimator whose mean is the continuum P(k) (the
  same convention as :func:`simlab.ics.gaussian_field`).
- Modes are binned in |k| (half-open bins [low, high); the k = 0 mode never
  counts). The default bins have the fundamental k_f = 2π/L as width and edges
  (i + 1/2) k_f for i = 0 … n // 2, so they are centred on k_f, 2 k_f, … up to
  the Nyquist k_Nyq = π n / L. Each ``rfftn`` mode counts twice except on the
  kz = 0 and kz = Nyquist planes, so ``n_modes`` is the number of modes of a
  full FFT; ``k`` is the mean |k| of the modes of a bin and bins without modes
  are dropped.
- The assignment window W(k) (:func:`simlab.analysis.mesh.window_factors`) is
  divided out of δ_k when ``deconvolve`` is set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

from simlab.analysis.chunked import deposit_chunked, fits_in_memory
from simlab.analysis.mesh import deposit, is_lazy, particle_positions, window_factors

if TYPE_CHECKING:
    import xarray as xr

#: Fourier modes handled per binning chunk (a few MB of temporaries).
_CHUNK_MODES = 2**17


@dataclass
class SpectrumTable:
    """P(k) as plain arrays and attributes: the DataArray's content without xarray.

    The PM engine writes its spectra from this (importing xarray would cost each
    run a second); everything else takes :meth:`to_dataarray`.
    """

    power: np.ndarray
    coords: dict[str, tuple[np.ndarray, dict[str, str]]]
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dataarray(self) -> xr.DataArray:
        """The "power" DataArray along ``k`` with the table's coordinates."""
        import xarray as xr

        from simlab.io import _lazy_dask_check

        _lazy_dask_check.install()  # a numpy DataArray: no need for dask.array
        coords = {name: ("k", *column) for name, column in self.coords.items()}
        return xr.DataArray(
            self.power, dims=("k",), coords=coords, name="power", attrs=self.attrs
        )

    def write_netcdf(self, path: str | Path) -> None:
        """Write the netCDF-4 file ``to_dataarray().to_netcdf`` would, with h5netcdf
        alone (``xr.load_dataarray`` reads it back identical)."""
        import h5netcdf

        with h5netcdf.File(path, "w") as f:
            f.dimensions = {"k": len(self.power)}
            for name, (values, attrs) in self.coords.items():
                f.create_variable(name, ("k",), data=values).attrs.update(attrs)
            power = f.create_variable("power", ("k",), data=self.power)
            power.attrs.update(self.attrs)
            extra = [name for name in self.coords if name != "k"]
            if extra:
                power.attrs["coordinates"] = " ".join(extra)


def power_spectrum(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None,
    n_mesh: int,
    *,
    scheme: str = "cic",
    interlace: bool = False,
    subtract_shot_noise: bool = False,
    deconvolve: bool = True,
    k_bins: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    chunked: bool | None = None,
) -> xr.DataArray:
    """The power spectrum of particles, measured on an n_mesh³ mesh.

    Particles are assigned to the mesh in single precision (float32 mesh and FFT,
    ~1e-7 relative rounding, far below any cosmic variance), which halves the
    memory; the modes are summed in double precision. Positions held lazily by dask
    (a snapshot opened with ``chunks={}``) that do not fit in memory are deposited
    chunk by chunk on the dask workers (:mod:`simlab.analysis.chunked`), so no
    process holds them all; the result is the same.

    Parameters
    ----------
    positions : (N, 3) array or xarray.Dataset
        comoving positions in Mpc/h, or a snapshot Dataset from simlab's Gadget4
        reader with a ``Coordinates`` variable and a ``BoxSize`` attribute
    box_size : float or None
        comoving box side L in Mpc/h; None takes ``BoxSize`` from the Dataset
    n_mesh : int
        mesh points per side n
    scheme : {"ngp", "cic", "tsc"}
        mass-assignment kernel
    interlace : bool
        average δ_k with that of a mesh shifted by half a cell, multiplied by
        exp(i (kx + ky + kz) h / 2), which cancels the leading aliasing
    subtract_shot_noise : bool
        subtract the shot noise ``attrs["shot_noise"]`` from P(k)
    deconvolve : bool
        divide δ_k by the assignment window W(k)
    k_bins : 1D array, optional
        increasing bin edges in h/Mpc (default: see the module notes)
    weights : (N,) array, optional
        mass of each particle (default 1 each)
    chunked : bool or None
        for dask-backed positions: deposit chunk by chunk (True), read them into
        memory first (False), or chunk by chunk only when they take more than a
        quarter of the free memory (None)

    Returns
    -------
    xarray.DataArray
        "power", P(k) in (Mpc/h)³ along dimension ``k`` (mean |k| per bin, h/Mpc),
        with coordinates ``n_modes``, ``k_edges_low`` and ``k_edges_high``, and
        attributes ``units``, ``box_size``, ``n_mesh``, ``scheme``,
        ``interlaced``, ``deconvolved``, ``shot_noise`` (L³ Σw² / (Σw)², L³/N for
        equal weights), ``shot_noise_subtracted`` and ``n_particles``. Flags are
        stored as 0/1 so the array saves to netCDF.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = rng.uniform(0.0, 100.0, size=(4096, 3))
    >>> pk = power_spectrum(x, 100.0, 16)
    >>> pk.sizes["k"], int(pk.n_modes[0]), float(pk.k_edges_high[-1].round(4))
    (8, 18, 0.5341)
    >>> pk.attrs["shot_noise"]
    244.140625
    """
    return power_spectrum_table(
        positions,
        box_size,
        n_mesh,
        scheme=scheme,
        interlace=interlace,
        subtract_shot_noise=subtract_shot_noise,
        deconvolve=deconvolve,
        k_bins=k_bins,
        weights=weights,
        chunked=chunked,
    ).to_dataarray()


def power_spectrum_table(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None,
    n_mesh: int,
    *,
    scheme: str = "cic",
    interlace: bool = False,
    subtract_shot_noise: bool = False,
    deconvolve: bool = True,
    k_bins: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    chunked: bool | None = None,
) -> SpectrumTable:
    """:func:`power_spectrum` as a :class:`SpectrumTable` (no xarray needed)."""
    positions, box_size = particle_positions(
        positions, box_size, keep_lazy=chunked is not False
    )
    if is_lazy(positions) and chunked is None and fits_in_memory(positions):
        positions, _ = particle_positions(positions.compute(), box_size)  # fast path
    if weights is not None and not is_lazy(weights):
        weights = np.asarray(weights, dtype=np.float64)
    total = len(positions) if weights is None else float(weights.sum())
    if not total > 0:
        raise ValueError(f"the particles' total weight is {total}; it must be > 0")
    delta_k = _overdensity_k(positions, box_size, n_mesh, scheme, weights, total)
    if interlace:
        shifted = _overdensity_k(
            positions, box_size, n_mesh, scheme, weights, total, shift=0.5
        )
        for phase in _half_cell_phases(n_mesh):
            shifted *= phase
        delta_k += shifted
        del shifted
        delta_k *= 0.5
    spectrum = _table_from_modes(
        delta_k, box_size, scheme=scheme if deconvolve else None, k_bins=k_bins
    )
    sum_w2 = len(positions) if weights is None else float(np.square(weights).sum())
    shot_noise = box_size**3 * sum_w2 / total**2
    if subtract_shot_noise:
        spectrum.power -= shot_noise
    spectrum.attrs.update(
        scheme=scheme,
        interlaced=int(interlace),
        shot_noise=shot_noise,
        shot_noise_subtracted=int(subtract_shot_noise),
        n_particles=len(positions),
    )
    return spectrum


def power_spectrum_from_mesh(
    field: np.ndarray,
    box_size: float,
    *,
    scheme: str | None = None,
    k_bins: np.ndarray | None = None,
) -> xr.DataArray:
    """The binned power spectrum of an overdensity mesh or of its Fourier modes.

    Parameters
    ----------
    field : (n, n, n) real array or (n, n, n // 2 + 1) complex array
        the overdensity δ at the mesh points (use
        :func:`simlab.analysis.mesh.overdensity` on a density mesh), or its
        ``rfftn`` δ_k; n is taken from the first axis. Real input is transformed
        in its own precision.
    box_size : float
        comoving box side L in Mpc/h
    scheme : {"ngp", "cic", "tsc"} or None
        assignment window to divide out of δ_k; None leaves δ_k as it is
    k_bins : 1D array, optional
        increasing bin edges in h/Mpc (default: see the module notes)

    Returns
    -------
    xarray.DataArray
        "power" as from :func:`power_spectrum`, with attributes ``units``,
        ``box_size``, ``n_mesh``, ``scheme`` ("none" without deconvolution) and
        ``deconvolved``

    Examples
    --------
    >>> import numpy as np
    >>> delta = np.cos(2 * np.pi * np.arange(8) / 8)[:, None, None] * np.ones((8, 8, 8))
    >>> pk = power_spectrum_from_mesh(delta, box_size=8.0)
    >>> int(pk.n_modes[0]), float(pk[0] * pk.n_modes[0])  # ±k_f hold 128 each
    (18, 256.0)
    """
    table = _table_from_modes(field, box_size, scheme=scheme, k_bins=k_bins)
    return table.to_dataarray()


def _table_from_modes(
    field: np.ndarray,
    box_size: float,
    *,
    scheme: str | None = None,
    k_bins: np.ndarray | None = None,
) -> SpectrumTable:
    """:func:`power_spectrum_from_mesh` as a :class:`SpectrumTable`."""
    if not box_size > 0:
        raise ValueError(f"box_size must be a positive length in Mpc/h, got {box_size}")
    delta_k = _fourier_modes(np.asarray(field))
    n_mesh = delta_k.shape[0]
    edges = _bin_edges(k_bins, n_mesh, box_size)
    k_mean, power, n_modes = _binned_power(delta_k, n_mesh, box_size, scheme, edges)
    keep = n_modes > 0
    per_k = {"units": "h/Mpc"}
    return SpectrumTable(
        power=power[keep],
        coords={
            "k": (k_mean[keep], per_k),
            "n_modes": (n_modes[keep], {}),
            "k_edges_low": (edges[:-1][keep], per_k),
            "k_edges_high": (edges[1:][keep], per_k),
        },
        attrs={
            "long_name": "matter power spectrum",
            "units": "(Mpc/h)^3",
            "box_size": float(box_size),
            "n_mesh": n_mesh,
            "scheme": scheme or "none",
            "deconvolved": int(scheme is not None),
        },
    )


def _overdensity_k(
    positions: np.ndarray,
    box_size: float,
    n_mesh: int,
    scheme: str,
    weights: np.ndarray | None,
    total: float,
    shift: float = 0.0,
) -> np.ndarray:
    """``rfftn`` of the particles' overdensity on a float32 mesh (complex64).

    The mesh lives inside the complex array its transform is written to (rows
    padded to 2 (n // 2 + 1) floats, FFTW's in-place layout): the z transform
    goes plane block by plane block, then the x-y transform runs in place, so the
    mesh and its modes never take memory at the same time.
    """
    modes = np.empty((n_mesh, n_mesh, n_mesh // 2 + 1), dtype=np.complex64)
    mesh = modes.view(np.float32)[:, :, :n_mesh]
    if is_lazy(positions):
        mesh[...] = deposit_chunked(positions, box_size, n_mesh, scheme, weights, shift)
    else:
        deposit(positions, box_size, n_mesh, scheme, weights, out=mesh, shift=shift)
    mesh *= n_mesh**3 / total
    mesh -= 1.0
    planes = max(_CHUNK_MODES // (n_mesh * n_mesh), 1)
    for start in range(0, n_mesh, planes):
        stop = min(start + planes, n_mesh)
        modes[start:stop] = scipy.fft.rfft(mesh[start:stop], axis=-1, workers=-1)
    return scipy.fft.fftn(modes, axes=(0, 1), overwrite_x=True, workers=-1)


def _half_cell_phases(n_mesh: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """exp(i k_i h / 2) per axis, broadcastable to the ``rfftn`` layout (complex64)."""
    full = np.exp(1j * np.pi * np.fft.fftfreq(n_mesh)).astype(np.complex64)
    half = np.exp(1j * np.pi * np.fft.rfftfreq(n_mesh)).astype(np.complex64)
    return full[:, None, None], full[None, :, None], half[None, None, :]


def _fourier_modes(field: np.ndarray) -> np.ndarray:
    """δ_k in ``rfftn`` layout from a real cubic mesh or from δ_k itself."""
    if field.ndim == 3 and field.dtype.kind == "c":
        n = field.shape[0]
        if field.shape == (n, n, n // 2 + 1):
            return field
    elif field.ndim == 3 and field.dtype.kind in "fiu" and len(set(field.shape)) == 1:
        return scipy.fft.rfftn(field, workers=-1)
    raise ValueError(
        "field must be a real (n, n, n) mesh or a complex (n, n, n // 2 + 1) rfftn "
        f"array, got {field.dtype} {field.shape}"
    )


def _bin_edges(k_bins: np.ndarray | None, n_mesh: int, box_size: float) -> np.ndarray:
    if k_bins is None:
        return (np.arange(n_mesh // 2 + 1) + 0.5) * (2 * np.pi / box_size)
    edges = np.asarray(k_bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(
            f"k_bins must be at least 2 increasing bin edges in h/Mpc, got {k_bins!r}"
        )
    return edges


def _binned_power(
    delta_k: np.ndarray,
    n_mesh: int,
    box_size: float,
    scheme: str | None,
    edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean |k|, P and full-FFT mode count per bin.

    Every mode's |k|² is an integer q in units of k_f², so |δ_k|² is first summed
    per q, and the few distinct q are then assigned to the bins.
    """
    q_counts = _modes_per_q(n_mesh)
    q_power = _power_per_q(delta_k, n_mesh, scheme, len(q_counts))
    k_q = np.sqrt(np.arange(len(q_counts))) * (2 * np.pi / box_size)
    bin_q = np.searchsorted(edges, k_q, side="right") - 1
    inside = (bin_q >= 0) & (bin_q < len(edges) - 1)
    inside[0] = False  # the k = 0 mode is never binned
    bin_q = bin_q[inside]
    n_bins = len(edges) - 1

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.bincount(bin_q, values[inside], minlength=n_bins)

    n_modes = per_bin(q_counts).round().astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        k_mean = per_bin(q_counts * k_q) / n_modes
        power = per_bin(q_power) / n_modes * (box_size**3 / float(n_mesh) ** 6)
    return k_mean, power, n_modes


@functools.lru_cache(maxsize=8)
def _modes_per_q(n_mesh: int) -> np.ndarray:
    """Full-FFT modes with |m|² = q for each integer q (float64, read-only)."""
    ones = np.broadcast_to(np.float32(1.0), (n_mesh, n_mesh, n_mesh // 2 + 1))
    counts = _power_per_q(ones, n_mesh, None, _q_max(n_mesh) + 1)
    counts.flags.writeable = False
    return counts


def _q_max(n_mesh: int) -> int:
    half = n_mesh // 2
    return 3 * half * half


def _power_per_q(
    delta_k: np.ndarray, n_mesh: int, scheme: str | None, length: int
) -> np.ndarray:
    """Σ multiplicity · |δ_k|² / W² over the modes with |m|² = q, for each q."""
    mx2, my2, mz2 = _mode_index_squares(n_mesh)
    gain_x, gain_yz = _mode_gains(n_mesh, scheme)
    q_yz = my2[:, None] + mz2[None, :]
    sums = np.zeros(length)
    rows = max(_CHUNK_MODES // q_yz.size, 1)
    for start in range(0, n_mesh, rows):
        stop = min(start + rows, n_mesh)
        block = delta_k[start:stop]
        power = np.square(block.real, dtype=np.float64)
        power += np.square(block.imag)
        power *= gain_yz
        power *= gain_x[start:stop, None, None]
        q = mx2[start:stop, None, None] + q_yz
        sums += np.bincount(q.ravel(), power.ravel(), minlength=length)
    return sums


def _mode_gains(n_mesh: int, scheme: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-mode factors, (n,) along x and (n, n // 2 + 1) in y-z, of |δ_k|².

    Their product is the full-FFT multiplicity of the ``rfftn`` mode (2, or 1 on
    the kz = 0 and Nyquist planes) over the squared window, if one is divided out.
    """
    multiplicity = np.full(n_mesh // 2 + 1, 2.0)
    multiplicity[0] = 1.0
    if n_mesh % 2 == 0:
        multiplicity[-1] = 1.0
    gain_x = np.ones(n_mesh)
    gain_yz = multiplicity[None, :] * np.ones((n_mesh, 1))
    if scheme is not None:
        wx, wy, wz = window_factors(n_mesh, scheme)
        gain_x /= wx.ravel() ** 2
        gain_yz /= (wy[0] * wz[0]) ** 2
    return gain_x, gain_yz


def _mode_index_squares(n_mesh: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared integer frequencies m² along x, y (``fftfreq``) and z (``rfftfreq``)."""
    full = np.fft.fftfreq(n_mesh, 1.0 / n_mesh).round().astype(np.intp) ** 2
    half = np.arange(n_mesh // 2 + 1, dtype=np.intp) ** 2
    return full, full, half
