"""Halo mass functions: measured from a catalogue, and Tinker et al. (2008) theory.

Masses are in the catalogue's units, 1e10 Msun/h (Gadget4's), volumes in (Mpc/h)³,
and both functions return dn/dln M in (Mpc/h)⁻³ along a ``mass`` dimension so the
two can be divided directly. The theory uses simlab's own linear P(k)
(:func:`simlab.cosmology.sigma_r`), the spectrum the initial conditions are drawn
from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simlab import cosmology
from simlab.particles import RHO_CRIT0

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import Cosmology

#: Tinker et al. (2008), Table 2: Δ (w.r.t. the mean density) → A, a, b, c.
TINKER08 = {
    200: (0.186, 1.47, 2.57, 1.19),
    300: (0.200, 1.52, 2.25, 1.27),
    400: (0.212, 1.56, 2.05, 1.34),
    600: (0.218, 1.61, 1.87, 1.45),
    800: (0.248, 1.87, 1.59, 1.58),
    1200: (0.255, 2.13, 1.51, 1.80),
    1600: (0.260, 2.30, 1.46, 1.97),
    2400: (0.260, 2.53, 1.44, 2.24),
    3200: (0.260, 2.66, 1.41, 2.44),
}


def mass_bins(masses: np.ndarray, per_decade: int = 5) -> np.ndarray:
    """Bin edges even in log10 M covering ``masses``, ``per_decade`` per decade."""
    masses = np.asarray(masses, dtype=np.float64)
    masses = masses[masses > 0]
    if masses.size == 0:
        raise ValueError("no positive masses to bin; give explicit bins")
    low = np.floor(np.log10(masses.min()) * per_decade) / per_decade
    high = np.ceil(np.log10(masses.max()) * per_decade + 1e-9) / per_decade
    count = max(round((high - low) * per_decade), 1)
    return np.logspace(low, low + count / per_decade, count + 1)


def mass_function(
    masses: np.ndarray | xr.Dataset,
    box_size: float | None = None,
    bins: np.ndarray | None = None,
    *,
    column: str = "GroupMass",
) -> xr.DataArray:
    """Measured dn/dln M with Poisson errors.

    Parameters
    ----------
    masses : array or xarray.Dataset
        halo masses in 1e10 Msun/h, or a ``Group`` table from
        :mod:`simlab.io.groups` or :func:`simlab.analysis.fof.find_halos` (its
        ``BoxSize`` and, when present, ``Time`` attrs are used)
    box_size : float, optional
        comoving box side in Mpc/h (taken from the Dataset when None)
    bins : array, optional
        mass bin edges in 1e10 Msun/h (default :func:`mass_bins`)
    column : str
        the mass column of a Dataset (``GroupMass``, ``Group_M_Mean200``, ...)

    Returns
    -------
    xarray.DataArray
        "dndlnM" in (Mpc/h)⁻³ along ``mass`` (geometric bin centre), with
        coordinates ``count``, ``error`` (√count / V / Δln M), ``mass_low`` and
        ``mass_high``; attributes ``volume``, ``box_size`` and, from a catalogue,
        ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> hmf = mass_function(np.array([10.0, 12.0, 150.0]), 10.0, bins=[5, 50, 500])
    >>> hmf["count"].values.tolist(), round(float(hmf[0]), 6)
    ([2, 1], 0.000869)
    """
    import xarray as xr

    attrs = {}
    mass_units = "1e10 Msun/h"
    if isinstance(masses, xr.Dataset):
        table = masses
        box_size = float(table.attrs["BoxSize"]) if box_size is None else box_size
        if "Time" in table.attrs:
            attrs["a"] = float(table.attrs["Time"])
        if column in table:
            mass_units = table[column].attrs.get("units", mass_units)
            masses = table[column].values
        else:
            masses = np.zeros(0)
    if box_size is None or not box_size > 0:
        raise ValueError(f"box_size must be a positive length in Mpc/h, got {box_size}")
    masses = np.asarray(masses, dtype=np.float64)
    edges = mass_bins(masses) if bins is None else np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"bins must be increasing mass edges, got {bins!r}")
    counts, _ = np.histogram(masses, bins=edges)
    volume = box_size**3
    dlnm = np.diff(np.log(edges))
    return xr.DataArray(
        counts / volume / dlnm,
        dims=("mass",),
        coords={
            "mass": ("mass", np.sqrt(edges[:-1] * edges[1:]), {"units": mass_units}),
            "count": ("mass", counts),
            "error": ("mass", np.sqrt(counts) / volume / dlnm),
            "mass_low": ("mass", edges[:-1]),
            "mass_high": ("mass", edges[1:]),
        },
        name="dndlnM",
        attrs={
            "units": "(Mpc/h)^-3",
            "long_name": "halo mass function dn/dln M",
            "volume": volume,
            "box_size": box_size,
            **attrs,
        },
    )


def _tinker_parameters(delta: float, a: float) -> tuple[float, float, float, float]:
    """A, a, b, c at overdensity Δ (cubic spline in ln Δ) and scale factor a."""
    from scipy.interpolate import CubicSpline

    deltas = np.array(sorted(TINKER08), dtype=float)
    if not deltas[0] <= delta <= deltas[-1]:
        raise ValueError(
            f"delta must be in [{deltas[0]:g}, {deltas[-1]:g}] (mean density), "
            f"got {delta}"
        )
    table = np.array([TINKER08[int(d)] for d in deltas])
    big_a, small_a, b, c = (
        float(CubicSpline(np.log(deltas), table[:, i])(np.log(delta))) for i in range(4)
    )
    z = 1.0 / a - 1.0
    alpha = 10 ** (-((0.75 / np.log10(delta / 75.0)) ** 1.2))
    return (
        big_a * (1 + z) ** -0.14,
        small_a * (1 + z) ** -0.06,
        b * (1 + z) ** -alpha,
        c,
    )


def tinker08(
    mass: np.ndarray,
    cosmo: Cosmology,
    a: float = 1.0,
    delta: float = 200.0,
    transfer: str = "eisenstein_hu",
) -> xr.DataArray:
    """Tinker et al. (2008) dn/dln M for halos of Δ × the mean matter density.

    f(σ) = A [(σ/b)^-a + 1] exp(-c/σ²) and dn/dln M = f(σ) ρ̄_m / M |dln σ/dln M|,
    with σ(M) the linear top-hat rms at scale factor ``a`` from simlab's P(k).

    Parameters
    ----------
    mass : array
        halo masses in 1e10 Msun/h
    cosmo : simlab.config.Cosmology
        the cosmology (σ8 normalisation of the linear spectrum)
    a : float
        scale factor (the redshift evolution of A, a, b is Tinker's)
    delta : float
        overdensity w.r.t. the mean matter density, in [200, 3200]
        (``Group_M_Mean200`` of a Gadget4 catalogue is Δ = 200)

    Returns
    -------
    xarray.DataArray
        "dndlnM" in (Mpc/h)⁻³ along ``mass``, with coordinate ``sigma``
    """
    import xarray as xr

    mass = np.atleast_1d(np.asarray(mass, dtype=np.float64))
    if np.any(mass <= 0):
        raise ValueError("masses must be positive (1e10 Msun/h)")
    rho_m = cosmo.Omega0 * RHO_CRIT0

    def sigma(m: np.ndarray) -> np.ndarray:
        radius = (3 * m / (4 * np.pi * rho_m)) ** (1 / 3)
        return cosmology.sigma_r(radius, cosmo, a=a, transfer=transfer)

    step = 1e-3
    s = sigma(mass)
    dlns_dlnm = (
        np.log(sigma(mass * np.exp(step))) - np.log(sigma(mass * np.exp(-step)))
    ) / (2 * step)
    big_a, small_a, b, c = _tinker_parameters(delta, a)
    f = big_a * ((s / b) ** -small_a + 1) * np.exp(-c / s**2)
    return xr.DataArray(
        f * rho_m / mass * np.abs(dlns_dlnm),
        dims=("mass",),
        coords={
            "mass": ("mass", mass, {"units": "1e10 Msun/h"}),
            "sigma": ("mass", s),
        },
        name="dndlnM",
        attrs={
            "units": "(Mpc/h)^-3",
            "long_name": f"Tinker et al. (2008) dn/dln M, Delta={delta:g} mean",
            "a": a,
            "delta": delta,
        },
    )
