"""Regenerate the reference tables in this folder (see README.md); not a test.

    python tests/data/linear/generate.py PATH/TO/class

needs camb and classy installed, and CLASS's command-line program (``make class``
in the classy sources, which its installed package ships). Parameters: simlab's
Planck 2018 preset, flat, T_cmb = 2.7255 K, N_eff = 3.044 massless neutrinos, no
massive ones, linear, z = 0. Imports stay in functions: pytest imports this file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
H, OMEGA_M, OMEGA_B, N_S, SIGMA8 = 0.6766, 0.3111, 0.04897, 0.9665, 0.8102
T_CMB, N_EFF, K_MAX = 2.7255, 3.044, 10.0
#: where the background reference is tabulated
REDSHIFTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 49.0, 99.0, 199.0)

CAMB_INI = """\
output_root = {root}
get_scalar_cls = F
get_vector_cls = F
get_tensor_cls = F
get_transfer = T
do_lensing = F
do_nonlinear = 0
ombh2 = {ombh2!r}
omch2 = {omch2!r}
omnuh2 = 0
omk = 0
hubble = {H0!r}
dark_energy_model = fluid
w = -1
cs2_lam = 1
temp_cmb = {T_CMB!r}
helium_fraction = {YHe!r}
massless_neutrinos = {N_EFF!r}
nu_mass_eigenstates = 0
massive_neutrinos = 0
share_delta_neff = F
nu_mass_fractions = 1
nu_mass_degeneracies =
initial_power_num = 1
pivot_scalar = 0.05
pivot_tensor = 0.05
scalar_amp(1) = {As!r}
scalar_spectral_index(1) = {N_S!r}
scalar_nrun(1) = 0
scalar_nrunrun(1) = 0
tensor_spectral_index(1) = 0
tensor_nrun(1) = 0
tensor_parameterization = 1
initial_ratio(1) = 0
reionization = T
re_use_optical_depth = T
re_optical_depth = 0.0561
re_delta_redshift = 1.5
re_ionization_frac = -1
re_helium_redshift = 3.5
re_helium_delta_redshift = 0.4
recombination_model = Recfast
initial_condition = 1
initial_vector = -1 0 0 0 0
vector_mode = 0
COBE_normalize = F
CMB_outputscale = 7.42835025e12
transfer_high_precision = T
transfer_kmax = {K_MAX!r}
transfer_k_per_logint = 0
transfer_num_redshifts = 1
transfer_interp_matterpower = F
transfer_redshift(1) = 0
transfer_filename(1) = transfer_out.dat
transfer_matterpower(1) = matterpower.dat
transfer_power_var = 8
feedback_level = 1
output_file_headers = T
derived_parameters = T
accuracy_boost = 1
l_accuracy_boost = 1
l_sample_boost = 1
number_of_threads = 0
"""

CLASS_INI = """\
h = {h!r}
omega_b = {ombh2!r}
omega_cdm = {omch2!r}
Omega_k = 0.
T_cmb = {T_CMB!r}
N_ur = {N_EFF!r}
N_ncdm = 0
n_s = {N_S!r}
sigma8 = {SIGMA8!r}
output = mTk, mPk
P_k_max_h/Mpc = {K_MAX!r}
z_pk = 0
root = {root}
headers = yes
format = class
write_parameters = no
"""


def _numbers() -> dict[str, float]:
    return {
        "h": H,
        "H0": 100 * H,
        "ombh2": OMEGA_B * H**2,
        "omch2": (OMEGA_M - OMEGA_B) * H**2,
        "T_CMB": T_CMB,
        "N_EFF": N_EFF,
        "N_S": N_S,
        "SIGMA8": SIGMA8,
        "K_MAX": K_MAX,
    }


def camb_tables(work: Path) -> str:
    """Run the CAMB library on an ini file with A_s giving σ8 = SIGMA8."""
    import camb

    n = _numbers()
    pars = camb.CAMBparams()
    pars.set_cosmology(
        H0=n["H0"],
        ombh2=n["ombh2"],
        omch2=n["omch2"],
        omk=0,
        mnu=0,
        num_massive_neutrinos=0,
        nnu=N_EFF,
        TCMB=T_CMB,
    )
    pars.InitPower.set_params(As=2e-9, ns=N_S)
    pars.set_matter_power(redshifts=[0.0], kmax=K_MAX * H)
    sigma8 = camb.get_results(pars).get_sigma8_0()
    amplitude = float(2e-9 * (SIGMA8 / sigma8) ** 2)
    ini = work / "camb.ini"
    text = CAMB_INI.format(root=work / "camb", As=amplitude, YHe=float(pars.YHe), **n)
    ini.write_text(text)
    camb.run_ini(str(ini))
    for part in ("transfer_out", "matterpower"):
        shutil.copy(work / f"camb_{part}.dat", HERE / f"camb_planck18_{part}.dat")
    # the files' own σ8 (CAMB prints 4 digits): the same ini through the library
    sigma8_file = camb.get_results(camb.read_ini(str(ini))).get_sigma8_0()
    (HERE / "camb_planck18_sigma8.dat").write_text(
        f"# sigma8 of camb_planck18_matterpower.dat by camb {camb.__version__}\n"
        f"{sigma8_file:.8f}\n"
    )
    return f"camb {camb.__version__}, A_s = {amplitude:.6e}, YHe = {pars.YHe:.6f}"


def class_tables(work: Path, executable: str) -> None:
    """Run CLASS's program; it normalises to σ8 itself."""
    ini = work / "class.ini"
    ini.write_text(CLASS_INI.format(root=work / "class_", **_numbers()))
    subprocess.run([executable, str(ini)], check=True, cwd=work)
    for part in ("tk", "pk"):
        shutil.copy(work / f"class_00_{part}.dat", HERE / f"class_planck18_{part}.dat")
    # the same transfer functions in CLASS's CAMB-like layout
    ini.write_text(
        CLASS_INI.format(root=work / "camblike_", **_numbers())
        .replace("format = class", "format = camb")
        .replace("output = mTk, mPk", "output = mTk")
    )
    subprocess.run([executable, str(ini)], check=True, cwd=work)
    shutil.copy(work / "camblike_00_tk.dat", HERE / "class_planck18_camb_format_tk.dat")


def class_background() -> str:
    """E(z), D(z)/D(0) and f(z) from classy, flat with radiation (as CONCEPT)."""
    import classy

    n = _numbers()
    boltzmann = classy.Class()
    boltzmann.set(
        {
            "h": H,
            "omega_b": n["ombh2"],
            "omega_cdm": n["omch2"],
            "T_cmb": T_CMB,
            "N_ur": N_EFF,
            "N_ncdm": 0,
        }
    )
    boltzmann.compute()
    h0 = boltzmann.Hubble(0)
    d0 = boltzmann.scale_independent_growth_factor(0)
    rows = [
        f"{z:g} {boltzmann.Hubble(z) / h0:.10e} "
        f"{boltzmann.scale_independent_growth_factor(z) / d0:.10e} "
        f"{boltzmann.scale_independent_growth_factor_f(z):.10e}"
        for z in REDSHIFTS
    ]
    omega_r = boltzmann.Omega_r()
    omega_lambda = boltzmann.Omega_Lambda()
    (HERE / "class_planck18_background.dat").write_text(
        f"# classy {classy.__version__}: simlab planck18, flat, N_ur = {N_EFF}, "
        f"no ncdm; Omega_r = {omega_r:.6e}, Omega_Lambda = {omega_lambda:.8f}\n"
        "# z  E(z)=H/H0  D(z)/D(0)  f(z)\n" + "\n".join(rows) + "\n"
    )
    return f"classy {classy.__version__}"


def main(executable: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lt-") as tmp:
        work = Path(tmp)
        print(camb_tables(work))
        class_tables(work, executable)
        print(class_background())


if __name__ == "__main__":
    main(sys.argv[1])
