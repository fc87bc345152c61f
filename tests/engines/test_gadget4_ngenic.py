"""Gadget4's built-in N-GenIC gets the run's linear P(k) as a table
(PowerSpectrumType 2) and refuses what its build cannot honour."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.config import RunConfig
from simlab.engines.base import Launch
from simlab.engines.gadget4 import Gadget4Engine, ngenic_spectrum, read_parameter_file
from simlab.engines.gadget4_build import BuildOptions, build_problems, config_sh
from simlab.errors import ConfigError
from simlab.service.validation import validate_run
from tests.conftest import data_path
from tests.engines.test_gadget4 import ngenic32_config


def gadget4_reads(table: np.ndarray, k: np.ndarray, n_s: float) -> np.ndarray:
    """Δ² N-GenIC realises from the table (``ngenic_powerspec_tabulated`` times
    ``k^(PrimordialIndex - 1)``, Gadget4 src/ngenic/power.cc), zero outside it."""
    log_k = np.log10(k)
    inside = (log_k >= table[0, 0]) & (log_k <= table[-1, 0])
    delta2 = 10 ** np.interp(log_k, table[:, 0], table[:, 1]) * k ** (n_s - 1)
    return np.where(inside, delta2, 0.0)


def test_the_table_is_what_real_gadget4_computed_for_the_fixture(tmp_path):
    """The fixture's Gadget4 (E&H no-wiggle, type 1) wrote its z = 0 input
    spectrum; simlab's table for the same E&H choice, read as N-GenIC reads it
    and grown to z = 0 with Gadget4's own growth factor, is that spectrum."""
    fixture = data_path("gadget4-small/ngenic32/output/inputspec_snapshot.txt")
    z_start, growth = np.loadtxt(fixture, max_rows=1)
    k, delta2_z0 = np.loadtxt(fixture, skiprows=1, usecols=(0, 1), unpack=True)
    data = ngenic32_config().model_dump()
    data["ics"]["transfer"] = "eisenstein_hu_nowiggle"
    config = RunConfig(**data)
    assert z_start == pytest.approx(1 / config.ics.start - 1)
    band = (k > 0.01) & (k < 10)
    ours = gadget4_reads(ngenic_spectrum(config), k[band], config.cosmology.n_s)
    ratio = ours * growth**2 / delta2_z0[band]
    # E&H fits differ slightly (Gadget4's uses T_cmb 2.728, simlab 2.7255) and
    # the growth factors by the integration: 0.998-1.004 measured
    np.testing.assert_allclose(ratio, 1.0, atol=0.006)
    assert gadget4_reads(ngenic_spectrum(config), np.array([1e-6]), 1.0)[0] == 0


def test_prepare_hands_ngenic_the_table_by_name(tmp_path):
    config = ngenic32_config()
    Gadget4Engine().prepare(config, tmp_path, Launch())
    params = read_parameter_file(tmp_path / "inputs" / "param.txt")
    assert params["PowerSpectrumType"] == "2"
    assert params["ReNormalizeInputSpectrum"] == "0"  # already at a_start
    assert params["InputSpectrum_UnitLength_in_cm"] == params["UnitLength_in_cm"]
    table = np.loadtxt(tmp_path / params["PowerSpectrumFile"])
    np.testing.assert_allclose(table, ngenic_spectrum(config), rtol=1e-9)
    k = 0.2
    expected = k**3 / (2 * np.pi**2)
    from simlab import cosmology

    expected *= cosmology.linear_power(k, config.cosmology, a=0.02)
    read = gadget4_reads(table, np.array([k]), config.cosmology.n_s)[0]
    assert read == pytest.approx(float(expected), rel=2e-5)
    # the table reaches past the corner of the N-GenIC mesh
    assert 10 ** table[-1, 0] > np.sqrt(3) * np.pi * config.mesh / config.box.size


@pytest.mark.parametrize(
    ("field", "flag"),
    [("fixed", "NGENIC_FIX_MODE_AMPLITUDES"), ("paired", "NGENIC_MIRROR_PHASES")],
)
def test_fixed_and_paired_need_their_ngenic_compile_option(field, flag):
    data = ngenic32_config().model_dump()
    data["ics"][field] = True
    data["code"]["executable"] = "/bin/true"
    with pytest.raises(ConfigError) as info:
        validate_run(data)
    errors = {e["loc"]: e["msg"] for e in info.value.errors}
    assert f"built with {flag}" in errors[f"ics.{field}"]
    code = {**data["code"], "options": {"ics": "ngenic"}}
    config = RunConfig(**{**data, "code": code})
    assert flag in config_sh(config).splitlines()
    fixture = ngenic32_config().model_dump()
    with_flag = BuildOptions({"NGENIC": "64", flag: None, "PMGRID": "64"})
    problems = build_problems(RunConfig(**fixture), with_flag)
    assert f"ics.{field} is false but the build has {flag}: remove {flag}" in problems
