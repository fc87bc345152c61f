"""SnapshotViewer: slab projections and P(k) of a run's snapshots, shown as images.

Maps and spectra are computed with :mod:`simlab.analysis` and drawn with
:mod:`simlab.plot` into PNG images, so the browser receives a few tens of kB
whatever the particle count. Positions and spectra are cached per snapshot, so
moving the slab or the colour scale does not reread the file.
"""

from __future__ import annotations

import html
import io
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np

from simlab.widgets import styles

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from simlab.config import Cosmology
    from simlab.service.run import Run

#: Snapshots whose positions stay in memory (a 128³ snapshot holds 25 MB).
_CACHED_SNAPSHOTS = 2
#: Map resolutions offered (pixels per side).
PIXELS = (64, 128, 256, 512)


def default_view(n_particles: int, box: float) -> tuple[int, float]:
    """Pixels per side and slab thickness that leave ~8 particles per pixel.

    Four pixels per mean particle spacing (between 64 and 256), and the thinnest
    slab (at most the box) that still holds eight particles per pixel on average,
    so a 16³ run is not a field of isolated dots and a 256³ one shows a thin slab.
    """
    side = round(n_particles ** (1 / 3))
    pixels = min((p for p in PIXELS if p >= 4 * side), default=256)
    pixels = min(max(pixels, PIXELS[0]), 256)
    thickness = box * min(1.0, 8 * pixels**2 / n_particles)
    return pixels, thickness


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The PNG bytes of a matplotlib Figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


@dataclass
class _Source:
    """One run (or lone snapshot) the viewer shows."""

    label: str
    snapshots: list[Path]
    run: Run | None = None
    spectra: dict[int, xr.DataArray] = field(default_factory=dict)


def _as_source(item: Run | str | Path) -> _Source:
    from simlab.service.run import Run

    if isinstance(item, Run):
        return _Source(item.config.metadata.name, item.snapshots, item)
    path = Path(item)
    if (path / "status.json").exists():
        return _as_source(Run(path))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such snapshot or run directory")
    rundir = path.parent.parent
    if (rundir / "status.json").exists():
        return _as_source(Run(rundir))
    return _Source(path.stem, [path])


def _snapshot_cosmology(attrs: dict[str, Any]) -> Cosmology | None:
    """The cosmology recorded in a snapshot's Parameters, if complete enough."""
    from simlab.config import Cosmology

    names = {
        "Omega0": "Parameters/Omega0",
        "OmegaLambda": "Parameters/OmegaLambda",
        "OmegaBaryon": "Parameters/OmegaBaryon",
        "h": "Parameters/HubbleParam",
        "sigma8": "Parameters/Sigma8",
        "n_s": "Parameters/PrimordialIndex",
    }
    values = {k: float(attrs[v]) for k, v in names.items() if v in attrs}
    if "sigma8" not in values or "Omega0" not in values:
        return None
    return Cosmology(preset=None, **values)


class _PowerPanel:
    """The P(k) panel of a viewer: each source's spectrum at an output, linear
    theory for the first source's cosmology, ratios. A viewer using it has
    ``sources`` and ``_load(path) -> (positions, box, attrs)``."""

    sources: list[_Source]

    def _load(self, path: Path) -> tuple[np.ndarray, float, dict]:
        raise NotImplementedError

    def _spectrum(self, source: _Source, index: int) -> xr.DataArray | None:
        if not source.snapshots:
            return None
        index = min(index, len(source.snapshots) - 1)
        if index not in source.spectra:
            if source.run is not None:
                spectrum = source.run.power_spectrum(index)
            else:
                from simlab.analysis.power import power_spectrum

                positions, box, _ = self._load(source.snapshots[index])
                n_side = round(len(positions) ** (1 / 3))
                spectrum = power_spectrum(
                    positions, box, min(2 * n_side, 256), interlace=True
                )
            source.spectra[index] = spectrum
        return source.spectra[index]

    def _power_figure(self, index: int, a: float) -> Figure:
        from simlab import cosmology, plot

        spectra = {}
        for source in self.sources:
            spectrum = self._spectrum(source, index)
            if spectrum is not None:
                spectra[
                    source.label
                    if source.label not in spectra
                    else f"{source.label} ({len(spectra)})"
                ] = spectrum
        main = self.sources[0]
        cosmo = (
            main.run.config.cosmology
            if main.run is not None
            else _snapshot_cosmology(self._load(main.snapshots[index])[2])
        )
        linear = None
        if cosmo is not None:
            first = next(iter(spectra.values()))
            k = first["k"].to_numpy()
            if "n_particles" in first.attrs:  # the k range plot.power_spectrum draws
                k = k[k <= plot.particle_nyquist(first) * (1 + 1e-9)]
            linear = (k, cosmology.linear_power(k, cosmo, a))
        reference = next(iter(spectra)) if len(spectra) > 1 else None
        return plot.power_spectrum(spectra, linear=linear, reference=reference)


class SnapshotViewer(_PowerPanel, widgets.VBox):
    """Projected density and P(k) of one or several runs' snapshots.

    Parameters
    ----------
    *sources : Run, run directory or snapshot path
        the first drives the projection; every source's P(k) is drawn, with
        ratios to the first when there are several (else to linear theory)
    index : int
        snapshot shown first (counts like a list index)
    notice : str
        one line of text shown above the controls (why this static viewer was
        opened instead of :class:`~simlab.widgets.interactive.InteractiveViewer`)
    """

    def __init__(
        self, *sources: Run | str | Path, index: int = -1, notice: str = ""
    ) -> None:
        if not sources:
            raise ValueError("SnapshotViewer needs at least one run or snapshot")
        self.sources = [_as_source(s) for s in sources]
        main = self.sources[0]
        if not main.snapshots:
            raise ValueError(
                f"{main.label}: no snapshots written yet (nothing to show)"
            )
        self._positions: OrderedDict[Path, tuple[np.ndarray, float, dict]] = (
            OrderedDict()
        )
        count = len(main.snapshots)
        self.snapshot = widgets.IntSlider(
            value=index % count,
            min=0,
            max=count - 1,
            description="snapshot",
            continuous_update=False,
            style={"description_width": "110px"},
        )
        self.snapshot_label = widgets.HTML()
        self.axis = widgets.ToggleButtons(options=["x", "y", "z"], value="z")
        positions, box, _ = self._load(main.snapshots[self.snapshot.value])
        pixels, thickness = default_view(len(positions), box)
        self.centre, self.thickness = slab_sliders(box, thickness)
        self.resolution = widgets.Dropdown(
            options=list(PIXELS), value=pixels, description="pixels"
        )
        self.scale = widgets.ToggleButtons(options=["log", "linear"], value="log")
        self.cmap = widgets.Dropdown(
            options=["magma", "viridis", "inferno", "cividis", "gray"],
            value="magma",
            description="colours",
        )
        natural = widgets.Layout(flex="0 0 auto", object_fit="contain")
        self.image = widgets.Image(format="png", layout=natural)
        self.power_image = widgets.Image(format="png", layout=natural)
        self.info = widgets.HTML()
        self.image_array: np.ndarray | None = None
        self.figure: Figure | None = None
        self.power_figure: Figure | None = None
        self._power_index: int | None = None
        self.render_seconds = 0.0
        for control in (
            self.snapshot,
            self.axis,
            self.thickness,
            self.centre,
            self.resolution,
            self.scale,
            self.cmap,
        ):
            control.observe(self._changed, names="value")
        self.notice = widgets.HTML(
            f"<span style='{styles.HELP}'>{html.escape(notice)}</span>"
            if notice
            else ""
        )
        controls = widgets.VBox(
            [
                self.notice,
                widgets.HBox([self.snapshot, self.snapshot_label]),
                widgets.HBox([widgets.HTML("axis"), self.axis]),
                self.thickness,
                self.centre,
                widgets.HBox([self.resolution, self.cmap]),
                widgets.HBox([widgets.HTML("scale"), self.scale]),
                self.info,
            ]
        )
        super().__init__([controls, widgets.HBox([self.image, self.power_image])])
        self.render()

    def _load(self, path: Path) -> tuple[np.ndarray, float, dict]:
        """Positions (Mpc/h), box size and attributes of a snapshot, cached."""
        if path in self._positions:
            self._positions.move_to_end(path)
            return self._positions[path]
        from simlab.io.snapshots import open_snapshot

        with open_snapshot(path) as ds:
            entry = (
                np.asarray(ds["Coordinates"].values),
                float(ds.attrs["BoxSize"]),
                dict(ds.attrs),
            )
        self._positions[path] = entry
        while len(self._positions) > _CACHED_SNAPSHOTS:
            self._positions.popitem(last=False)
        return entry

    def _changed(self, change: dict[str, Any]) -> None:
        self.render()

    def render(self) -> None:
        """Recompute the projection and the P(k) panel for the current controls."""
        from simlab import plot

        started = time.perf_counter()
        main = self.sources[0]
        index = self.snapshot.value
        path = main.snapshots[index]
        positions, box, attrs = self._load(path)
        a = float(attrs.get("Time", 1.0))
        self.snapshot_label.value = (
            f"<code>{html.escape(path.name)}</code> a = {a:.4f}, z = {1 / a - 1:.2f}"
        )
        half = self.thickness.value / 2
        centre = self.centre.value
        slab = (max(centre - half, 0.0), min(centre + half, box))
        try:
            fig = plot.projection(
                positions,
                box,
                axis=self.axis.value,
                slab=slab,
                n_pixels=self.resolution.value,
                log=self.scale.value == "log",
                cmap=self.cmap.value,
            )
        except ValueError as exc:  # an empty slab: say so instead of drawing
            self.info.value = (
                f"<span style='{styles.ERROR}'>{html.escape(str(exc))}</span>"
            )
            return
        self.figure = fig
        self.image_array = np.asarray(fig.axes[0].images[0].get_array())
        self.image.value = figure_png(fig)
        if self._power_index != index:  # the slab controls leave P(k) as it is
            self.power_figure = self._power_figure(index, a)
            self.power_image.value = figure_png(self.power_figure)
            self._power_index = index
        self.render_seconds = time.perf_counter() - started
        self.info.value = (
            f"<span style='{styles.HELP}'>{len(positions):,} particles, "
            f"box {box:g} Mpc/h · drawn in {1000 * self.render_seconds:.0f} ms</span>"
        )


def slab_sliders(
    box: float, thickness: float
) -> tuple[widgets.FloatSlider, widgets.FloatSlider]:
    """The slab's centre and thickness sliders (Mpc/h, box/256 steps) of a viewer."""
    common = {
        "max": box,
        "step": box / 256,
        "continuous_update": False,
        "style": {"description_width": "110px"},
    }
    centre = widgets.FloatSlider(
        value=box / 2, min=0.0, description="centre [Mpc/h]", **common
    )
    slab = widgets.FloatSlider(
        value=thickness, min=box / 256, description="slab [Mpc/h]", **common
    )
    return centre, slab
