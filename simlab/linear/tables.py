"""Transfer-function and P(k) tables: reading CAMB / CLASS files, and interpolation.

Formats read by :func:`read_table` (``#`` starts a comment; k always in h/Mpc):

- **CAMB transfer** (``*_transfer_out.dat``, ``transfer_filename``): columns
  ``k/h, CDM, baryon, photon, nu, mass_nu, total[, no_nu, total_de, Weyl, v_CDM,
  v_b, v_b-v_c]``. The ``total`` column (7th) is used; the header names it in
  CAMB >= 1.0, and a file without names and at least 7 columns is read the same
  way (old CAMB). CLASS with ``format = camb`` writes that layout too (its titles
  repeat k, then ``-T_cdm/k2 ... -T_tot/k2``; the 7th column is read).
- **CLASS transfer** (``*_tk.dat``, ``output = mTk``, ``format = class``): the
  titled columns ``1:k (h/Mpc)  2:d_g  3:d_b  4:d_cdm ... d_m  d_tot ...``; ``d_m``
  (total matter) is used, else ``d_tot``, divided by k² (CLASS writes δ, CAMB δ/k²).
- **P(k)**: two columns ``k [h/Mpc], P(k) [(Mpc/h)³]`` (CAMB's
  ``*_matterpower.dat``, CLASS's ``*_pk.dat``, or any such table); the transfer
  function is then sqrt(P / k^n_s).

The table must be at z = 0 (or late enough that growth is scale-independent): its
amplitude is ignored, simlab normalises to ``cosmology.sigma8``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.interpolate import CubicSpline

from simlab.linear import eisenstein_hu

#: column names read as the total matter transfer function, in order of preference
_TRANSFER_COLUMNS = ("d_m", "total", "delta_tot", "d_tot", "-T_tot/k2")
_CLASS_TITLE = re.compile(r"(\d+):\s*(.*?)\s*(?=\s\d+:|$)")
_MIN_ROWS = 8


class TableError(ValueError):
    """A table that cannot be read as a transfer function or P(k)."""


@dataclass(frozen=True, eq=False)
class Table:
    """A transfer function (``kind="transfer"``) or a P(k) (``"power"``) table."""

    k: np.ndarray
    values: np.ndarray
    kind: Literal["transfer", "power"]
    source: str

    def transfer(self, n_s: float) -> np.ndarray:
        """T(k) up to a constant: |T| or sqrt(P / k^n_s)."""
        if self.kind == "power":
            return np.sqrt(self.values / self.k**n_s)
        return np.abs(self.values)


def _header_names(comments: list[str], ncol: int) -> list[str] | None:
    """Column names from the last comment line that names every column."""
    for line in reversed(comments):
        text = line.lstrip("#").strip()
        titled = _CLASS_TITLE.findall(text)
        if titled and [int(i) for i, _ in titled] == list(range(1, ncol + 1)):
            names = [name for _, name in titled]
            if names[1] == names[0]:
                # CLASS (3.4) with format = camb titles k twice: the data are k,
                # -T_cdm/k2, ..., -T_tot/k2 (7th) and an 8th column of nothing
                names = [names[0], *names[2:], "(unused)"]
            return names
        names = text.split()
        if len(names) == ncol:
            return names
    return None


def read_table(path: str | os.PathLike[str]) -> Table:
    """Read a CAMB / CLASS transfer table or a two-column P(k) table.

    Raises :class:`TableError` (a ValueError) saying what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise TableError(f"cannot read {path}: {reason}") from exc
    comments, rows = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line)
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise TableError(f"line {number} is not numbers: {line[:60]!r}") from None
    if len(rows) < _MIN_ROWS:
        raise TableError(f"has {len(rows)} rows of numbers; at least {_MIN_ROWS}")
    ncol = len(rows[0])
    if any(len(r) != ncol for r in rows):
        raise TableError("rows have different numbers of columns")
    data = np.array(rows)
    k = data[:, 0]
    if not np.all(np.isfinite(data)):
        raise TableError("holds values that are not finite numbers")
    if np.any(k <= 0) or np.any(np.diff(k) <= 0):
        raise TableError("k (first column) must be positive and increasing")
    if ncol == 2:
        values = data[:, 1]
        if np.any(values <= 0):
            raise TableError("P(k) (second column) must be positive")
        return Table(k, values, "power", "P(k): columns k [h/Mpc], P [(Mpc/h)³]")
    names = _header_names(comments, ncol)
    column = None
    if names is not None:
        column = next((names.index(n) for n in _TRANSFER_COLUMNS if n in names), None)
        if column is None and ("d_cdm" in names or "CDM" in names):
            raise TableError(
                f"names columns {', '.join(names)} but none of "
                f"{', '.join(_TRANSFER_COLUMNS)} (total matter)"
            )
    if column is None:
        if ncol < 7:
            raise TableError(
                f"has {ncol} columns: expected 2 (k, P(k)), a CAMB transfer table "
                "(k/h, CDM, baryon, photon, nu, mass_nu, total, ...) or a CLASS "
                "*_tk.dat with titled columns"
            )
        column = 6
        label = f"column 7 ({names[6]!r})" if names else "column 7 (CAMB's total)"
    else:
        label = f"column {column + 1} ({names[column]!r})"
    values = data[:, column]
    if names is not None and names[column].startswith("d_"):
        values = values / k**2  # CLASS's d_i is δ; CAMB's convention is δ / k²
    if np.any(values == 0) or np.any(np.sign(values) != np.sign(values[0])):
        raise TableError(f"{label} changes sign or is zero: not a matter transfer")
    return Table(k, values, "transfer", f"transfer function, {label}")


@lru_cache(maxsize=32)
def _read_cached(path: str, mtime_ns: int, size: int) -> Table:
    return read_table(path)


def load_table(path: str | os.PathLike[str]) -> Table:
    """:func:`read_table`, cached until the file changes (path, mtime, size)."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise TableError(f"cannot read {resolved}: {exc.strerror}") from exc
    return _read_cached(str(resolved), stat.st_mtime_ns, stat.st_size)


#: c / H0 in Mpc/h (c = 299792.458 km/s)
HUBBLE_LENGTH = 2997.92458


class TabulatedTransfer:
    """T(k) from a table: cubic spline in (ln k, ln T), E&H-shaped beyond its ends.

    Normalised so T equals Eisenstein & Hu's no-wiggle T (≈ 1) at the table's
    smallest k well inside the curvature scale (100 √|Ω_k| H0/c): a closed
    universe's lowest modes, which CLASS tabulates with radiation on (a preset then
    carries Ω_k = -Ω_r), sit up to 40% off. Below that k T follows the no-wiggle
    shape times the ratio at the table's first point, above the table the no-wiggle
    shape joined continuously at the largest k (the ln k / k² tail).
    """

    def __init__(
        self,
        k: np.ndarray,
        t: np.ndarray,
        om: float,
        ob: float,
        h: float,
        t_cmb: float,
        omega_k: float = 0.0,
    ) -> None:
        self._eh = (om, ob, h, t_cmb)
        lnk = np.log(k)
        lnt = np.log(np.abs(t))
        inside = np.flatnonzero(k >= 100 * math.sqrt(abs(omega_k)) / HUBBLE_LENGTH)
        at = int(inside[0]) if inside.size else 0
        first, matched, last = np.log(self._nowiggle(k[[0, at, -1]]))
        lnt = lnt - lnt[at] + matched
        self._spline = CubicSpline(lnk, lnt)
        self._lnk = (float(lnk[0]), float(lnk[-1]))
        self._offset = (float(lnt[0] - first), float(lnt[-1] - last))
        self.k_range = (math.exp(self._lnk[0]), math.exp(self._lnk[1]))

    def _nowiggle(self, k: np.ndarray) -> np.ndarray:
        return eisenstein_hu.transfer(k, *self._eh, wiggles=False)

    def __call__(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        safe = np.where(k > 0, k, 1.0)
        lnk = np.log(safe)
        low, high = lnk < self._lnk[0], lnk > self._lnk[1]
        inside = np.clip(lnk, *self._lnk)
        t = np.exp(self._spline(inside))
        if np.any(low | high):
            outside = self._nowiggle(safe)
            t = np.where(low, outside * math.exp(self._offset[0]), t)
            t = np.where(high, outside * math.exp(self._offset[1]), t)
        return np.where(k > 0, t, 1.0)
