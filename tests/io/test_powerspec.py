"""Gadget4 power-spectrum files: parsed as written, and equal to simlab's own P(k)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from simlab import cosmology
from simlab.analysis.power import power_spectrum
from simlab.config import Cosmology
from simlab.io.powerspec import gadget4_k_bins, read_powerspec
from tests.conftest import data_path

#: (fixture run, output number) of every power-spectrum file in tests/data.
SPECTRA = [("ngenic32", i) for i in range(4)] + [("icfile16", i) for i in range(2)]


def _snapshot(run: str, number: int):
    out = data_path(f"gadget4-small/{run}/output")
    multi = out / f"snapdir_{number:03d}"
    return multi if multi.exists() else out / f"snapshot_{number:03d}.hdf5"


def _spectrum_path(run: str, number: int):
    return data_path(
        f"gadget4-small/{run}/output/powerspecs/powerspec_{number:03d}.txt"
    )


def test_blocks_and_header_as_the_readme_lists():
    path = _spectrum_path("ngenic32", 3)
    sizes = [read_powerspec(path, fold).sizes["k"] for fold in (1, 16, 256)]
    assert sizes == [733, 734, 509]
    pk = read_powerspec(path)
    assert pk.attrs["a"] == 1.0 and pk.attrs["n_mesh"] == 64
    assert pk.attrs["n_particles"] == 32768
    assert pk.attrs["shot_noise"] == pytest.approx(64.0**3 / 32768)
    assert pk.k.values[0] == pytest.approx(2 * np.pi / 64.0, rel=1e-5)
    assert np.all((pk.k_edges_low <= pk.k) & (pk.k < pk.k_edges_high))
    # Gadget4's shot-noise column is the shot noise as Δ² = 4π k³ P_shot / k_f³
    kf = 2 * np.pi / 64.0
    np.testing.assert_allclose(
        pk.delta2_shot, 4 * np.pi * pk.k**3 / kf**3 / 32768, rtol=2e-5
    )
    with pytest.raises(ValueError, match="fold must be one of"):
        read_powerspec(path, fold=4)


@pytest.mark.parametrize(("run", "number"), SPECTRA)
def test_growth_column_is_d1_over_da(run, number):
    pk = read_powerspec(_spectrum_path(run, number))
    cosmo = Cosmology(preset="planck15")
    expected = cosmology.growth_factor(1.0, cosmo) / cosmology.growth_factor(
        pk.attrs["a"], cosmo
    )
    assert pk.attrs["growth_to_today"] == pytest.approx(float(expected), rel=1e-4)


@pytest.mark.parametrize(("run", "number"), [("ngenic32", 3), ("icfile16", 1)])
def test_simlab_power_of_the_snapshot_equals_gadget4s(run, number):
    """Same mesh, CIC, window divided out, no shot-noise subtraction, same bins."""
    gadget = read_powerspec(_spectrum_path(run, number))
    with xr.open_dataset(_snapshot(run, number), engine="gadget4") as snap:
        assert snap.attrs["Time"] == pytest.approx(gadget.attrs["a"], rel=1e-5)
        ours = power_spectrum(
            snap,
            None,
            gadget.attrs["n_mesh"],
            scheme="cic",
            interlace=False,
            subtract_shot_noise=False,
            k_bins=gadget4_k_bins(gadget.attrs["box_size"], gadget.attrs["n_mesh"]),
        )
    common = np.intersect1d(gadget.k_edges_low, ours.k_edges_low)
    assert len(common) == gadget.sizes["k"] == ours.sizes["k"]
    g = gadget.swap_dims(k="k_edges_low").sel(k_edges_low=common)
    s = ours.swap_dims(k="k_edges_low").sel(k_edges_low=common)
    np.testing.assert_array_equal(g.n_modes, s.n_modes)
    np.testing.assert_allclose(g.k, s.k, rtol=1e-5)  # exp(<ln k>) vs <k>, %g
    ratio = s.values / g.values
    assert np.abs(ratio - 1).max() < 0.02  # the bound; measured: 6e-6
    assert ours.attrs["shot_noise"] == pytest.approx(gadget.attrs["shot_noise"])


def test_bad_file_is_named(tmp_path):
    bad = tmp_path / "powerspec_000.txt"
    bad.write_text("1\n5\n64\n64\n1\n0.1 1 1 6 1\n")
    with pytest.raises(ValueError, match=r"powerspec_000\.txt"):
        read_powerspec(bad)
