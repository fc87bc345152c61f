"""InteractiveViewer (ipympl): zoom recomputes the view, axis and slab controls,
the linked P(k) panel, and the static fallback without ipympl."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from simlab import plot
from simlab.dispatch.task import execute
from simlab.io.gadget4_files import write_snapshot
from simlab.particles import ParticleSet, particle_mass
from simlab.service.submission import create
from simlab.testing import fake_gadget4_snapshot
from simlab.widgets.interactive import NO_IPYMPL, InteractiveViewer, explore
from simlab.widgets.viewer import SnapshotViewer

pytest.importorskip("ipympl")

BOX = 100.0


@pytest.fixture(scope="module")
def corner(tmp_path_factory):
    """20,000 particles, all in the corner [0, 10)³ of a 100 Mpc/h box."""
    rng = np.random.default_rng(3)
    n = 20000
    particles = ParticleSet(
        positions=rng.uniform(0.0, 10.0, (n, 3)),
        velocities=np.zeros((n, 3)),
        ids=np.arange(1, n + 1, dtype=np.uint32),
        mass=particle_mass(0.3, BOX, n),
        box_size=BOX,
        a=1.0,
    )
    path = tmp_path_factory.mktemp("corner") / "snapshot_000.hdf5"
    write_snapshot(path, particles)
    return path, particles.positions


@pytest.fixture(scope="module")
def run16(tmp_path_factory):
    """A completed 16³ PM run with outputs at z = 1 and z = 0."""
    config = {
        "box": {"size": 128.0, "particles_per_side": 16},
        "gravity": {"steps": 6},
        "outputs": {"redshifts": [1.0, 0.0]},
        "metadata": {"name": "explore16"},
    }
    run = create(config, root=tmp_path_factory.mktemp("runs"))
    run.dir.transition("queued")
    assert execute(run.path) == "completed", run.logs()
    return run


def test_zoom_redraws_the_view_from_its_particles(corner):
    path, positions = corner
    viewer = InteractiveViewer(path)
    whole = viewer.image_array
    # the whole box: the particles fill a corner, most pixels are empty
    assert np.isfinite(whole).mean() < 0.2
    n_pixels = viewer.resolution.value
    viewer.zoom((0.0, 10.0), (0.0, 10.0))
    ax = viewer.figure.axes[0]
    assert viewer.extent == (0.0, 10.0, 0.0, 10.0)
    assert ax.images[0].get_extent() == [0.0, 10.0, 0.0, 10.0]
    assert ax.get_xlim() == (0.0, 10.0) and ax.get_ylim() == (0.0, 10.0)
    assert "view x 0–10, y 0–10 Mpc/h" in viewer.info.value
    image = viewer.image_array
    # full resolution over the view, every pixel holds mass: recomputed from
    # the particles there, not the whole map's few corner pixels enlarged
    assert image.shape == (n_pixels, n_pixels)
    assert np.isfinite(image).all()
    assert len(np.unique(image)) > n_pixels**2 / 2
    expected, _ = plot.projection_map(
        positions,
        BOX,
        axis="z",
        slab=viewer.slab(),
        xlim=(0.0, 10.0),
        ylim=(0.0, 10.0),
        n_pixels=n_pixels,
    )
    np.testing.assert_allclose(image, expected, rtol=1e-5)
    assert ax.images[0].get_array().shape == image.shape
    viewer.reset()
    assert viewer.extent[1] - viewer.extent[0] == pytest.approx(BOX)
    np.testing.assert_array_equal(viewer.image_array, whole)


def test_toolbar_zoom_redraws_once_on_release(corner):
    path, _ = corner
    viewer = InteractiveViewer(path)
    canvas = viewer.canvas
    canvas.draw()
    ax = viewer.figure.axes[0]
    renders = []
    render = viewer.render
    viewer.render = lambda: (renders.append(1), render())
    height = canvas.get_renderer().height

    def mouse(kind: str, x: float, y: float) -> None:
        """A mouse message as ipympl's browser side sends it (y from the top)."""
        content = {
            "type": kind,
            "x": x,
            "y": height - y,
            "button": 0,
            "buttons": 0 if kind == "button_release" else 1,
            "modifiers": [],
            "guiEvent": {},
        }
        canvas._handle_message(canvas, content, [])

    canvas._handle_message(canvas, {"type": "toolbar_button", "name": "zoom"}, [])
    start = ax.transData.transform((1.0, 1.0))
    end = ax.transData.transform((9.0, 9.0))
    mouse("button_press", *start)
    mouse("motion_notify", *(start + end) / 2)
    mouse("motion_notify", *end)
    assert renders == []  # nothing is recomputed while dragging
    mouse("button_release", *end)
    assert renders == [1]
    left, right, bottom, top = viewer.extent
    assert left == pytest.approx(1.0, abs=0.5) and right == pytest.approx(9.0, abs=0.5)
    assert bottom == pytest.approx(1.0, abs=0.5) and top == pytest.approx(9.0, abs=0.5)
    assert np.isfinite(viewer.image_array).all()
    # the toolbar's Home goes back to the whole box, again in one redraw
    canvas._handle_message(canvas, {"type": "toolbar_button", "name": "home"}, [])
    assert renders == [1, 1]
    assert viewer.extent[1] - viewer.extent[0] > 0.9 * BOX


def test_axis_and_slab_change_the_image(tmp_path):
    path = fake_gadget4_snapshot(tmp_path, npart=16**3, box_size=BOX)
    viewer = InteractiveViewer(path)
    viewer.thickness.value = 20.0
    before = viewer.image_array.copy()
    viewer.centre.value = 20.0
    assert viewer.slab() == (10.0, 30.0)
    assert "10 ≤ z < 30" in viewer.figure.axes[0].get_title()
    moved = viewer.image_array.copy()
    assert not np.array_equal(before, moved, equal_nan=True)
    viewer.zoom((0.0, 50.0), (0.0, 50.0))
    viewer.axis.value = "x"  # a new axis shows the whole box again
    assert viewer.view is None
    assert viewer.figure.axes[0].get_xlabel() == "y [Mpc/h]"
    assert viewer.figure.axes[0].get_ylabel() == "z [Mpc/h]"
    assert not np.array_equal(moved, viewer.image_array, equal_nan=True)
    viewer.resolution.value = 64
    assert viewer.image_array.shape == (64, 64)


def test_power_panel_shows_the_runs_spectrum_and_the_maps_scales(run16):
    viewer = InteractiveViewer(run16, index=0)
    assert "z = 1.00" in viewer.snapshot_label.value
    upper = viewer.power_figure.axes[0]
    labels = [line.get_label() for line in upper.lines]
    assert labels[:2] == ["explore16", "linear theory"]
    k, drawn = upper.lines[0].get_data()
    spectrum = run16.power_spectrum(0)
    measured = spectrum.sel(k=k)
    np.testing.assert_allclose(drawn, measured.to_numpy(), rtol=1e-6)
    # the band of scales the map shows, from the view's size to its pixels
    low, high = viewer.scales()
    assert low == pytest.approx(2 * np.pi / 128.0, rel=0.02)
    marks = [line.get_xdata()[0] for line in viewer._band]
    assert marks == pytest.approx([low, high])
    viewer.zoom((0.0, 16.0), (0.0, 16.0))
    zoomed_low, zoomed_high = viewer.scales()
    assert zoomed_low == pytest.approx(8 * low, rel=0.02)
    assert zoomed_high == pytest.approx(8 * high, rel=0.02)
    marks = [line.get_xdata()[0] for line in viewer._band]
    assert marks == pytest.approx([zoomed_low, zoomed_high])
    assert sum(line in viewer._band for line in upper.lines) == 2  # moved, not added
    viewer.snapshot.value = 1  # the z = 0 spectrum replaces the panel
    k, drawn = viewer.power_figure.axes[0].lines[0].get_data()
    np.testing.assert_allclose(drawn, run16.power_spectrum(1).sel(k=k).to_numpy())
    assert viewer.panels.children == (viewer.canvas, viewer.power_canvas)


def test_without_ipympl_the_static_viewer_says_why(tmp_path, monkeypatch):
    path = fake_gadget4_snapshot(tmp_path, npart=4096, box_size=50.0)
    monkeypatch.setitem(sys.modules, "ipympl", None)
    monkeypatch.setitem(sys.modules, "ipympl.backend_nbagg", None)
    with pytest.raises(ImportError, match="ipympl"):
        InteractiveViewer(path)
    viewer = explore(path)
    assert isinstance(viewer, SnapshotViewer)
    assert "ipympl" in viewer.notice.value and "\n" not in NO_IPYMPL
    assert bytes(viewer.image.value).startswith(b"\x89PNG")


def test_monitor_opens_the_interactive_viewer(run16):
    from simlab.widgets.monitor import RunMonitor

    monitor = RunMonitor(run16)
    viewer = monitor.open_snapshot(1)
    assert isinstance(viewer, InteractiveViewer)
    assert monitor.viewer_area.children == (viewer,)
    monitor.stop()


def test_figures_follow_the_lab_theme(corner):
    import dask.config
    from matplotlib.colors import to_rgb

    with dask.config.set({"simlab.plot-theme": "dark"}):
        viewer = InteractiveViewer(corner[0])
    for figure in (viewer.figure, viewer.power_figure):
        assert sum(to_rgb(figure.get_facecolor())) < 0.5  # dark background
        assert sum(to_rgb(figure.axes[0].xaxis.label.get_color())) > 2.5
