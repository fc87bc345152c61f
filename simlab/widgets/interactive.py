"""InteractiveViewer: zoom, pan and slab through a snapshot, with its P(k) beside it.

The map and the spectrum are matplotlib figures shown as live widgets by ipympl
(the toolbar's zoom and pan, drawn in the Lab's theme by :mod:`simlab.theme`).
Every zoom or pan, from the toolbar or :meth:`InteractiveViewer.zoom`, recomputes
the map from the particles in the view (:func:`simlab.plot.projection_map`), so
detail appears down to the particles' smoothing length instead of pixels being
enlarged. Positions and the density at each particle (for the adaptive
smoothing) are read once per snapshot and kept; a slab is a vectorised mask on
one column. Only the rendered picture goes to the browser.

Without ipympl, :func:`explore` opens the static
:class:`~simlab.widgets.viewer.SnapshotViewer` and says why in one line.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np

from simlab.widgets import styles
from simlab.widgets.viewer import (
    PIXELS,
    SnapshotViewer,
    _as_source,
    _PowerPanel,
    default_view,
    slab_sliders,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from simlab.service.run import Run

#: The one line a static viewer shows when ipympl is missing.
NO_IPYMPL = (
    "Static pictures: zoom and pan need ipympl "
    "(pip install ipympl, or simlab[interactive]), then a kernel restart."
)
#: Map resolutions offered (pixels along the longer side of the view).
MAP_PIXELS = (*PIXELS, 1024)


def explore(
    source: Run | str | Path, index: int = -1
) -> InteractiveViewer | SnapshotViewer:
    """The interactive viewer of a run or snapshot; the static one without ipympl.

    Parameters
    ----------
    source : Run, run directory or snapshot path
    index : int
        snapshot shown first (counts like a list index)
    """
    try:
        return InteractiveViewer(source, index=index)
    except ImportError as exc:
        if "ipympl" not in str(exc):
            raise
        return SnapshotViewer(source, index=index, notice=NO_IPYMPL)


def _ipympl() -> tuple[type, type]:
    """ipympl's Canvas and FigureManager classes (ImportError naming ipympl)."""
    try:
        from ipympl.backend_nbagg import Canvas, FigureManager
    except ImportError as exc:
        raise ImportError(f"ipympl is not installed: {NO_IPYMPL}") from exc
    return Canvas, FigureManager


class InteractiveViewer(_PowerPanel, widgets.VBox):
    """A live projection of a snapshot (zoom, pan, axis, slab) and its P(k).

    Parameters
    ----------
    source : Run, run directory or snapshot path
        the run (or lone snapshot) shown; its P(k) is drawn beside the map
    index : int
        snapshot shown first (counts like a list index)

    Attributes
    ----------
    figure, power_figure : matplotlib.figure.Figure
        the map (``figure.axes[0].images[0]``) and the P(k) panel
    canvas, power_canvas : ipympl.backend_nbagg.Canvas
        the widgets that show them
    image_array : ndarray
        the map last drawn (log10 of 1 + δ relative to the slab's mean)
    extent : (left, right, bottom, top)
        the range in Mpc/h it covers
    render_seconds : float
        wall-clock seconds of the last redraw, from the particles to the drawn
        figure (with the P(k) panel when the snapshot changed)

    Raises
    ------
    ImportError
        without ipympl (:func:`explore` then opens the static viewer)
    """

    def __init__(self, source: Run | str | Path, index: int = -1) -> None:
        self._canvas_classes = _ipympl()
        self.sources = [_as_source(source)]
        main = self.sources[0]
        if not main.snapshots:
            raise ValueError(
                f"{main.label}: no snapshots written yet (nothing to show)"
            )
        self._cache: tuple[Path, tuple[np.ndarray, float, dict, np.ndarray]] | None
        self._cache = None
        count = len(main.snapshots)
        wide = {"description_width": "110px"}
        self.snapshot = widgets.IntSlider(
            value=index % count,
            min=0,
            max=count - 1,
            description="snapshot",
            continuous_update=False,
            style=wide,
        )
        self.snapshot_label = widgets.HTML()
        positions, box, _, _ = self._particles(main.snapshots[self.snapshot.value])
        pixels, thickness = default_view(len(positions), box)
        self.box_size = box
        self.axis = widgets.ToggleButtons(options=["x", "y", "z"], value="z")
        self.centre, self.thickness = slab_sliders(box, thickness)
        self.resolution = widgets.Dropdown(
            options=list(MAP_PIXELS), value=pixels, description="pixels"
        )
        self.reset_button = widgets.Button(
            description="Whole box", tooltip="zoom out to the whole box"
        )
        self.reset_button.on_click(lambda _: self.reset())
        self.info = widgets.HTML()
        self.view: tuple[tuple[float, float], tuple[float, float]] | None = None
        self.image_array = np.empty((0, 0))
        self.extent = (0.0, box, 0.0, box)
        self.render_seconds = 0.0
        self._drawn_limits: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        self._quiet = False
        self._in_message = False
        self._band: Any = None
        self.figure, self.canvas = self._map_figure()
        # both canvases exist before the panel is built, whose children then
        # change only with the snapshot
        self._power_index = self.snapshot.value
        first = self._load(main.snapshots[self._power_index])[2]
        self.power_figure, self.power_canvas = self._power_canvas(
            self._power_index, float(first.get("Time", 1.0))
        )
        controls = widgets.VBox(
            [
                widgets.HBox([self.snapshot, self.snapshot_label]),
                widgets.HBox([widgets.HTML("axis"), self.axis, self.reset_button]),
                self.centre,
                self.thickness,
                self.resolution,
                self.info,
            ]
        )
        self.panels = widgets.HBox(
            [self.canvas, self.power_canvas],
            layout=widgets.Layout(flex_flow="row wrap"),
        )
        super().__init__([controls, self.panels])
        self.add_class("simlab-viewer")
        self.snapshot.observe(self._snapshot_changed, names="value")
        self.axis.observe(self._axis_changed, names="value")
        for control in (self.centre, self.thickness, self.resolution):
            control.observe(lambda _: self.render(), names="value")
        self.render()

    # -- data -------------------------------------------------------------

    def _particles(self, path: Path) -> tuple[np.ndarray, float, dict, np.ndarray]:
        """Positions (Mpc/h), box, attributes and 1 + δ at each particle, kept
        for the snapshot shown (a 256³ snapshot holds 270 MB of them)."""
        if self._cache is not None and self._cache[0] == path:
            return self._cache[1]
        from simlab.analysis.projection import local_density
        from simlab.io.snapshots import open_snapshot

        self._cache = None  # free the previous snapshot before reading the next
        with open_snapshot(path) as ds:
            positions = np.asarray(ds["Coordinates"].values)
            box = float(ds.attrs["BoxSize"])
            attrs = dict(ds.attrs)
        density = local_density(positions, box).astype(np.float32)
        self._cache = (path, (positions, box, attrs, density))
        return self._cache[1]

    def _load(self, path: Path) -> tuple[np.ndarray, float, dict]:
        return self._particles(path)[:3]

    # -- figures ----------------------------------------------------------

    def _canvas(self, figure: Figure) -> Any:
        """An ipympl canvas widget showing ``figure``, toolbar on its left."""
        canvas_class, manager_class = self._canvas_classes
        canvas = canvas_class(figure)
        manager_class(canvas, 0)
        canvas.header_visible = False
        canvas.toolbar_visible = "visible"
        canvas.toolbar_position = "left"
        return canvas

    def _map_figure(self) -> tuple[Figure, Any]:
        import matplotlib as mpl
        from matplotlib.figure import Figure

        from simlab.theme import figure_rc

        with mpl.rc_context(figure_rc()):
            fig = Figure(figsize=(4.6, 4.2), layout="constrained")
            fig.get_layout_engine().set(w_pad=0.45)  # room for the toolbar
            ax = fig.add_subplot()
            colours = mpl.colormaps["magma"]
            shown = ax.imshow(
                np.full((2, 2), np.nan),
                origin="lower",
                extent=self.extent,
                cmap=colours.with_extremes(bad=colours(0.0)),
            )
            fig.colorbar(shown, ax=ax).set_label("log10(1 + δ)")
        canvas = self._canvas(fig)
        ax.callbacks.connect("xlim_changed", self._limits_changed)
        ax.callbacks.connect("ylim_changed", self._limits_changed)
        # every mouse and toolbar message from the browser goes through the
        # manager's handle_json: follow the axes once it has been handled, so a
        # zoom (x then y limits) or a pan redraws once, on release
        handle_json = canvas.manager.handle_json

        def handled(content: dict[str, Any]) -> None:
            self._in_message = True
            try:
                handle_json(content)
            finally:
                self._in_message = False
            self._follow_axes()

        canvas.manager.handle_json = handled
        return fig, canvas

    # -- view -------------------------------------------------------------

    def zoom(
        self, xlim: tuple[float, float], ylim: tuple[float, float] | None = None
    ) -> None:
        """Show the region ``xlim`` × ``ylim`` (Mpc/h, the map's horizontal and
        vertical axes), recomputed from its particles; ``ylim`` defaults to a
        square view centred on the current one."""
        if ylim is None:
            middle = 0.5 * sum(self.figure.axes[0].get_ylim())
            half = 0.5 * (xlim[1] - xlim[0])
            ylim = (middle - half, middle + half)
        self.view = (
            (float(min(xlim)), float(max(xlim))),
            (float(min(ylim)), float(max(ylim))),
        )
        self.render()

    def reset(self) -> None:
        """Show the whole box again."""
        self.view = None
        self.render()

    def _limits_changed(self, ax: Any) -> None:
        """A zoom or pan moved the axes: redraw once it is over."""
        if not (self._quiet or self._in_message):  # set from code: ax.set_xlim
            self._follow_axes()

    def _follow_axes(self) -> None:
        """Redraw for the axes' limits if a zoom or pan changed them."""
        ax = self.figure.axes[0]
        limits = (tuple(ax.get_xlim()), tuple(ax.get_ylim()))
        if limits == self._drawn_limits:
            return
        toolbar = self.canvas.toolbar
        if getattr(toolbar, "_pan_info", None) or getattr(toolbar, "_zoom_info", None):
            return  # a drag in progress: redraw on release
        (x0, x1), (y0, y1) = limits
        self.view = ((min(x0, x1), max(x0, x1)), (min(y0, y1), max(y0, y1)))
        self.render()

    @contextmanager
    def _own_limits(self) -> Iterator[None]:
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    # -- controls ---------------------------------------------------------

    def _snapshot_changed(self, change: dict[str, Any]) -> None:
        self.render()

    def _axis_changed(self, change: dict[str, Any]) -> None:
        self.view = None  # the map's axes are others now
        self.render()

    def slab(self) -> tuple[float, float]:
        """The slab's range along the projection axis in Mpc/h."""
        half = self.thickness.value / 2
        centre = self.centre.value
        return max(centre - half, 0.0), min(centre + half, self.box_size)

    # -- drawing ----------------------------------------------------------

    def render(self) -> None:
        """Recompute the map for the controls and the view; P(k) if the snapshot
        changed; the band of scales the map shows on the P(k) panel."""
        from simlab import plot

        started = time.perf_counter()
        main = self.sources[0]
        index = self.snapshot.value
        path = main.snapshots[index]
        positions, box, attrs, density = self._particles(path)
        self.box_size = box
        a = float(attrs.get("Time", 1.0))
        self.snapshot_label.value = (
            f"<code>{html.escape(path.name)}</code> a = {a:.4f}, z = {1 / a - 1:.2f}"
        )
        xlim, ylim = self.view if self.view is not None else (None, None)
        try:
            image, extent = plot.projection_map(
                positions,
                box,
                axis=self.axis.value,
                slab=self.slab(),
                xlim=xlim,
                ylim=ylim,
                n_pixels=self.resolution.value,
                density=density,
            )
        except ValueError as exc:  # an empty slab: say so instead of drawing
            self.info.value = (
                f"<span style='{styles.ERROR}'>{html.escape(str(exc))}</span>"
            )
            return
        self.image_array, self.extent = image, extent
        self._draw_map(image, extent)
        if self._power_index != index:
            self._draw_power(index, a)
        self._mark_scales()
        self.canvas.draw_idle()
        self.render_seconds = time.perf_counter() - started
        rows, columns = image.shape
        horizontal, vertical = (a for a in "xyz" if a != self.axis.value)
        left, right, bottom, top = extent
        self.info.value = (
            f"<span style='{styles.HELP}'>{len(positions):,} particles, box "
            f"{box:g} Mpc/h · view {horizontal} {left:.4g}–{right:.4g}, "
            f"{vertical} {bottom:.4g}–{top:.4g} Mpc/h · {columns}×{rows} pixels of "
            f"{(extent[1] - extent[0]) / columns:.3g} Mpc/h · drawn in "
            f"{1000 * self.render_seconds:.0f} ms</span>"
        )

    def _draw_map(self, image: np.ndarray, extent: tuple[float, ...]) -> None:
        from simlab import plot

        ax = self.figure.axes[0]
        shown = ax.images[0]
        shown.set_data(image)
        low, high = plot.colour_range(image, log=True, smoothed=True)
        shown.set_clim(low, high)
        axis = self.axis.value
        horizontal, vertical = (a for a in "xyz" if a != axis)
        lo, hi = self.slab()
        with self._own_limits():
            shown.set_extent(extent)
            if self.view is None:
                ax.set_xlim(extent[0], extent[1])
                ax.set_ylim(extent[2], extent[3])
            else:
                ax.set_xlim(*self.view[0])
                ax.set_ylim(*self.view[1])
        ax.set_xlabel(f"{horizontal} [Mpc/h]")
        ax.set_ylabel(f"{vertical} [Mpc/h]")
        ax.set_title(f"slab {lo:g} ≤ {axis} < {hi:g} Mpc/h", fontsize="medium")
        self._drawn_limits = (tuple(ax.get_xlim()), tuple(ax.get_ylim()))

    def _power_canvas(self, index: int, a: float) -> tuple[Figure, Any]:
        figure = self._power_figure(index, a)
        figure.set_size_inches(4.2, 4.6)  # beside the map
        figure.get_layout_engine().set(w_pad=0.45)  # room for the toolbar
        return figure, self._canvas(figure)

    def _draw_power(self, index: int, a: float) -> None:
        old = self.power_canvas
        self.power_figure, self.power_canvas = self._power_canvas(index, a)
        self.panels.children = (self.canvas, self.power_canvas)
        self._power_index = index
        self._band = None
        if old is not None:
            old.close()

    def scales(self) -> tuple[float, float]:
        """The wavenumbers (h/Mpc) the map shows: from the view's size, 2π/width,
        to its pixels' Nyquist wavenumber, π/pixel."""
        left, right, bottom, top = self.extent
        columns = self.image_array.shape[1]
        width = max(right - left, top - bottom)
        pixel = (right - left) / columns
        return 2 * np.pi / width, np.pi / pixel

    def _mark_scales(self) -> None:
        """Mark on the P(k) panel, with two dotted lines, the wavenumbers the map
        shows (2π/width and π/pixel); they move with every zoom."""
        if self.power_figure is None:
            return
        for line in self._band or ():
            line.remove()
        ax = self.power_figure.axes[0]
        shown = ax.get_xlim()  # the marks do not widen the k range drawn
        self._band = tuple(
            ax.axvline(
                k,
                color=ax.xaxis.label.get_color(),
                linestyle=":",
                linewidth=1.0,
                alpha=0.7,
            )
            for k in self.scales()
        )
        ax.set_xlim(shown)
        self.power_figure.canvas.draw_idle()
