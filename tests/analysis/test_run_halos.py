"""``Run.halos``: the code's group catalogue where it wrote one, simlab's FOF
halos otherwise, so ``mass_function`` works for every engine's runs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from simlab.analysis.fof import find_halos
from simlab.analysis.halos import mass_function
from simlab.dispatch.task import execute
from simlab.errors import RunError
from simlab.io.gadget4_files import read_particles
from simlab.particles import particle_mass
from simlab.service.submission import create
from tests.conftest import data_path
from tests.engines.test_gadget4 import ngenic32_config, with_code

PM_RUN = {
    "cosmology": {"preset": "planck15"},
    "box": {"size": 64.0, "particles_per_side": 32},
    "ics": {"a_start": 0.02, "seed": 5},
    "outputs": {"scale_factors": [0.5, 1.0]},
    "gravity": {"steps": 20},
    "metadata": {"name": "halos"},
}


@pytest.fixture(scope="module")
def pm_run(tmp_path_factory):
    run = create(PM_RUN, root=tmp_path_factory.mktemp("halos"))
    run.dir.transition("queued")
    assert execute(run.path) == "completed", run.status
    return run


def test_a_pm_run_has_fof_halos_and_a_mass_function(pm_run):
    halos = pm_run.halos()
    assert halos.attrs["finder"].startswith("simlab.analysis.fof")
    assert halos.attrs["Time"] == pytest.approx(1.0)
    n = len(halos.GroupLen)
    assert n > 5, n  # z = 0 in 64 Mpc/h at 2 Mpc/h spacing: tens of halos
    assert int(halos.GroupLen.min()) >= 32
    mass = particle_mass(0.3089, 64.0, 32**3)
    np.testing.assert_allclose(halos.GroupMass, halos.GroupLen * mass, rtol=1e-6)
    # the same table as find_halos on the snapshot's particles
    particles = read_particles(pm_run.snapshots[-1])
    direct = find_halos(particles.positions, box_size=64.0)
    np.testing.assert_array_equal(halos.GroupLen, direct.GroupLen)
    dndlnm = mass_function(halos)
    assert int(dndlnm["count"].sum()) == n
    dlnm = np.log(dndlnm.mass_high / dndlnm.mass_low)
    assert float((dndlnm * dlnm).sum()) == pytest.approx(n / 64.0**3, rel=1e-6)
    assert dndlnm.attrs["a"] == pytest.approx(1.0)
    # earlier output, fewer halos; options pass through
    assert len(pm_run.halos(0).GroupLen) < n
    fewer = pm_run.halos(min_members=100)
    assert len(fewer.GroupLen) == int((halos.GroupLen >= 100).sum())
    with pytest.raises(RunError, match="wrote no group catalogue"):
        pm_run.halos(source="code")
    with pytest.raises(ValueError, match="source='fof'"):
        pm_run.halos(source="fof")


def test_a_gadget4_run_reads_its_own_catalogue_and_can_use_fof(tmp_path):
    config = with_code(ngenic32_config(), executable="/bin/true")
    run = create(config, root=tmp_path)
    fixture = data_path("gadget4-small/ngenic32/output")
    for name in ("snapdir_003", "groups_003"):
        shutil.copytree(fixture / name, run.path / "output" / name)
    own = run.halos()
    assert "finder" not in own.attrs  # Gadget4's FOF_SUBFIND catalogue
    assert own.attrs["Ngroups_Total"] == len(own.GroupLen) == 64
    ours = run.halos(source="simlab")
    assert ours.attrs["finder"].startswith("simlab.analysis.fof")
    # the same linking length: the same groups (tests/analysis/test_fof.py)
    np.testing.assert_array_equal(np.sort(ours.GroupLen), np.sort(own.GroupLen))


def test_a_concept_run_has_fof_halos(tmp_path):
    from simlab.io.concept import read_particles as read_concept
    from tests.engines.test_concept import FIXTURE_RUN

    run = create(FIXTURE_RUN, root=tmp_path)  # the replayed real CONCEPT run
    run.dir.transition("queued")
    assert execute(run.path) == "completed", run.status
    halos = run.halos()
    assert halos.attrs["finder"].startswith("simlab.analysis.fof")
    particles = read_concept(run.snapshots[-1])  # CONCEPT HDF5, Mpc → Mpc/h
    direct = find_halos(particles.positions, box_size=particles.box_size)
    np.testing.assert_array_equal(halos.GroupLen, direct.GroupLen)
    assert len(halos.GroupLen) > 5
    mass = particle_mass(0.3089, 64.0, 32**3)
    np.testing.assert_allclose(halos.GroupMass, halos.GroupLen * mass, rtol=1e-4)
    assert int(mass_function(halos)["count"].sum()) == len(halos.GroupLen)
