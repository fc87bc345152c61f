"""CONCEPT's power-spectrum files (``powerspec_a=…``) as simlab P(k) DataArrays.

CONCEPT (``src/analysis.py``) measures P(k) with PCS assignment on the potential
grid, deconvolved and interlaced, shot noise kept, and bins whole |k|² shells:
every integer q = |m|² goes to the bin whose centre is nearest in ln k, and the
bin's k is the mode-weighted geometric mean |k|. It counts the modes of half of
Fourier space. The file has the mode counts, from which :func:`powerspec_bins`
recovers each bin's shells exactly; :func:`read_powerspec` returns the result in
the shape of :func:`simlab.analysis.power.power_spectrum`, bin edges included, so
simlab can measure a snapshot in CONCEPT's own bins.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simlab.errors import SnapshotError


@functools.lru_cache(maxsize=8)
def _mode_counts(n_mesh: int) -> np.ndarray:
    """Full-FFT modes with |m|² = q on an n_mesh³ grid, for q = 0 … 3 (n/2)².

    The three axes are independent, so the counts are the per-axis counts of m²
    convolved three times (FFT convolution, exact after rounding), with no n³
    array.

    Examples
    --------
    >>> _mode_counts(4)[:4].tolist()  # q = 0, 1, 2, 3 on a 4³ grid
    [1.0, 6.0, 12.0, 8.0]
    """
    from scipy.signal import fftconvolve

    m2 = np.fft.fftfreq(n_mesh, 1.0 / n_mesh).round().astype(np.int64) ** 2
    axis = np.bincount(m2).astype(np.float64)
    counts = np.rint(fftconvolve(np.rint(fftconvolve(axis, axis)), axis))
    counts.flags.writeable = False
    return counts


def powerspec_bins(n_modes: np.ndarray, n_mesh: int) -> tuple[np.ndarray, np.ndarray]:
    """The integer |m|² range [q_low, q_high] of each bin of a CONCEPT P(k) file.

    CONCEPT puts every integer q = |m|² wholly into one bin and counts the modes
    of half of Fourier space (one of each ±k pair). Walking the cumulative mode
    counts of the grid recovers each bin's q range exactly; a mismatch means the
    grid size is wrong.
    """
    counts = _mode_counts(n_mesh)[1:] / 2.0
    cumulative = np.cumsum(counts)
    targets = np.cumsum(np.asarray(n_modes, dtype=np.float64))
    last = np.searchsorted(cumulative, targets - 0.25)
    if np.any(last >= len(cumulative)) or not np.allclose(
        cumulative[np.minimum(last, len(cumulative) - 1)], targets
    ):
        raise SnapshotError(
            f"the mode counts {list(n_modes)} do not match whole |k|² shells of a "
            f"{n_mesh}³ grid"
        )
    q_high = last + 1
    q_low = np.concatenate([[1], q_high[:-1] + 1])
    return q_low, q_high


_GRID = re.compile(r"grid size (\d+)")
_TIME = re.compile(r"t = (?P<t>\S+) Gyr, a = (?P<a>\S+)")


def read_powerspec(
    path: str | os.PathLike[str], *, h: float | None = None
) -> xr.DataArray:
    """A CONCEPT ``powerspec_a=…`` file as the DataArray simlab's P(k) returns.

    Parameters
    ----------
    path : path
        the text file (not the ``.png``)
    h : float, optional
        H0 / (100 km/s/Mpc). Given, k is converted to h/Mpc and P to (Mpc/h)³
        (simlab's units); without it they stay in CONCEPT's 1/Mpc and Mpc³.

    Returns
    -------
    xarray.DataArray
        "power" along ``k`` (CONCEPT's bin k: geometric mean |k| of its modes),
        coordinates ``n_modes`` (full-FFT count, as simlab counts: twice
        CONCEPT's), ``k_edges_low``/``k_edges_high`` (half-way between the
        bin's outermost shells and the neighbours') and ``power_linear``; attrs
        ``a``, ``t``, ``n_mesh``, ``scheme`` ("pcs"), ``interlaced``,
        ``deconvolved``, ``shot_noise_subtracted`` (0: CONCEPT keeps it), units.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotError(
            f"{path.name}: not UTF-8 text; not a CONCEPT power spectrum file"
        ) from exc
    header = [line for line in text.splitlines() if line.startswith("#")]
    grid = _GRID.search("\n".join(header))
    when = _TIME.search(header[0] if header else "")
    if grid is None or when is None:
        raise SnapshotError(
            f"{path.name}: no '# Power spectrum … t = … Gyr, a = …' and 'grid size N' "
            "header; not a CONCEPT power spectrum file"
        )
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.shape[1] < 3:
        raise SnapshotError(
            f"{path.name}: {data.shape[1]} columns; expected k, modes, P[, P_linear]"
        )
    n_mesh = int(grid[1])
    k, modes, power = data[:, 0], data[:, 1].astype(np.int64), data[:, 2]
    q_low, q_high = powerspec_bins(modes, n_mesh)
    k_f = k[0] / np.exp(_mean_log_k(q_low[0], q_high[0], n_mesh))
    length_factor = 1.0 if h is None else h
    k_unit, p_unit = ("1/Mpc", "Mpc^3") if h is None else ("h/Mpc", "(Mpc/h)^3")
    coords: dict[str, Any] = {
        "k": ("k", k / length_factor, {"units": k_unit}),
        "n_modes": ("k", 2 * modes),
        "k_edges_low": (
            "k",
            k_f * np.sqrt(q_low - 0.5) / length_factor,
            {"units": k_unit},
        ),
        "k_edges_high": (
            "k",
            k_f * np.sqrt(q_high + 0.5) / length_factor,
            {"units": k_unit},
        ),
    }
    if data.shape[1] > 3:
        coords["power_linear"] = ("k", data[:, 3] * length_factor**3, {"units": p_unit})
    return xr.DataArray(
        power * length_factor**3,
        dims=("k",),
        coords=coords,
        name="power",
        attrs={
            "long_name": "matter power spectrum (CONCEPT)",
            "units": p_unit,
            "box_size": 2 * np.pi / k_f * length_factor,
            "n_mesh": n_mesh,
            "scheme": "pcs",
            "interlaced": 1,
            "deconvolved": 1,
            "shot_noise_subtracted": 0,
            "a": float(when["a"]),
            "t": float(when["t"]),
            "source": str(path),
        },
    )


def _mean_log_k(q_low: int, q_high: int, n_mesh: int) -> float:
    """Mode-weighted mean of ln sqrt(q) over q_low … q_high (k in units of k_f)."""
    q = np.arange(q_low, q_high + 1)
    weights = _mode_counts(n_mesh)[q_low : q_high + 1]
    return float(np.sum(weights * 0.5 * np.log(q)) / weights.sum())
