"""Quick-look figures: projected density maps and power spectra.

Every function returns a ``matplotlib.figure.Figure`` built with the object API
(no pyplot state), so it works headless and in notebooks, where a returned Figure
displays itself. matplotlib is imported inside the functions to keep
``import simlab`` fast.

The defaults draw only what the particles resolve:

- :func:`projection` smooths every particle with a Gaussian whose width follows
  the local mean interparticle spacing (half the spacing at the mean density,
  narrower in halos, wider in voids; the density is read off a mesh with one cell
  per mean spacing), so pixels finer than the particle spacing are never empty
  and the colour scale starts below the faintest pixel;
- :func:`power_spectrum` stops each curve at the particle Nyquist wavenumber
  π N^(1/3) / L (beyond it a lattice-started run shows its own discreteness: at
  twice k_Nyq a 64³ run at z = 3 reads 17 times the linear P(k)), shades the
  power below the Poisson shot noise L³/N, and never rescales a spectrum;
- logarithmic k axes label decades and, where there is room, 2 and 5 (and 3)
  in between, so tick labels never overlap.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.analysis.mesh import deposit, is_lazy, particle_positions
from simlab.analysis.projection import (
    AXES,
    LENGTH_UNIT,
    log_image,
    projection_image,
    select_slab,
    smoothed_deposit,
    value_range,
)
from simlab.theme import figure_rc

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simlab.config import Cosmology


def projection_map(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None = None,
    *,
    axis: str = "z",
    slab: tuple[float, float] | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    n_pixels: int = 256,
    scheme: str = "cic",
    log: bool = True,
    smoothing: str | float | None = "adaptive",
    density: np.ndarray | None = None,
    chunked: bool | None = None,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The projected density of a slab within a view, and the range it covers.

    Without ``xlim``/``ylim`` this is :func:`projection_image` of the whole box.
    With them, the map is recomputed from the particles in the view (and a margin
    of three kernel widths, so the edges are not starved): ``n_pixels`` square
    pixels along the longer side of the view, so zooming in shows detail finer
    than the whole-box map's pixels, down to the smoothing length of the
    particles. Pixels hold 1 + δ relative to the slab's mean, whatever the view,
    so colours compare between zooms. A view is periodic: it may run past the box
    edges.

    Parameters
    ----------
    positions, box_size, axis, slab, n_pixels, scheme, log, smoothing, chunked
        as for :func:`projection_image` (a view reads lazy positions into memory)
    xlim, ylim : (float, float), optional
        the view along the horizontal and vertical axes of the map (the first and
        second axes other than ``axis``) in Mpc/h; default the whole box
    density : (N,) array, optional
        1 + δ at every particle from :func:`local_density`, to skip recomputing
        it (adaptive smoothing only)

    Returns
    -------
    image : (rows, columns) float64
        as :func:`projection_image` returns it (``origin="lower"``)
    extent : (left, right, bottom, top)
        the range in Mpc/h the pixels cover, for ``imshow(extent=...)``: the view
        rounded out to whole pixels

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(1).uniform(0.0, 10.0, size=(4000, 3))
    >>> image, extent = projection_map(
    ...     x, 100.0, xlim=(0.0, 10.0), ylim=(0.0, 5.0), n_pixels=20
    ... )
    >>> image.shape, extent
    ((10, 20), (0.0, 10.0, 0.0, 5.0))
    >>> bool(np.isfinite(image).all())  # particles cover the whole view
    True
    """
    positions, box_size = particle_positions(positions, box_size, keep_lazy=True)
    if xlim is None and ylim is None:
        image = projection_image(
            positions,
            box_size,
            axis=axis,
            slab=slab,
            n_pixels=n_pixels,
            scheme=scheme,
            log=log,
            smoothing=smoothing,
            density=density,
            chunked=chunked,
        )
        half = 0.5 * box_size / n_pixels
        return image, (-half, box_size - half) * 2
    if is_lazy(positions):
        positions, _ = particle_positions(positions.compute(), box_size)
    x0, x1 = value_range(xlim, box_size, "xlim")
    y0, y1 = value_range(ylim, box_size, "ylim")
    flat, widths = select_slab(
        positions, box_size, axis=axis, slab=slab, smoothing=smoothing,
        density=density,
    )  # fmt: skip
    count = len(flat)
    pixel = max(x1 - x0, y1 - y0) / n_pixels
    columns = max(round((x1 - x0) / pixel), 1)
    rows = max(round((y1 - y0) / pixel), 1)
    reach = 0.0 if widths is None else 3.0 * float(widths.max())
    pad = int(np.ceil(min(reach, pixel * max(columns, rows)) / pixel)) + 2
    side = max(columns, rows) + 2 * pad
    if side * pixel < box_size:
        # a padded mesh around the view; kernels wider than the margin allows
        # are narrowed so that none wraps across the mesh onto the other side
        # mesh point pad + i is the centre of pixel i, x0 + (i + 1/2) pixel
        origin = np.array([x0, y0]) + (0.5 - pad) * pixel
        offset = np.mod(flat - origin, box_size)  # periodic images included
        near = np.all(offset < side * pixel, axis=1)
        flat, mesh_box = offset[near], side * pixel
        if widths is not None:
            widths = np.minimum(widths[near], pad * pixel / 3.0)
        first = pad
    else:  # the view spans (nearly) the box: a periodic map of the whole box
        side = int(np.ceil(box_size / pixel))
        pixel = box_size / side
        columns, rows = min(columns, side), min(rows, side)
        flat = np.mod(flat - np.array([x0, y0]) - 0.5 * pixel, box_size)
        mesh_box, first = box_size, 0
    if widths is None:
        mass = deposit(flat, mesh_box, side, scheme)
    else:
        mass = smoothed_deposit(flat, widths, mesh_box, side, scheme)
    mass *= box_size**2 / (count * pixel**2)  # 1 + δ relative to the slab
    image = mass[first : first + columns, first : first + rows].T
    extent = (x0, x0 + columns * pixel, y0, y0 + rows * pixel)
    return log_image(image) if log else image, tuple(float(v) for v in extent)


def _themed(draw: Any) -> Any:
    """Draw a new figure in the Lab's theme (:mod:`simlab.theme`); a figure the
    caller passes in through ``ax`` keeps its own look."""

    @functools.wraps(draw)
    def themed(*args: Any, **kwargs: Any) -> Figure:
        if kwargs.get("ax") is not None:
            return draw(*args, **kwargs)
        import matplotlib as mpl

        with mpl.rc_context(figure_rc()):
            return draw(*args, **kwargs)

    return themed


@_themed
def projection(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None = None,
    *,
    axis: str = "z",
    slab: tuple[float, float] | None = None,
    n_pixels: int = 256,
    scheme: str = "cic",
    log: bool = True,
    smoothing: str | float | None = "adaptive",
    cmap: str = "magma",
    ax: Axes | None = None,
    chunked: bool | None = None,
) -> Figure:
    """Draw the projected density of a slab with a colour bar.

    Parameters are those of :func:`projection_image` (``chunked`` included), plus
    ``cmap`` (a matplotlib
    colour map name) and ``ax`` (Axes to draw in; default a new Figure). The
    colour scale spans at least a factor 10 in 1 + δ and starts a little below the
    faintest pixel, so the lowest colour marks only empty pixels (which smoothing
    leaves none of); without smoothing it starts at the 2nd percentile, as the
    slivers of mass bare CIC leaves would otherwise swallow the structure.

    Returns
    -------
    matplotlib.figure.Figure
        the figure holding the map, its axes labelled in Mpc/h

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(0.0, 50.0, size=(1000, 3))
    >>> fig = projection(x, 50.0, slab=(0.0, 10.0), n_pixels=32)
    >>> fig.axes[0].get_xlabel()
    'x [Mpc/h]'
    """
    import matplotlib as mpl

    positions, box_size = particle_positions(positions, box_size, keep_lazy=True)
    image, extent = projection_map(
        positions,
        box_size,
        axis=axis,
        slab=slab,
        n_pixels=n_pixels,
        scheme=scheme,
        log=log,
        smoothing=smoothing,
        chunked=chunked,
    )
    fig, ax = _figure_and_axes(ax)
    colours = mpl.colormaps[cmap]
    colours = colours.with_extremes(bad=colours(0.0))
    low, high = colour_range(image, log, smoothed=smoothing is not None)
    shown = ax.imshow(
        image, origin="lower", extent=extent, cmap=colours, vmin=low, vmax=high
    )
    horizontal, vertical = (a for a in AXES if a != axis)
    ax.set_xlabel(f"{horizontal} [{LENGTH_UNIT}]")
    ax.set_ylabel(f"{vertical} [{LENGTH_UNIT}]")
    lo, hi = value_range(slab, box_size, "slab")
    ax.set_title(f"projected density, {lo:g} ≤ {axis} < {hi:g} {LENGTH_UNIT}")
    bar = fig.colorbar(shown, ax=ax)
    bar.set_label("log10(1 + δ)" if log else "1 + δ")
    return fig


def colour_range(
    image: np.ndarray, log: bool, smoothed: bool
) -> tuple[float | None, float | None]:
    """vmin, vmax of a map (log or linear, smoothed or bare): see :func:`projection`."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return None, None
    if not smoothed:
        return float(np.percentile(finite, 2)) if log else None, None
    low, high = float(finite.min()), float(finite.max())
    if not log:
        return 0.0, max(high, 2.0)
    middle = float(np.median(finite))
    low, high = min(low, middle - 0.5), max(high, middle + 0.5)
    return low - 0.02 * (high - low), high


@_themed
def power_spectrum(
    spectra: xr.DataArray | Sequence[xr.DataArray] | Mapping[str, xr.DataArray],
    *,
    linear: (
        xr.DataArray
        | tuple[np.ndarray, np.ndarray]
        | Mapping[str, xr.DataArray | tuple[np.ndarray, np.ndarray]]
        | None
    ) = None,
    cosmology: Cosmology | None = None,
    reference: str | None = None,
    k_max: str | float | None = "nyquist",
    shot_noise: str = "show",
    min_signal: float = 1.0,
    n_particles: int | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Draw power spectra on log-log axes, with an optional ratio panel.

    Each spectrum is drawn as far as the particles resolve it, up to the particle
    Nyquist wavenumber k_Nyq = π N^(1/3) / L, with the power below the Poisson
    shot noise L³/N shaded. N, L and the shot noise come from the spectrum's
    attributes (``n_particles``, ``box_size``, ``shot_noise``,
    ``shot_noise_subtracted``, as :func:`simlab.analysis.power.power_spectrum`
    and the Gadget4 reader record them). Nothing is rescaled: compare each output
    with the linear P(k) at its own time (``cosmology``, or a ``linear`` curve per
    spectrum).

    The shot noise is shown, not subtracted, by default: simlab's, Gadget4's and
    CONCEPT's initial conditions are lattices, whose discreteness noise starts far
    below Poisson and only approaches L³/N as structure forms. In a 64³ PM run in
    a 128 Mpc/h box the measured P(k) at z = 3 and 0.75 k_Nyq is 0.8 L³/N, yet
    within 40% of linear theory: subtracting L³/N would give negative power. At
    z = 0 the same run holds 19 L³/N or more up to k_Nyq, and subtracting changes
    P(k) by 5% at most. Subtract it (``shot_noise="subtract"``) for samples that
    are Poisson, such as halos or an evolved, randomised set of particles.

    Parameters
    ----------
    spectra : DataArray, list of DataArrays or {label: DataArray}
        P(k) in (Mpc/h)³ along a ``k`` coordinate in h/Mpc, as from
        :func:`simlab.analysis.power.power_spectrum`; list entries are labelled
        by their ``label`` attribute, else their name and position
    linear : DataArray, (k, P) or {label: DataArray or (k, P)}, optional
        linear-theory P(k): one curve, drawn dashed in the text colour and
        labelled "linear theory", or one per spectrum label, drawn dashed in
        the spectrum's colour
    cosmology : simlab.config.Cosmology, optional
        draw each spectrum's own linear P(k) at its scale factor (``a``
        attribute), as a ``linear`` mapping would
    reference : str, optional
        label of the spectrum the lower panel divides by; without it but with a
        linear P(k), the lower panel shows P / P_linear
    k_max : "nyquist", float or None
        largest k drawn: the particle Nyquist wavenumber (default; a spectrum
        without a particle count is drawn whole, with a warning), a value in
        h/Mpc, or None for every bin
    shot_noise : {"show", "subtract", "keep"}
        draw P(k) as given and shade the power below the shot noise of the
        first spectrum that records one (default); subtract the shot noise from
        the drawn P(k), leaving out bins where what is left is below
        ``min_signal`` times the shot noise (a spectrum whose
        ``shot_noise_subtracted`` is 1 is not subtracted again); or draw P(k) as
        given, alone
    min_signal : float
        with ``shot_noise="subtract"``: the least signal drawn, in units of the
        shot noise (0 keeps every bin with positive power)
    n_particles : int, optional
        particle count for spectra whose attributes lack ``n_particles``
        (CONCEPT's files)
    ax : Axes or (Axes, Axes), optional
        where to draw: one Axes without a ratio panel, two (upper, lower) with one

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> k = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    >>> attrs = {"box_size": 100.0, "n_particles": 32**3}  # shot noise 30.52 (Mpc/h)³
    >>> pk = xr.DataArray(1e4 / k + 30.52, dims="k", coords={"k": k}, attrs=attrs)
    >>> fig = power_spectrum({"run": pk}, reference="run", shot_noise="subtract")
    >>> k_drawn, p_drawn = fig.axes[0].lines[0].get_data()
    >>> k_drawn.tolist()  # k_Nyq = π 32 / 100 = 1.005 h/Mpc
    [0.1, 0.2, 0.4, 0.8]
    >>> np.round(p_drawn, 2).tolist()  # the shot noise subtracted
    [100000.0, 50000.0, 25000.0, 12500.0]
    """
    labelled = _labelled_spectra(spectra)
    if reference is not None and reference not in labelled:
        raise ValueError(
            f"reference={reference!r} is not one of the spectra's labels "
            f"{list(labelled)}"
        )
    if shot_noise not in _SHOT_NOISE:
        raise ValueError(f"shot_noise={shot_noise!r} is not one of {_SHOT_NOISE}")
    drawn = {
        label: _drawn_curve(
            label, curve, info, k_max, shot_noise, min_signal, n_particles
        )
        for label, (curve, info) in labelled.items()
    }
    single_linear, own_linear = _linear_curves(linear, cosmology, labelled)
    ratio_panel = reference is not None or single_linear or own_linear
    fig, main, lower = _power_axes(ax, bool(ratio_panel))
    colours = {}
    for label, (k, power, _) in drawn.items():
        (line,) = main.loglog(k, power, label=label)
        colours[label] = line.get_color()
    if single_linear is not None:
        main.loglog(*single_linear, "--", color=_foreground(), label="linear theory")
    for label, curve in own_linear.items():
        k_all = labelled[label][0][0]
        shown = curve[0] <= (drawn[label][0].max() if drawn[label][0].size else 0)
        main.loglog(
            curve[0][shown] if shown.any() else k_all[:0],
            curve[1][shown] if shown.any() else k_all[:0],
            "--",
            color=colours[label],
            linewidth=1.0,
            label=f"linear, {label}",
        )
    if shot_noise == "show":
        _shade_shot_noise(main, [noise for _, _, noise in drawn.values()])
    subtracted = shot_noise == "subtract" and any(
        noise is not None for _, _, noise in drawn.values()
    )
    main.set_ylabel(
        f"P(k) − shot noise [({LENGTH_UNIT})³]"
        if subtracted
        else f"P(k) [({LENGTH_UNIT})³]"
    )
    main.set_title("matter power spectrum")
    main.legend(fontsize="small")
    log_ticks(main.xaxis)
    if lower is None:
        main.set_xlabel("k [h/Mpc]")
        return fig
    for label, (k, power, _) in drawn.items():
        if reference is not None:
            base = drawn[reference][:2]
        elif label in own_linear:
            base = own_linear[label]
        else:
            base = single_linear
        lower.semilogx(k, power / _interpolate(base, k), label=label)
    lower.axhline(1.0, color=_foreground(), alpha=0.5, linewidth=0.8)
    lower.set_xlabel("k [h/Mpc]")
    lower.set_ylabel(f"P / P_{reference if reference is not None else 'linear'}")
    log_ticks(lower.xaxis)
    return fig


def particle_nyquist(spectrum: xr.DataArray, n_particles: int | None = None) -> float:
    """k_Nyq = π N^(1/3) / L of the particles a spectrum was measured from.

    Examples
    --------
    >>> import xarray as xr
    >>> attrs = {"box_size": 128.0, "n_particles": 64**3}
    >>> pk = xr.DataArray([1.0], dims="k", attrs=attrs)
    >>> round(particle_nyquist(pk), 4)
    1.5708
    """
    n = spectrum.attrs.get("n_particles", n_particles)
    box = spectrum.attrs.get("box_size")
    if n is None or box is None:
        raise ValueError(
            "the spectrum has no 'n_particles' and 'box_size' attributes; give "
            "n_particles (and a spectrum with box_size)"
        )
    return float(np.pi * round(float(n) ** (1 / 3)) / float(box))


def log_ticks(axis: Any) -> None:
    """Readable labels on a logarithmic axis: decades, and 2, 3, 5 where they fit.

    The labels are chosen when the axis is drawn, from its length and span, so
    they never overlap: 2, 3 and 5 in each decade, or 2 and 5, or 3, or none,
    whichever fits with about 30 points per label on a horizontal axis (less on a
    vertical one), and every other decade when even decades do not fit.
    """
    from matplotlib.ticker import LogLocator

    axis.set_major_locator(LogLocator(base=10.0, numticks=30))
    axis.set_minor_locator(LogLocator(base=10.0, subs=np.arange(2, 10), numticks=30))
    labels = _log_labels_class()
    axis.set_major_formatter(labels())
    axis.set_minor_formatter(labels())


@functools.cache
def _log_labels_class() -> type:
    """The tick formatter class of :func:`log_ticks` (matplotlib imported here)."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import Formatter

    class LogLabels(Formatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            if not x > 0:
                return ""
            exponent = int(np.floor(np.log10(x) + 1e-9))
            mantissa = round(x / 10.0**exponent, 6)
            decade_step, subs = self._room()
            if mantissa == 1.0:
                return _tick_text(x) if exponent % decade_step == 0 else ""
            return _tick_text(x) if mantissa in subs else ""

        def _room(self) -> tuple[int, tuple[float, ...]]:
            axis = self.axis
            if axis is None or axis.axes is None:
                return 1, ()
            low, high = sorted(axis.get_view_interval())
            if not low > 0:
                return 1, ()
            decades = max(np.log10(high / low), 1e-3)
            box = axis.axes.bbox
            horizontal = axis.axis_name == "x"
            length = (box.width if horizontal else box.height) * 72.0 / axis.figure.dpi
            size = FontProperties(
                size=mpl.rcParams[f"{axis.axis_name}tick.labelsize"]
            ).get_size_in_points()
            # "0.05" is ~2.4 font sizes wide; every label is ~1.2 high
            need = (2.6 if horizontal else 1.5) * size + 4.0
            per_decade = length / decades
            if per_decade * np.log10(1.5) >= need:  # 2 → 3 is the tightest gap
                return 1, (2.0, 3.0, 5.0)
            if per_decade * np.log10(2.0) >= need:
                return 1, (2.0, 5.0)
            if per_decade * np.log10(3.0) >= need:
                return 1, (3.0,)
            if per_decade >= need:
                return 1, ()
            return int(np.ceil(need / per_decade)), ()

    return LogLabels


def _tick_text(x: float) -> str:
    if 1e-4 <= x < 1e5:
        return f"{x:g}"
    exponent = int(np.floor(np.log10(x) + 1e-9))
    mantissa = round(x / 10.0**exponent, 6)
    head = "" if mantissa == 1.0 else f"{mantissa:g}×"
    return f"${head}10^{{{exponent}}}$"


_SHOT_NOISE = ("show", "subtract", "keep")


def _foreground() -> str:
    """The text colour of the current style: black on light, white on dark."""
    import matplotlib as mpl

    return mpl.rcParams["text.color"]


def _shade_shot_noise(ax: Axes, levels: list[float | None]) -> None:
    """Shade the power below the first shot-noise level (a patch, not a line)."""
    known = [level for level in levels if level is not None]
    if not known:
        return
    ax.autoscale_view()
    low, high = ax.get_ylim()
    if known[0] <= low:  # every drawn bin is well above it
        return
    ax.axhspan(
        low,
        known[0],
        color=_foreground(),
        alpha=0.12,
        zorder=0,
        linewidth=0,
        label="below shot noise",
    )
    ax.set_ylim(low, high)


def _drawn_curve(
    label: str,
    curve: tuple[np.ndarray, np.ndarray],
    info: dict[str, Any],
    k_max: str | float | None,
    shot_noise: str,
    min_signal: float,
    n_particles: int | None,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(k, P drawn, shot noise or None) of one spectrum: see :func:`power_spectrum`."""
    import warnings

    k, power = curve
    n = info.get("n_particles", n_particles)
    box = info.get("box_size")
    noise = info.get("shot_noise")
    if noise is None and n is not None and box is not None:
        noise = float(box) ** 3 / float(n)
    noise = None if noise is None else float(noise)
    already = bool(info.get("shot_noise_subtracted", 0))
    if k_max == "nyquist":
        if n is None or box is None:
            if box is not None:  # a measured spectrum (CONCEPT's lack a count)
                warnings.warn(
                    f"{label}: no particle count (n_particles); drawn to its last k, "
                    "past the particle Nyquist wavenumber if the mesh is finer",
                    stacklevel=3,
                )
            limit = np.inf
        else:
            limit = np.pi * round(float(n) ** (1 / 3)) / float(box)
    elif k_max is None:
        limit = np.inf
    elif isinstance(k_max, str):
        raise ValueError(f"k_max={k_max!r} is not 'nyquist', a k in h/Mpc or None")
    else:
        limit = float(k_max)
    keep = k <= limit * (1 + 1e-9)
    k, power = k[keep], power[keep].astype(np.float64)
    if noise is None:
        return k, np.where(power > 0, power, np.nan), None
    signal = power if already else power - noise
    if shot_noise == "subtract":
        resolved = (signal >= min_signal * noise) & (signal > 0)
        return k, np.where(resolved, signal, np.nan), noise
    return k, np.where(power > 0, power, np.nan), noise  # as given


def _linear_curves(
    linear: Any,
    cosmology: Cosmology | None,
    labelled: dict[str, tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]],
) -> tuple[
    tuple[np.ndarray, np.ndarray] | None, dict[str, tuple[np.ndarray, np.ndarray]]
]:
    """(one linear curve or None, {label: its own linear curve})."""
    if linear is not None and cosmology is not None:
        raise ValueError("give linear or cosmology, not both")
    if cosmology is not None:
        from simlab import cosmology as theory

        own = {}
        for label, ((k, _), info) in labelled.items():
            if "a" not in info:
                raise ValueError(
                    f"{label}: the spectrum has no 'a' attribute; linear theory at "
                    "its time needs the scale factor"
                )
            own[label] = (k, theory.linear_power(k, cosmology, a=float(info["a"])))
        return None, own
    if isinstance(linear, Mapping):
        unknown = set(linear) - set(labelled)
        if unknown:
            raise ValueError(
                f"linear has curves for {sorted(unknown)}, which are not spectra "
                f"labels {list(labelled)}"
            )
        return None, {label: _curve(curve) for label, curve in linear.items()}
    return (None if linear is None else _curve(linear)), {}


def _figure_and_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    return fig, fig.add_subplot()


def _power_axes(
    ax: Axes | Sequence[Axes] | None, ratio_panel: bool
) -> tuple[Figure, Axes, Axes | None]:
    """The figure, the P(k) axes and the ratio axes (None without a ratio panel)."""
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.0, 6.0 if ratio_panel else 4.5), layout="constrained")
        if not ratio_panel:
            return fig, fig.add_subplot(), None
        main, lower = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)}
        )
        return fig, main, lower
    panels = list(ax) if isinstance(ax, Sequence) else [ax]
    if len(panels) != 1 + ratio_panel:
        raise ValueError(
            f"ax must be {'two Axes (upper, lower)' if ratio_panel else 'one Axes'} "
            f"{'with' if ratio_panel else 'without'} a ratio panel, got {len(panels)}"
        )
    return panels[0].figure, panels[0], panels[1] if ratio_panel else None


def _labelled_spectra(
    spectra: xr.DataArray | Sequence[xr.DataArray] | Mapping[str, xr.DataArray],
) -> dict[str, tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]]:
    """{label: ((k, P), attrs)} from one spectrum, a list or a mapping of them."""
    if isinstance(spectra, Mapping):
        items = list(spectra.items())
    else:
        many = isinstance(spectra, Sequence)
        listed = list(spectra) if many else [spectra]
        items = [(_default_label(s, i), s) for i, s in enumerate(listed)]
    if not items:
        raise ValueError("spectra is empty; give at least one power spectrum")
    return {
        str(label): (_curve(s), dict(getattr(s, "attrs", {}))) for label, s in items
    }


def _default_label(spectrum: xr.DataArray, position: int) -> str:
    label = spectrum.attrs.get("label")
    if label:
        return str(label)
    return f"{spectrum.name or 'power'} {position}"


def _curve(
    spectrum: xr.DataArray | tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(k, P) float arrays from a DataArray with a ``k`` coordinate or a pair."""
    if isinstance(spectrum, tuple):
        k, power = spectrum
    elif "k" in getattr(spectrum, "coords", {}):
        k, power = spectrum["k"].to_numpy(), spectrum.to_numpy()
    else:
        raise TypeError(
            "a spectrum must be a DataArray with a 'k' coordinate or a (k, P) pair, "
            f"got {type(spectrum).__name__}"
        )
    return np.asarray(k, dtype=np.float64), np.asarray(power, dtype=np.float64)


def _interpolate(curve: tuple[np.ndarray, np.ndarray], k: np.ndarray) -> np.ndarray:
    """The curve at k: exact at its own k, linear in log-log in between."""
    k_curve, power = curve
    if np.array_equal(k_curve, k):
        return power
    return np.exp(np.interp(np.log(k), np.log(k_curve), np.log(power)))
