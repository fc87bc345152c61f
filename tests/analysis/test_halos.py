"""Halo mass functions: Poisson counts; Tinker 2008 vs colossus and the fixture."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from simlab.analysis.halos import mass_function, tinker08
from simlab.config import Cosmology
from simlab.io.groups import open_groups
from tests.conftest import data_path

PLANCK15 = Cosmology(preset="planck15")


def test_counts_volume_and_poisson_errors():
    masses = np.array([1.0, 2.0, 3.0, 30.0, 40.0, 300.0])
    hmf = mass_function(masses, 10.0, bins=np.array([0.5, 5.0, 50.0, 500.0]))
    assert hmf["count"].values.tolist() == [3, 2, 1]
    dlnm = np.log(10.0)
    np.testing.assert_allclose(hmf.values, np.array([3, 2, 1]) / 1000.0 / dlnm)
    np.testing.assert_allclose(hmf["error"], np.sqrt([3, 2, 1]) / 1000.0 / dlnm)
    # integrating dn/dlnM over ln M gives back the number density
    assert float((hmf * dlnm).sum()) * 1000.0 == pytest.approx(6.0)
    with pytest.raises(ValueError, match="box_size"):
        mass_function(masses, 0.0)


@pytest.mark.parametrize("number", range(4))
def test_catalogue_mass_function_counts_every_halo(number):
    path = data_path(f"gadget4-small/ngenic32/output/groups_00{number}")
    groups = open_groups(path)
    bins = np.logspace(1, 5, 9)
    hmf = mass_function(groups, bins=bins)
    assert int(hmf["count"].sum()) == groups.attrs["Ngroups_Total"]
    assert hmf.attrs["volume"] == 64.0**3
    assert hmf.attrs["a"] == pytest.approx(groups.attrs["Time"])


@pytest.mark.parametrize("z", [0.0, 1.0])
def test_tinker08_matches_colossus(z):
    """An independent implementation (colossus) with the same cosmology and P(k)."""
    from colossus.cosmology import cosmology as cc
    from colossus.lss import mass_function as mf

    cc.setCosmology(
        "simlab-planck15",
        params={
            "flat": False,
            "H0": 100 * PLANCK15.h,
            "Om0": PLANCK15.Omega0,
            "Ode0": PLANCK15.OmegaLambda,
            "Ob0": PLANCK15.OmegaBaryon,
            "sigma8": PLANCK15.sigma8,
            "ns": PLANCK15.n_s,
            "Tcmb0": PLANCK15.T_cmb,
            "relspecies": False,
        },
        persistence="",
    )
    mass = np.logspace(1, 5, 9)  # 1e11 to 1e15 Msun/h
    reference = mf.massFunction(
        mass * 1e10,
        z,
        mdef="200m",
        model="tinker08",
        q_out="dndlnM",
        ps_args={"model": "eisenstein98"},
    )
    ours = tinker08(mass, PLANCK15, a=1 / (1 + z))
    np.testing.assert_allclose(ours.values, reference, rtol=0.01)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_fixture_halo_abundance_agrees_with_tinker(number):
    """Halos above 3000e10 Msun/h (M200m, 44+ particles): Poisson-consistent."""
    groups = open_groups(data_path(f"gadget4-small/ngenic32/output/groups_00{number}"))
    a = float(groups.attrs["Time"])
    m_min = 3000.0
    observed = int((groups.Group_M_Mean200 >= m_min).sum())

    def density(lnm: float) -> float:
        return float(tinker08(np.exp(lnm), PLANCK15, a=a)[0])

    expected = 64.0**3 * quad(density, np.log(m_min), np.log(1e6), limit=200)[0]
    assert expected > 5
    assert abs(observed - expected) < 3 * np.sqrt(expected), (observed, expected)


def test_tinker_rejects_bad_input():
    with pytest.raises(ValueError, match="delta"):
        tinker08(np.array([100.0]), PLANCK15, delta=100)
    with pytest.raises(ValueError, match="positive"):
        tinker08(np.array([-1.0]), PLANCK15)
