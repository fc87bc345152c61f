"""simlab.compare over a real PM run and the replayed CONCEPT fixture run."""

from __future__ import annotations

import numpy as np
import pytest

import simlab
from simlab import cosmology
from simlab.dispatch.task import execute
from simlab.errors import SimlabWarning
from simlab.io.concept import read_powerspec
from simlab.service.submission import create
from tests.engines.test_concept import FIXTURE_RUN

#: The fixture's box, particles, cosmology, start and outputs on the PM engine.
PM_RUN = {
    "cosmology": {"preset": "planck15"},
    "box": {"size": 64.0, "particles_per_side": 32},
    "ics": {"a_start": 0.02, "seed": 5},
    "outputs": {"scale_factors": [0.5, 1.0]},
    "gravity": {"mesh": 64, "steps": 20},
    "metadata": {"name": "pm32"},
}


def _finished(config: dict, root) -> simlab.Run:
    run = create(config, root=root)
    run.dir.transition("queued")
    assert execute(run.path) == "completed", run.status
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return _finished(PM_RUN, root), _finished(FIXTURE_RUN, root)


def test_compare_pm_and_concept(runs):
    pm, concept = runs
    with pytest.warns(SimlabWarning, match="do not start from the same particles"):
        ds, fig = simlab.compare({"PM": pm, "CONCEPT": concept}, reference="CONCEPT")
    assert dict(ds.sizes) == {"run": 2, "a": 2, "k": 32}
    assert list(ds.run.values) == ["PM", "CONCEPT"]
    assert list(ds.engine.values) == ["pm", "concept"]
    np.testing.assert_allclose(ds.a, [0.5, 1.0], rtol=1e-6)
    assert set(ds.ratio.dims) == {"run", "a", "k"}
    assert (ds.ratio.sel(run="CONCEPT") == 1.0).all()
    assert ds.attrs["same_ics"] == 0 and ds.attrs["n_mesh"] == 64
    # measured in CONCEPT's own bins, the CONCEPT run's P(k) is CONCEPT's file
    own = read_powerspec(
        concept.path / "output" / "powerspec_a=1.00", h=concept.config.cosmology.h
    )
    edges = np.append(own.k_edges_low, own.k_edges_high[-1])
    with pytest.warns(SimlabWarning):
        binned, _ = simlab.compare([pm, concept], reference="concept", k_bins=edges)
    assert binned.sizes["k"] == own.sizes["k"]
    mine = binned.power.sel(run="concept", a=1.0).to_numpy()
    assert np.max(np.abs(mine / own.to_numpy() - 1)) < 0.02
    # both codes grow sigma8 = 0.816 ICs: the same amplitude in the nonlinear
    # range (a unit slip, Mpc against Mpc/h, would shift it by h³ = 0.31)
    band = (ds.k > 0.3) & (ds.k < 1.5)
    median = float(ds.ratio.sel(run="PM", a=1.0).where(band).median())
    # PM and CONCEPT from different ICs: the ratio holds cosmic variance and the
    # codes' resolutions; the bound catches unit slips (x0.31 or x3.2)
    assert 0.7 < median < 1.7, median
    upper, lower = fig.axes
    assert len(upper.lines) == 4  # two runs at two times
    assert len(lower.lines) == 3  # PM at two times and the line at 1
    assert lower.get_ylabel() == "P / P_CONCEPT"


def test_compare_same_run_twice_has_no_warning_and_unit_ratio(runs, recwarn):
    pm, _ = runs
    ds, _ = simlab.compare({"a": pm, "b": pm.path})
    assert ds.attrs["same_ics"] == 1 and ds.attrs["reference"] == "a"
    np.testing.assert_array_equal(ds.ratio, 1.0)
    assert not [w for w in recwarn if issubclass(w.category, SimlabWarning)]


def test_compare_refuses_what_it_cannot_compare(runs, tmp_path):
    pm, concept = runs
    with pytest.raises(ValueError, match="at least two runs"):
        simlab.compare([pm])
    with pytest.raises(ValueError, match="reference='gadget4' is not one of"):
        simlab.compare([pm, concept], reference="gadget4")
    other = create(
        {**PM_RUN, "box": {"size": 32.0, "particles_per_side": 8}}, root=tmp_path
    )
    with pytest.raises(ValueError, match="boxes differ"):
        simlab.compare([pm, other])


def test_a_box_converted_from_mpc_still_aligns_every_k(runs, tmp_path, recwarn):
    """CONCEPT's box comes back from Mpc as 127.99999999999997 Mpc/h: every
    spectrum is measured in the config's box, so the k coordinates align (they
    did not: all NaN ratios below the particle Nyquist and xarray's join warning);
    a box that really differs is refused."""
    import shutil

    import h5py

    pm, _ = runs
    copy = tmp_path / pm.path.name
    shutil.copytree(pm.path, copy)
    snapshot = simlab.Run(copy).snapshots[-1]
    with h5py.File(snapshot, "r+") as f:
        f["Header"].attrs["BoxSize"] = np.nextafter(64.0, 0.0)
    ds, _ = simlab.compare({"PM": pm, "rounded": copy})
    assert ds.sizes["k"] == 32 and np.isfinite(ds.ratio).all()
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
    with h5py.File(snapshot, "r+") as f:
        f["Header"].attrs["BoxSize"] = 64.1
    with pytest.raises(ValueError, match=r"the snapshot.s box is 64\.1 Mpc/h"):
        simlab.compare({"PM": pm, "other": copy})


@pytest.fixture(scope="module")
def offset_run(tmp_path_factory):
    """PM_RUN's ICs with outputs off its times: 1% early, one unpairable, a = 1."""
    root = tmp_path_factory.mktemp("offset")
    outputs = {"scale_factors": [0.495, 0.7, 1.0]}
    return _finished({**PM_RUN, "outputs": outputs, "metadata": {"name": "off"}}, root)


def test_outputs_pair_at_the_nearest_time_and_report_the_offset(runs, offset_run):
    pm, _ = runs
    with pytest.warns(SimlabWarning) as caught:
        ds, fig = simlab.compare({"ref": pm, "off": offset_run})
    left_out = [str(w.message) for w in caught]
    assert left_out == [
        "off: output 1 (snapshot_001.hdf5, a=0.7) left out: ref (the reference) "
        "has no free output within 0.02 of a=0.7 in a"
    ]
    np.testing.assert_allclose(ds.a, [0.5, 1.0])
    np.testing.assert_allclose(ds.a_output.sel(run="off"), [0.495, 1.0])
    np.testing.assert_allclose(ds.offset.sel(run="off"), [-0.01, 0.0], atol=1e-12)
    np.testing.assert_array_equal(ds.offset.sel(run="ref"), 0.0)
    assert ds.attrs["same_ics"] == 1 and ds.attrs["rescaled"] == 0
    assert "off, a=0.495" in [line.get_label() for line in fig.axes[0].lines]
    # same particles, 1% earlier in a: the large scales lack (D(0.495)/D(0.5))²
    low = ds.k < 0.2
    growth = (
        cosmology.growth_factor(0.495, pm.config.cosmology)
        / cosmology.growth_factor(0.5, pm.config.cosmology)
    ) ** 2
    early = ds.ratio.sel(run="off", a=0.5).where(low, drop=True)
    np.testing.assert_allclose(early, growth, rtol=0.004)
    assert growth < 0.985


def test_rescale_brings_paired_outputs_to_the_reference_time(runs, offset_run):
    pm, _ = runs
    with pytest.warns(SimlabWarning, match="off: output 1"):
        ds, _ = simlab.compare({"ref": pm, "off": offset_run}, rescale=True)
    factor = float(ds.growth_rescale.sel(run="off", a=0.5))
    expected = (
        cosmology.growth_factor(0.5, pm.config.cosmology)
        / cosmology.growth_factor(0.495, pm.config.cosmology)
    ) ** 2
    assert factor == pytest.approx(float(expected), rel=1e-12)
    assert ds.attrs["rescaled"] == 1
    np.testing.assert_array_equal(ds.growth_rescale.sel(run="ref"), 1.0)
    low = ds.ratio.sel(run="off", a=0.5).where(ds.k < 0.2, drop=True)
    np.testing.assert_allclose(low, 1.0, atol=0.004)


def test_a_tighter_tolerance_leaves_more_out_and_says_which(runs, offset_run):
    pm, _ = runs
    with pytest.warns(SimlabWarning) as caught:
        ds, _ = simlab.compare([pm, offset_run], a_tolerance=0.005)
    np.testing.assert_allclose(ds.a, [1.0])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3, messages
    assert messages[0].startswith("pm: output 0 (snapshot_000.hdf5, a=0.5) left out")
    assert "pm-2 has no output within 0.005" in messages[0]
    assert messages[1].startswith("pm-2: output 0 (snapshot_000.hdf5, a=0.495)")
    assert messages[2].startswith("pm-2: output 1 (snapshot_001.hdf5, a=0.7)")
    with pytest.raises(ValueError, match=r"a_tolerance=1\.5"):
        simlab.compare([pm, offset_run], a_tolerance=1.5)
