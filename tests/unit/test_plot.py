"""Quick-look figures: what is drawn (pixels, colour floor, k range, shot noise,
tick labels), the labels, the ratio panel and the PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from simlab import plot
from simlab.analysis.projection import local_density

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
        particles_in_left_half(),
        BOX,
        slab=(0.0, 20.0),
        n_pixels=n,
        log=False,
        smoothing=None,
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
        particles_in_left_half(), BOX, slab=(0.0, 20.0), n_pixels=n, smoothing=None
    )
    assert np.isnan(image[:, n // 2 + 1 :]).all()
    assert np.nanmean(image[:, 1 : n // 2 - 1]) == pytest.approx(np.log10(2), abs=0.03)


def test_projection_along_x_maps_y_to_columns() -> None:
    x = np.array([[5.0, 10.0, 70.0]])
    image = plot.projection_image(
        x, BOX, axis="x", n_pixels=10, log=False, smoothing=None
    )
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


# --- what the figures draw -------------------------------------------------


def lattice(n_side: int = 32, box: float = BOX) -> np.ndarray:
    """A uniform density: particles at the centres of an n_side³ grid."""
    g = (np.arange(n_side) + 0.5) * (box / n_side)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


def colour_positions(fig: Figure) -> np.ndarray:
    """Each pixel's place on the colour scale, 0 at the floor (masked: -1)."""
    shown = fig.axes[0].images[0]
    values = shown.norm(shown.get_array())
    return np.ma.filled(values, -1.0)


@pytest.mark.parametrize("pixels", [64, 128, 256])  # 2, 4, 8 pixels per spacing
def test_uniform_density_has_no_pixel_at_the_colour_floor(pixels):
    fig = plot.projection(lattice(), BOX, slab=(0.0, 25.0), n_pixels=pixels)
    colours = colour_positions(fig)
    assert colours.min() > 0.3  # bare CIC left lattice gaps here, empty pixels
    assert colours.max() < 0.7  # and 1 + δ = 1 sits mid-scale, not saturated
    image = plot.projection_image(
        lattice(), BOX, slab=(0.0, 25.0), n_pixels=pixels, log=False
    )
    assert image.mean() == pytest.approx(1.0)
    assert image.std() < 0.05  # the lattice's own pattern is smoothed away


def test_bare_assignment_leaves_lattice_gaps_that_smoothing_fills():
    bare = plot.projection(
        lattice(), BOX, slab=(0.0, 25.0), n_pixels=128, smoothing=None
    )
    assert np.mean(colour_positions(bare) <= 0) > 0.5  # empty columns between rows
    for smoothing in ("adaptive", "spacing", 1.0):
        fig = plot.projection(
            lattice(), BOX, slab=(0.0, 25.0), n_pixels=128, smoothing=smoothing
        )
        assert colour_positions(fig).min() > 0


def test_adaptive_smoothing_keeps_clumps_sharp_and_fills_voids():
    """A dense clump stays a few pixels wide; the sparse background has no holes."""
    rng = np.random.default_rng(4)
    background = rng.uniform(0.0, BOX, size=(20000, 3))
    clump = rng.normal([30.0, 60.0, 10.0], 0.2, size=(5000, 3))
    x = np.concatenate([background, clump])
    n = 128  # pixel 0.78 Mpc/h, mean spacing 3.4 Mpc/h
    adaptive = plot.projection_image(x, BOX, slab=(0.0, 20.0), n_pixels=n)
    fixed = plot.projection_image(
        x, BOX, slab=(0.0, 20.0), n_pixels=n, smoothing="spacing"
    )
    assert np.isfinite(adaptive).all() and np.isfinite(fixed).all()
    row, column = np.unravel_index(np.argmax(adaptive), adaptive.shape)
    assert abs(column - 30.0 / BOX * n) <= 1 and abs(row - 60.0 / BOX * n) <= 1
    assert adaptive.max() > fixed.max() + 1.0  # 10× higher peak than σ = d/2
    # the mass is where the particles are: the clump's share within 2 Mpc/h
    linear = 10**adaptive
    box = linear[row - 3 : row + 4, column - 3 : column + 4].sum() / linear.sum()
    assert box == pytest.approx(5000 / (5000 + 20000 * 0.2), rel=0.05)


def test_projection_smoothing_rejects_unknown_values():
    with pytest.raises(ValueError, match="smoothing='gauss'"):
        plot.projection_image(lattice(8), BOX, smoothing="gauss")
    with pytest.raises(ValueError, match=">= 0"):
        plot.projection_image(lattice(8), BOX, smoothing=-1.0)


def measured(n_side: int = 32, scale: float = 1.0) -> xr.DataArray:
    """A spectrum as simlab measures one: mesh 2 N^(1/3), shot noise included."""
    box = BOX
    n_mesh = 2 * n_side
    k = (np.arange(1, n_mesh // 2 + 1)) * 2 * np.pi / box
    shot = box**3 / n_side**3
    signal = scale * 2e4 * k**-1.5
    return xr.DataArray(
        signal + shot,
        dims="k",
        coords={"k": k},
        name="power",
        attrs={
            "box_size": box,
            "n_mesh": n_mesh,
            "n_particles": n_side**3,
            "shot_noise": shot,
            "shot_noise_subtracted": 0,
            "a": 1.0,
        },
    )


def test_power_spectrum_stops_at_the_particle_nyquist_and_shades_shot_noise():
    # as a lattice-started run at early times: below L³/N at high k
    start = measured(scale=1e-3)
    pk = start.copy(data=start.values - start.attrs["shot_noise"])
    fig = plot.power_spectrum({"run": pk})
    main = fig.axes[0]
    k, drawn = main.lines[0].get_data()
    k_nyquist = np.pi * 32 / BOX
    assert k.max() <= k_nyquist < pk.k.values.max() / 1.9  # the mesh reaches 2×
    assert plot.particle_nyquist(pk) == pytest.approx(k_nyquist)
    np.testing.assert_array_equal(drawn, pk.sel(k=k).values)  # not rescaled
    (band,) = main.patches  # the power below the shot noise is shaded
    assert band.get_label() == "below shot noise"
    top = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]
    assert top.max() == pytest.approx(pk.attrs["shot_noise"])
    assert main.get_ylim()[0] == pytest.approx(top.min())
    # every bin, as given, alone
    raw = plot.power_spectrum({"run": pk}, k_max=None, shot_noise="keep")
    k_raw, p_raw = raw.axes[0].lines[0].get_data()
    np.testing.assert_array_equal(k_raw, pk.k.values)
    np.testing.assert_array_equal(p_raw, pk.values)
    assert not raw.axes[0].patches
    # far above the shot noise there is nothing to shade
    assert not plot.power_spectrum(measured()).axes[0].patches


def test_power_spectrum_subtracts_shot_noise_on_request():
    pk = measured()
    fig = plot.power_spectrum({"run": pk}, shot_noise="subtract")
    k, drawn = fig.axes[0].lines[0].get_data()
    assert k.max() <= np.pi * 32 / BOX
    expected = pk.sel(k=k).values - pk.attrs["shot_noise"]
    finite = np.isfinite(drawn)
    assert finite.sum() > len(k) // 2
    np.testing.assert_allclose(drawn[finite], expected[finite])
    assert "shot noise" in fig.axes[0].get_ylabel()


def test_power_spectrum_leaves_out_bins_below_the_shot_noise():
    """The noise criterion: a drawn bin holds at least the shot noise in signal."""
    pk = measured()
    shot = pk.attrs["shot_noise"]
    noisy = pk.copy(data=np.where(pk.k > 0.5, shot * 1.3, pk.values))
    fig = plot.power_spectrum({"noisy": noisy}, shot_noise="subtract")
    k, drawn = fig.axes[0].lines[0].get_data()
    finite = np.isfinite(drawn)
    assert np.all(drawn[finite] >= shot)
    assert not finite[k > 0.5].any() and finite[k <= 0.5].all()


def test_power_spectrum_already_subtracted_is_not_subtracted_twice():
    pk = measured()
    done = pk - pk.attrs["shot_noise"]
    done.attrs = {**pk.attrs, "shot_noise_subtracted": 1}
    fig = plot.power_spectrum(done, shot_noise="subtract")
    _, drawn = fig.axes[0].lines[0].get_data()
    np.testing.assert_allclose(drawn, done.values[: len(drawn)])


def test_power_spectrum_against_each_spectrum_own_linear_theory():
    from simlab import cosmology
    from simlab.config import Cosmology

    cosmo = Cosmology(preset="planck15")
    early, late = measured(), measured()
    early.attrs["a"] = 0.25
    fig = plot.power_spectrum({"z=3": early, "z=0": late}, cosmology=cosmo)
    main, lower = fig.axes
    labels = [line.get_label() for line in main.lines]
    assert labels == ["z=3", "z=0", "linear, z=3", "linear, z=0"]
    k, p_lin = main.lines[2].get_data()
    np.testing.assert_allclose(p_lin, cosmology.linear_power(k, cosmo, a=0.25))
    assert main.lines[2].get_color() == main.lines[0].get_color()
    k_ratio, ratio = lower.lines[0].get_data()
    expected = early.sel(k=k_ratio) / cosmology.linear_power(k_ratio, cosmo, a=0.25)
    np.testing.assert_allclose(ratio, expected.values, rtol=1e-10)
    with pytest.raises(ValueError, match="not both"):
        plot.power_spectrum(late, cosmology=cosmo, linear=(k, p_lin))


def visible_tick_labels(axis) -> list:
    low, high = sorted(axis.get_view_interval())
    labels = []
    for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
        for tick in ticks:
            text = tick.label1
            inside = low * (1 - 1e-9) <= tick.get_loc() <= high * (1 + 1e-9)
            if inside and text.get_visible() and text.get_text():
                labels.append(text)
    return labels


def assert_no_overlap(fig: Figure, axis) -> int:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in visible_tick_labels(axis)]
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second), (first, second)
    return len(boxes)


@pytest.mark.parametrize(
    ("k_low", "k_high", "width"),
    [(0.05, 1.6, 6.0), (0.02, 0.8, 3.0), (0.2, 0.9, 6.0), (0.001, 30.0, 4.0)],
)
def test_log_k_tick_labels_never_overlap(k_low, k_high, width):
    k = np.geomspace(k_low, k_high, 40)
    pk = xr.DataArray(2e4 * k**-1.5, dims="k", coords={"k": k})
    fig = plot.power_spectrum({"a": pk, "b": pk * 1.1}, reference="a")
    fig.set_size_inches(width, 5.0)
    main, lower = fig.axes
    assert assert_no_overlap(fig, lower.xaxis) >= 2  # at least two labels
    assert_no_overlap(fig, main.yaxis)
    # any log axis: log_ticks on a figure of the caller's
    plain = Figure(figsize=(width, 3.0))
    ax = plain.add_subplot()
    ax.loglog(k, pk)
    plot.log_ticks(ax.xaxis)
    assert_no_overlap(plain, ax.xaxis)


def test_projection_of_a_real_gadget4_snapshot_has_no_empty_pixel():
    from tests.conftest import data_path

    path = data_path("gadget4-small/ngenic32/output/snapdir_003")
    ds = xr.open_dataset(path, engine="gadget4", group="PartType1")
    bare = plot.projection_image(ds, slab=(0.0, 16.0), n_pixels=128, smoothing=None)
    smooth = plot.projection(ds, slab=(0.0, 16.0), n_pixels=128)
    assert np.isnan(bare).mean() > 0.2  # 4 pixels per spacing: many empty
    assert colour_positions(smooth).min() > 0


def test_projection_map_of_the_whole_box_is_projection_image() -> None:
    x = np.random.default_rng(2).uniform(0.0, 64.0, size=(32**3, 3))
    whole = plot.projection_image(x, 64.0, n_pixels=64, log=False)
    image, extent = plot.projection_map(x, 64.0, n_pixels=64, log=False)
    assert extent == (-0.5, 63.5, -0.5, 63.5)
    np.testing.assert_array_equal(image, whole)
    # the same view asked for by its limits goes through the periodic path
    same, extent = plot.projection_map(
        x, 64.0, xlim=(-0.5, 63.5), ylim=(-0.5, 63.5), n_pixels=64, log=False
    )
    assert extent == (-0.5, 63.5, -0.5, 63.5)
    np.testing.assert_allclose(same, whole, atol=1e-9)


def test_projection_map_of_a_view_is_recomputed_from_its_particles() -> None:
    x = np.random.default_rng(2).uniform(0.0, 64.0, size=(32**3, 3))
    density = local_density(x, 64.0)
    whole = plot.projection_image(x, 64.0, n_pixels=64, log=False)
    # a quarter at the whole map's pixel size: the same pixels, from a padded mesh
    quarter, extent = plot.projection_map(
        x,
        64.0,
        xlim=(-0.5, 31.5),
        ylim=(-0.5, 31.5),
        n_pixels=32,
        log=False,
        density=density,
    )
    assert extent == (-0.5, 31.5, -0.5, 31.5)
    np.testing.assert_allclose(quarter, whole[:32, :32], atol=1e-6)
    # zoomed 8 times with as many pixels: 8 times finer, still 1 + δ of the slab
    zoomed, extent = plot.projection_map(
        x, 64.0, xlim=(8.0, 16.0), ylim=(8.0, 12.0), n_pixels=64, log=False
    )
    assert zoomed.shape == (32, 64) and extent == (8.0, 16.0, 8.0, 12.0)
    assert 0.8 < zoomed.mean() < 1.2 and zoomed.min() > 0
    # a view across the box edge sees the periodic images
    across, _ = plot.projection_map(
        x, 64.0, xlim=(-8.0, 8.0), ylim=(0.0, 16.0), n_pixels=32, log=False
    )
    assert across.min() > 0
    with pytest.raises(ValueError, match="xlim"):
        plot.projection_map(x, 64.0, xlim=(5.0, 1.0))
