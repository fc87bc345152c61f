"""Quick-look figures: the projected image's values, labels, ratio panel, PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from simlab import plot

BOX = 100.0


def particles_in_left_half(n: int = 50000, seed: int = 0) -> np.ndarray:
    """Particles with x in [0, L/2) and z in [0, 20), plus decoys at z ≥ 50."""
    rng = np.random.default_rng(seed)
    inside = rng.uniform(0.0, 1.0, size=(n, 3)) * [BOX / 2, BOX, 20.0]
    decoys = rng.uniform(0.0, 1.0, size=(n, 3)) * [BOX / 2, BOX, 50.0] + [
        BOX / 2,
        0.0,
        50.0,
    ]
    return np.concatenate([inside, decoys])


def spectrum(scale: float, label: str | None = None) -> xr.DataArray:
    k = np.geomspace(0.02, 1.0, 20)
    attrs = {"label": label} if label else {}
    return xr.DataArray(
        scale * 2e4 * k**-1.5, dims="k", coords={"k": k}, name="power", attrs=attrs
    )


def assert_png_is_a_picture(fig: Figure, path: Path) -> None:
    fig.savefig(path)
    assert path.exists()
    assert path.stat().st_size > 5000
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.05


def test_projection_image_shows_only_the_slab_and_its_half() -> None:
    n = 32
    image = plot.projection_image(
        particles_in_left_half(), BOX, slab=(0.0, 20.0), n_pixels=n, log=False
    )
    assert image.shape == (n, n)
    assert image.mean() == pytest.approx(1.0, rel=1e-12)
    # columns are x: the left half holds all the mass, at twice the mean
    left, right = image[:, 1 : n // 2 - 1], image[:, n // 2 + 1 :]
    assert left.mean() == pytest.approx(2.0, rel=0.05)
    assert left.min() > 1.0
    assert np.abs(right).max() < 1e-12


def test_projection_image_in_log_marks_empty_pixels() -> None:
    n = 32
    image = plot.projection_image(
        particles_in_left_half(), BOX, slab=(0.0, 20.0), n_pixels=n
    )
    assert np.isnan(image[:, n // 2 + 1 :]).all()
    assert np.nanmean(image[:, 1 : n // 2 - 1]) == pytest.approx(np.log10(2), abs=0.03)


def test_projection_along_x_maps_y_to_columns() -> None:
    x = np.array([[5.0, 10.0, 70.0]])
    image = plot.projection_image(x, BOX, axis="x", n_pixels=10, log=False)
    assert image[7, 1] == pytest.approx(100.0)
    assert np.count_nonzero(image) == 1


def test_projection_rejects_bad_axis_slab_and_empty_slabs() -> None:
    x = particles_in_left_half(100)
    with pytest.raises(ValueError, match="axis='w'"):
        plot.projection_image(x, BOX, axis="w")
    with pytest.raises(ValueError, match="low < high"):
        plot.projection_image(x, BOX, slab=(30.0, 10.0))
    with pytest.raises(ValueError, match="holds no particles"):
        plot.projection_image(x, BOX, slab=(30.0, 40.0))


def test_projection_figure_has_labelled_axes_and_a_colour_bar(tmp_path: Path) -> None:
    snapshot = xr.Dataset(
        {"Coordinates": (("particle", "axis"), particles_in_left_half())},
        attrs={"BoxSize": BOX},
    )
    fig = plot.projection(snapshot, slab=(0.0, 20.0), n_pixels=64)
    assert isinstance(fig, Figure)
    image_axes, bar_axes = fig.axes
    assert "Mpc/h" in image_axes.get_xlabel()
    assert image_axes.get_xlabel().startswith("x")
    assert "Mpc/h" in image_axes.get_ylabel()
    assert image_axes.get_title()
    assert "δ" in bar_axes.get_ylabel()
    shown = image_axes.images[0].get_array()
    np.testing.assert_array_equal(
        np.ma.filled(shown, np.nan),
        plot.projection_image(snapshot, slab=(0.0, 20.0), n_pixels=64),
    )
    assert_png_is_a_picture(fig, tmp_path / "projection.png")


def test_projection_draws_into_given_axes() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.projection(particles_in_left_half(500), BOX, ax=ax) is fig
    assert ax.images


def test_power_spectrum_ratio_of_the_reference_is_exactly_one(tmp_path: Path) -> None:
    spectra = {"fiducial": spectrum(1.0), "more power": spectrum(1.2)}
    fig = plot.power_spectrum(spectra, reference="fiducial")
    main, lower = fig.axes
    assert main.get_xscale() == "log" and main.get_yscale() == "log"
    assert "Mpc/h" in main.get_ylabel()
    assert "h/Mpc" in lower.get_xlabel()
    ratios = {line.get_label(): line.get_ydata() for line in lower.lines}
    assert np.all(ratios["fiducial"] == 1.0)
    np.testing.assert_allclose(ratios["more power"], 1.2, rtol=1e-12)
    assert_png_is_a_picture(fig, tmp_path / "pk.png")


def test_power_spectrum_against_linear_theory() -> None:
    measured = spectrum(1.0, label="run")
    k_lin = np.geomspace(0.01, 2.0, 200)
    fig = plot.power_spectrum([measured], linear=(k_lin, 2e4 * k_lin**-1.5))
    main, lower = fig.axes
    labels = [line.get_label() for line in main.lines]
    assert labels == ["run", "linear theory"]
    assert main.lines[1].get_linestyle() == "--"
    np.testing.assert_allclose(lower.lines[0].get_ydata(), 1.0, rtol=1e-10)
    assert "linear" in lower.get_ylabel()


def test_power_spectrum_alone_has_one_panel() -> None:
    fig = plot.power_spectrum(spectrum(1.0))
    (main,) = fig.axes
    assert "h/Mpc" in main.get_xlabel()
    assert main.get_legend().get_texts()[0].get_text() == "power 0"


def test_power_spectrum_rejects_an_unknown_reference() -> None:
    with pytest.raises(ValueError, match="reference='other'"):
        plot.power_spectrum({"run": spectrum(1.0)}, reference="other")


def test_power_spectrum_draws_into_given_axes() -> None:
    fig = Figure()
    upper, lower = fig.subplots(2, 1)
    spectra = [spectrum(1.0, "a"), spectrum(2.0, "b")]
    assert plot.power_spectrum(spectra, reference="a", ax=(upper, lower)) is fig
    assert len(upper.lines) == 2
    with pytest.raises(ValueError, match="two Axes"):
        plot.power_spectrum(spectra, reference="a", ax=upper)
