"""Quick-look figures: projected density maps and power spectra.

Every function returns a ``matplotlib.figure.Figure`` built with the object API
(no pyplot state), so it works headless and in notebooks, where a returned Figure
displays itself. matplotlib is imported inside the functions to keep
``import simlab`` fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from simlab.analysis.mesh import deposit, particle_positions

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_AXES = ("x", "y", "z")
_LENGTH_UNIT = "Mpc/h"


def projection_image(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None = None,
    *,
    axis: str = "z",
    slab: tuple[float, float] | None = None,
    n_pixels: int = 256,
    scheme: str = "cic",
    log: bool = True,
) -> np.ndarray:
    """The projected density of a slab, as the image :func:`projection` draws.

    Particles with ``slab[0] <= position[axis] < slab[1]`` are assigned to an
    n_pixels² periodic grid of the two other axes (pixel i centred on i L / n, as
    in :func:`simlab.analysis.mesh.deposit`), and each pixel's mass is divided by
    the mean over the pixels: 1 + δ, projected.

    Parameters
    ----------
    positions : (N, 3) array or xarray.Dataset
        comoving positions in Mpc/h, or a Gadget4 snapshot Dataset
        (``Coordinates`` variable, ``BoxSize`` attribute)
    box_size : float, optional
        comoving box side in Mpc/h (default: the Dataset's ``BoxSize``)
    axis : {"x", "y", "z"}
        line-of-sight axis the slab is projected along
    slab : (float, float), optional
        the slab's range along ``axis`` in Mpc/h (default: the whole box)
    n_pixels : int
        pixels per side
    scheme : {"ngp", "cic", "tsc"}
        mass-assignment kernel
    log : bool
        return log10(1 + δ), with NaN in empty pixels, instead of 1 + δ

    Returns
    -------
    (n_pixels, n_pixels) float64
        ``image[row, column]`` with columns along the first remaining axis
        (horizontal) and rows along the second (vertical), as ``imshow`` with
        ``origin="lower"`` shows it

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 0.5], [1.0, 2.0, 9.5]])
    >>> image = projection_image(x, 10.0, slab=(0.0, 5.0), n_pixels=10, log=False)
    >>> float(image[2, 1]), float(image.mean())
    (100.0, 1.0)
    """
    positions, box_size = particle_positions(positions, box_size)
    line_of_sight = _axis_index(axis)
    lo, hi = _slab_range(slab, box_size)
    depth = positions[:, line_of_sight]
    selected = positions[(depth >= lo) & (depth < hi)]
    if len(selected) == 0:
        raise ValueError(
            f"slab={slab!r} along {axis} holds no particles; the box is "
            f"[0, {box_size}) {_LENGTH_UNIT}"
        )
    across = [a for a in range(3) if a != line_of_sight]
    mass = deposit(selected[:, across], box_size, n_pixels, scheme)
    mass *= n_pixels**2 / len(selected)
    image = mass.T
    if not log:
        return image
    with np.errstate(divide="ignore"):
        return np.where(image > 0, np.log10(image), np.nan)


def projection(
    positions: np.ndarray | xr.Dataset,
    box_size: float | None = None,
    *,
    axis: str = "z",
    slab: tuple[float, float] | None = None,
    n_pixels: int = 256,
    scheme: str = "cic",
    log: bool = True,
    cmap: str = "magma",
    ax: Axes | None = None,
) -> Figure:
    """Draw the projected density of a slab with a colour bar.

    Parameters are those of :func:`projection_image`, plus ``cmap`` (a matplotlib
    colour map name; empty pixels get its lowest colour) and ``ax`` (Axes to draw
    in; default a new Figure).

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

    positions, box_size = particle_positions(positions, box_size)
    image = projection_image(
        positions,
        box_size,
        axis=axis,
        slab=slab,
        n_pixels=n_pixels,
        scheme=scheme,
        log=log,
    )
    fig, ax = _figure_and_axes(ax)
    colours = mpl.colormaps[cmap]
    colours = colours.with_extremes(bad=colours(0.0))
    half_pixel = 0.5 * box_size / n_pixels
    extent = (-half_pixel, box_size - half_pixel) * 2
    # CIC leaves slivers of mass far below one particle per pixel; a colour scale
    # from the 2nd percentile up keeps them from swallowing the structure
    finite = image[np.isfinite(image)]
    low = float(np.percentile(finite, 2)) if finite.size else None
    shown = ax.imshow(image, origin="lower", extent=extent, cmap=colours, vmin=low)
    horizontal, vertical = (a for a in _AXES if a != axis)
    ax.set_xlabel(f"{horizontal} [{_LENGTH_UNIT}]")
    ax.set_ylabel(f"{vertical} [{_LENGTH_UNIT}]")
    lo, hi = _slab_range(slab, box_size)
    ax.set_title(f"projected density, {lo:g} ≤ {axis} < {hi:g} {_LENGTH_UNIT}")
    bar = fig.colorbar(shown, ax=ax)
    bar.set_label("log10(1 + δ)" if log else "1 + δ")
    return fig


def power_spectrum(
    spectra: xr.DataArray | Sequence[xr.DataArray] | Mapping[str, xr.DataArray],
    *,
    linear: xr.DataArray | tuple[np.ndarray, np.ndarray] | None = None,
    reference: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Draw power spectra on log-log axes, with an optional ratio panel.

    Parameters
    ----------
    spectra : DataArray, list of DataArrays or {label: DataArray}
        P(k) in (Mpc/h)³ along a ``k`` coordinate in h/Mpc, as from
        :func:`simlab.analysis.power.power_spectrum`; list entries are labelled
        by their ``label`` attribute, else their name and position
    linear : DataArray or (k, P), optional
        a linear-theory P(k) to draw dashed, labelled "linear theory"
    reference : str, optional
        label of the spectrum the lower panel divides by; without it but with
        ``linear``, the lower panel shows P / P_linear (interpolated in log-log)
    ax : Axes or (Axes, Axes), optional
        where to draw: one Axes without a ratio panel, two (upper, lower) with one

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> k = np.array([0.1, 0.2, 0.4])
    >>> pk = xr.DataArray(1e4 * k**-1, dims="k", coords={"k": k})
    >>> fig = power_spectrum({"run": pk}, reference="run")
    >>> len(fig.axes), fig.axes[1].lines[0].get_ydata().tolist()
    (2, [1.0, 1.0, 1.0])
    """
    labelled = _labelled_spectra(spectra)
    if reference is not None and reference not in labelled:
        raise ValueError(
            f"reference={reference!r} is not one of the spectra's labels "
            f"{list(labelled)}"
        )
    linear_curve = None if linear is None else _curve(linear)
    ratio_panel = reference is not None or linear_curve is not None
    fig, main, lower = _power_axes(ax, ratio_panel)
    for label, (k, power) in labelled.items():
        main.loglog(k, power, label=label)
    if linear_curve is not None:
        main.loglog(*linear_curve, "k--", label="linear theory")
    main.set_ylabel(f"P(k) [({_LENGTH_UNIT})³]")
    main.set_title("matter power spectrum")
    main.legend()
    if lower is None:
        main.set_xlabel("k [h/Mpc]")
        return fig
    if reference is not None:
        base, base_name = labelled[reference], reference
    else:
        base, base_name = linear_curve, "linear"
    for label, (k, power) in labelled.items():
        lower.semilogx(k, power / _interpolate(base, k), label=label)
    lower.axhline(1.0, color="0.5", linewidth=0.8)
    lower.set_xlabel("k [h/Mpc]")
    lower.set_ylabel(f"P / P_{base_name}")
    return fig


def _axis_index(axis: str) -> int:
    if axis not in _AXES:
        raise ValueError(f"axis={axis!r} is not one of {_AXES}")
    return _AXES.index(axis)


def _slab_range(
    slab: tuple[float, float] | None, box_size: float
) -> tuple[float, float]:
    if slab is None:
        return 0.0, box_size
    lo, hi = (float(v) for v in slab)
    if not lo < hi:
        raise ValueError(f"slab={slab!r} must be (low, high) with low < high, in Mpc/h")
    return lo, hi


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
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{label: (k, P)} from one spectrum, a list or a mapping of them."""
    if isinstance(spectra, Mapping):
        items = list(spectra.items())
    else:
        many = isinstance(spectra, Sequence)
        listed = list(spectra) if many else [spectra]
        items = [(_default_label(s, i), s) for i, s in enumerate(listed)]
    if not items:
        raise ValueError("spectra is empty; give at least one power spectrum")
    return {str(label): _curve(s) for label, s in items}


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
