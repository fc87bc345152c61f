"""Gadget4's power-spectrum files (``powerspecs/powerspec_NNN.txt``) as DataArrays.

Each file holds three blocks, all measured on the PMGRID³ mesh with CIC assignment
and the CIC window divided out, shot noise NOT subtracted: the full box
(``fold=1``), positions folded 16 times (``fold=16``) and 256 times (``fold=256``),
which reach smaller scales. A block starts with five lines (a, number of rows,
BoxSize, PMGRID, D(1)/D(a)) followed by rows ``k Δ²(k) P/L³ n_modes Δ²_shot``;
the file ends with the total mass, the particle count and the effective particle
number. Modes are binned in 4000 bins even in ln k from k_0 = 2π/L to
k_0 · 16² · PMGRID / 2, and k is exp(mean ln k) of a bin's modes; only bins with
modes are written. (Read from Gadget4's ``pm_periodic.cc`` and checked against
``tests/data/gadget4-small``.)

The result has the shape of :func:`simlab.analysis.power.power_spectrum`: P(k) in
(Mpc/h)³ along ``k`` with ``n_modes``, ``k_edges_low`` and ``k_edges_high``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

#: Gadget4's compile-time constants of the power-spectrum measurement.
BINS_PS = 4000
POWERSPEC_FOLDFAC = 16
FOLDS = (1, POWERSPEC_FOLDFAC, POWERSPEC_FOLDFAC**2)


def gadget4_k_bins(box_size: float, pmgrid: int) -> np.ndarray:
    """The 4001 bin edges in h/Mpc Gadget4 bins its spectra in (even in ln k).

    Pass them as ``k_bins`` to :func:`simlab.analysis.power.power_spectrum` to
    measure a snapshot in exactly Gadget4's bins.

    Examples
    --------
    >>> edges = gadget4_k_bins(64.0, 64)
    >>> len(edges), round(float(edges[0]), 6), round(float(edges[-1]), 2)
    (4001, 0.098175, 804.25)
    """
    k0 = 2 * np.pi / box_size
    k1 = k0 * (POWERSPEC_FOLDFAC**2 * pmgrid / 2)
    return np.exp(np.linspace(np.log(k0), np.log(k1), BINS_PS + 1))


def _blocks(path: Path) -> tuple[list[tuple[list[float], np.ndarray]], list[float]]:
    """Split the file into (5 header values, rows) per block and the tail values."""
    try:
        values = [line.split() for line in path.read_text().splitlines()]
    except OSError as exc:
        raise FileNotFoundError(f"cannot read power spectrum {path}: {exc}") from exc
    blocks = []
    pos = 0
    for _ in FOLDS:
        head = values[pos : pos + 5]
        if len(head) < 5 or any(len(v) != 1 for v in head):
            raise ValueError(
                f"{path.name}: line {pos + 1}: expected the 5 single-value lines "
                "(a, rows, BoxSize, PMGRID, growth) of a Gadget4 spectrum block"
            )
        header = [float(v[0]) for v in head]
        n_rows = int(header[1])
        rows = values[pos + 5 : pos + 5 + n_rows]
        if len(rows) != n_rows or any(len(r) != 5 for r in rows):
            raise ValueError(
                f"{path.name}: block at line {pos + 1} announces {n_rows} rows of 5 "
                "columns but the file does not hold them"
            )
        blocks.append((header, np.array(rows, dtype=np.float64)))
        pos += 5 + n_rows
    tail = [float(v[0]) for v in values[pos : pos + 3] if len(v) == 1]
    if len(tail) != 3:
        raise ValueError(
            f"{path.name}: expected total mass, particle number and effective "
            "particle number after the third block"
        )
    return blocks, tail


def read_powerspec(path: str | os.PathLike[str], fold: int = 1) -> xr.DataArray:
    """One block of a Gadget4 power-spectrum file as a P(k) DataArray.

    Parameters
    ----------
    path : path-like
        ``powerspec_NNN.txt`` written by Gadget4 (POWERSPEC_ON_OUTPUT)
    fold : {1, 16, 256}
        which block: the full box, or positions folded 16 or 256 times

    Returns
    -------
    xarray.DataArray
        "power", P(k) in (Mpc/h)³ (shot noise included) along ``k`` in h/Mpc,
        coordinates ``n_modes``, ``k_edges_low``, ``k_edges_high`` and
        ``delta2_shot`` (Gadget4's shot-noise Δ²), attributes as from
        :func:`simlab.analysis.power.power_spectrum` plus ``a``, ``z``, ``fold``,
        ``growth_to_today`` (D(1)/D(a) as the code printed it) and ``source``.
    """
    import xarray as xr

    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {FOLDS}, got {fold!r}")
    path = Path(path)
    blocks, (mass, count, n_eff) = _blocks(path)
    header, rows = blocks[FOLDS.index(fold)]
    a, _, box, pmgrid, growth = header
    edges = gadget4_k_bins(box, int(pmgrid))
    k = rows[:, 0]
    index = np.floor(np.log(k / edges[0]) * BINS_PS / np.log(edges[-1] / edges[0]))
    index = np.clip(index, 0, BINS_PS - 1).astype(np.int64)
    return xr.DataArray(
        rows[:, 2] * box**3,
        dims=("k",),
        coords={
            "k": ("k", k, {"units": "h/Mpc"}),
            "n_modes": ("k", rows[:, 3].round().astype(np.int64)),
            "k_edges_low": ("k", edges[index], {"units": "h/Mpc"}),
            "k_edges_high": ("k", edges[index + 1], {"units": "h/Mpc"}),
            "delta2_shot": ("k", rows[:, 4]),
        },
        name="power",
        attrs={
            "long_name": "matter power spectrum (Gadget4)",
            "units": "(Mpc/h)^3",
            "box_size": box,
            "n_mesh": int(pmgrid),
            "scheme": "cic",
            "interlaced": 0,
            "deconvolved": 1,
            "shot_noise": box**3 / n_eff,
            "shot_noise_subtracted": 0,
            "n_particles": int(count),
            "total_mass": mass,
            "a": a,
            "z": 1.0 / a - 1.0,
            "fold": fold,
            "growth_to_today": growth,
            "source": str(path),
        },
    )
