"""What a run will cost before it starts: memory, disk per snapshot and duration.

The memory and disk figures follow from what the engine allocates and writes; the
duration is ``t0 + steps × work / speedup(cores) × rate`` where ``work`` is particles
plus mesh cells per step. ``rate`` starts from a prior measured on the embedded PM
engine and is calibrated on the catalogue's completed runs of the same engine (their
``running`` → ``completed`` times in status.json), so estimates follow the machine
the runs actually use.

Examples
--------
>>> from simlab.config import RunConfig
>>> est = estimate(RunConfig(box={"particles_per_side": 64}), catalog=False)
>>> est.basis
'prior (no completed pm runs to calibrate on)'
>>> 50e6 < est.memory_bytes < 300e6
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from simlab.config import RunConfig
    from simlab.state.catalog import Catalog


@dataclass(frozen=True)
class EngineCosts:
    """Per-engine coefficients of the cost model.

    ``bytes_per_particle`` and ``bytes_per_cell`` count the engine's live arrays at
    its peak; ``rate`` is seconds per (particle + cell) per step on one core;
    ``parallel`` says whether the code splits work across ``resources.cores``.
    """

    bytes_per_particle: float
    bytes_per_cell: float
    fixed_bytes: float
    startup_seconds: float
    rate: float
    parallel: bool


#: Coefficients per engine. pm: fitted to tracemalloc peaks of fresh engine
#: processes, 16³-96³ particles on meshes n and 2n, without numba (here) and with
#: it (:data:`PM_COMPILED`): x, p and the force in float64, ids and the snapshot
#: written, the complex buffer the density is deposited and transformed in (the
#: potential is transformed back in it), and without numba a Green's function
#: array; each fit is within 2% of every measured peak; 0.25 s per step at 64³
#: particles on a 128³ mesh.
#: gadget4 and concept: typical tree-PM figures from their manuals (rough).
ENGINE_COSTS: dict[str, EngineCosts] = {
    "pm": EngineCosts(105.0, 32.0, 36e6, 3.0, 1.1e-7, parallel=False),
    "gadget4": EngineCosts(200.0, 24.0, 50e6, 5.0, 2e-6, parallel=True),
    "concept": EngineCosts(250.0, 24.0, 200e6, 20.0, 2e-6, parallel=True),
}
#: The pm engine with its compiled kernels: the Green's functions are made mode by
#: mode (no array of them), numba's own objects take ~24 MB more.
PM_COMPILED = dataclasses.replace(
    ENGINE_COSTS["pm"], bytes_per_particle=142.0, bytes_per_cell=11.0, fixed_bytes=61e6
)
#: Gadget4 HDF5 snapshot: float32 positions and velocities per particle, plus ids.
SNAPSHOT_BYTES_PER_PARTICLE = 24
#: Header, attributes and HDF5 metadata of one snapshot file (measured ≈ 7 kB).
SNAPSHOT_OVERHEAD_BYTES = 8_000
#: A power-spectrum file written beside each snapshot (measured ≈ 13 kB).
SPECTRUM_BYTES = 14_000
#: Weight of the prior against calibration runs (as if it were one more run).
PRIOR_WEIGHT = 1.0


@dataclass(frozen=True)
class Estimate:
    """Predicted cost of one run.

    ``memory_bytes`` is the engine's peak array memory (the Python interpreter and
    its libraries add ~150 MB per process); ``disk_per_snapshot_bytes`` covers one
    output (snapshot and P(k) file); ``basis`` says where ``seconds`` comes from.
    """

    memory_bytes: int
    disk_per_snapshot_bytes: int
    seconds: float
    basis: str
    n_outputs: int = 1

    def summary(self) -> str:
        """One line for people: ``memory ≈ 62 MB · disk ≈ 7.3 MB/snapshot …``."""
        return (
            f"memory ≈ {format_bytes(self.memory_bytes)} · "
            f"disk ≈ {format_bytes(self.disk_per_snapshot_bytes)}/output "
            f"× {self.n_outputs} · time ≈ {format_seconds(self.seconds)} "
            f"({self.basis})"
        )


@dataclass(frozen=True)
class Calibration:
    """Seconds per unit of work for one engine, and what it was derived from."""

    engine: str
    rate: float
    n_runs: int

    @property
    def basis(self) -> str:
        """Human-readable origin of the rate."""
        if self.n_runs == 0:
            return f"prior (no completed {self.engine} runs to calibrate on)"
        return f"calibrated on {self.n_runs} completed {self.engine} run(s)"


def costs_for(engine: str) -> EngineCosts:
    """The coefficients of ``engine``; unknown engines get the pm figures."""
    return ENGINE_COSTS.get(engine, ENGINE_COSTS["pm"])


def work_units(config: RunConfig) -> float:
    """Particles plus mesh cells, times steps, divided by the parallel speed-up."""
    costs = costs_for(config.code.engine)
    per_step = config.box.n_particles + config.mesh**3
    speedup = config.resources.cores**0.9 if costs.parallel else 1.0
    return config.gravity.steps * per_step / speedup


def memory_bytes(config: RunConfig) -> int:
    """Peak array memory of the engine process for ``config``."""
    costs = costs_for(config.code.engine)
    if config.code.engine == "pm":
        from simlab.analysis import _compiled

        costs = PM_COMPILED if _compiled.available() else costs
    return int(
        costs.bytes_per_particle * config.box.n_particles
        + costs.bytes_per_cell * config.mesh**3
        + costs.fixed_bytes
    )


def disk_per_output(config: RunConfig) -> int:
    """Bytes written at one output time (snapshot and/or power spectrum)."""
    n = config.box.n_particles
    id_bytes = 4 if n < 2**32 else 8
    total = 0
    if config.outputs.snapshots:
        total += n * (SNAPSHOT_BYTES_PER_PARTICLE + id_bytes) + SNAPSHOT_OVERHEAD_BYTES
    if config.outputs.power_spectra:
        total += SPECTRUM_BYTES
    return total


def measured_seconds(status: dict) -> float | None:
    """Wall time from ``running`` to ``completed`` in a status record, or None."""
    times = status.get("times") or {}
    if "running" not in times or "completed" not in times:
        return None
    start = datetime.fromisoformat(times["running"])
    end = datetime.fromisoformat(times["completed"])
    seconds = (end - start).total_seconds()
    return seconds if seconds > 0 else None


def calibrate(catalog: Catalog | None, engine: str, limit: int = 200) -> Calibration:
    """Blend the prior rate with the rates of the catalogue's completed runs.

    Each completed run gives ``(measured - startup) / work``; the geometric mean of
    those and the prior (weighted :data:`PRIOR_WEIGHT`) is the calibrated rate, so
    a few runs already pull the estimate most of the way to this machine's speed.
    """
    from simlab.service.run import Run

    costs = costs_for(engine)
    logs: list[float] = []
    if catalog is not None:
        catalog.sync()
        rows, _ = catalog.query(state="completed", code=engine, per_page=limit)
        for row in rows:
            try:
                run = Run(row["path"])
                seconds = measured_seconds(run.status)
                config = run.config
            except (OSError, ValueError):
                continue  # a run directory removed or unreadable since indexed
            if seconds is None:
                continue
            spent = max(seconds - costs.startup_seconds, 0.1 * seconds)
            logs.append(math.log(spent / work_units(config)))
    if not logs:
        return Calibration(engine, costs.rate, 0)
    blended = (PRIOR_WEIGHT * math.log(costs.rate) + math.fsum(logs)) / (
        PRIOR_WEIGHT + len(logs)
    )
    return Calibration(engine, math.exp(blended), len(logs))


def estimate(
    config: RunConfig,
    catalog: Catalog | Literal[False] | None = None,
    *,
    calibration: Calibration | None = None,
) -> Estimate:
    """Predict memory, disk per output and duration of ``config``.

    Parameters
    ----------
    config : RunConfig
        the validated configuration
    catalog : Catalog, None or False
        where completed runs are found for calibration; None opens the catalogue
        of the ``simlab.run-root`` setting, False uses the prior only
    calibration : Calibration, optional
        a rate already computed with :func:`calibrate` (the form reuses one while
        the user types instead of querying the catalogue on every key)
    """
    engine = config.code.engine
    if calibration is None:
        if catalog is None:
            from simlab.settings import run_root
            from simlab.state.catalog import Catalog

            catalog = Catalog(run_root())
        calibration = calibrate(catalog or None, engine)
    costs = costs_for(engine)
    seconds = costs.startup_seconds + calibration.rate * work_units(config)
    basis = calibration.basis
    if engine not in ENGINE_COSTS:
        basis += f"; no cost figures for engine {engine!r}, pm's used"
    return Estimate(
        memory_bytes=memory_bytes(config),
        disk_per_snapshot_bytes=disk_per_output(config),
        seconds=seconds,
        basis=basis,
        n_outputs=len(config.outputs.times),
    )


def format_bytes(n: float) -> str:
    """``1.5 GB`` style (decimal units, as batch systems read them)."""
    if abs(n) < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if abs(n) < 1000:
            return f"{n:.3g} {unit}"
    return f"{n / 1000:.3g} TB"


def format_seconds(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.2 h`` or ``2.1 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


__all__ = [
    "Calibration",
    "Estimate",
    "calibrate",
    "estimate",
    "format_bytes",
    "format_seconds",
]
