"""SnapshotViewer on a real 32³ run of the embedded engine: images and spectra."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from simlab.dispatch.task import execute
from simlab.service.submission import create
from simlab.testing import fake_gadget4_snapshot
from simlab.widgets.interactive import InteractiveViewer
from simlab.widgets.table import RunTable
from simlab.widgets.viewer import SnapshotViewer, default_view

CONFIG = {
    "box": {"size": 256.0, "particles_per_side": 32},
    "gravity": {"steps": 10},
    "outputs": {"redshifts": [3.0, 0.0]},
    "metadata": {"name": "viewer32", "tags": ["viewer"]},
}


@pytest.fixture(scope="module")
def run32(tmp_path_factory):
    """A completed 32³ PM run with outputs at z = 3 and z = 0."""
    run = create(CONFIG, root=tmp_path_factory.mktemp("runs"))
    run.dir.transition("queued")
    assert execute(run.path) == "completed", run.logs()
    return run


def _png(data) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB"))


def test_projection_image_of_a_32_cubed_snapshot(run32):
    viewer = SnapshotViewer(run32)
    assert viewer.snapshot.max == 1 and viewer.snapshot.value == 1
    pixels = _png(viewer.image.value)
    assert pixels.shape == (400, 480, 3)  # 6 x 5 inches at 80 dpi
    assert pixels.std() > 20  # a map, not a blank canvas
    assert viewer.image_array.shape == (128, 128)  # 4 pixels per particle spacing
    assert viewer.thickness.value == 256.0  # 32³ particles: the whole box
    finite = viewer.image_array[np.isfinite(viewer.image_array)]
    assert finite.std() > 0.1
    viewer.resolution.value = 64
    assert viewer.image_array.shape == (64, 64)
    before = viewer.image_array.copy()
    viewer.axis.value = "x"
    assert not np.array_equal(before, viewer.image_array, equal_nan=True)
    assert viewer.figure.axes[0].get_xlabel() == "y [Mpc/h]"


def test_power_panel_draws_runs_linear_theory_and_ratios(run32):
    viewer = SnapshotViewer(run32, index=0)
    assert "z = 3.00" in viewer.snapshot_label.value
    upper = viewer.power_figure.axes[0]
    labels = [line.get_label() for line in upper.lines]
    assert labels == ["viewer32", "linear theory"]
    k, measured = upper.lines[0].get_data()
    _, linear = upper.lines[1].get_data()
    # at z = 3 the 256 Mpc/h box is linear up to k = 0.2 h/Mpc: the run follows
    # the linear curve drawn for that time, up to cosmic variance
    assert 0.85 < np.median((measured / linear)[k < 0.2]) < 1.2
    first = bytes(viewer.power_image.value)
    viewer.thickness.value = 100.0  # slab controls do not redraw P(k)
    assert bytes(viewer.power_image.value) == first
    viewer.snapshot.value = 1
    _, linear_z0 = viewer.power_figure.axes[0].lines[1].get_data()
    assert np.all(linear_z0 > 5 * linear)  # D(0)² / D(3)² ≈ 10
    both = SnapshotViewer(run32, run32.path)
    assert len(both.power_figure.axes) == 2
    assert both.power_figure.axes[1].get_ylabel() == "P / P_viewer32"
    np.testing.assert_allclose(both.power_figure.axes[1].lines[1].get_ydata(), 1.0)


def test_a_lone_snapshot_file_without_cosmology(tmp_path):
    path = fake_gadget4_snapshot(tmp_path, npart=4096, box_size=50.0)
    viewer = SnapshotViewer(path)
    assert viewer.image_array.shape == (64, 64)
    labels = [line.get_label() for line in viewer.power_figure.axes[0].lines]
    assert labels == ["snapshot_000"]


def test_run_table_filters_sorts_and_opens(run32):
    create(
        {**CONFIG, "metadata": {"name": "other", "tags": ["x"]}}, root=run32.path.parent
    )
    table = RunTable(run32.path.parent)
    assert table.total == 2
    table.state.value = "completed"
    assert [r["id"] for r in table.rows] == [run32.id]
    table.state.value = "(all)"
    table.tag.value = "x"
    assert [r["name"] for r in table.rows] == ["other"]
    table.tag.value = ""
    table.order.value = "name"
    table.descending.value = False
    assert [r["name"] for r in table.rows] == ["other", "viewer32"]
    table.listing.value = run32.id
    viewer = table.open_viewer()
    assert isinstance(viewer, InteractiveViewer) and table.area.children == (viewer,)
    monitor = table.open_monitor()
    assert monitor.state == "completed" and not monitor.updating


@pytest.mark.parametrize(
    ("n_side", "pixels", "fraction"),
    [
        (16, 64, 1.0),
        (32, 128, 1.0),
        (64, 256, 1.0),
        (128, 256, 0.25),
        (256, 256, 1 / 32),
    ],
)
def test_default_view_keeps_eight_particles_per_pixel(n_side, pixels, fraction):
    chosen, thickness = default_view(n_side**3, 100.0)
    assert chosen == pixels
    assert thickness == pytest.approx(100.0 * fraction)
    per_pixel = n_side**3 * (thickness / 100.0) / chosen**2
    assert per_pixel == pytest.approx(min(8.0, n_side**3 / chosen**2))
