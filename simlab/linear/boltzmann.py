"""Matter transfer functions computed by CAMB or CLASS (optional packages).

``camb`` (``pip install 'simlab[camb]'``) and ``classy`` (``pip install
'simlab[class]'``) are imported only here, and only when such a transfer function
is asked for. Each code gets the run's cosmology: H0, ω_b, ω_cdm = (Ω0 - Ω_b) h²,
Ω_k = ``Cosmology.Omega_k``, T_cmb, N_eff massless neutrinos and no massive ones;
Λ is what closes the budget, as in those codes. The result is the CDM + baryon
transfer function at z = 0 (CAMB ``delta_nonu``, CLASS ``d_m``), T ∝ δ / k².

One computation per parameter set and process (in memory), plus a text file per set
in the cache folder (:mod:`simlab.linear.cache`), so later processes (sweep points,
engine workers) skip the ~1 s of CAMB or CLASS.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from simlab.linear.background import Params
from simlab.linear.cache import cache_dir, write_atomic
from simlab.linear.codes import CODES, import_code

#: largest k (h/Mpc) the codes are run to; beyond it T follows the E&H tail shape
K_MAX = 100.0


def _inputs(p: Params) -> dict[str, float]:
    """What the transfer function depends on (not σ8 or n_s), for the cache key."""
    return {
        "h": p.h,
        "omega_b": p.OmegaBaryon * p.h**2,
        "omega_cdm": (p.Omega0 - p.OmegaBaryon) * p.h**2,
        "Omega_k": p.Omega_k,
        "T_cmb": p.T_cmb,
        "N_eff": p.N_eff,
        "k_max": K_MAX,
    }


def _run_camb(inputs: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    camb = import_code("camb")
    h = inputs["h"]
    pars = camb.CAMBparams()
    pars.set_cosmology(
        H0=100 * h,
        ombh2=inputs["omega_b"],
        omch2=inputs["omega_cdm"],
        omk=inputs["Omega_k"],
        TCMB=inputs["T_cmb"],
        nnu=inputs["N_eff"],
        mnu=0.0,
        num_massive_neutrinos=0,
    )
    pars.WantCls = False
    pars.set_matter_power(redshifts=[0.0], kmax=inputs["k_max"] * h, nonlinear=False)
    data = camb.get_transfer_functions(pars).get_matter_transfer_data()
    return data.q / h, data.transfer_z("delta_nonu", 0)


def _run_class(inputs: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    classy = import_code("class")
    boltzmann = classy.Class()
    boltzmann.set(
        {
            "h": inputs["h"],
            "omega_b": inputs["omega_b"],
            "omega_cdm": inputs["omega_cdm"],
            "Omega_k": inputs["Omega_k"],
            "T_cmb": inputs["T_cmb"],
            "N_ur": inputs["N_eff"],
            "N_ncdm": 0,
            "output": "mTk",
            "P_k_max_h/Mpc": inputs["k_max"],
            "z_max_pk": 0.0,
        }
    )
    try:
        boltzmann.compute()
        tk = boltzmann.get_transfer(0.0)
        k = np.array(tk["k (h/Mpc)"])
        return k, np.array(tk["d_m"]) / k**2  # δ / k², as CAMB's
    finally:
        boltzmann.struct_cleanup()
        boltzmann.empty()


def _version(code: str) -> str:
    return str(getattr(import_code(code), "__version__", "unknown"))


@lru_cache(maxsize=16)
def _transfer_cached(code: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    inputs = json.loads(key)
    version = _version(code)
    folder = cache_dir()
    name = hashlib.sha256(f"{code} {version} {key}".encode()).hexdigest()[:20]
    path = folder / f"{code}-{name}.txt" if folder is not None else None
    if path is not None and path.is_file():
        try:
            k, t = np.loadtxt(path, unpack=True)
            return k, t
        except ValueError:
            pass  # a damaged file is recomputed and replaced
    k, t = (_run_camb if code == "camb" else _run_class)(inputs)
    if path is not None:
        header = f"{code} {version} {key}"
        table = np.column_stack([k, t])
        write_atomic(path, lambda fh: np.savetxt(fh, table, fmt="%.12e", header=header))
    return k, t


def transfer_table(code: str, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """(k [h/Mpc], T(k) up to a constant) of CAMB or CLASS at z = 0 for ``p``."""
    if code not in CODES:
        raise ValueError(f"unknown Boltzmann code {code!r}; known: {', '.join(CODES)}")
    key = json.dumps(_inputs(p), sort_keys=True)
    return _transfer_cached(code, key)
