"""Density mesh and power spectrum: simlab against Pylians and a plain numpy baseline.

Each step goes from particle positions in memory (clustered, float32, 256 Mpc/h
box) to a binned, window-deconvolved P(k): mass assignment on an n³ mesh, the FFT
and the binning. Variants: CIC, CIC with interlacing, TSC.

- simlab: :func:`simlab.analysis.power.power_spectrum`.
- Pylians: ``MAS_library.MA`` into a float32 mesh, then ``Pk_library.Pk`` with two
  threads (it has no interlacing, so that variant is reported as missing).
- numpy: what one writes without a library: one ``np.bincount`` per stencil point
  (8 for CIC) into a float64 mesh, ``numpy.fft.rfftn``, and a ``bincount`` over
  |k| bins; the baseline every tool should beat (CIC only: at 256³ the TSC version
  takes minutes).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from benchmarks._data import BOX_SIZE, positions_file
from benchmarks._harness import installed, measure, missing


def _load(n_side: int) -> np.ndarray:
    return np.load(positions_file(n_side))


def case_simlab(
    n_side: int, n_mesh: int, scheme: str, interlace: bool
) -> Callable[[], dict]:
    """simlab's ``power_spectrum`` (numba kernels when installed)."""
    from simlab.analysis import _compiled
    from simlab.analysis.power import power_spectrum

    positions = _load(n_side)

    def step() -> dict:
        pk = power_spectrum(
            positions, BOX_SIZE, n_mesh, scheme=scheme, interlace=interlace
        )
        return {"bins": int(pk.sizes["k"]), "compiled": _compiled.available()}

    return step


def case_pylians(n_side: int, n_mesh: int, scheme: str) -> Callable[[], dict]:
    """Pylians: ``MA`` then ``Pk`` (threads=2), float32 throughout."""
    import MAS_library
    import Pk_library

    positions = _load(n_side)
    mas = scheme.upper()

    def step() -> dict:
        delta = np.zeros((n_mesh,) * 3, dtype=np.float32)
        MAS_library.MA(positions, delta, BOX_SIZE, mas, verbose=False)
        delta /= np.mean(delta, dtype=np.float64)
        delta -= 1.0
        pk = Pk_library.Pk(delta, BOX_SIZE, 0, mas, 2, verbose=False)
        return {"bins": len(pk.k3D)}

    return step


def case_numpy(n_side: int, n_mesh: int, scheme: str) -> Callable[[], dict]:
    """Plain numpy: one bincount per stencil point, rfftn, bincount over |k|."""
    positions = _load(n_side)
    order = {"cic": 2, "tsc": 3}[scheme]

    def step() -> dict:
        u = positions.astype(np.float64) * (n_mesh / BOX_SIZE)
        if order == 2:
            first = np.floor(u)
            d = u - first
            axis_weights = [1.0 - d, d]
        else:
            first = np.floor(u + 0.5)
            d = u - first
            axis_weights = [0.5 * (0.5 - d) ** 2, 0.75 - d**2, 0.5 * (0.5 + d) ** 2]
            first -= 1
        first = first.astype(np.int64)
        mesh = np.zeros(n_mesh**3)
        for offsets in itertools.product(range(order), repeat=3):
            index = np.zeros(len(positions), dtype=np.int64)
            weight = np.ones(len(positions))
            for axis, offset in enumerate(offsets):
                index = index * n_mesh + (first[:, axis] + offset) % n_mesh
                weight = weight * axis_weights[offset][:, axis]
            mesh += np.bincount(index, weight, minlength=n_mesh**3)
        delta = mesh.reshape((n_mesh,) * 3) / mesh.mean() - 1.0
        delta_k = np.fft.rfftn(delta)
        kx = np.fft.fftfreq(n_mesh, 1.0 / n_mesh)
        kz = np.fft.rfftfreq(n_mesh, 1.0 / n_mesh)
        window = (np.sinc(kx / n_mesh) ** order)[:, None, None]
        window = window * (np.sinc(kx / n_mesh) ** order)[None, :, None]
        window = window * (np.sinc(kz / n_mesh) ** order)[None, None, :]
        k = np.sqrt(kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kz**2)
        power = np.abs(delta_k / window) ** 2
        bins = np.rint(k).astype(np.int64).ravel()
        sums = np.bincount(bins, power.ravel())
        counts = np.bincount(bins)
        spectrum = sums[1 : n_mesh // 2 + 1] / counts[1 : n_mesh // 2 + 1]
        return {"bins": len(spectrum)}

    return step


CASES = {"simlab": case_simlab, "pylians": case_pylians, "numpy": case_numpy}
VARIANTS = (
    ("CIC + P(k)", "cic", False),
    ("CIC interlaced + P(k)", "cic", True),
    ("TSC + P(k)", "tsc", False),
)


def run(quick: bool = False) -> list[dict]:
    """Every variant for every tool at 256³ (128³ with ``quick``)."""
    n_side = n_mesh = 128 if quick else 256
    size = f"{n_side}^3 particles, {n_mesh}^3 mesh"
    records = []
    for operation, scheme, interlace in VARIANTS:
        common = {"n_side": n_side, "n_mesh": n_mesh, "scheme": scheme}
        if interlace or scheme != "cic":
            numpy_record = missing(
                "numpy (bincounts + rfftn)",
                operation,
                size,
                "baseline measured for CIC only (it takes minutes at 256^3)",
            )
        else:
            numpy_record = measure(
                "bench_power",
                "numpy",
                common,
                tool="numpy (bincounts + rfftn)",
                operation=operation,
                size=size,
                repeat=1 if not quick else 2,
                warmup=0,
                floor=True,
            )
        records.append(numpy_record)
        if not installed("Pylians") and not installed("MAS_library"):
            records.append(missing("Pylians", operation, size, "Pylians not installed"))
        elif interlace:
            records.append(
                missing("Pylians", operation, size, "Pylians MA has no interlacing")
            )
        else:
            records.append(
                measure(
                    "bench_power",
                    "pylians",
                    common,
                    tool="Pylians MAS_library + Pk_library",
                    operation=operation,
                    size=size,
                    repeat=3 if scheme == "cic" and not interlace else 2,
                    warmup=1,
                )
            )
        records.append(
            measure(
                "bench_power",
                "simlab",
                {**common, "interlace": interlace},
                tool="simlab",
                operation=operation,
                size=size,
                repeat=3 if scheme == "cic" and not interlace else 2,
                warmup=1,
            )
        )
    return records


def targets(records: list[dict]) -> list[dict]:
    """CIC + P(k): ≤ 0.75× Pylians' time and no more peak memory than Pylians."""
    cic = [r for r in records if r["operation"] == "CIC + P(k)" and r["min_s"]]
    simlab = next((r for r in cic if r["tool"] == "simlab"), None)
    pylians = next((r for r in cic if r["tool"].startswith("Pylians")), None)
    if simlab is None or pylians is None:
        return []
    ratio = simlab["min_s"] / pylians["min_s"]
    return [
        {
            "target": f"CIC + P(k) ({simlab['size']}) ≤ 0.75 × Pylians' time",
            "value": ratio,
            "limit": 0.75,
            "met": ratio <= 0.75,
        },
        {
            "target": "CIC + P(k) peak RSS ≤ Pylians' (simlab / Pylians)",
            "value": simlab["peak_rss_mb"] / pylians["peak_rss_mb"],
            "limit": 1.0,
            "met": simlab["peak_rss_mb"] <= pylians["peak_rss_mb"],
        },
    ]
