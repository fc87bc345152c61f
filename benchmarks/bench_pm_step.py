"""The PM engine's step against its own FFT floor, and its memory per particle.

For 64³, 128³ and 256³ particles (quick: 64³ and 128³) on a 2x mesh, one force
evaluation is timed in its parts, as :meth:`PMSolver.force` runs them once the
lattice has melted (w = 0, most of a run): lattice order, deposit, forward FFT,
potential modes (s G δ_k in place), inverse FFT, 4-point gradient read at the
particles (CIC), and the kick/drift array updates of a step. Each part is the
minimum over a few warm calls (the first call, which loads or compiles the
kernels, is left out). Records share one (operation, size) group per size with
the FFT total as floor, so "× floor" is each part's time over the FFTs'.

Memory: the peak RSS of ``python -m simlab.engines.pm_main RUNDIR`` running a few
steps of a run directory made as in ``bench_pm``, minus that of the same engine
on 16³ particles (the interpreter, libraries and compiled kernels), per particle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import ROOT, record

SIDES = (64, 128, 256)
QUICK_SIDES = (64, 128)
REPEAT = 5
#: Steps of the engine run whose peak memory is measured.
MEMORY_STEPS = 3
BASELINE_SIDE = 16
FFT_PARTS = ("forward FFT", "inverse FFT")


def _best(
    call: Callable[[], object], prepare: Callable[[], object] | None = None
) -> float:
    """Minimum wall time of ``REPEAT`` calls, each after an untimed ``prepare``."""
    times = []
    for _ in range(REPEAT):
        if prepare is not None:
            prepare()
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def _displaced(side: int, box: float, rms: float) -> np.ndarray:
    """The side³ lattice displaced by ``rms`` spacings: 0.6 melts it (w = 0)."""
    rng = np.random.default_rng(0)
    spacing = box / side
    x = np.indices((side,) * 3, dtype=np.float64).reshape(3, -1).T
    x *= spacing
    x += rng.normal(0.0, rms * spacing, x.shape)
    return np.mod(x, box, out=x)


def _parts(side: int) -> dict[str, float]:
    """Warm time of each part of one force evaluation and of a step's updates."""
    from simlab.analysis import _compiled
    from simlab.analysis.mesh import deposit
    from simlab.config import Cosmology
    from simlab.engines.pm_solver import (
        PMSolver,
        forward_in_place,
        inverse_in_place,
        real_view,
    )

    box, n = 2.0 * side, 2 * side
    x = _displaced(side, box, 0.6)
    p = np.random.default_rng(1).normal(0.0, 0.1, x.shape)
    solver = PMSolver(Cosmology(preset="planck15"), box, n, n_particles=side)
    force = solver.force(x)
    if solver.lattice_weight != 0.0:
        raise RuntimeError(f"lattice weight {solver.lattice_weight}, expected 0")
    lattice = solver._lattice_kernel(len(x))
    _, shift = solver._lattice_state(x, lattice)
    scale = n**3 / len(x)
    buffer = solver.density_modes(x, shift)
    delta_k = buffer.copy()
    solver.potential(buffer, scale)
    potential_k = buffer.copy()

    def counts() -> None:
        deposit(x, box, n, scheme="cic", out=real_view(buffer), shift=shift)

    times = {
        "lattice order": _best(lambda: solver._lattice_state(x, lattice)),
        "deposit": _best(counts),
        "forward FFT": _best(
            lambda: forward_in_place(buffer, solver.threads), prepare=counts
        ),
        "potential modes": _best(
            lambda: _compiled.potential_modes(buffer, solver._green.factors(), scale),
            prepare=lambda: np.copyto(buffer, delta_k),
        ),
        "inverse FFT": _best(
            lambda: inverse_in_place(buffer, solver.threads),
            prepare=lambda: np.copyto(buffer, potential_k),
        ),
    }
    np.copyto(buffer, potential_k)
    psi = inverse_in_place(buffer, solver.threads)
    times["gradient at particles"] = _best(
        lambda: _compiled.gradient_at(psi, x, box, shift, force)
    )
    times["kick/drift"] = _best(lambda: _kick_drift(solver, x, p, force))
    times["force (whole)"] = _best(lambda: solver.force(x, out=force))
    on_lattice = _displaced(side, box, 0.01)  # w ≈ 1: the Fourier path
    solver.force(on_lattice, out=force)
    times["force on the lattice (w > 0)"] = _best(
        lambda: solver.force(on_lattice, out=force)
    )
    return times


def _kick_drift(solver: Any, x: np.ndarray, p: np.ndarray, force: np.ndarray) -> None:
    """The array updates of one step: kick and drift, then the second kick."""
    solver._kick_drift(x, p, force, 1e-3, 1e-3)
    solver._kick(p, force, 1e-3)


def _part_records(side: int, times: dict[str, float]) -> list[dict]:
    """One record per part, the FFT and non-FFT totals, all against the FFTs."""
    size = f"{side}^3 particles, {2 * side}^3 mesh"
    operation = "PM force parts, warm (× floor = ÷ FFT total)"
    whole = times.pop("force (whole)")
    on_lattice = times.pop("force on the lattice (w > 0)")
    fft = sum(times[name] for name in FFT_PARTS)
    rest = sum(t for name, t in times.items() if name not in FFT_PARTS)
    rows = [
        record(f"pm: {name}", operation, size, t, t, None) for name, t in times.items()
    ]
    rows += [
        record("pm: FFT total", operation, size, fft, fft, None, floor=True),
        record(
            "pm: non-FFT total",
            operation,
            size,
            rest,
            rest,
            None,
            below_fft=rest < fft,
        ),
    ]
    step = whole + times["kick/drift"]
    rows.append(record("pm: force + kick/drift", operation, size, step, step, None))
    rows.append(
        record(
            "pm: force + kick/drift",
            "PM step on the IC lattice (w > 0: three inverse FFTs), warm",
            size,
            on_lattice + times["kick/drift"],
            on_lattice + times["kick/drift"],
            None,
        )
    )
    return rows


def _config(side: int) -> Any:
    from simlab.config import RunConfig

    return RunConfig(
        box={"size": 2.0 * side, "particles_per_side": side},
        ics={"z_start": 49, "seed": 42, "lpt_order": 2},
        outputs={"redshifts": [0.0], "power_spectra": False},
        gravity={"steps": MEMORY_STEPS, "mesh": 2 * side},
        metadata={"name": f"bench-pm-step{side}"},
    )


def _prepared(root: Path, side: int) -> Path:
    """A run directory with its initial conditions, as the PM engine prepares it."""
    from simlab.engines.pm import PMEngine
    from simlab.state.rundir import RunDir

    config = _config(side)

    def prepare(folder: Path) -> None:
        PMEngine().prepare(config, folder, None)

    return RunDir.create(root, config, prepare=prepare).path


#: Runs its arguments as a child and prints the child's peak RSS (kB) when it
#: ends. A child forked from this process would count this process' pages in its
#: ru_maxrss (Linux keeps the high-water mark across exec); the wrapper is small.
_PEAK_WRAPPER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print('PEAK-KB', usage.ru_maxrss, flush=True)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _engine_run(rundir: Path) -> dict[str, float]:
    """Peak RSS (MB) and wall time to the first and last step of the engine."""
    engine = [sys.executable, "-m", "simlab.engines.pm_main", str(rundir)]
    command = [sys.executable, "-c", _PEAK_WRAPPER, *engine]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    first_step = None
    lines = []
    for line in child.stdout or []:
        lines.append(line)
        if first_step is None and line.startswith("pm: step 1/"):
            first_step = time.perf_counter() - started
    if child.wait() != 0 or not lines[-1].startswith("PEAK-KB "):
        raise RuntimeError(f"pm engine failed on {rundir}:\n{''.join(lines)[-2000:]}")
    return {
        "peak_mb": int(lines[-1].split()[1]) / 1024.0,
        "first_step_s": first_step or float("nan"),
        "wall_s": time.perf_counter() - started,
    }


def _memory_records(sides: tuple[int, ...]) -> list[dict]:
    """Peak RSS per particle of the engine at each size, above the 16³ baseline."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="simlab-bench-pmstep-") as tmp:
        root = Path(tmp)
        baseline = _engine_run(_prepared(root, BASELINE_SIDE))
        for side in sides:
            rundir = _prepared(root, side)
            run = _engine_run(rundir)
            n_particles, n = side**3, 2 * side
            extra_mb = run["peak_mb"] - baseline["peak_mb"]
            # positions and momenta (float64), one real and one complex mesh
            arrays_mb = (
                2 * 24 * n_particles + 8 * n**3 + 16 * n * n * (n // 2 + 1)
            ) / 2**20
            rows.append(
                record(
                    "simlab pm",
                    f"PM engine peak memory ({MEMORY_STEPS} steps)",
                    f"{side}^3 particles, {2 * side}^3 mesh",
                    run["wall_s"],
                    run["wall_s"],
                    round(run["peak_mb"], 1),
                    bytes_per_particle=round(extra_mb * 2**20 / n_particles),
                    baseline_mb=round(baseline["peak_mb"], 1),
                    arrays_mb=round(arrays_mb, 1),
                    peak_over_arrays=round(extra_mb / arrays_mb, 2),
                    first_step_s=round(run["first_step_s"], 2),
                )
            )
            shutil.rmtree(rundir, ignore_errors=True)  # 256³: gigabytes of ICs
    return rows


def _step_arrays_mb(side: int) -> float:
    """MB a step must hold: positions and momenta, one real and one complex mesh."""
    n = 2 * side
    return (2 * 24 * side**3 + 8 * n**3 + 16 * n * n * (n // 2 + 1)) / 2**20


def run(quick: bool = False) -> list[dict]:
    """The split of a warm force evaluation at each size, and memory per particle."""
    sides = QUICK_SIDES if quick else SIDES
    rows = []
    for side in sides:
        rows += _part_records(side, _parts(side))
    return rows + _memory_records(sides)


def targets(records: list[dict]) -> list[dict]:
    """Non-FFT below FFT at every size, and peak memory ≤ 1.5x the step's arrays."""
    out = []
    for rec in records:
        if rec["tool"] == "pm: non-FFT total":
            fft = next(
                r["min_s"]
                for r in records
                if r["tool"] == "pm: FFT total" and r["size"] == rec["size"]
            )
            out.append(
                {
                    "target": f"PM non-FFT ≤ FFT time, {rec['size']}",
                    "value": rec["min_s"] / fft,
                    "limit": 1.0,
                    "met": rec["min_s"] <= fft,
                }
            )
        if rec["operation"].startswith("PM engine peak memory"):
            ratio = rec["extra"]["peak_over_arrays"]
            out.append(
                {
                    "target": f"PM peak RSS ≤ 1.5 × step arrays, {rec['size']}",
                    "value": ratio,
                    "limit": 1.5,
                    "met": ratio <= 1.5,
                }
            )
    return out
