"""The embedded particle-mesh engine: simlab's own quick N-body code.

It runs as ``python -m simlab.engines.pm_main RUNDIR [--resume]`` (its own entry
module: the registry imports this one, and runpy warns about re-running a module
already in ``sys.modules``) so a run is a process like any external code: the
task runner streams its stdout, parses its progress lines and can stop it. It
starts from ``inputs/ics.hdf5`` (the Gadget4 IC layout), which it writes itself
when it first starts (:func:`ensure_ics`), writes ``output/snapshot_NNN.hdf5`` in
the Gadget4 snapshot layout and ``output/powerspec_NNN.nc``, and keeps a
checkpoint it can resume from bitwise.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, StrictBool

from simlab.__about__ import __version__
from simlab.engines.base import (
    EngineOptions,
    Health,
    Launch,
    Outcome,
    Problem,
    Progress,
    options_schema,
    thread_environment,
)
from simlab.errors import EngineError
from simlab.io.gadget4_names import SNAPSHOT

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from simlab.config import RunConfig
    from simlab.engines.pm_solver import State

PROGRESS_RE = re.compile(
    r"^pm: step (?P<step>\d+)/(?P<steps>\d+) a=(?P<a>\S+) z=\S+ elapsed=(?P<t>\S+)s$"
)
#: Largest particle load the embedded engine accepts (memory grows as N).
MAX_PARTICLES_PER_SIDE = 512
CHECKPOINT = "checkpoint/state.npz"
#: The run's initial conditions, relative to its directory.
ICS = "inputs/ics.hdf5"
#: File that asks a running solver to checkpoint and stop (as Gadget4's ``stop``).
STOP_FILE = "stop"
#: Exit status of a run that stopped early with a checkpoint written.
EXIT_CHECKPOINTED = 3


class PMOptions(EngineOptions):
    """``code.options`` of the embedded engine."""

    time_limit: float = Field(
        0.0,
        ge=0,
        le=1e9,
        description="checkpoint and stop after this long, in s (0: never)",
    )
    checkpoint_every: int = Field(
        0, ge=0, le=100_000, description="write a checkpoint every N steps (0: never)"
    )
    allow_coarse_mesh: StrictBool = Field(
        False,
        description="run with a mesh below 2 x particles per side (P(k) then "
        "10-45% low above 0.3 h/Mpc; docs/accuracy.md)",
    )


class PMEngine:
    """Engine plugin for the embedded PM code (pure numpy/scipy, one process)."""

    name = "pm"
    options_model = PMOptions
    executable_name = None
    executable_env = None
    can_checkpoint = True
    #: xarray backend that opens this engine's snapshots
    snapshot_backend = "gadget4"
    #: The P(k) files, relative to the run directory (also matched against the
    #: file list of a run published on object storage).
    power_spectrum_glob = "output/powerspec_[0-9][0-9][0-9].nc"

    def options_schema(self) -> dict[str, dict[str, Any]]:
        """``code.options`` this engine accepts, as JSON-schema nodes by name."""
        return options_schema(PMOptions)

    def health(self, launch: Launch | None = None) -> Health:
        """Always available: it ships with simlab."""
        return Health(ok=True, version=__version__, message="embedded (numpy/scipy)")

    def validate(self, config: RunConfig) -> list[Problem]:
        """What the embedded engine cannot do: small meshes, MPI, huge loads."""
        problems: list[Problem] = []
        n, mesh = config.box.particles_per_side, config.gravity.mesh
        coarse_allowed = PMOptions.model_validate(config.code.options).allow_coarse_mesh
        if mesh is not None and mesh < 2 * n and not coarse_allowed:
            problems.append(
                (
                    ("gravity", "mesh"),
                    mesh,
                    f"coarser than 2 x particles per side ({2 * n}): the PM preview "
                    "then loses power at k > 0.3 h/Mpc (a 1x mesh gives 0.89, 0.73 "
                    "and 0.57 of Gadget4's P(k) at 0.3-0.6, 0.6-1.0 and 1.0-1.57 "
                    f"h/Mpc; docs/accuracy.md). Use gravity.mesh >= {2 * n}, or set "
                    "code.options.allow_coarse_mesh: true to run it anyway",
                )
            )
        if n > MAX_PARTICLES_PER_SIDE:
            problems.append(
                (
                    ("box", "particles_per_side"),
                    n,
                    f"the embedded engine runs at most {MAX_PARTICLES_PER_SIDE}^3 "
                    "particles; use gadget4 or concept for larger runs",
                )
            )
        if config.ics.file is None:
            from simlab.linear.codes import missing

            why = missing(config.ics.transfer)
            if why is not None:
                problems.append((("ics", "transfer"), config.ics.transfer, why))
        if config.resources.nodes != 1:
            problems.append(
                (
                    ("resources", "nodes"),
                    config.resources.nodes,
                    "the embedded engine runs on one node (it uses threads, not MPI)",
                )
            )
        return problems

    def advise(self, config: RunConfig) -> list[str]:
        """What a user should know about a valid config before running it."""
        n, mesh = config.box.particles_per_side, config.mesh
        notes = []
        if mesh < 2 * n:
            notes.append(
                f"gravity.mesh = {mesh} < 2 x particles per side: expect P(k) "
                "10-45% low above 0.3 h/Mpc (allowed by "
                "code.options.allow_coarse_mesh)"
            )
        if mesh % n:
            notes.append(
                f"gravity.mesh = {mesh} is not a multiple of particles per side "
                f"({n}): lattice modes near the particle Nyquist frequency are "
                f"unstable in linear theory; use {2 * n}, {3 * n} or {4 * n}"
            )
        return notes

    def prepare(self, config: RunConfig, rundir: Path, launch: Launch) -> None:
        """Make ``inputs/``. The engine's process writes the initial conditions
        there when it first starts (:func:`ensure_ics`): it loads numpy and scipy
        anyway (a process started ahead has them loaded), so making a run, in the
        CLI or a notebook, imports neither and takes no time for the ICs."""
        (Path(rundir) / "inputs").mkdir(parents=True, exist_ok=True)

    def environment(self, config: RunConfig) -> dict[str, str | None]:
        """``resources.cores`` threads: the engine is one multi-threaded process."""
        return thread_environment(config.resources.cores)

    def command(self, config: RunConfig, rundir: Path, launch: Launch) -> list[str]:
        """``python -m simlab.engines.pm_main RUNDIR`` with this interpreter."""
        return [*self.spare_command(config), str(rundir)]

    def spare_command(self, config: RunConfig) -> list[str]:
        """The command's part a process started ahead of the run can run
        (:mod:`simlab.engines.spares`): this interpreter and the entry module."""
        return [sys.executable, "-m", "simlab.engines.pm_main"]

    def parse_progress(self, line: str) -> Progress | None:
        """Parse ``pm: step 3/30 a=0.1 z=9 elapsed=1.2s``."""
        match = PROGRESS_RE.match(line.strip())
        if match is None:
            return None
        return Progress(
            step=int(match["step"]),
            steps=int(match["steps"]),
            a=float(match["a"]),
            elapsed=float(match["t"]),
        )

    def outputs(self, rundir: Path) -> list[Path]:
        """Snapshots in ``output/``, in time order."""
        return list(SNAPSHOT.find(Path(rundir) / "output").values())

    def power_spectra(self, rundir: Path) -> list[Path]:
        """The P(k) files the engine wrote at its outputs, in time order."""
        return sorted(Path(rundir).glob(self.power_spectrum_glob))

    def read_power_spectrum(self, path: Path, config: RunConfig) -> xr.DataArray:
        """One of :meth:`power_spectra` as simlab's P(k) DataArray."""
        import xarray as xr

        return xr.load_dataarray(path, engine="h5netcdf")

    def restart(
        self, config: RunConfig, rundir: Path, launch: Launch
    ) -> list[str] | None:
        """Resume from ``checkpoint/state.npz`` if the run left one (bitwise the
        same result), else from its latest snapshot before the end (to float32
        rounding), else None."""
        argv = self.command(config, rundir, launch)
        if (Path(rundir) / CHECKPOINT).exists():
            return [*argv, "--resume"]
        done = list(SNAPSHOT.find(Path(rundir) / "output"))
        last = len(config.outputs.times) - 1
        earlier = [n for n in done if n < last]
        if not earlier:
            return None
        return [*argv, "--from-snapshot", str(earlier[-1])]

    def request_stop(self, rundir: Path) -> None:
        """Create the stop file the solver checks after every step."""
        (Path(rundir) / STOP_FILE).touch()

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> Outcome:
        """Exit 0 with the last output written is ``completed``; 3 ``checkpointed``."""
        if returncode == EXIT_CHECKPOINTED and (Path(rundir) / CHECKPOINT).exists():
            return Outcome("checkpointed")
        last = len(config.outputs.times) - 1
        out = Path(rundir) / "output"
        wanted = [
            out / SNAPSHOT.single(last) if config.outputs.snapshots else None,
            out / f"powerspec_{last:03d}.nc" if config.outputs.power_spectra else None,
        ]
        missing = [p.name for p in wanted if p is not None and not p.exists()]
        if returncode == 0 and missing:
            return Outcome("failed", f"exited 0 without writing {', '.join(missing)}")
        return Outcome("completed" if returncode == 0 else "failed")


def load_ahead() -> None:
    """Import and load (from numba's cache) everything a run uses, by running a
    4³-particle run in a scratch folder with its output discarded: what a spare
    process does before its run comes."""
    import contextlib
    import io
    import tempfile

    from simlab.config import RunConfig

    config = RunConfig(
        box={"size": 16.0, "particles_per_side": 4},
        gravity={"steps": 4},
        outputs={"scale_factors": [1.0]},
    )
    with tempfile.TemporaryDirectory(prefix="simlab-pm-") as scratch:
        rundir = Path(scratch)
        (rundir / "output").mkdir()
        with contextlib.redirect_stdout(io.StringIO()):
            simulate(config, rundir)


def _save_checkpoint(rundir: Path, state: State, step: int, outputs_done: int) -> None:
    """Write the state atomically; positions and momenta keep full precision."""
    import numpy as np

    path = rundir / CHECKPOINT
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=state.x, p=state.p, a=state.a, step=step, outputs_done=outputs_done)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_output(
    config: RunConfig, rundir: Path, state: State, index: int, ids: np.ndarray
) -> None:
    from simlab.analysis.power import power_spectrum_table
    from simlab.engines.pm_solver import velocity_from_momentum
    from simlab.io.gadget4_files import write_snapshot
    from simlab.particles import ParticleSet, particle_mass

    out = rundir / "output"
    n = config.box.particles_per_side
    if config.outputs.snapshots:
        particles = ParticleSet(
            positions=state.x,
            velocities=velocity_from_momentum(state.p, state.a),
            ids=ids,
            mass=particle_mass(config.cosmology.Omega0, config.box.size, n**3),
            box_size=config.box.size,
            a=state.a,
        )
        write_snapshot(
            out / SNAPSHOT.single(index),
            particles,
            cosmology=config.cosmology,
            parameters=_snapshot_parameters(config),
            config={"PMGRID": config.mesh, "SIMLAB_PM": ""},
        )
    if config.outputs.power_spectra:
        spectrum = power_spectrum_table(
            state.x, config.box.size, config.mesh, scheme="cic", interlace=True
        )
        spectrum.attrs.update(a=state.a, z=1.0 / state.a - 1.0)
        tmp = out / f".powerspec_{index:03d}.nc.tmp"
        spectrum.write_netcdf(tmp)
        os.replace(tmp, out / f"powerspec_{index:03d}.nc")
    print(f"pm: output {index} at a={state.a:.6f}", flush=True)


def _snapshot_parameters(config: RunConfig) -> dict[str, float | str]:
    return {
        "TimeBegin": config.ics.start,
        "TimeMax": config.outputs.times[-1],
        "PMGRID": float(config.mesh),
        "NumSteps": float(config.gravity.steps),
        "Seed": float(config.ics.seed),
        "Sigma8": config.cosmology.sigma8,
        "PrimordialIndex": config.cosmology.n_s,
    }


def ensure_ics(config: RunConfig, rundir: Path) -> Path:
    """The run's IC file, written first if the run has none yet (its first start):
    the particles of ``ics.file``, else those made from the seed (the same for the
    same config wherever they are made). The file appears whole or not at all."""
    from simlab.ics import write_ics

    path = Path(rundir) / ICS
    if not path.exists():
        print(f"pm: writing the initial conditions {ICS}", flush=True)
        write_ics(config, path)
    return path


def _initial_state(config: RunConfig, rundir: Path) -> tuple[State, np.ndarray]:
    from simlab.engines.pm_solver import state_from_particles
    from simlab.io.gadget4_files import read_particles

    try:
        path = ensure_ics(config, rundir)
    except (OSError, ValueError) as exc:  # ics.file gone since, a full disk ...
        message = f"cannot write the initial conditions {ICS}: {exc}"
        raise EngineError(message, engine="pm") from exc
    try:
        particles = read_particles(path)
    except (OSError, KeyError, ValueError) as exc:  # SnapshotError is a ValueError
        message = (
            f"cannot start from {ICS}: {exc}; submit the run's config again to "
            "have its initial conditions written anew"
        )
        raise EngineError(message, engine="pm") from exc
    return state_from_particles(particles, a=config.ics.start)


def _snapshot_state(rundir: Path, number: int) -> tuple[State, np.ndarray]:
    """The particles of output ``number``, ordered by id, as a solver state."""
    import numpy as np

    from simlab.engines.pm_solver import State, momentum_from_velocity
    from simlab.io.gadget4_files import read_particles

    particles = read_particles(rundir / "output" / SNAPSHOT.single(number))
    order = np.argsort(particles.ids, kind="stable")
    x = particles.positions[order].astype(np.float64)
    v = particles.velocities[order].astype(np.float64)
    state = State(x=x, p=momentum_from_velocity(v, particles.a), a=particles.a)
    return state, particles.ids[order]


def simulate(
    config: RunConfig,
    rundir: Path,
    resume: bool = False,
    from_snapshot: int | None = None,
) -> int:
    """Evolve the run to its last output time; return the process exit status.

    ``resume`` continues from the checkpoint, ``from_snapshot`` from that output.
    """
    import numpy as np

    from simlab.engines.pm_solver import PMSolver, State, time_steps

    rundir = Path(rundir)
    started = time.monotonic()
    times = config.outputs.times
    boundaries = time_steps(
        config.ics.start,
        times[-1],
        config.gravity.steps,
        times,
        config.gravity.stepping,
    )
    n_steps = len(boundaries) - 1
    solver = PMSolver(
        config.cosmology,
        config.box.size,
        config.mesh,
        n_particles=config.box.particles_per_side,
        threads=config.resources.cores,
    )
    factors = solver.step_factors(boundaries)
    state, ids = _initial_state(config, rundir)
    first, outputs_done = 0, 0
    if resume:
        saved = np.load(rundir / CHECKPOINT)
        state = State(x=saved["x"], p=saved["p"], a=float(saved["a"]))
        first, outputs_done = int(saved["step"]), int(saved["outputs_done"])
        print(f"pm: resumed at step {first}/{n_steps} a={state.a:.6f}", flush=True)
    elif from_snapshot is not None:
        state, ids = _snapshot_state(rundir, from_snapshot)
        first = int(np.argmin(np.abs(np.log(boundaries / state.a))))
        outputs_done = from_snapshot + 1
        print(
            f"pm: continuing from output {from_snapshot} at step {first}/{n_steps} "
            f"a={state.a:.6f}",
            flush=True,
        )
    options = PMOptions.model_validate(config.code.options)
    time_limit = (
        options.time_limit
        if "time_limit" in options.model_fields_set
        else float(os.environ.get("SIMLAB_TIME_LIMIT", 0))
    )
    every = options.checkpoint_every
    print(
        f"pm: {config.box.particles_per_side}^3 particles, {config.mesh}^3 mesh, "
        f"{n_steps} steps from a={boundaries[0]:.6f} to a={boundaries[-1]:.6f}",
        flush=True,
    )
    for step in range(first, n_steps):
        solver.advance(state, float(boundaries[step + 1]), factors[step])
        elapsed = time.monotonic() - started
        print(
            f"pm: step {step + 1}/{n_steps} a={state.a:.6f} z={1 / state.a - 1:.4f} "
            f"elapsed={elapsed:.2f}s",
            flush=True,
        )
        while outputs_done < len(times) and np.isclose(state.a, times[outputs_done]):
            _write_output(config, rundir, state, outputs_done, ids)
            outputs_done += 1
        if step + 1 == n_steps:
            break
        asked_to_stop = (rundir / STOP_FILE).exists()
        out_of_time = time_limit > 0 and elapsed > time_limit
        if asked_to_stop or out_of_time or (every and (step + 1) % every == 0):
            _save_checkpoint(rundir, state, step + 1, outputs_done)
        if asked_to_stop or out_of_time:
            (rundir / STOP_FILE).unlink(missing_ok=True)
            reason = "stop requested" if asked_to_stop else "time limit reached"
            print(
                f"pm: checkpointed at step {step + 1}/{n_steps} ({reason})", flush=True
            )
            return EXIT_CHECKPOINTED
    (rundir / CHECKPOINT).unlink(missing_ok=True)
    print(f"pm: finished in {time.monotonic() - started:.2f}s", flush=True)
    return 0
