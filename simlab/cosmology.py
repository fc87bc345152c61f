"""Background expansion and linear theory: E(a), growth D(a), f(a), 2LPT growth, P(k).

Matter + Λ + curvature, no radiation (as Gadget4). Growth factors come from
integrating the growth equations in ln a, tabulated once per cosmology and
interpolated with cubic splines. Units: k in h/Mpc, P(k) in (Mpc/h)³, r in Mpc/h.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.integrate import solve_ivp
from scipy.interpolate import CubicSpline

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from simlab.config import Cosmology

TRANSFER_KINDS = ("eisenstein_hu", "eisenstein_hu_nowiggle")
_LNA_MIN, _LNA_MAX = np.log(1e-4), np.log(3.0)


def _key(cosmo: Cosmology) -> tuple[float, ...]:
    return (
        cosmo.Omega0,
        cosmo.OmegaLambda,
        cosmo.OmegaBaryon,
        cosmo.h,
        cosmo.sigma8,
        cosmo.n_s,
        cosmo.T_cmb,
    )


def _e2(a: np.ndarray, om: float, ol: float) -> np.ndarray:
    return om / a**3 + (1.0 - om - ol) / a**2 + ol


def E(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """H(a)/H0.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> float(E(1.0, Cosmology()))
    1.0
    """
    a = np.asarray(a, dtype=float)
    return np.sqrt(_e2(a, cosmo.Omega0, cosmo.OmegaLambda))


def omega_m(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """Matter density parameter Ω_m(a) = Ω0 a⁻³ / E².

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> round(float(omega_m(1.0, Cosmology())), 4)
    0.3111
    """
    a = np.asarray(a, dtype=float)
    return cosmo.Omega0 / a**3 / _e2(a, cosmo.Omega0, cosmo.OmegaLambda)


@lru_cache(maxsize=64)
def _growth_tables(om: float, ol: float) -> tuple[CubicSpline, ...]:
    """Splines in ln a of D1, dD1/dlna, D2, dD2/dlna, normalised so D1(1) = 1."""

    def rhs(lna: float, y: np.ndarray) -> list[float]:
        a = np.exp(lna)
        e2 = _e2(a, om, ol)
        dlne_dlna = (-3 * om / a**3 - 2 * (1 - om - ol) / a**2) / (2 * e2)
        oma = om / a**3 / e2
        d1, d1p, d2, d2p = y
        return [
            d1p,
            -(2 + dlne_dlna) * d1p + 1.5 * oma * d1,
            d2p,
            -(2 + dlne_dlna) * d2p + 1.5 * oma * (d2 - d1**2),
        ]

    a0 = np.exp(_LNA_MIN)
    # deep in matter domination D1 = a and D2 = -3/7 a²
    y0 = [a0, a0, -3 / 7 * a0**2, -6 / 7 * a0**2]
    grid = np.linspace(_LNA_MIN, _LNA_MAX, 2000)
    sol = solve_ivp(
        rhs,
        (grid[0], grid[-1]),
        y0,
        t_eval=grid,
        rtol=1e-11,
        atol=1e-14,
        method="DOP853",
    )
    d1, d1p, d2, d2p = sol.y
    norm = CubicSpline(grid, d1)(0.0)
    return (
        CubicSpline(grid, d1 / norm),
        CubicSpline(grid, d1p / norm),
        CubicSpline(grid, d2 / norm**2),
        CubicSpline(grid, d2p / norm**2),
    )


def _table(a: ArrayLike, cosmo: Cosmology, index: int) -> np.ndarray:
    lna = np.log(np.asarray(a, dtype=float))
    if np.any(lna < _LNA_MIN) or np.any(lna > _LNA_MAX):
        raise ValueError(
            f"scale factor out of the tabulated range [{np.exp(_LNA_MIN):g}, "
            f"{np.exp(_LNA_MAX):g}]"
        )
    return _growth_tables(cosmo.Omega0, cosmo.OmegaLambda)[index](lna)


def growth_factor(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """Linear growth factor D(a), normalised to D(1) = 1.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> eds = Cosmology(preset="eds")
    >>> round(float(growth_factor(0.5, eds)), 8)
    0.5
    """
    return _table(a, cosmo, 0)


def growth_factor_derivative(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """dD/da, with D normalised to D(1) = 1."""
    a = np.asarray(a, dtype=float)
    return _table(a, cosmo, 1) / a


def growth_rate(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """f = dln D / dln a.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> round(float(growth_rate(0.3, Cosmology(preset="eds"))), 6)
    1.0
    """
    return _table(a, cosmo, 1) / _table(a, cosmo, 0)


def growth_factor_2lpt(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """Second-order growth D2(a), → -3/7 D(a)² at early times (negative)."""
    return _table(a, cosmo, 2)


def growth_factor_2lpt_derivative(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """dD2/da."""
    a = np.asarray(a, dtype=float)
    return _table(a, cosmo, 3) / a


def growth_rate_2lpt(a: ArrayLike, cosmo: Cosmology) -> np.ndarray:
    """f2 = dln D2 / dln a (≈ 2 Ω_m(a)^(6/11) in ΛCDM)."""
    return _table(a, cosmo, 3) / _table(a, cosmo, 2)


def sound_horizon(cosmo: Cosmology) -> float:
    """Sound horizon at the drag epoch in Mpc, Eisenstein & Hu (1998) eq. 6."""
    return _eh_constants(cosmo.Omega0, cosmo.OmegaBaryon, cosmo.h, cosmo.T_cmb)["s"]


@lru_cache(maxsize=64)
def _eh_constants(om: float, ob: float, h: float, t_cmb: float) -> dict[str, float]:
    """The k-independent quantities of Eisenstein & Hu (1998), eqs. 2-24, 26, 31."""
    wm, wb = om * h**2, ob * h**2
    fb = ob / om
    fc = 1 - fb
    theta = t_cmb / 2.7
    z_eq = 2.5e4 * wm * theta**-4
    k_eq = 7.46e-2 * wm * theta**-2  # 1/Mpc
    b1 = 0.313 * wm**-0.419 * (1 + 0.607 * wm**0.674)
    b2 = 0.238 * wm**0.223
    z_d = 1291 * wm**0.251 / (1 + 0.659 * wm**0.828) * (1 + b1 * wb**b2)
    r_d = 31.5 * wb * theta**-4 * (1e3 / z_d)
    r_eq = 31.5 * wb * theta**-4 * (1e3 / z_eq)
    s = (
        2
        / (3 * k_eq)
        * np.sqrt(6 / r_eq)
        * np.log((np.sqrt(1 + r_d) + np.sqrt(r_d + r_eq)) / (1 + np.sqrt(r_eq)))
    )
    k_silk = 1.6 * wb**0.52 * wm**0.73 * (1 + (10.4 * wm) ** -0.95)
    a1 = (46.9 * wm) ** 0.670 * (1 + (32.1 * wm) ** -0.532)
    a2 = (12.0 * wm) ** 0.424 * (1 + (45.0 * wm) ** -0.582)
    alpha_c = a1**-fb * a2 ** (-(fb**3))
    bb1 = 0.944 / (1 + (458 * wm) ** -0.708)
    bb2 = (0.395 * wm) ** -0.0266
    beta_c = 1 / (1 + bb1 * (fc**bb2 - 1))
    y = (1 + z_eq) / (1 + z_d)
    g = y * (
        -6 * np.sqrt(1 + y)
        + (2 + 3 * y) * np.log((np.sqrt(1 + y) + 1) / (np.sqrt(1 + y) - 1))
    )
    alpha_b = 2.07 * k_eq * s * (1 + r_d) ** -0.75 * g
    beta_b = 0.5 + fb + (3 - 2 * fb) * np.sqrt((17.2 * wm) ** 2 + 1)
    beta_node = 8.41 * wm**0.435
    alpha_gamma = 1 - 0.328 * np.log(431 * wm) * fb + 0.38 * np.log(22.3 * wm) * fb**2
    s_approx = 44.5 * np.log(9.83 / wm) / np.sqrt(1 + 10 * wb**0.75)
    return {
        "fb": fb,
        "fc": fc,
        "theta": theta,
        "k_eq": k_eq,
        "s": float(s),
        "k_silk": k_silk,
        "alpha_c": alpha_c,
        "beta_c": beta_c,
        "alpha_b": alpha_b,
        "beta_b": beta_b,
        "beta_node": beta_node,
        "alpha_gamma": alpha_gamma,
        "s_approx": s_approx,
        "wm": wm,
    }


def _t0(k: np.ndarray, q: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Eisenstein & Hu (1998) eqs. 19-20."""
    c = 14.2 / alpha + 386 / (1 + 69.9 * q**1.08)
    ln = np.log(np.e + 1.8 * beta * q)
    return ln / (ln + c * q**2)


def _transfer_wiggle(k: np.ndarray, c: dict[str, float], h: float) -> np.ndarray:
    ks = k * h  # 1/Mpc
    q = ks / (13.41 * c["k_eq"])
    s = c["s"]
    f = 1 / (1 + (ks * s / 5.4) ** 4)
    tc = f * _t0(ks, q, 1, c["beta_c"]) + (1 - f) * _t0(
        ks, q, c["alpha_c"], c["beta_c"]
    )
    s_tilde = s / (1 + (c["beta_node"] / (ks * s)) ** 3) ** (1 / 3)
    x = ks * s_tilde
    sinc = np.sinc(x / np.pi)
    tb = (
        _t0(ks, q, 1, 1) / (1 + (ks * s / 5.2) ** 2)
        + c["alpha_b"]
        / (1 + (c["beta_b"] / (ks * s)) ** 3)
        * np.exp(-((ks / c["k_silk"]) ** 1.4))
    ) * sinc
    return c["fb"] * tb + c["fc"] * tc


def _transfer_nowiggle(k: np.ndarray, c: dict[str, float], h: float) -> np.ndarray:
    ks = k * h
    s = c["s_approx"]
    ag = c["alpha_gamma"]
    gamma_eff = c["wm"] / h * (ag + (1 - ag) / (1 + (0.43 * ks * s) ** 4))
    q = k * c["theta"] ** 2 / gamma_eff
    l0 = np.log(2 * np.e + 1.8 * q)
    c0 = 14.2 + 731 / (1 + 62.5 * q)
    return l0 / (l0 + c0 * q**2)


def transfer_function(
    k: ArrayLike, cosmo: Cosmology, kind: str = "eisenstein_hu"
) -> np.ndarray:
    """Eisenstein & Hu (1998) matter transfer function, with or without BAO wiggles.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> round(float(transfer_function(1e-4, Cosmology())), 3)
    1.0
    """
    if kind not in TRANSFER_KINDS:
        raise ValueError(
            f"transfer function {kind!r} is not known; "
            f"allowed: {', '.join(TRANSFER_KINDS)}"
        )
    k = np.asarray(k, dtype=float)
    consts = _eh_constants(cosmo.Omega0, cosmo.OmegaBaryon, cosmo.h, cosmo.T_cmb)
    safe = np.where(k > 0, k, 1.0)
    if kind == "eisenstein_hu":
        t = _transfer_wiggle(safe, consts, cosmo.h)
    else:
        t = _transfer_nowiggle(safe, consts, cosmo.h)
    return np.where(k > 0, t, 1.0)


def _tophat(x: np.ndarray) -> np.ndarray:
    """3 (sin x - x cos x) / x³, by its series below x = 1e-3."""
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    exact = 3 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    return np.where(small, 1 - x**2 / 10, exact)


_LNK = np.linspace(np.log(1e-5), np.log(1e3), 6001)


def _sigma_unnormalised(r: np.ndarray, cosmo: Cosmology, transfer: str) -> np.ndarray:
    k = np.exp(_LNK)
    pk = k**cosmo.n_s * transfer_function(k, cosmo, transfer) ** 2
    integrand = k**3 * pk * _tophat(np.multiply.outer(r, k)) ** 2 / (2 * np.pi**2)
    return np.sqrt(np.trapezoid(integrand, _LNK, axis=-1))


def _amplitude(cosmo: Cosmology, transfer: str) -> float:
    """A of P = A k^n_s T² so that σ(8 Mpc/h) = σ8; cached per parameter set."""
    return _amplitude_cached(_key(cosmo), transfer)


@lru_cache(maxsize=64)
def _amplitude_cached(key: tuple[float, ...], transfer: str) -> float:
    from simlab.config import Cosmology

    names = ("Omega0", "OmegaLambda", "OmegaBaryon", "h", "sigma8", "n_s", "T_cmb")
    cosmo = Cosmology.model_construct(**dict(zip(names, key, strict=True)))
    sigma = _sigma_unnormalised(np.asarray(8.0), cosmo, transfer)
    return float((cosmo.sigma8 / sigma) ** 2)


def linear_power(
    k: ArrayLike, cosmo: Cosmology, a: float = 1.0, transfer: str = "eisenstein_hu"
) -> np.ndarray:
    """Linear matter P(k, a) in (Mpc/h)³, normalised so that σ(8 Mpc/h, a=1) = σ8.

    Examples
    --------
    >>> from simlab.config import Cosmology
    >>> c = Cosmology()
    >>> round(float(sigma_r(8.0, c)), 4) == c.sigma8
    True
    """
    k = np.asarray(k, dtype=float)
    amp = _amplitude(cosmo, transfer)
    pk = (
        amp
        * np.where(k > 0, k, 0.0) ** cosmo.n_s
        * transfer_function(k, cosmo, transfer) ** 2
    )
    return pk * growth_factor(a, cosmo) ** 2


def sigma_r(
    r: ArrayLike, cosmo: Cosmology, a: float = 1.0, transfer: str = "eisenstein_hu"
) -> np.ndarray:
    """rms linear overdensity in top-hat spheres of radius r Mpc/h."""
    amp = _amplitude(cosmo, transfer)
    sigma = _sigma_unnormalised(np.asarray(r, dtype=float), cosmo, transfer)
    return np.sqrt(amp) * sigma * growth_factor(a, cosmo)
