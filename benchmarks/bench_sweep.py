"""Per-point overhead of ``simlab.sweep`` over running the same configs directly.

Both sides run the same configs (16³ and 32³ particles, see ``SIZES``), one
after the other, on the same one-worker local cluster profile, each in a fresh
process with one run root whose untimed warm-up step starts its dispatcher and
cluster (and, for sweeps, loads papermill in the worker and starts its kernel
ahead), as in a user's session: ``simlab.run(config)`` per config, or one
``simlab.sweep`` over those configs with ``run_simulation.ipynb`` (figures off)
followed by ``collect()``. The difference per point is what the sweep machinery
costs: validation against the notebook, run directories, the papermill kernel, the
notebook's imports, P(k) and ``simlab.record``, and collecting; a kernel started
ahead (:mod:`simlab.spare_kernel`) loads most of it while the previous point runs,
which a point that lasts less than that load cannot hide. Goal: ≤ 1.5 s.
Peak RSS is the driving process's (workers and kernels are separate processes).
"""

from __future__ import annotations

import atexit
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import measure, record

PROFILE = "bench-sweep"
SIGMA8 = [0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


#: Point sizes: (particles per side, steps). 16³ in 6 steps is mostly start-up
#: (process and kernel loads, which compete for 2 cores); 32³ in 20 steps is the
#: template's own default, a point long enough for the next one to load meanwhile.
SIZES = {16: 6, 32: 20}


def _setup(n: int) -> Any:
    """The benchmark's cluster profile and base config (n³, SIZES[n] steps)."""
    import dask.config

    import simlab

    profile = {"kind": "local", "n_workers": 1, "dashboard_address": ":0"}
    dask.config.set({f"simlab.clusters.{PROFILE}": profile})
    return simlab.RunConfig(
        box={"size": 200.0, "particles_per_side": n},
        ics={"z_start": 19.0, "seed": 7},
        outputs={"redshifts": [0.0]},
        gravity={"steps": SIZES[n]},
        resources={"cluster": PROFILE},
    )


def _root(case: str) -> Path:
    """One run root for every step of a case: its dispatcher and cluster (started
    by the untimed warm-up step) serve them all, as for a user's runs in one
    session; both are stopped and the root removed when the process ends."""
    from simlab.dispatch import owner

    scratch = tempfile.TemporaryDirectory(prefix=f"simlab-bench-{case}-")
    root = Path(scratch.name)
    atexit.register(scratch.cleanup)
    atexit.register(owner.stop, root)  # atexit runs it first
    return root


def case_direct(points: int, n: int = 16) -> Callable[[], dict]:
    """Each step runs ``points`` configs with simlab.run, one after the other."""
    import simlab
    from simlab.config import apply_overrides

    base = _setup(n)
    root = _root("direct")

    def step() -> dict:
        for sigma8 in SIGMA8[:points]:
            config = apply_overrides(base, {"cosmology.sigma8": sigma8})
            simlab.run(config, root=root, progress=False)
        return {}

    return step


def case_sweep(points: int, n: int = 16) -> Callable[[], dict]:
    """Each step runs one sweep over the same configs and collects it."""
    import simlab

    base = _setup(n)
    root = _root("sweep")

    def step() -> dict:
        handle = simlab.sweep(
            "run_simulation",
            grid={"sigma8": SIGMA8[:points]},
            base=base,
            parameters={"figures": False},
            root=root,
            progress=False,
        )
        handle.collect()
        states = handle.states()
        if states != ["completed"] * points:
            raise RuntimeError(f"benchmark sweep did not complete: {states}")
        return {}

    return step


CASES = {"direct": case_direct, "sweep": case_sweep}


def _per_point(rec: dict[str, Any], points: int) -> dict[str, Any]:
    for key in ("min_s", "median_s"):
        if rec[key] is not None:
            rec[key] = round(rec[key] / points, 3)
    rec["extra"]["points_per_step"] = points
    return rec


def run(quick: bool = False) -> list[dict]:
    """Per-point time of direct runs and of a sweep, and their difference, for
    each point size (quick: 16³ only)."""
    points = 2 if quick else 4
    repeat = 1 if quick else 3
    records = []
    for n in [16] if quick else list(SIZES):
        records += _size(n, points, repeat)
    return records


def _size(n: int, points: int, repeat: int) -> list[dict]:
    size = f"{points} points of {n}^3, {SIZES[n]} steps, 1 worker"
    args = {"points": points, "n": n}
    direct = _per_point(
        measure(
            "bench_sweep",
            "direct",
            args,
            tool="simlab.run",
            operation="run one config (per point)",
            size=size,
            repeat=repeat,
        ),
        points,
    )
    swept = _per_point(
        measure(
            "bench_sweep",
            "sweep",
            args,
            tool="simlab.sweep",
            operation="sweep point with notebook (per point)",
            size=size,
            repeat=repeat,
        ),
        points,
    )
    records = [direct, swept]
    if direct["median_s"] is not None and swept["median_s"] is not None:
        records.append(
            record(
                "simlab.sweep",
                "overhead over simlab.run (per point)",
                size,
                round(swept["min_s"] - direct["min_s"], 3),
                round(swept["median_s"] - direct["median_s"], 3),
                swept["peak_rss_mb"],
                goal_s=1.5,
            )
        )
    return records
