"""Background expansion E(a) and the linear growth factors, with optional radiation.

Without radiation (the default, as Gadget4): E² = Ω_m a⁻³ + Ω_k a⁻² + Ω_Λ with
Ω_k = 1 - Ω_m - Ω_Λ. With ``radiation`` (as CONCEPT, CAMB and CLASS): photons from
T_cmb and N_eff massless neutrinos add Ω_r a⁻⁴ and Ω_k = 1 - Ω_m - Ω_Λ - Ω_r.

Growth: D'' + (2 + dln E/dln a) D' = 3/2 Ω_m(a) D in ln a (radiation smooth, as in
CLASS's scale-independent D), and the 2LPT D2 with source -3/2 Ω_m(a) D², integrated
once per (Ω_m, Ω_Λ, Ω_r), kept in the cache folder and interpolated (cubic Hermite,
with the ODE's own derivatives).
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from simlab.linear.cache import cache_dir, write_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import ArrayLike

LNA_MIN, LNA_MAX = math.log(1e-4), math.log(3.0)
#: with radiation the integration starts deep in the radiation era (a_eq ~ 3e-4)
_LNA_START_RADIATION = math.log(1e-8)

#: Ω_γ h² per K⁴: a_rad T⁴ / (c² ρ_crit,100) with CODATA 2018 constants
#: (scipy.constants), 2.47298e-5 at T_cmb = 2.7255 K
_OMEGA_GAMMA_H2_PER_K4 = 2.472975328714088e-05 / 2.7255**4
#: ρ_ν / ρ_γ per massless neutrino species, 7/8 (4/11)^(4/3)
NEUTRINO_PER_PHOTON = 7 / 8 * (4 / 11) ** (4 / 3)


def photon_density(t_cmb: float, h: float) -> float:
    """Ω_γ today from the CMB temperature.

    Examples
    --------
    >>> round(photon_density(2.7255, 1.0), 10)
    2.47298e-05
    """
    return _OMEGA_GAMMA_H2_PER_K4 * t_cmb**4 / h**2


def radiation_density(t_cmb: float, n_eff: float, h: float) -> float:
    """Ω_r today: photons plus ``n_eff`` massless neutrino species."""
    return photon_density(t_cmb, h) * (1.0 + NEUTRINO_PER_PHOTON * n_eff)


class Params(NamedTuple):
    """The numbers linear theory depends on; hashable, so caches key on them."""

    Omega0: float
    OmegaLambda: float
    OmegaBaryon: float
    h: float
    sigma8: float
    n_s: float
    T_cmb: float = 2.7255
    radiation: bool = False
    N_eff: float = 3.044

    @property
    def Omega_r(self) -> float:
        """Radiation density in the background: 0 unless ``radiation``."""
        if not self.radiation:
            return 0.0
        return radiation_density(self.T_cmb, self.N_eff, self.h)

    @property
    def Omega_k(self) -> float:
        """Curvature 1 - Ω_m - Ω_Λ - Ω_r (Ω_r = 0 without radiation)."""
        return 1.0 - self.Omega0 - self.OmegaLambda - self.Omega_r


def params(cosmo: Any) -> Params:
    """:class:`Params` of a :class:`simlab.config.Cosmology` (or anything alike)."""
    if isinstance(cosmo, Params):
        return cosmo
    return Params(
        float(cosmo.Omega0),
        float(cosmo.OmegaLambda),
        float(cosmo.OmegaBaryon),
        float(cosmo.h),
        float(cosmo.sigma8),
        float(cosmo.n_s),
        float(getattr(cosmo, "T_cmb", 2.7255)),
        bool(getattr(cosmo, "radiation", False)),
        float(getattr(cosmo, "N_eff", 3.044)),
    )


def e2(a: np.ndarray, om: float, ol: float, orad: float = 0.0) -> np.ndarray:
    """E(a)² for matter ``om``, Λ ``ol``, radiation ``orad`` and the curvature rest."""
    ok = 1.0 - om - ol - orad
    return orad / a**4 + om / a**3 + ok / a**2 + ol


def hubble(a: ArrayLike, p: Params) -> np.ndarray:
    """E(a) = H(a)/H0."""
    a = np.asarray(a, dtype=float)
    return np.sqrt(e2(a, p.Omega0, p.OmegaLambda, p.Omega_r))


def omega_matter(a: ArrayLike, p: Params) -> np.ndarray:
    """Ω_m(a) = Ω0 a⁻³ / E²."""
    a = np.asarray(a, dtype=float)
    return p.Omega0 / a**3 / e2(a, p.Omega0, p.OmegaLambda, p.Omega_r)


#: The growth tables' ln a grid: uniform, so a point's interval is arithmetic.
_GRID = np.linspace(LNA_MIN, LNA_MAX, 2000)
#: What the tables' file name depends on besides the densities (changing how they
#: are integrated changes this, so older files are not read).
_TABLES_VERSION = "growth-v2 DOP853 rtol=1e-11"


def _growth_rhs(
    lna: np.ndarray, y: np.ndarray, om: float, ol: float, orad: float
) -> np.ndarray:
    """d/dln a of (D1, D1', D2, D2'), for one state or a column per ln a."""
    ok = 1.0 - om - ol - orad
    a = np.exp(lna)
    ee = orad / a**4 + om / a**3 + ok / a**2 + ol
    dlne_dlna = (-4 * orad / a**4 - 3 * om / a**3 - 2 * ok / a**2) / (2 * ee)
    oma = om / a**3 / ee
    d1, d1p, d2, d2p = y
    return np.array(
        [
            d1p,
            -(2 + dlne_dlna) * d1p + 1.5 * oma * d1,
            d2p,
            -(2 + dlne_dlna) * d2p + 1.5 * oma * (d2 - d1**2),
        ]
    )


def _integrate_growth(om: float, ol: float, orad: float) -> np.ndarray:
    """(D1, D1', D2, D2') on :data:`_GRID`, unnormalised, from the ODE.

    Without radiation the integration starts at a = 1e-4 in matter domination
    (D1 = a, D2 = -3/7 a²). With radiation it starts at a = 1e-8 on Mészáros's
    growing mode D1 ∝ a + 2/3 a_eq (exact for matter plus radiation) and D2 = -2/3 a
    a_eq - 3/7 a² (the leading terms of both eras), so no decaying mode is excited.
    """
    from scipy.integrate import solve_ivp

    if orad == 0.0:
        start = LNA_MIN
        a0 = math.exp(start)
        y0 = [a0, a0, -3 / 7 * a0**2, -6 / 7 * a0**2]
    else:
        start = _LNA_START_RADIATION
        a0, a_eq = math.exp(start), orad / om
        y0 = [
            a0 + 2 / 3 * a_eq,
            a0,
            -2 / 3 * a0 * a_eq - 3 / 7 * a0**2,
            -2 / 3 * a0 * a_eq - 6 / 7 * a0**2,
        ]
    sol = solve_ivp(
        _growth_rhs,
        (start, _GRID[-1]),
        y0,
        t_eval=_GRID,
        args=(om, ol, orad),
        rtol=1e-11,
        atol=1e-14 if orad == 0.0 else 1e-18,
        method="DOP853",
    )
    return sol.y


def _tables_path(om: float, ol: float, orad: float) -> Path | None:
    """The cache file of one cosmology's growth tables, or None (cache off)."""
    folder = cache_dir()
    if folder is None:
        return None
    key = f"{_TABLES_VERSION} {om!r} {ol!r} {orad!r}"
    return folder / f"growth-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"


def _read_tables(path: Path | None) -> np.ndarray | None:
    """The tables kept in ``path``, or None when there are none (or not whole)."""
    if path is None or not path.is_file():
        return None
    try:
        tables = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # a damaged file is computed again and replaced
    if tables.shape != (8, _GRID.size) or not np.all(np.isfinite(tables)):
        return None
    tables.flags.writeable = False
    return tables


@lru_cache(maxsize=64)
def growth_tables(om: float, ol: float, orad: float = 0.0) -> np.ndarray:
    """D1, dD1/dln a, D2, dD2/dln a on ln a in [ln 1e-4, ln 3] (rows 0-3, normalised
    so D1(1) = 1), and their own ln a derivatives from the ODE (rows 4-7).

    Integrated once per (Ω_m, Ω_Λ, Ω_r) and kept in the cache folder
    (:mod:`simlab.linear.cache`): a later process, such as each run's engine, reads
    them instead of importing scipy's integrate and interpolate (0.4 s of a
    0.5 s integration on a 2-core machine).
    """
    path = _tables_path(om, ol, orad)
    tables = _read_tables(path)
    if tables is not None:
        return tables
    raw = _integrate_growth(om, ol, orad)
    slopes = _growth_rhs(_GRID, raw, om, ol, orad)
    norm = float(_hermite(np.array(0.0), raw[0], slopes[0]))
    scale = np.array([norm, norm, norm**2, norm**2])[:, None]
    values = raw / scale
    tables = np.concatenate([values, _growth_rhs(_GRID, values, om, ol, orad)])
    if path is not None:
        write_atomic(path, lambda fh: np.save(fh, tables, allow_pickle=False))
    tables.flags.writeable = False  # shared by every caller in this process
    return tables


def _hermite(lna: np.ndarray, values: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation on :data:`_GRID` of ``values`` with their exact
    ``slopes`` (scipy's CubicHermiteSpline; written out so that reading the tables
    does not import scipy.interpolate, 0.3 s in a fresh engine process)."""
    step = _GRID[1] - _GRID[0]
    i = np.clip(((lna - LNA_MIN) / step).astype(np.intp), 0, _GRID.size - 2)
    t = (lna - _GRID[i]) / step
    t2, t3 = t * t, t * t * t
    return (
        (2 * t3 - 3 * t2 + 1) * values[i]
        + (t3 - 2 * t2 + t) * step * slopes[i]
        + (3 * t2 - 2 * t3) * values[i + 1]
        + (t3 - t2) * step * slopes[i + 1]
    )


def growth_table(a: ArrayLike, p: Params, index: int) -> np.ndarray:
    """Column ``index`` (D1, D1', D2, D2' in ln a) of the growth tables at ``a``."""
    lna = np.log(np.asarray(a, dtype=float))
    if np.any(lna < LNA_MIN) or np.any(lna > LNA_MAX):
        raise ValueError(
            f"scale factor out of the tabulated range [{math.exp(LNA_MIN):g}, "
            f"{math.exp(LNA_MAX):g}]"
        )
    tables = growth_tables(p.Omega0, p.OmegaLambda, p.Omega_r)
    return _hermite(lna, tables[index], tables[4 + index])
