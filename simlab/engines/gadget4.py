"""The Gadget4 engine: parameter file, output list, build checks, progress, restarts.

Gadget4 cannot be installed from a package registry; users build it on their own
machines, so simlab works with the user's executable. Which one is one rule, the
most specific setting first:

1. ``code.executable`` of the run;
2. ``executables.gadget4`` in the run's cluster profile (dask config
   ``simlab.clusters.<name>.executables.gadget4``);
3. the ``SIMLAB_GADGET4`` environment variable;
4. ``Gadget4`` on ``PATH``.

The run directory is the code's working directory: ``inputs/param.txt``,
``inputs/outputs.txt``, ``inputs/ics.hdf5`` (simlab's particles, ICFormat 3) and
``output/`` (Gadget4's OutputDir: snapshots, group catalogues, ``powerspecs/``,
``restartfiles/``). Facts about Gadget4's behaviour come from real runs
(``tests/data/gadget4-small/README.md``): it exits with status 0 after a
stop-file or time-limit stop and even after a parameter-file error, so the outcome
is read from its output, not its exit status.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.engines.base import Health, Problem, Progress
from simlab.engines.gadget4_build import (
    BuildOptions,
    build_problems,
    parse_config_block,
    read_config_sh,
)
from simlab.errors import EngineError
from simlab.particles import (
    UNIT_LENGTH_IN_CM,
    UNIT_MASS_IN_G,
    UNIT_VELOCITY_IN_CM_PER_S,
)

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig

NAME = "gadget4"
ENV_EXECUTABLE = "SIMLAB_GADGET4"
DEFAULT_EXECUTABLE = "Gadget4"
PARAM_FILE = "inputs/param.txt"
OUTPUT_LIST = "inputs/outputs.txt"
IC_BASE = "inputs/ics"
OUTPUT_DIR = "output"
#: Seconds the executable gets to print its compile options when run bare.
PROBE_TIMEOUT = 60.0

SYNC_POINT_RE = re.compile(
    r"^Sync-Point (?P<step>\d+), Time: (?P<a>[-+0-9.eE]+), "
    r"Redshift: (?P<z>[-+0-9.eE]+), Systemstep: (?P<dt>[-+0-9.eE]+), "
    r"Dloga: (?P<dloga>[-+0-9.eE]+)"
)
SNAPSHOT_RE = re.compile(r"^SNAPSHOT: writing snapshot file #(?P<num>\d+) @ time ")
#: Lines that tell how a Gadget4 process ended (or resumed), as observed.
MARKERS = {
    "resumed": "RESTART: Loading restart files",
    "stop_file": "stop-file detected. stopping.",
    "time_limit": "reaching time-limit. stopping.",
    "parameter_error": "We stop because of an error in the parameterfile.",
    "terminated": "TERMINATE: ",
    "finished": "bye!",
}


@dataclass(frozen=True)
class OptionSpec:
    """One allowed ``code.options`` entry: its type, range and meaning."""

    kind: str  # "float", "int", "bool" or "choice"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def schema(self, default: Any = None) -> dict[str, Any]:
        """This option as a JSON-schema node (what forms draw an input from)."""
        node: dict[str, Any] = {"description": self.help}
        if self.kind == "choice":
            node["enum"] = list(self.choices)
        elif self.kind == "str":
            node["type"] = "string"
        elif self.kind == "bool":
            node["type"] = "boolean"
        else:
            node["type"] = "integer" if self.kind == "int" else "number"
            if self.low is not None:
                node["exclusiveMinimum"] = self.low
            if self.high is not None:
                node["maximum"] = self.high
        if default is not None:
            node["description"] = f"{self.help} (default {default})".lstrip()
        return node

    def check(self, value: Any) -> str | None:
        """None when ``value`` fits, else what is allowed."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "true or false"
        if self.kind == "choice":
            return (
                None
                if value in self.choices
                else "one of " + ", ".join(repr(c) for c in self.choices)
            )
        if self.kind == "str":
            ok = isinstance(value, str) and value and "\n" not in value
            return None if ok else "a path"
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind == "int":
            numeric = numeric and float(value).is_integer()
        allowed = f"{'an integer' if self.kind == 'int' else 'a number'} in "
        allowed += f"({self.low:g}, {self.high:g}]"
        low = -float("inf") if self.low is None else self.low
        high = float("inf") if self.high is None else self.high
        if not numeric or not low < float(value) <= high:
            return allowed
        return None


#: simlab-level options of the gadget4 engine.
SIMLAB_OPTIONS: dict[str, OptionSpec] = {
    "ics": OptionSpec(
        "choice",
        choices=("simlab", "ngenic"),
        help="'simlab' writes the particles to inputs/ics.hdf5 (ICFormat 3); "
        "'ngenic' lets Gadget4's built-in N-GenIC make them (NGENIC build)",
    ),
    "fof": OptionSpec("bool", help="FOF group catalogues at every output"),
    "subfind": OptionSpec("bool", help="SUBFIND subhalos too (implies fof)"),
    "double_precision_output": OptionSpec("bool", help="float64 snapshots"),
    "config_sh": OptionSpec("str", help="Config.sh the executable was built with"),
    "softening_max_phys": OptionSpec(
        "float", 0.0, 1e5, help="maximum physical softening in Mpc/h"
    ),
}
#: Gadget4 parameters a run may set directly, with their defaults (those of the
#: fixture runs) and ranges; every other parameter follows from the RunConfig.
PARAMETER_DEFAULTS: dict[str, tuple[float, OptionSpec]] = {
    "CpuTimeBetRestartFile": (3600.0, OptionSpec("float", 0, 1e9, help="s")),
    "MaxMemSize": (1500, OptionSpec("int", 0, 1e8, help="MB per MPI rank")),
    "TimeBetStatistics": (0.05, OptionSpec("float", 0, 10)),
    "NumFilesPerSnapshot": (1, OptionSpec("int", 0, 1e6)),
    "MaxFilesWithConcurrentIO": (1, OptionSpec("int", 0, 1e6)),
    "ErrTolIntAccuracy": (0.05, OptionSpec("float", 0, 1)),
    "CourantFac": (0.3, OptionSpec("float", 0, 1)),
    "MaxSizeTimestep": (0.05, OptionSpec("float", 0, 1)),
    "MinSizeTimestep": (0.0, OptionSpec("float", -1, 1)),
    "TypeOfOpeningCriterion": (1, OptionSpec("int", -1, 1)),
    "ErrTolTheta": (0.75, OptionSpec("float", 0, 2)),
    "ErrTolThetaMax": (1.0, OptionSpec("float", 0, 2)),
    "ErrTolForceAcc": (0.005, OptionSpec("float", 0, 1)),
    "TopNodeFactor": (3.0, OptionSpec("float", 0, 100)),
    "ActivePartFracForNewDomainDecomp": (0.01, OptionSpec("float", 0, 1)),
    "DesNumNgb": (64, OptionSpec("int", 0, 10000)),
    "MaxNumNgbDeviation": (1, OptionSpec("float", 0, 1000)),
    "DesLinkNgb": (20, OptionSpec("int", 0, 10000)),
    "TimeLimitCPU": (0.0, OptionSpec("float", 0, 1e9, help="s; default walltime")),
}


def check_options(options: dict[str, Any]) -> list[Problem]:
    """Problems with ``code.options``: unknown names, wrong types, out of range."""
    problems: list[Problem] = []
    specs = {**SIMLAB_OPTIONS, **{k: v[1] for k, v in PARAMETER_DEFAULTS.items()}}
    for name, value in options.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(
                (
                    ("code", "options", name),
                    value,
                    f"unknown gadget4 option; allowed: {', '.join(sorted(specs))} "
                    "(cosmology, box, times and softening come from their own fields)",
                )
            )
            continue
        allowed = spec.check(value)
        if allowed is not None:
            problems.append((("code", "options", name), value, f"allowed: {allowed}"))
    return problems


def softening(config: RunConfig) -> float:
    """Comoving softening in Mpc/h: ``gravity.softening`` or 1/30 of the spacing."""
    if config.gravity.softening is not None:
        return config.gravity.softening
    return config.box.size / config.box.particles_per_side / 30.0


def _number(value: float) -> str:
    """A parameter value as Gadget4 reads it (``%g`` keeps 6 digits; use repr)."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def parameters(config: RunConfig, build: BuildOptions) -> dict[str, str]:
    """Every Gadget4 parameter of the run, in the order of the fixture files.

    The key set is what the build expects: softening classes follow NSOFTCLASSES
    and NTYPES, DesLinkNgb exists only with SUBFIND, the N-GenIC block only with
    NGENIC (Gadget4 stops on a missing or an unknown key).
    """
    opts = config.code.options
    value = {k: opts.get(k, default) for k, (default, _) in PARAMETER_DEFAULTS.items()}
    if not value["TimeLimitCPU"]:
        from simlab.dispatch.dispatcher import walltime_seconds

        # Gadget4 stops by itself at 85% of TimeLimitCPU, leaving time for restarts
        value["TimeLimitCPU"] = walltime_seconds(config.resources.walltime)
    if "MaxFilesWithConcurrentIO" not in opts:
        value["MaxFilesWithConcurrentIO"] = value["NumFilesPerSnapshot"]
    cosmo = config.cosmology
    ngenic = opts.get("ics", "simlab") == "ngenic"
    p: dict[str, str] = {
        "InitCondFile": f"./{IC_BASE}",
        "OutputDir": f"./{OUTPUT_DIR}",
        "SnapshotFileBase": "snapshot",
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
    eps = softening(config)
    eps_phys = opts.get("softening_max_phys", eps)
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
            "PowerSpectrumType": "1",
            "ReNormalizeInputSpectrum": "1",
            "PrimordialIndex": _number(cosmo.n_s),
            "ShapeGamma": "0.21",
            "Sigma8": _number(cosmo.sigma8),
            "PowerSpectrumFile": "powerspec",
            "InputSpectrum_UnitLength_in_cm": _number(UNIT_LENGTH_IN_CM),
        }
    if "CREATE_GRID" in build:
        p["GridSize"] = str(config.box.particles_per_side)
    return p


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
    """What one Gadget4 stdout says: steps, last time, how it began and ended."""

    steps: int
    first_step: int | None
    last_step: int | None
    a_first: float | None
    a_last: float | None
    resumed: bool
    stopped_by: str | None  # "stop_file", "time_limit" or None
    finished: bool
    error: str | None
    snapshots: tuple[int, ...]


def summarize_log(text: str) -> LogSummary:
    """Read a Gadget4 stdout (one process) into a :class:`LogSummary`."""
    steps: list[tuple[int, float]] = []
    snapshots: list[int] = []
    seen = dict.fromkeys(MARKERS, False)
    error = None
    for line in text.splitlines():
        if m := SYNC_POINT_RE.match(line):
            steps.append((int(m["step"]), float(m["a"])))
            continue
        if m := SNAPSHOT_RE.match(line):
            snapshots.append(int(m["num"]))
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
        steps=len(steps),
        first_step=steps[0][0] if steps else None,
        last_step=steps[-1][0] if steps else None,
        a_first=steps[0][1] if steps else None,
        a_last=steps[-1][1] if steps else None,
        resumed=seen["resumed"],
        stopped_by=stopped_by,
        finished=seen["finished"],
        error=error,
        snapshots=tuple(snapshots),
    )


def _last_segment(log: Path) -> str:
    """The part of the run's log written by its latest process."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    start = text.rfind("simlab: running ")
    return text[start:] if start >= 0 else text


def probe(executable: str) -> BuildOptions:
    """Run the executable bare: Gadget4 prints version and compile options, then
    stops with 'Parameters are missing'. Raises EngineError if that fails."""
    try:
        done = subprocess.run(
            [executable],
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
    #: xarray backend that opens this engine's snapshots (see ``Run.open_snapshot``)
    snapshot_backend = "gadget4"

    # -- where the code is and what it can do ------------------------------------
    def executable(self, config: RunConfig | None = None) -> str:
        """The executable by the module's rule; EngineError when none is found."""
        candidates: list[tuple[str, str | None]] = []
        if config is not None:
            candidates.append(("code.executable", config.code.executable))
            candidates.append(("profile", _profile_executable(config)))
        candidates.append((ENV_EXECUTABLE, os.environ.get(ENV_EXECUTABLE)))
        for where, value in candidates:
            if value:
                found = shutil.which(value) or (
                    value if os.access(value, os.X_OK) else None
                )
                if found is None:
                    raise EngineError(
                        f"the Gadget4 executable from {where} ({value!r}) does not "
                        "exist or is not executable",
                        engine=NAME,
                    )
                return str(Path(found).absolute())
        found = shutil.which(DEFAULT_EXECUTABLE)
        if found is None:
            raise EngineError(
                "no Gadget4 executable: set code.executable, executables.gadget4 in "
                f"the cluster profile, or {ENV_EXECUTABLE}, or put "
                f"{DEFAULT_EXECUTABLE} on PATH",
                engine=NAME,
            )
        return found

    def build(self, config: RunConfig | None = None) -> BuildOptions:
        """Compile options: ``code.options.config_sh`` if given, else what the
        executable prints when run bare, else a ``Config.sh`` beside it."""
        if config is not None and config.code.options.get("config_sh"):
            path = Path(config.code.options["config_sh"]).expanduser()
            try:
                return read_config_sh(path)
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"code.options.config_sh = {str(path)!r}: cannot read ({exc})",
                    engine=NAME,
                ) from exc
        exe = self.executable(config)
        try:
            return probe(exe)
        except EngineError:
            beside = Path(exe).with_name("Config.sh")
            if beside.is_file():
                return read_config_sh(beside)
            raise

    def health(self, config: RunConfig | None = None) -> Health:
        """Executable, version/commit and compile options; never raises."""
        try:
            exe = self.executable(config)
            build = self.build(config)
        except EngineError as exc:
            return Health(ok=False, version="", message=exc.message)
        version = build.version or "unknown"
        if build.commit:
            version += f" (commit {build.commit})"
        return Health(
            ok=True,
            version=version,
            message=f"executable {exe}; compile options: {' '.join(build.lines())}",
        )

    # -- the Engine protocol -----------------------------------------------------
    def options_schema(self) -> dict[str, dict[str, Any]]:
        """``code.options`` this engine accepts, as JSON-schema nodes by name."""
        nodes = {name: spec.schema() for name, spec in SIMLAB_OPTIONS.items()}
        for name, (default, spec) in PARAMETER_DEFAULTS.items():
            nodes[name] = spec.schema(default)
        return nodes

    def validate(self, config: RunConfig) -> list[Problem]:
        """What no Gadget4 build can do with ``config`` (cheap: no executable run)."""
        import math

        problems = check_options(config.code.options)
        if problems:
            return problems
        max_step = config.code.options.get(
            "MaxSizeTimestep", PARAMETER_DEFAULTS["MaxSizeTimestep"][0]
        )
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
        return problems

    def prepare(self, config: RunConfig, rundir: Path) -> None:
        """Check the build, then write ICs, output list and parameter file."""
        rundir = Path(rundir)
        build = self.build(config)
        problems = build_problems(config, build)
        if problems:
            raise EngineError(
                f"the Gadget4 build ({build.source}) cannot run this configuration:\n  "
                + "\n  ".join(problems),
                engine=NAME,
            )
        inputs = rundir / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        if config.code.options.get("ics", "simlab") == "simlab":
            from simlab.ics import write_ics

            write_ics(config, rundir / f"{IC_BASE}.hdf5")
        times = "\n".join(repr(t) for t in config.outputs.times)
        (rundir / OUTPUT_LIST).write_text(times + "\n")
        params = parameters(config, build)
        title = f"simlab run {config.metadata.name}: written for {build.source}"
        (rundir / PARAM_FILE).write_text(render_parameters(params, title))
        (rundir / OUTPUT_DIR).mkdir(exist_ok=True)

    def command(self, config: RunConfig, rundir: Path) -> list[str]:
        """``<launcher> <Gadget4> inputs/param.txt`` (launcher from the profile)."""
        return [*_launcher(config), self.executable(config), PARAM_FILE]

    def parse_progress(self, line: str) -> Progress | None:
        """Parse ``Sync-Point N, Time: a, Redshift: z, ...``."""
        match = SYNC_POINT_RE.match(line.strip())
        if match is None:
            return None
        return Progress(step=int(match["step"]), a=float(match["a"]))

    def outputs(self, rundir: Path) -> list[Path]:
        """Snapshots written so far, in order (first file of multi-file ones)."""
        return snapshot_paths(Path(rundir) / OUTPUT_DIR)

    def power_spectra(self, rundir: Path) -> list[Path]:
        """Gadget4's ``powerspecs/powerspec_NNN.txt`` files, in time order."""
        return power_spectrum_paths(Path(rundir) / OUTPUT_DIR)

    def read_power_spectrum(self, path: Path, config: RunConfig) -> xr.DataArray:
        """One of :meth:`power_spectra` as simlab's P(k) DataArray."""
        from simlab.io.powerspec import read_powerspec

        return read_powerspec(path)

    def restart(self, config: RunConfig, rundir: Path) -> list[str] | None:
        """RestartFlag 1 from restart files, else RestartFlag 2 from the latest
        snapshot, else None."""
        out = Path(rundir) / OUTPUT_DIR
        if (out / "restartfiles" / "restart.0").exists():
            return [*self.command(config, rundir), "1"]
        snaps = snapshot_numbers(out)
        if snaps:
            return self.restart_from_snapshot(config, rundir, snaps[-1])
        return None

    def restart_from_snapshot(
        self, config: RunConfig, rundir: Path, number: int
    ) -> list[str]:
        """RestartFlag 2: continue from snapshot ``number`` of this run."""
        if number not in snapshot_numbers(Path(rundir) / OUTPUT_DIR):
            raise EngineError(
                f"no snapshot {number:03d} in {Path(rundir) / OUTPUT_DIR}", engine=NAME
            )
        return [*self.command(config, rundir), "2", str(int(number))]

    def request_stop(self, rundir: Path) -> None:
        """Create ``output/stop``: Gadget4 writes restart files and exits."""
        out = Path(rundir) / OUTPUT_DIR
        out.mkdir(exist_ok=True)
        (out / "stop").touch()

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> str:
        """Decide from the log: Gadget4 exits 0 after stops and parameter errors.

        A ``stop`` file the process did not live to see is removed, so that it
        cannot stop the next start at its first step.
        """
        (Path(rundir) / OUTPUT_DIR / "stop").unlink(missing_ok=True)
        summary = summarize_log(_last_segment(Path(rundir) / "log"))
        if returncode != 0 or summary.error is not None:
            return "failed"
        restart_files = (
            Path(rundir) / OUTPUT_DIR / "restartfiles" / "restart.0"
        ).exists()
        if summary.stopped_by is not None and restart_files:
            return "checkpointed"
        end = config.outputs.times[-1]
        reached = summary.a_last is not None and summary.a_last >= end * (1 - 1e-6)
        return "completed" if summary.finished and reached else "failed"


def _profile(config: RunConfig) -> dict[str, Any]:
    from simlab.settings import cluster_profile

    try:
        return cluster_profile(config.resources.cluster)
    except KeyError:
        return {}


def _profile_executable(config: RunConfig) -> str | None:
    executables = _profile(config).get("executables") or {}
    return executables.get(NAME) if isinstance(executables, dict) else None


def _launcher(config: RunConfig) -> list[str]:
    from simlab.dispatch.profiles import mpi_launcher

    return mpi_launcher(_profile(config), config.resources.cores)


_SNAP_RE = re.compile(r"^snapshot_(?P<num>\d{3,})(\.0)?\.hdf5$")


def snapshot_numbers(output: Path) -> list[int]:
    """Numbers of the snapshots in an OutputDir (single- or multi-file), sorted."""
    numbers = set()
    for path in list(output.glob("snapshot_*.hdf5")) + list(
        output.glob("snapdir_*/snapshot_*.0.hdf5")
    ):
        if m := _SNAP_RE.match(path.name):
            numbers.add(int(m["num"]))
    return sorted(numbers)


def snapshot_paths(output: Path) -> list[Path]:
    """One path per snapshot: ``snapshot_NNN.hdf5`` or ``snapdir_NNN/…0.hdf5``."""
    paths = []
    for n in snapshot_numbers(output):
        single = output / f"snapshot_{n:03d}.hdf5"
        paths.append(
            single
            if single.exists()
            else output / f"snapdir_{n:03d}" / f"snapshot_{n:03d}.0.hdf5"
        )
    return paths


def group_catalogue_paths(output: Path) -> list[Path]:
    """One path per FOF/Subfind catalogue (``fof_subhalo_tab_NNN``), in order."""
    found = {}
    for path in list(output.glob("fof_subhalo_tab_*.hdf5")) + list(
        output.glob("groups_*/fof_subhalo_tab_*.0.hdf5")
    ):
        m = re.match(r"^fof_subhalo_tab_(\d{3,})(\.0)?\.hdf5$", path.name)
        if m:
            found.setdefault(int(m[1]), path)
    return [found[n] for n in sorted(found)]


def power_spectrum_paths(output: Path) -> list[Path]:
    """Gadget4's ``powerspecs/powerspec_NNN.txt`` files, in order."""
    return sorted((output / "powerspecs").glob("powerspec_[0-9][0-9][0-9]*.txt"))
