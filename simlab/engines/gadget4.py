"""The Gadget4 engine: parameter file, output list, build checks, progress, restarts.

Gadget4 cannot be installed from a package registry; users build it on their own
machines, so simlab works with the user's executable, found by the service's one
rule (:mod:`simlab.service.executables`: ``code.executable``, the profile's
``executables.gadget4``, ``SIMLAB_GADGET4``, ``Gadget4`` on ``PATH``) and handed in
as :class:`~simlab.engines.base.Launch` with the MPI launcher and the walltime.

The run directory is the code's working directory: ``inputs/param.txt``,
``inputs/outputs.txt``, ``inputs/ics.hdf5`` (simlab's particles, ICFormat 3) and
``output/`` (Gadget4's OutputDir: snapshots, group catalogues, ``powerspecs/``,
``restartfiles/``). Facts about Gadget4's behaviour come from real runs
(``tests/data/gadget4-small/README.md``): it exits with status 0 after a
stop-file or time-limit stop and even after a parameter-file error, so the outcome
is read from its output, not its exit status.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, StrictBool

from simlab.config import PathText
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
from simlab.engines.gadget4_build import (
    BuildOptions,
    build_problems,
    parse_config_block,
    read_config_sh,
)
from simlab.errors import EngineError
from simlab.io.gadget4_names import GROUP_CATALOGUE, SNAPSHOT
from simlab.particles import (
    UNIT_LENGTH_IN_CM,
    UNIT_MASS_IN_G,
    UNIT_VELOCITY_IN_CM_PER_S,
)

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig

NAME = "gadget4"
PARAM_FILE = "inputs/param.txt"
OUTPUT_LIST = "inputs/outputs.txt"
IC_BASE = "inputs/ics"
#: The linear P(k) handed to the built-in N-GenIC (PowerSpectrumType 2).
NGENIC_SPECTRUM = "inputs/ngenic_spectrum.txt"
OUTPUT_DIR = "output"
#: Seconds the executable gets to print its compile options when run bare.
PROBE_TIMEOUT = 60.0

SYNC_POINT_RE = re.compile(
    r"^Sync-Point (?P<step>\d+), Time: (?P<a>[-+0-9.eE]+), "
    r"Redshift: (?P<z>[-+0-9.eE]+), Systemstep: (?P<dt>[-+0-9.eE]+), "
    r"Dloga: (?P<dloga>[-+0-9.eE]+)"
)
#: Lines that tell how a Gadget4 process ended, as observed.
MARKERS = {
    "stop_file": "stop-file detected. stopping.",
    "time_limit": "reaching time-limit. stopping.",
    "parameter_error": "We stop because of an error in the parameterfile.",
    "terminated": "TERMINATE: ",
    "finished": "bye!",
}


class Gadget4Options(EngineOptions):
    """``code.options`` of the gadget4 engine: simlab's choices, then the Gadget4
    parameters a run may set directly (defaults as in the fixture runs; every
    other parameter follows from the RunConfig)."""

    ics: Literal["simlab", "ngenic"] = Field(
        "simlab",
        description="'simlab' writes the particles to inputs/ics.hdf5 (ICFormat 3); "
        "'ngenic' lets Gadget4's built-in N-GenIC make them (NGENIC build)",
    )
    fof: StrictBool = Field(False, description="FOF group catalogues at every output")
    subfind: StrictBool = Field(False, description="SUBFIND subhalos too (implies fof)")
    double_precision_output: StrictBool = Field(False, description="float64 snapshots")
    config_sh: PathText | None = Field(
        None, description="Config.sh the executable was built with"
    )
    softening_max_phys: float | None = Field(
        None, gt=0, le=1e5, description="maximum physical softening in Mpc/h"
    )
    CpuTimeBetRestartFile: float = Field(3600.0, gt=0, le=1e9, description="in s")
    MaxMemSize: int = Field(1500, gt=0, le=10**8, description="MB per MPI rank")
    TimeBetStatistics: float = Field(0.05, gt=0, le=10)
    NumFilesPerSnapshot: int = Field(1, gt=0, le=10**6)
    MaxFilesWithConcurrentIO: int = Field(1, gt=0, le=10**6)
    ErrTolIntAccuracy: float = Field(0.05, gt=0, le=1)
    CourantFac: float = Field(0.3, gt=0, le=1)
    MaxSizeTimestep: float = Field(0.05, gt=0, le=1)
    MinSizeTimestep: float = Field(0.0, gt=-1, le=1)
    TypeOfOpeningCriterion: int = Field(1, ge=0, le=1)
    ErrTolTheta: float = Field(0.75, gt=0, le=2)
    ErrTolThetaMax: float = Field(1.0, gt=0, le=2)
    ErrTolForceAcc: float = Field(0.005, gt=0, le=1)
    TopNodeFactor: float = Field(3.0, gt=0, le=100)
    ActivePartFracForNewDomainDecomp: float = Field(0.01, gt=0, le=1)
    DesNumNgb: int = Field(64, gt=0, le=10000)
    MaxNumNgbDeviation: float = Field(1, gt=0, le=1000)
    DesLinkNgb: int = Field(20, gt=0, le=10000)
    TimeLimitCPU: float = Field(
        0.0, ge=0, le=1e9, description="in s; 0: 85% of the job's walltime"
    )


#: Gadget4 parameters a run may set through ``code.options``.
PARAMETER_NAMES = tuple(
    name for name in Gadget4Options.model_fields if name[0].isupper()
)


def _number(value: float) -> str:
    """A parameter value as Gadget4 reads it (``%g`` keeps 6 digits; use repr)."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def options(config: RunConfig) -> Gadget4Options:
    """The run's ``code.options`` as the engine's model (validated before)."""
    return Gadget4Options.model_validate(config.code.options)


def parameters(
    config: RunConfig, build: BuildOptions, walltime: float | None = None
) -> dict[str, str]:
    """Every Gadget4 parameter of the run, in the order of the fixture files.

    The key set is what the build expects: softening classes follow NSOFTCLASSES
    and NTYPES, DesLinkNgb exists only with SUBFIND, the N-GenIC block only with
    NGENIC (Gadget4 stops on a missing or an unknown key). ``walltime`` is the
    batch job's length in seconds (default: the run's ``resources.walltime``).
    """
    opts = options(config)
    value = {name: getattr(opts, name) for name in PARAMETER_NAMES}
    if not value["TimeLimitCPU"]:
        # Gadget4 stops by itself at 85% of TimeLimitCPU, leaving time for restarts
        value["TimeLimitCPU"] = walltime or config.resources.walltime_seconds
    if "MaxFilesWithConcurrentIO" not in opts.model_fields_set:
        value["MaxFilesWithConcurrentIO"] = value["NumFilesPerSnapshot"]
    cosmo = config.cosmology
    ngenic = opts.ics == "ngenic"
    p: dict[str, str] = {
        "InitCondFile": f"./{IC_BASE}",
        "OutputDir": f"./{OUTPUT_DIR}",
        "SnapshotFileBase": SNAPSHOT.stem,
        "OutputListFilename": f"./{OUTPUT_LIST}",
        "ICFormat": "3",
        "SnapFormat": "3",
    }
    for key in ("TimeLimitCPU", "CpuTimeBetRestartFile", "MaxMemSize"):
        p[key] = _number(value[key])
    p |= {
        "TimeBegin": _number(config.ics.start),
        "TimeMax": _number(config.outputs.times[-1]),
        "ComovingIntegrationOn": "1",
        "Omega0": _number(cosmo.Omega0),
        "OmegaLambda": _number(cosmo.OmegaLambda),
        "OmegaBaryon": _number(cosmo.OmegaBaryon),
        "HubbleParam": _number(cosmo.h),
        "Hubble": "100",
        "BoxSize": _number(config.box.size),
        "OutputListOn": "1",
        "TimeBetSnapshot": "0",
        "TimeOfFirstSnapshot": "0",
    }
    for key in (
        "TimeBetStatistics",
        "NumFilesPerSnapshot",
        "MaxFilesWithConcurrentIO",
        "ErrTolIntAccuracy",
        "CourantFac",
        "MaxSizeTimestep",
        "MinSizeTimestep",
        "TypeOfOpeningCriterion",
        "ErrTolTheta",
        "ErrTolThetaMax",
        "ErrTolForceAcc",
        "TopNodeFactor",
        "ActivePartFracForNewDomainDecomp",
        "DesNumNgb",
        "MaxNumNgbDeviation",
    ):
        p[key] = _number(value[key])
    p |= {
        "UnitLength_in_cm": _number(UNIT_LENGTH_IN_CM),
        "UnitMass_in_g": _number(UNIT_MASS_IN_G),
        "UnitVelocity_in_cm_per_s": _number(UNIT_VELOCITY_IN_CM_PER_S),
        "GravityConstantInternal": "0",
    }
    eps = config.softening
    eps_phys = opts.softening_max_phys or eps
    for i in range(build.softening_classes):
        p[f"SofteningComovingClass{i}"] = _number(eps)
        p[f"SofteningMaxPhysClass{i}"] = _number(eps_phys)
    for i in range(build.ntypes):
        p[f"SofteningClassOfPartType{i}"] = "0"
    p |= {"ArtBulkViscConst": "1", "MinEgySpec": "0", "InitGasTemp": "0"}
    if "SUBFIND" in build:
        p["DesLinkNgb"] = _number(value["DesLinkNgb"])
    if "NGENIC" in build and ngenic:
        n = config.box.particles_per_side
        p |= {
            "NSample": str(n),
            "Seed": str(config.ics.seed),
            "SphereMode": "1",
            "PowerSpectrumType": "2",
            "ReNormalizeInputSpectrum": "0",
            "PrimordialIndex": _number(cosmo.n_s),
            "ShapeGamma": "0.21",
            "Sigma8": _number(cosmo.sigma8),
            "PowerSpectrumFile": f"./{NGENIC_SPECTRUM}",
            "InputSpectrum_UnitLength_in_cm": _number(UNIT_LENGTH_IN_CM),
        }
    if "CREATE_GRID" in build:
        p["GridSize"] = str(config.box.particles_per_side)
    return p


def ngenic_spectrum(config: RunConfig) -> np.ndarray:
    """The table N-GenIC reads with PowerSpectrumType 2: log10 k [h/Mpc] and
    log10 Δ²(k) / k^(n_s - 1) at the starting time, (N, 2).

    Δ² = k³ P / (2π²) is simlab's linear P(k) (``ics.transfer``, σ8, and the
    growth of ``cosmology``) at ``ics.start``, so with ReNormalizeInputSpectrum 0
    N-GenIC realises the same spectrum as simlab's own ICs. N-GenIC multiplies
    the table by k^(PrimordialIndex - 1) itself (``ngenic_power_spec`` in
    Gadget4's ``src/ngenic/power.cc``), hence the division. It reads zero power
    outside the table, which spans 1/10 of the fundamental mode to twice the
    corner of the N-GenIC mesh.
    """
    from simlab import cosmology

    box = config.box.size
    k_min = min(1e-4, 0.1 * 2 * np.pi / box)
    k_max = max(10.0, 2 * np.sqrt(3) * np.pi * config.mesh / box)
    k = np.logspace(np.log10(k_min), np.log10(k_max), 4000)  # 1e-5 in log-log
    power = cosmology.linear_power(
        k,
        config.cosmology,
        a=config.ics.start,
        transfer=config.ics.transfer,
        transfer_file=config.ics.transfer_file,
    )
    delta2 = k**3 * power / (2 * np.pi**2) / k ** (config.cosmology.n_s - 1)
    return np.column_stack([np.log10(k), np.log10(delta2)])


def render_parameters(params: dict[str, str], title: str = "") -> str:
    """The parameter file text: ``%`` comment, then ``Key   value`` lines."""
    width = max(len(k) for k in params) + 2
    lines = [f"% {title}"] if title else []
    lines += [f"{key:<{width}}{value}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def read_parameter_file(path: str | Path) -> dict[str, str]:
    """Key → value of a Gadget4 parameter file (``%`` starts a comment)."""
    params = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.split("%", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            params[key] = value.strip()
    return params


@dataclass(frozen=True)
class LogSummary:
    """What one Gadget4 stdout says about its outcome: last time, how it ended."""

    a_last: float | None
    stopped_by: str | None  # "stop_file", "time_limit" or None
    finished: bool
    error: str | None


def summarize_log(text: str) -> LogSummary:
    """Read a Gadget4 stdout (one process) into a :class:`LogSummary`."""
    a_last = None
    seen = dict.fromkeys(MARKERS, False)
    error = None
    for line in text.splitlines():
        if m := SYNC_POINT_RE.match(line):
            a_last = float(m["a"])
            continue
        for key, marker in MARKERS.items():
            if line.startswith(marker) or (key == "finished" and line == marker):
                seen[key] = True
                if key in ("parameter_error", "terminated") and error is None:
                    error = line.strip()
        if error is None and line.startswith("Error") and "parameter" in line:
            error = line.strip()
    stopped_by = next((k for k in ("stop_file", "time_limit") if seen[k]), None)
    return LogSummary(
        a_last=a_last,
        stopped_by=stopped_by,
        finished=seen["finished"],
        error=error,
    )


def _last_segment(log: Path) -> str:
    """The part of the run's log written by its latest process."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    start = text.rfind("simlab: running ")
    return text[start:] if start >= 0 else text


def probe(executable: str, container: Sequence[str] = ()) -> BuildOptions:
    """Run the executable bare (inside ``container``, a runtime's argv prefix):
    Gadget4 prints version and compile options, then stops with 'Parameters are
    missing'. Raises EngineError if that fails."""
    try:
        done = subprocess.run(
            [*container, executable],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(
            f"cannot run {executable!r} to read its compile options: {exc}",
            engine=NAME,
        ) from exc
    try:
        return parse_config_block(done.stdout, source=executable)
    except ValueError as exc:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-5:])
        raise EngineError(
            f"{executable} (exit status {done.returncode}) printed no compile "
            "options; is it Gadget4?",
            engine=NAME,
            log_tail=tail,
        ) from exc


class Gadget4Engine:
    """Engine plugin for the user's own Gadget4 build (TreePM, HDF5 I/O)."""

    name = NAME
    options_model = Gadget4Options
    executable_name = "Gadget4"
    executable_env = "SIMLAB_GADGET4"
    can_checkpoint = True
    #: xarray backend that opens this engine's snapshots (see ``Run.open_snapshot``)
    snapshot_backend = "gadget4"

    # -- what the executable can do --------------------------------------------
    def build(self, config: RunConfig | None, launch: Launch) -> BuildOptions:
        """Compile options: ``code.options.config_sh`` if given, else what the
        executable prints when run bare, else a ``Config.sh`` beside it."""
        config_sh = options(config).config_sh if config is not None else None
        if config_sh:
            path = Path(config_sh).expanduser()
            try:
                return read_config_sh(path)
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"code.options.config_sh = {str(path)!r}: cannot read ({exc})",
                    engine=NAME,
                ) from exc
        exe = _executable(launch)
        try:
            # in a container, the bare run gets an empty folder of its own, never
            # the caller's working directory, bound as its run directory
            with tempfile.TemporaryDirectory(prefix="simlab-probe-") as scratch:
                return probe(exe, launch.container_argv(scratch))
        except EngineError:
            beside = Path(exe).with_name("Config.sh")
            if beside.is_file():
                return read_config_sh(beside)
            raise

    def health(self, launch: Launch | None = None) -> Health:
        """Executable, version/commit and compile options; never raises."""
        try:
            build = self.build(None, launch or Launch())
        except EngineError as exc:
            return Health(ok=False, version="", message=exc.message)
        version = build.version or "unknown"
        if build.commit:
            version += f" (commit {build.commit})"
        return Health(
            ok=True,
            version=version,
            message=f"executable {_executable(launch or Launch())}; compile "
            f"options: {' '.join(build.lines())}",
        )

    # -- the Engine protocol -----------------------------------------------------
    def options_schema(self) -> dict[str, dict[str, Any]]:
        """``code.options`` this engine accepts, as JSON-schema nodes by name."""
        return options_schema(Gadget4Options)

    def validate(self, config: RunConfig) -> list[Problem]:
        """What no Gadget4 build can do with ``config`` (cheap: no executable run)."""
        import math

        problems: list[Problem] = []
        if config.ics.file is not None and options(config).ics == "ngenic":
            problems.append(
                (
                    ("code", "options", "ics"),
                    "ngenic",
                    "N-GenIC makes its own particles, but ics.file gives them; "
                    "use ics 'simlab' (the file is converted to inputs/ics.hdf5)",
                )
            )
        problems += _ngenic_problems(config)
        max_step = options(config).MaxSizeTimestep
        times = config.outputs.times
        kind = "scale_factors" if config.outputs.scale_factors else "redshifts"
        for i in range(1, len(times)):
            spacing = math.log(times[i] / times[i - 1])
            if spacing < max_step:
                problems.append(
                    (
                        ("outputs", kind),
                        getattr(config.outputs, kind),
                        f"outputs at a={times[i - 1]:.6g} and a={times[i]:.6g} are "
                        f"{spacing:.3g} apart in ln a; Gadget4 stops unless the "
                        f"spacing is at least MaxSizeTimestep ({max_step:g})",
                    )
                )
                break
        return problems

    def checked_build(self, config: RunConfig, launch: Launch) -> BuildOptions:
        """The build (:meth:`build`), or EngineError naming the Config.sh lines to
        add or remove when it cannot run ``config``."""
        build = self.build(config, launch)
        problems = build_problems(config, build)
        if problems:
            raise EngineError(
                f"the Gadget4 build ({build.source}) cannot run this configuration:\n  "
                + "\n  ".join(problems),
                engine=NAME,
            )
        return build

    def prepare(self, config: RunConfig, rundir: Path, launch: Launch) -> None:
        """Write ICs and output list, and the parameter file when the build is known
        without running anything (``code.options.config_sh``), checked first.

        Otherwise only running the executable tells the build, and nothing is run
        while a run is made (a REST request, a sweep's points): the build is checked
        and the parameter file written by :meth:`prepare_to_start`.
        """
        rundir = Path(rundir)
        known = bool(options(config).config_sh)
        build = self.checked_build(config, launch) if known else None
        inputs = rundir / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        if options(config).ics == "simlab":
            from simlab.ics import write_ics

            write_ics(config, rundir / f"{IC_BASE}.hdf5")
        else:
            np.savetxt(
                rundir / NGENIC_SPECTRUM,
                ngenic_spectrum(config),
                fmt="%.10e",
                header="log10 k [h/Mpc], log10 Delta^2 / k^(n_s - 1) at a_start "
                "(N-GenIC PowerSpectrumType 2, ReNormalizeInputSpectrum 0)",
            )
        times = "\n".join(repr(t) for t in config.outputs.times)
        (rundir / OUTPUT_LIST).write_text(times + "\n")
        (rundir / OUTPUT_DIR).mkdir(exist_ok=True)
        if build is not None:
            self._write_parameters(config, rundir, launch, build)

    def prepare_to_start(self, config: RunConfig, rundir: Path, launch: Launch) -> None:
        """Before the code starts, where it runs: when :meth:`prepare` could not
        write the parameter file, learn the build from the executable (run bare),
        check it against ``config`` and write it; EngineError, and the run fails
        with it as reason, when the build cannot run this configuration."""
        rundir = Path(rundir)
        if not (rundir / PARAM_FILE).exists():
            build = self.checked_build(config, launch)
            self._write_parameters(config, rundir, launch, build)

    def _write_parameters(
        self, config: RunConfig, rundir: Path, launch: Launch, build: BuildOptions
    ) -> None:
        params = parameters(config, build, launch.walltime)
        title = f"simlab run {config.metadata.name}: written for {build.source}"
        (rundir / PARAM_FILE).write_text(render_parameters(params, title))

    def environment(self, config: RunConfig) -> dict[str, str | None]:
        """One thread per MPI rank (Gadget4 runs ``resources.cores`` ranks)."""
        return thread_environment(1)

    def command(self, config: RunConfig, rundir: Path, launch: Launch) -> list[str]:
        """``<launcher> <Gadget4> inputs/param.txt`` (launcher from the profile)."""
        return [*launch.prefix(rundir), _executable(launch), PARAM_FILE]

    def parse_progress(self, line: str) -> Progress | None:
        """Parse ``Sync-Point N, Time: a, Redshift: z, ...``."""
        match = SYNC_POINT_RE.match(line.strip())
        if match is None:
            return None
        return Progress(step=int(match["step"]), a=float(match["a"]))

    def outputs(self, rundir: Path) -> list[Path]:
        """Snapshots written so far, in order (first file of multi-file ones)."""
        return snapshot_paths(Path(rundir) / OUTPUT_DIR)

    def group_catalogues(self, rundir: Path) -> list[Path]:
        """FOF/SUBFIND catalogues written so far (first file of each), in order."""
        return group_catalogue_paths(Path(rundir) / OUTPUT_DIR)

    def power_spectra(self, rundir: Path) -> list[Path]:
        """Gadget4's ``powerspecs/powerspec_NNN.txt`` files, in time order."""
        return power_spectrum_paths(Path(rundir) / OUTPUT_DIR)

    def read_power_spectrum(self, path: Path, config: RunConfig) -> xr.DataArray:
        """One of :meth:`power_spectra` as simlab's P(k) DataArray."""
        from simlab.io.powerspec import read_powerspec

        return read_powerspec(path)

    def restart(
        self, config: RunConfig, rundir: Path, launch: Launch
    ) -> list[str] | None:
        """RestartFlag 1 from restart files, else RestartFlag 2 from the latest
        snapshot, else None."""
        out = Path(rundir) / OUTPUT_DIR
        if (out / "restartfiles" / "restart.0").exists():
            return [*self.command(config, rundir, launch), "1"]
        snaps = snapshot_numbers(out)
        if snaps:
            return self.restart_from_snapshot(config, rundir, launch, snaps[-1])
        return None

    def restart_from_snapshot(
        self, config: RunConfig, rundir: Path, launch: Launch, number: int
    ) -> list[str]:
        """RestartFlag 2: continue from snapshot ``number`` of this run."""
        if number not in snapshot_numbers(Path(rundir) / OUTPUT_DIR):
            raise EngineError(
                f"no snapshot {number:03d} in {Path(rundir) / OUTPUT_DIR}", engine=NAME
            )
        return [*self.command(config, rundir, launch), "2", str(int(number))]

    def request_stop(self, rundir: Path) -> None:
        """Create ``output/stop``: Gadget4 writes restart files and exits."""
        out = Path(rundir) / OUTPUT_DIR
        out.mkdir(exist_ok=True)
        (out / "stop").touch()

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> Outcome:
        """Decide from the log: Gadget4 exits 0 after stops and parameter errors.

        A ``stop`` file the process did not live to see is removed, so that it
        cannot stop the next start at its first step.
        """
        (Path(rundir) / OUTPUT_DIR / "stop").unlink(missing_ok=True)
        summary = summarize_log(_last_segment(Path(rundir) / "log"))
        if summary.error is not None:
            return Outcome("failed", f"Gadget4: {summary.error}")
        if returncode != 0:
            return Outcome("failed")
        restart_files = (
            Path(rundir) / OUTPUT_DIR / "restartfiles" / "restart.0"
        ).exists()
        if summary.stopped_by is not None and restart_files:
            return Outcome("checkpointed")
        end = config.outputs.times[-1]
        reached = summary.a_last is not None and summary.a_last >= end * (1 - 1e-6)
        if summary.finished and reached:
            return Outcome("completed")
        last = "no time step" if summary.a_last is None else f"a={summary.a_last:.6g}"
        return Outcome("failed", f"Gadget4 ended at {last} before a={end:.6g}")


def _ngenic_problems(config: RunConfig) -> list[Problem]:
    """``ics.fixed``/``ics.paired`` the built-in N-GenIC cannot honour: it needs
    a compile option for each, checked here when ``config_sh`` names the build
    (otherwise when the run starts: :meth:`Gadget4Engine.prepare_to_start`)."""
    from simlab.engines.gadget4_build import NGENIC_FIELD_FLAGS

    opts = options(config)
    asked = [f for f in NGENIC_FIELD_FLAGS if getattr(config.ics, f)]
    if opts.ics != "ngenic" or not asked or not opts.config_sh:
        return []
    try:
        build = read_config_sh(Path(opts.config_sh).expanduser())
    except (OSError, ValueError):
        return []  # prepare reports an unreadable Config.sh
    return [
        (
            ("ics", field),
            True,
            f"Gadget4's N-GenIC honours it only when built with "
            f"{NGENIC_FIELD_FLAGS[field]}, which {opts.config_sh} lacks: add it "
            "and rebuild, or use code.options.ics 'simlab'",
        )
        for field in asked
        if NGENIC_FIELD_FLAGS[field] not in build
    ]


def _executable(launch: Launch) -> str:
    """The executable the service resolved; EngineError if it found none."""
    if not launch.executable:
        raise EngineError(
            "no Gadget4 executable: set code.executable, executables.gadget4 in "
            "the cluster profile, or SIMLAB_GADGET4, or put Gadget4 on PATH",
            engine=NAME,
        )
    return launch.executable


def snapshot_numbers(output: Path) -> list[int]:
    """Numbers of the snapshots in an OutputDir (single- or multi-file), sorted."""
    return list(SNAPSHOT.find(output))


def snapshot_paths(output: Path) -> list[Path]:
    """One path per snapshot: ``snapshot_NNN.hdf5`` or ``snapdir_NNN/…0.hdf5``."""
    return list(SNAPSHOT.find(output).values())


def group_catalogue_paths(output: Path) -> list[Path]:
    """One path per FOF/Subfind catalogue (``fof_subhalo_tab_NNN``), in order."""
    return list(GROUP_CATALOGUE.find(output).values())


def power_spectrum_paths(output: Path) -> list[Path]:
    """Gadget4's ``powerspecs/powerspec_NNN.txt`` files, in order."""
    return sorted((output / "powerspecs").glob("powerspec_[0-9][0-9][0-9]*.txt"))
