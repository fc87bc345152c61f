"""The primordial amplitude A_s that gives a cosmology's σ8 (what CONCEPT needs).

simlab normalises linear theory by σ8; CONCEPT (through CLASS) by A_s. At fixed
shape σ8 ∝ √A_s, so one CLASS run (CAMB without classy) at a reference A_s gives
the A_s whose σ8 is the configured one: A_s = A_ref (σ8 / σ8(A_ref))². Without
either package the matter-era relation (Eisenstein & Hu 1999, eq. 1)
Δ²(k) = 4/25 A_s (k/k_pivot)^(n_s-1) (k/H0)⁴ T(k)² g² / Ω_m², with g = D(1) in
units of the early-time a, is integrated with simlab's own T(k).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from simlab.linear.background import Params, params
from simlab.linear.codes import MissingPackageError, import_code
from simlab.linear.tables import HUBBLE_LENGTH

#: A_s the Boltzmann codes are run with (CONCEPT's default), rescaled afterwards.
REFERENCE_A_S = 2.1e-9
#: Pivot scale of A_s in 1/Mpc (CLASS, CAMB and CONCEPT default).
K_PIVOT = 0.05


class Amplitude(NamedTuple):
    """A_s and what computed it (``class``, ``camb`` or ``formula``)."""

    A_s: float
    source: str


def _class_sigma8(p: Params) -> float:
    classy = import_code("class")
    boltzmann = classy.Class()
    boltzmann.set(
        {
            "h": p.h,
            "omega_b": p.OmegaBaryon * p.h**2,
            "omega_cdm": (p.Omega0 - p.OmegaBaryon) * p.h**2,
            "Omega_k": p.Omega_k,
            "T_cmb": p.T_cmb,
            "N_ur": p.N_eff,
            "N_ncdm": 0,
            "A_s": REFERENCE_A_S,
            "n_s": p.n_s,
            "output": "mPk",
            "P_k_max_h/Mpc": 10.0,
        }
    )
    try:
        boltzmann.compute()
        return float(boltzmann.sigma8())
    finally:
        boltzmann.struct_cleanup()
        boltzmann.empty()


def _camb_sigma8(p: Params) -> float:
    camb = import_code("camb")
    pars = camb.CAMBparams()
    pars.set_cosmology(
        H0=100 * p.h,
        ombh2=p.OmegaBaryon * p.h**2,
        omch2=(p.Omega0 - p.OmegaBaryon) * p.h**2,
        omk=p.Omega_k,
        TCMB=p.T_cmb,
        nnu=p.N_eff,
        mnu=0.0,
        num_massive_neutrinos=0,
    )
    pars.InitPower.set_params(As=REFERENCE_A_S, ns=p.n_s)
    pars.WantCls = False
    pars.set_matter_power(redshifts=[0.0], kmax=10.0, nonlinear=False)
    return float(camb.get_results(pars).get_sigma8_0())


def _formula_sigma8(p: Params, transfer: str, transfer_file: Any) -> float:
    """σ8 at A_s = REFERENCE_A_S from the matter-era relation and simlab's T(k).

    The relation normalises δ ∝ a in the matter era, so D comes from the matter + Λ
    background: with radiation, a = 1e-3 is barely past equality and D/a there is
    not the matter era's (A_s came out 40% high). T(k) carries the radiation era.
    """
    from scipy.integrate import simpson

    from simlab.cosmology import _tophat, growth_factor, transfer_function

    k = np.logspace(-5, 2, 4000)  # h/Mpc
    t = transfer_function(k, p, transfer, transfer_file)
    early = 1e-3
    g = early / float(growth_factor(early, p._replace(radiation=False)))  # D(1)/a
    h0 = p.h / HUBBLE_LENGTH  # H0 / c in 1/Mpc
    k_mpc = k * p.h
    delta2 = (
        4.0
        / 25.0
        * REFERENCE_A_S
        * (k_mpc / K_PIVOT) ** (p.n_s - 1)
        * (k_mpc / h0) ** 4
        * (t * g / p.Omega0) ** 2
    )
    return float(np.sqrt(simpson(delta2 * _tophat(8.0 * k) ** 2, x=np.log(k))))


@lru_cache(maxsize=32)
def _amplitude(p: Params, transfer: str, transfer_file: Any) -> Amplitude:
    for code, sigma8 in (("class", _class_sigma8), ("camb", _camb_sigma8)):
        try:
            reference = sigma8(p)
        except MissingPackageError:
            continue
        return Amplitude(REFERENCE_A_S * (p.sigma8 / reference) ** 2, code)
    reference = _formula_sigma8(p, transfer, transfer_file)
    return Amplitude(REFERENCE_A_S * (p.sigma8 / reference) ** 2, "formula")


def primordial_amplitude(
    cosmo: Any,
    transfer: str = "eisenstein_hu",
    transfer_file: str | None = None,
    *,
    codes: bool = True,
) -> Amplitude:
    """A_s (pivot 0.05/Mpc) whose linear σ8 is ``cosmo.sigma8``.

    CLASS if ``classy`` is installed, else CAMB, else (or with ``codes=False``)
    the matter-era formula with ``transfer`` (and ``transfer_file``).
    """
    p = params(cosmo)
    if not codes:
        reference = _formula_sigma8(p, transfer, transfer_file)
        return Amplitude(REFERENCE_A_S * (p.sigma8 / reference) ** 2, "formula")
    return _amplitude(p, transfer, transfer_file)
