"""Cosmology: growth against independent integrals, E&H shape, sigma8 normalisation.

Comparisons with CAMB, CLASS and colossus: test_linear_theory.py.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from simlab import cosmology
from simlab.config import Cosmology

PLANCK = Cosmology()
EDS = Cosmology(preset="eds")
TABLE = (
    Path(__file__).resolve().parents[1] / "data" / "linear" / "class_planck18_tk.dat"
)
#: the package each transfer choice needs, and whether the test extra installs it
#: transfer → (module, whether CI has it: camb from the test extra, classy
#: built by .ci/run), so under CI=true a missing one fails instead of skipping
PACKAGES = {"camb": ("camb", True), "class": ("classy", True)}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """CAMB/CLASS tables go to a temporary cache, not the user's ~/.cache."""
    monkeypatch.setenv("SIMLAB_LINEAR_CACHE", str(tmp_path / "cache"))


def _growth_integral(a: float, c: Cosmology) -> float:
    """D ∝ E(a) ∫_0^a da' / (a' E(a'))³, exact for matter + Λ + curvature."""
    integral, _ = quad(
        lambda x: 1 / (x * cosmology.E(x, c)) ** 3, 0, a, epsabs=0, epsrel=1e-12
    )
    return float(cosmology.E(a, c)) * integral


def test_einstein_de_sitter_growth_is_a():
    a = np.array([0.01, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(cosmology.growth_factor(a, EDS), a, rtol=1e-7)
    np.testing.assert_allclose(cosmology.growth_rate(a, EDS), 1.0, rtol=1e-7)
    np.testing.assert_allclose(
        cosmology.growth_factor_2lpt(a, EDS), -3 / 7 * a**2, rtol=1e-5
    )
    np.testing.assert_allclose(cosmology.growth_rate_2lpt(a, EDS), 2.0, rtol=1e-5)


@pytest.mark.parametrize("preset", ["planck18", "wmap9"])
def test_lcdm_growth_matches_the_exact_integral(preset):
    c = Cosmology(preset=preset)
    reference = _growth_integral(1.0, c)
    for a in (0.02, 0.1, 0.3, 0.6, 0.9):
        expected = _growth_integral(a, c) / reference
        assert float(cosmology.growth_factor(a, c)) == pytest.approx(expected, rel=1e-6)


def test_curved_cosmology_growth_matches_the_exact_integral():
    c = Cosmology(Omega0=0.3, OmegaLambda=0.5)
    expected = _growth_integral(0.4, c) / _growth_integral(1.0, c)
    assert float(cosmology.growth_factor(0.4, c)) == pytest.approx(expected, rel=1e-6)


def test_growth_derivative_is_consistent_with_the_factor():
    a, eps = 0.4, 1e-5
    numeric = (
        cosmology.growth_factor(a + eps, PLANCK)
        - cosmology.growth_factor(a - eps, PLANCK)
    ) / (2 * eps)
    assert float(cosmology.growth_factor_derivative(a, PLANCK)) == pytest.approx(
        float(numeric), rel=1e-7
    )


def test_growth_rates_follow_the_usual_approximations():
    a = np.linspace(0.1, 1.0, 10)
    om = cosmology.omega_m(a, PLANCK)
    np.testing.assert_allclose(cosmology.growth_rate(a, PLANCK), om**0.55, rtol=0.01)
    np.testing.assert_allclose(
        cosmology.growth_rate_2lpt(a, PLANCK), 2 * om ** (6 / 11), rtol=0.02
    )


def test_growth_against_carroll_press_turner():
    def g(a, c):
        om = cosmology.omega_m(a, c)
        ol = c.OmegaLambda / cosmology.E(a, c) ** 2
        return 2.5 * om / (om ** (4 / 7) - ol + (1 + om / 2) * (1 + ol / 70))

    for a in (0.25, 0.5, 0.75):
        cpt = a * g(a, PLANCK) / g(1.0, PLANCK)
        assert float(cosmology.growth_factor(a, PLANCK)) == pytest.approx(cpt, rel=0.01)


def test_transfer_function_shape():
    k = np.logspace(-4, 1.5, 400)
    wiggle = cosmology.transfer_function(k, PLANCK)
    smooth = cosmology.transfer_function(k, PLANCK, "eisenstein_hu_nowiggle")
    assert abs(wiggle[0] - 1) < 1e-3 and abs(smooth[0] - 1) < 1e-3
    assert np.all(np.diff(smooth) < 0)
    np.testing.assert_allclose(wiggle, smooth, rtol=0.1)
    band = (k > 0.05) & (k < 0.3)
    ratio = wiggle[band] / smooth[band]
    assert np.count_nonzero(np.diff(np.sign(np.diff(ratio)))) >= 3  # oscillations
    k10 = np.array([10.0, 10.0 * 1.01])
    slope = np.diff(np.log(cosmology.transfer_function(k10, PLANCK)))[0] / np.log(1.01)
    assert -2.0 < slope < -1.5


def test_sound_horizon_against_the_fitting_formula():
    om_h2 = PLANCK.Omega0 * PLANCK.h**2
    ob_h2 = PLANCK.OmegaBaryon * PLANCK.h**2
    approx = 44.5 * np.log(9.83 / om_h2) / np.sqrt(1 + 10 * ob_h2**0.75)
    assert cosmology.sound_horizon(PLANCK) == pytest.approx(approx, rel=0.02)


@pytest.mark.parametrize(
    "c",
    [PLANCK, Cosmology(preset="wmap9"), Cosmology(sigma8=0.7, n_s=0.9)],
)
@pytest.mark.parametrize("transfer", cosmology.TRANSFER_KINDS)
def test_power_is_normalised_to_sigma8(c, transfer):
    if transfer in PACKAGES:
        module, in_test_extra = PACKAGES[transfer]
        if importlib.util.find_spec(module) is None:
            if in_test_extra and os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{module} is not installed but CI installs it")
            pytest.skip(f"{module} is not installed; to enable: pip install {module}")
    table = TABLE if transfer == "file" else None
    sigma = cosmology.sigma_r(8.0, c, transfer=transfer, transfer_file=table)
    assert float(sigma) == pytest.approx(c.sigma8, rel=1e-3)


def test_power_scales_with_growth_squared():
    k = np.logspace(-3, 0, 20)
    d = float(cosmology.growth_factor(0.25, PLANCK))
    np.testing.assert_allclose(
        cosmology.linear_power(k, PLANCK, a=0.25),
        d**2 * cosmology.linear_power(k, PLANCK),
        rtol=1e-12,
    )
    assert cosmology.linear_power(np.array([0.0]), PLANCK)[0] == 0.0
    # the turnover sits near k_eq ~ 0.015 h/Mpc
    kk = np.logspace(-3, -1, 400)
    peak = kk[np.argmax(cosmology.linear_power(kk, PLANCK))]
    assert 0.01 < peak < 0.03


def test_unknown_transfer_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'bbks' is not known; allowed: eisenstein_hu"):
        cosmology.transfer_function(0.1, PLANCK, "bbks")
    with pytest.raises(ValueError, match="tabulated range"):
        cosmology.growth_factor(1e-6, PLANCK)


GROWTH_IN_A_FRESH_PROCESS = """
import sys
from simlab import cosmology
from simlab.config import Cosmology
d = cosmology.growth_factor([0.02, 0.5], Cosmology(Omega0=0.27, OmegaLambda=0.73))
loaded = sorted(m for m in ("scipy.integrate", "scipy.interpolate") if m in sys.modules)
print(repr(d.tolist()), loaded)
"""


def _growth_in_a_fresh_process(cache: Path) -> str:
    import subprocess
    import sys

    env = {**os.environ, "SIMLAB_LINEAR_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", GROWTH_IN_A_FRESH_PROCESS],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_growth_tables_are_kept_for_later_processes(tmp_path):
    # the first process integrates (scipy) and keeps the tables; the next one, say
    # a run's engine, reads them and imports no scipy.integrate
    cache = tmp_path / "cache"
    first = _growth_in_a_fresh_process(cache)
    assert first.endswith("['scipy.integrate']")
    (kept,) = cache.glob("growth-*.npy")
    later = _growth_in_a_fresh_process(cache)
    assert later == first.split(" [")[0] + " []"
    # a damaged file is integrated again and replaced
    kept.write_bytes(b"\x93NUMPY garbage")
    assert _growth_in_a_fresh_process(cache) == first
    assert np.load(kept).shape == (8, 2000)
