"""Background expansion and linear theory: E(a), growth D(a), f(a), 2LPT growth, P(k).

Matter + Λ + curvature, and radiation (photons and N_eff massless neutrinos) when
``Cosmology.radiation`` is on; off by default, as Gadget4. Growth factors come from
integrating the growth equations in ln a, tabulated once per cosmology and
interpolated with cubic splines. Transfer functions: Eisenstein & Hu (1998) with or
without BAO wiggles (no dependencies), CAMB or CLASS computed for the cosmology
(optional packages, imported only when asked for), or a CAMB / CLASS / P(k) file.
Units: k in h/Mpc, P(k) in (Mpc/h)³, r in Mpc/h. Parts: :mod:`simlab.linear`;
choices and measured differences: docs/linear-theory.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.linear import background, eisenstein_hu
from simlab.linear.background import Params, params

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from simlab.config import Cosmology

#: the analytic transfer functions, which need no package or file
ANALYTIC_TRANSFERS = ("eisenstein_hu", "eisenstein_hu_nowiggle")
#: every ``transfer`` choice (``ics.transfer`` in the run configuration)
TRANSFER_KINDS = (*ANALYTIC_TRANSFERS, "camb", "class", "file")

__all__ = [
    "ANALYTIC_TRANSFERS",
    "TRANSFER_KINDS",
    "E",
    "Params",
    "growth_factor",
    "growth_factor_2lpt",
    "growth_factor_derivative",
    "growth_rate",
    "growth_rate_2lpt",
    "linear_power",
    "omega_m",
    "omega_r",
    "params",
    "sigma_r",
    "sound_horizon",
    "transfer_function",
]


def E(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """H(a)/H0.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> float(E(1.0, Cosmology()))
    1.0
    >>> round(float(E(0.02, Cosmology(radiation=True)) / E(0.02, Cosmology())), 4)
    1.0073
    """
    return background.hubble(a, params(cosmo))


def omega_m(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """Matter density parameter Ω_m(a) = Ω0 a⁻³ / E².

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> round(float(omega_m(1.0, Cosmology())), 4)
    0.3111
    """
    return background.omega_matter(a, params(cosmo))


def omega_r(cosmo: Cosmology) -> float:
    """Ω_r today in the background: photons + N_eff neutrinos if ``radiation``, else 0.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> omega_r(Cosmology())
    0.0
    >>> round(omega_r(Cosmology(radiation=True)), 8)
    9.137e-05
    """
    return params(cosmo).Omega_r


def growth_factor(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """Linear growth factor D(a), normalised to D(1) = 1.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> eds = Cosmology(preset="eds")
    >>> round(float(growth_factor(0.5, eds)), 8)
    0.5
    """
    return background.growth_table(a, params(cosmo), 0)


def growth_factor_derivative(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """dD/da, with D normalised to D(1) = 1."""
    a = np.asarray(a, dtype=float)
    return background.growth_table(a, params(cosmo), 1) / a


def growth_rate(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """f = dln D / dln a.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> round(float(growth_rate(0.3, Cosmology(preset="eds"))), 6)
    1.0
    """
    p = params(cosmo)
    return background.growth_table(a, p, 1) / background.growth_table(a, p, 0)


def growth_factor_2lpt(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """Second-order growth D2(a), → -3/7 D(a)² at early times (negative)."""
    return background.growth_table(a, params(cosmo), 2)


def growth_rate_2lpt(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """f2 = dln D2 / dln a (≈ 2 Ω_m(a)^(6/11) in ΛCDM)."""
    p = params(cosmo)
    return background.growth_table(a, p, 3) / background.growth_table(a, p, 2)


def sound_horizon(cosmo: Cosmology) -> float:
    """Sound horizon at the drag epoch in Mpc, Eisenstein & Hu (1998) eq. 6."""
    return eisenstein_hu.constants(
        cosmo.Omega0, cosmo.OmegaBaryon, cosmo.h, cosmo.T_cmb
    )["s"]


Transfer = Callable[[np.ndarray], np.ndarray]
PathLike = str | os.PathLike[str]


@lru_cache(maxsize=64)
def _boltzmann_transfer(code: str, p: Params) -> Transfer:
    from simlab.linear import boltzmann
    from simlab.linear.tables import TabulatedTransfer

    k, t = boltzmann.transfer_table(code, p)
    return TabulatedTransfer(k, t, p.Omega0, p.OmegaBaryon, p.h, p.T_cmb, p.Omega_k)


@lru_cache(maxsize=64)
def _file_transfer(table: Any, p: Params) -> Transfer:
    from simlab.linear.tables import TabulatedTransfer

    return TabulatedTransfer(
        table.k, table.transfer(p.n_s), p.Omega0, p.OmegaBaryon, p.h, p.T_cmb, p.Omega_k
    )


def _analytic_transfer(kind: str, p: Params) -> Transfer:
    wiggles = kind == "eisenstein_hu"

    def transfer(k: np.ndarray) -> np.ndarray:
        return eisenstein_hu.transfer(
            k, p.Omega0, p.OmegaBaryon, p.h, p.T_cmb, wiggles=wiggles
        )

    return transfer


def _build(kind: str, p: Params, table: Any) -> Transfer:
    if kind == "file":
        return _file_transfer(table, p)
    if kind in ("camb", "class"):
        return _boltzmann_transfer(kind, p)
    return _analytic_transfer(kind, p)


def _resolve(
    kind: str, cosmo: Cosmology | Params, transfer_file: PathLike | None
) -> tuple[Params, Any]:
    """(parameters, the file's table or None) of a transfer choice, checked."""
    if kind not in TRANSFER_KINDS:
        raise ValueError(
            f"transfer function {kind!r} is not known; "
            f"allowed: {', '.join(TRANSFER_KINDS)}"
        )
    p = params(cosmo)
    if kind == "file":
        if transfer_file is None:
            raise ValueError("transfer function 'file' needs transfer_file (a path)")
        from simlab.linear.tables import load_table

        return p, load_table(transfer_file)
    if transfer_file is not None:
        raise ValueError(
            f"transfer_file is read only with transfer 'file', not {kind!r}"
        )
    return p, None


def transfer_function(
    k: ArrayLike,
    cosmo: Cosmology,
    kind: str = "eisenstein_hu",
    transfer_file: PathLike | None = None,
) -> np.ndarray:
    """Matter transfer function T(k) at z = 0, → 1 for k → 0.

    ``kind`` is one of :data:`TRANSFER_KINDS`: Eisenstein & Hu (1998) with or
    without BAO wiggles, ``"camb"`` or ``"class"`` (computed for ``cosmo``, needs
    the package), or ``"file"`` (``transfer_file``, a CAMB / CLASS transfer table
    or a two-column P(k); formats in :mod:`simlab.linear.tables`).

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> round(float(transfer_function(1e-4, Cosmology())), 3)
    1.0
    """
    p, table = _resolve(kind, cosmo, transfer_file)
    return _build(kind, p, table)(np.asarray(k, dtype=float))


def _tophat(x: np.ndarray) -> np.ndarray:
    """3 (sin x - x cos x) / x³, by its series below x = 1e-3."""
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    exact = 3 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    return np.where(small, 1 - x**2 / 10, exact)


_LNK = np.linspace(np.log(1e-5), np.log(1e3), 6001)


def _sigma_unnormalised(r: np.ndarray, p: Params, transfer: Transfer) -> np.ndarray:
    k = np.exp(_LNK)
    pk = k**p.n_s * transfer(k) ** 2
    integrand = k**3 * pk * _tophat(np.multiply.outer(r, k)) ** 2 / (2 * np.pi**2)
    return np.sqrt(np.trapezoid(integrand, _LNK, axis=-1))


@lru_cache(maxsize=64)
def _amplitude(p: Params, kind: str, table: Any) -> float:
    """A of P = A k^n_s T² so that σ(8 Mpc/h) = σ8; cached per parameter set."""
    sigma = _sigma_unnormalised(np.asarray(8.0), p, _build(kind, p, table))
    return float((p.sigma8 / sigma) ** 2)


def linear_power(
    k: ArrayLike,
    cosmo: Cosmology,
    a: float = 1.0,
    transfer: str = "eisenstein_hu",
    transfer_file: PathLike | None = None,
) -> np.ndarray:
    """Linear matter P(k, a) in (Mpc/h)³, normalised so that σ(8 Mpc/h, a=1) = σ8.

    ``transfer`` and ``transfer_file`` as in :func:`transfer_function`.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> c = Cosmology()
    >>> round(float(sigma_r(8.0, c)), 4) == c.sigma8
    True
    """
    k = np.asarray(k, dtype=float)
    p, table = _resolve(transfer, cosmo, transfer_file)
    t = _build(transfer, p, table)(k)
    pk = _amplitude(p, transfer, table) * np.where(k > 0, k, 0.0) ** p.n_s * t**2
    return pk * background.growth_table(a, p, 0) ** 2


def sigma_r(
    r: ArrayLike,
    cosmo: Cosmology,
    a: float = 1.0,
    transfer: str = "eisenstein_hu",
    transfer_file: PathLike | None = None,
) -> np.ndarray:
    """rms linear overdensity in top-hat spheres of radius r Mpc/h."""
    p, table = _resolve(transfer, cosmo, transfer_file)
    amp = _amplitude(p, transfer, table)
    sigma = _sigma_unnormalised(
        np.asarray(r, dtype=float), p, _build(transfer, p, table)
    )
    return np.sqrt(amp) * sigma * background.growth_table(a, p, 0)
