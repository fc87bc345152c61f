"""CONCEPT gets the config's linear theory (A_s for its σ8) and a process
environment chosen for it, not the dask worker's."""

from __future__ import annotations

import importlib.util
import os
import re
import stat

import pytest

from simlab.config import RunConfig
from simlab.dispatch.task import code_environment, execute
from simlab.engines.concept import ConceptEngine, parameter_file
from simlab.engines.gadget4 import Gadget4Engine
from simlab.engines.pm import PMEngine
from simlab.linear.amplitude import REFERENCE_A_S, primordial_amplitude
from simlab.service.submission import create
from tests.conftest import IN_CI, data_path
from tests.engines.test_concept import FIXTURE_RUN, TEST_DOUBLE, concept_params

#: The fixture's config without its A_s: simlab must find it from sigma8.
PLANCK15 = {
    **FIXTURE_RUN,
    "code": {"engine": "concept", "options": {"initial_conditions": "concept"}},
}


def _needs_classy() -> None:
    if importlib.util.find_spec("classy") is None:
        if IN_CI:
            pytest.fail("classy is not installed (CI installs simlab[class])")
        pytest.skip("classy not installed: pip install 'simlab[class]'")


def _written_amplitude(config: RunConfig, tmp_path) -> float:
    params = concept_params(parameter_file(config), str(tmp_path))
    return params["primordial_spectrum"]["A_s"]


def test_concept_gets_the_a_s_of_the_configs_sigma8(tmp_path):
    """The real CONCEPT run of the fixture used A_s = 2.066e-9, and its own
    linear column printed σ8 = 8.16e-01: the config's 0.8159."""
    header = data_path("concept-small/concept32/output/powerspec_a=1.00").read_text()
    linear_sigma8 = float(re.findall(r"σ₈ = (\S+)", header)[-1])
    assert linear_sigma8 == 0.816
    a_s = _written_amplitude(RunConfig(**PLANCK15), tmp_path)
    assert a_s == pytest.approx(2.066e-9, rel=1e-3)
    # CONCEPT's default, 2.1e-9, printed sigma8 = 0.822 in the same run
    assert float(re.findall(r"σ₈ = (\S+)", header)[0]) == 0.822
    text = parameter_file(RunConfig(**PLANCK15))
    assert "# A_s for sigma8 0.8159 by" in text


def test_the_written_a_s_gives_the_sigma8_in_class(tmp_path):
    _needs_classy()
    import classy

    config = RunConfig(**{**PLANCK15, "cosmology": {"preset": "wmap9"}})
    a_s = _written_amplitude(config, tmp_path)
    cosmo = config.cosmology
    boltzmann = classy.Class()
    boltzmann.set(
        {
            "h": cosmo.h,
            "omega_b": cosmo.OmegaBaryon * cosmo.h**2,
            "omega_cdm": (cosmo.Omega0 - cosmo.OmegaBaryon) * cosmo.h**2,
            "A_s": a_s,
            "n_s": cosmo.n_s,
            "output": "mPk",
        }
    )
    boltzmann.compute()
    try:
        assert boltzmann.sigma8() == pytest.approx(cosmo.sigma8, rel=2e-4)
    finally:
        boltzmann.struct_cleanup()
    assert a_s != pytest.approx(REFERENCE_A_S, rel=0.01)


def test_a_given_a_s_wins_and_the_formula_is_close(tmp_path):
    given = RunConfig(
        **{**PLANCK15, "code": {"engine": "concept", "options": {"A_s": 2.2e-9}}}
    )
    assert _written_amplitude(given, tmp_path) == 2.2e-9
    assert "# A_s from code.options.A_s" in parameter_file(given)
    cosmo = RunConfig(**PLANCK15).cosmology
    formula = primordial_amplitude(cosmo, codes=False)
    assert formula.source == "formula"
    # E&H's T(k) gives a sigma8 0.8% above CLASS's at the same A_s
    assert formula.A_s == pytest.approx(2.066e-9, rel=0.03)


def test_engines_choose_their_codes_thread_variables(monkeypatch):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # what dask's nanny gives every worker
    config = RunConfig(resources={"cores": 3})
    pm = code_environment(PMEngine(), config)
    assert [pm[v] for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")] == ["3", "3"]
    concept = code_environment(ConceptEngine(), config)
    assert "OMP_NUM_THREADS" not in concept and concept["OPENBLAS_NUM_THREADS"] == "1"
    assert code_environment(Gadget4Engine(), config)["OMP_NUM_THREADS"] == "1"
    assert pm["PATH"] == os.environ["PATH"]  # the rest is inherited


def test_concepts_process_runs_without_the_workers_omp_setting(tmp_path, monkeypatch):
    """The launched process's own environment, dumped by a wrapper script."""
    dump = tmp_path / "env.txt"
    wrapper = tmp_path / "concept"
    wrapper.write_text(f'#!/bin/sh\nenv > "{dump}"\nexec "{TEST_DOUBLE}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "8")
    run = create(
        {
            **FIXTURE_RUN,
            "code": {**FIXTURE_RUN["code"], "executable": str(wrapper)},
        },
        root=tmp_path / "runs",
    )
    run.dir.transition("queued")
    assert execute(run.path) == "completed"
    env = dict(
        line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line
    )
    assert "OMP_NUM_THREADS" not in env
    assert env["MKL_NUM_THREADS"] == "1"
    assert ConceptEngine().environment(run.config)["OMP_NUM_THREADS"] is None
