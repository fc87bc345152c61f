"""The CONCEPT engine: parameter file, command line, progress, outcome, outputs.

CONCEPT (github.com/jmd-dk/concept) is driven by a Python-syntax parameter file and
the ``concept`` script: ``concept -n N -p params.py --local [-c "name = value"]``.
simlab writes ``inputs/params.py`` from a RunConfig (CONCEPT units: Mpc, Gyr,
1e10 Msun, no h), writes simlab's particle set as ``inputs/ics.hdf5`` in CONCEPT's
HDF5 layout (or ``inputs/ics.gadget`` as GADGET SnapFormat 2), reads the time-step
header blocks of its stdout once the ANSI escapes are gone, and decides the
outcome from the closing lines, the exit status and the ``job/<id>/log_err`` file
CONCEPT leaves when anything went wrong. Formats as observed on real runs:
``tests/data/concept-small/README.md``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.engines.base import Health, Problem, Progress
from simlab.engines.concept_log import ProgressParser, read_log, strip_ansi

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig

logger = logging.getLogger(__name__)

#: Environment variable naming the ``concept`` script (third in the lookup order).
ENV_EXECUTABLE = "SIMLAB_CONCEPT"
#: Cluster-profile key naming the ``concept`` script (second in the lookup order).
PROFILE_EXECUTABLE = "executables.concept"
_WHERE = (
    f"set code.executable, {PROFILE_EXECUTABLE} in the cluster profile, "
    f"{ENV_EXECUTABLE}, or put 'concept' on PATH"
)
PARAMS = "inputs/params.py"
_SNAPSHOT = re.compile(r"^snapshot_a=(?P<a>\d+(?:\.\d*)?)(?:\.hdf5)?$")
_POWERSPEC = re.compile(r"^powerspec_a=(?P<a>\d+(?:\.\d*)?)$")
#: ``code.options`` CONCEPT understands, with what each may hold.
OPTIONS = {
    "gravity": "'pm' or 'p3m'",
    "initial_conditions": "'simlab' (simlab's particles, default) or 'concept' "
    "(CONCEPT realises them with CLASS)",
    "ic_format": "'concept' (HDF5, default) or 'gadget' (SnapFormat 2)",
    "snapshot_type": "'concept' (HDF5, default) or 'gadget'",
    "A_s": "primordial amplitude in (0, 1e-7) (needed with initial_conditions "
    "'concept': CONCEPT normalises by A_s, not sigma8)",
    "random_seeds": "{'primordial amplitudes': int, 'primordial phases': int}",
    "parameters": "{CONCEPT parameter name: literal value} passed as -c overrides",
}
_CHOICES = {
    "gravity": ("pm", "p3m"),
    "initial_conditions": ("simlab", "concept"),
    "ic_format": ("concept", "gadget"),
    "snapshot_type": ("concept", "gadget"),
}
_SEED_KEYS = ("primordial amplitudes", "primordial phases")


def _literal_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not a plain Python literal simlab may write, or None."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r} (not finite)"
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problem = _literal_problem(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a non-string key {key!r}"
            problem = _literal_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}, not a number, string, list or dict"


def _literal(value: Any) -> str:
    """Python source of a checked literal (lists become tuples, as CONCEPT writes)."""
    if isinstance(value, list | tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _parameter_name_ok(name: Any) -> bool:
    import keyword

    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def overrides(config: RunConfig) -> list[str]:
    """``name = value`` strings for CONCEPT's ``-c`` from ``code.options.parameters``.

    Only checked names (Python identifiers, e.g. ``Δt_base_background_factor``) and
    plain literals reach the command line; ``validate`` refuses anything else.
    """
    extra = config.code.options.get("parameters") or {}
    return [f"{name} = {_literal(value)}" for name, value in extra.items()]


def random_seeds(config: RunConfig) -> dict[str, int]:
    """CONCEPT's two seeds: ``code.options.random_seeds`` or ics.seed and seed + 1."""
    given = config.code.options.get("random_seeds")
    if given:
        return {key: int(given[key]) for key in _SEED_KEYS}
    seed = int(config.ics.seed)
    return {_SEED_KEYS[0]: seed, _SEED_KEYS[1]: (seed + 1) % 2**63}


def ic_filename(config: RunConfig) -> str | None:
    """Name of the IC file in ``inputs/``, or None when CONCEPT makes the ICs."""
    options = config.code.options
    if options.get("initial_conditions", "simlab") == "concept":
        return None
    return "ics.gadget" if options.get("ic_format") == "gadget" else "ics.hdf5"


def parameter_file(config: RunConfig) -> str:
    """CONCEPT's parameter file for ``config`` (Python syntax, CONCEPT units).

    Every value is a validated number or a fixed string written with ``repr``;
    paths are relative to the file's folder (``param.dir``), so the run
    directory can be renamed or moved.
    """
    from simlab.__about__ import __version__

    cosmo = config.cosmology
    options = config.code.options
    h = cosmo.h
    times = tuple(config.outputs.times)
    kinds = [
        kind
        for kind, wanted in (
            ("snapshot", config.outputs.snapshots),
            ("powerspec", config.outputs.power_spectra),
        )
        if wanted
    ]
    gravity = options.get("gravity", "pm")
    ic_file = ic_filename(config)
    lines = [
        f"# CONCEPT parameter file written by simlab {__version__} for run "
        f"{config.metadata.name!r}.",
        "# Units are CONCEPT's (Mpc, Gyr, 1e10 Msun, no h); simlab's Mpc/h values",
        f"# are divided by h = {h!r}.",
        "",
        "# Input/output",
    ]
    if ic_file is None:
        lines.append(
            "initial_conditions = {'species': 'matter', "
            f"'N': {config.box.particles_per_side!r}**3}}"
        )
    else:
        lines.append(f"initial_conditions = f'{{param.dir}}/{ic_file}'")
    lines += [
        "output_dirs = {"
        + ", ".join(f"{k!r}: f'{{param.dir}}/../output'" for k in kinds)
        + "}",
        "output_bases = {" + ", ".join(f"{k!r}: {k!r}" for k in kinds) + "}",
        "output_times = {"
        + ", ".join(f"{k!r}: {_literal(times)}" for k in kinds)
        + "}",
        f"snapshot_type = {options.get('snapshot_type', 'concept')!r}",
        "",
        "# Numerics",
        f"boxsize = {config.box.size / h!r}*Mpc  # {config.box.size!r} Mpc/h",
        "potential_options = {'gridsize': {'gravity': {"
        f"{gravity!r}: {config.mesh!r}}}}}}}",
        "",
        "# Cosmology",
        f"H0 = {100.0 * h!r}*km/(s*Mpc)",
        f"Ωb = {cosmo.OmegaBaryon!r}",
        f"Ωcdm = {cosmo.Omega0 - cosmo.OmegaBaryon!r}",
        f"a_begin = {config.ics.start!r}",
    ]
    spectrum: dict[str, float] = {"n_s": cosmo.n_s}
    if "A_s" in options:
        spectrum = {"A_s": float(options["A_s"]), **spectrum}
    lines.append(f"primordial_spectrum = {_literal(spectrum)}")
    lines += [
        "",
        "# Physics",
        f"select_forces = {{'matter': {{'gravity': {gravity!r}}}}}",
    ]
    if ic_file is None:
        lines += [
            "",
            "# Initial conditions realised by CONCEPT",
            f"random_seeds = {_literal(random_seeds(config))}",
            f"realization_options = {{'LPT': {config.ics.lpt_order!r}}}",
        ]
    return "\n".join(lines) + "\n"


def _profile_executable(config: RunConfig | None) -> str | None:
    """``executables.concept`` of the run's cluster profile (default: ``local``)."""
    from simlab.settings import cluster_profile

    try:
        profile = cluster_profile(config.resources.cluster if config else "local")
    except KeyError:
        return None
    executables = profile.get("executables") or {}
    return executables.get("concept") if isinstance(executables, dict) else None


def find_executable(config: RunConfig | None = None) -> tuple[str | None, str]:
    """The ``concept`` script and where it was found.

    Order: ``code.executable`` of the run, ``executables.concept`` in the run's
    cluster profile (dask config ``simlab.clusters.<name>.executables.concept``),
    the ``SIMLAB_CONCEPT`` environment variable, then ``concept`` on ``PATH``.
    """
    candidates = [
        (config.code.executable if config is not None else None, "code.executable"),
        (_profile_executable(config), PROFILE_EXECUTABLE),
        (os.environ.get(ENV_EXECUTABLE), ENV_EXECUTABLE),
        ("concept", "PATH"),
    ]
    for value, source in candidates:
        if value:
            found = shutil.which(str(value))
            return (found, source) if found else (None, f"{source}={value!r}")
    return None, "PATH"


class ConceptEngine:
    """Engine plugin for CONCEPT, driven through its ``concept`` script."""

    name = "concept"
    #: xarray backend that opens this engine's snapshots
    snapshot_backend = "concept"

    def __init__(self) -> None:
        self._parser = ProgressParser()

    def options_schema(self) -> dict[str, dict[str, Any]]:
        """``code.options`` this engine accepts, as JSON-schema nodes by name."""
        nodes: dict[str, dict[str, Any]] = {
            name: {"enum": list(choices), "description": OPTIONS[name]}
            for name, choices in _CHOICES.items()
        }
        nodes["A_s"] = {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1e-7,
            "description": OPTIONS["A_s"],
        }
        for name in ("random_seeds", "parameters"):
            nodes[name] = {"type": "object", "description": OPTIONS[name]}
        return nodes

    def health(self, config: RunConfig | None = None) -> Health:
        """Find the ``concept`` script and ask it ``--version``; never raises."""
        exe, source = find_executable(config)
        if exe is None:
            return Health(
                ok=False,
                version="",
                message=f"CONCEPT not found ({source}); {_WHERE}",
            )
        try:
            done = subprocess.run(
                [exe, "--version"],
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Health(ok=False, version="", message=f"{exe}: {exc}")
        lines = [ln.strip() for ln in strip_ansi(done.stdout).splitlines()]
        version = next((ln for ln in reversed(lines) if ln), "")
        if done.returncode != 0 or not version:
            tail = strip_ansi(done.stderr or done.stdout).strip()[-300:]
            return Health(
                ok=False,
                version=version,
                message=f"{exe} --version exited with status {done.returncode}: {tail}",
            )
        return Health(ok=True, version=version, message=f"{exe} (from {source})")

    def validate(self, config: RunConfig) -> list[Problem]:
        """Options CONCEPT does not know and requests simlab cannot map to it."""
        problems: list[Problem] = []
        options = config.code.options
        loc = ("code", "options")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            allowed = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
            problems.append(
                (loc, unknown, f"unknown concept option(s); allowed: {allowed}")
            )
        for key, choices in _CHOICES.items():
            if key in options and options[key] not in choices:
                problems.append(
                    ((*loc, key), options[key], f"must be one of {', '.join(choices)}")
                )
        if "A_s" in options:
            value = options["A_s"]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 < value < 1e-7)
            ):
                problems.append(((*loc, "A_s"), value, f"must be {OPTIONS['A_s']}"))
        concept_ics = options.get("initial_conditions", "simlab") == "concept"
        if concept_ics and "A_s" not in options:
            problems.append(
                (
                    (*loc, "A_s"),
                    None,
                    "required with initial_conditions 'concept': "
                    "CONCEPT normalises the primordial spectrum by A_s, not sigma8",
                )
            )
        if concept_ics and (config.ics.fixed or config.ics.paired):
            problems.append(
                (
                    ("ics", "fixed"),
                    True,
                    "fixed/paired fields are simlab ICs only; "
                    "use initial_conditions 'simlab'",
                )
            )
        seeds = options.get("random_seeds")
        if seeds is not None and (
            not isinstance(seeds, dict)
            or set(seeds) != set(_SEED_KEYS)
            or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
                for v in seeds.values()
            )
        ):
            problems.append(
                ((*loc, "random_seeds"), seeds, f"must be {OPTIONS['random_seeds']}")
            )
        extra = options.get("parameters")
        if extra is not None:
            if not isinstance(extra, dict):
                problems.append(((*loc, "parameters"), extra, "must be a mapping"))
            else:
                for name, value in extra.items():
                    if not _parameter_name_ok(name):
                        problems.append(
                            (
                                (*loc, "parameters"),
                                name,
                                "parameter names must be Python identifiers",
                            )
                        )
                        continue
                    problem = _literal_problem(value, str(name))
                    if problem:
                        problems.append(((*loc, "parameters", name), value, problem))
        cores = config.resources.cores
        if config.mesh % 2 or config.mesh % cores:
            problems.append(
                (
                    ("gravity", "mesh"),
                    config.mesh,
                    f"CONCEPT's FFT slabs need an even grid divisible by the "
                    f"{cores} MPI processes (resources.cores)",
                )
            )
        n = config.box.particles_per_side
        if concept_ics and (n % 2 or n % cores):
            problems.append(
                (
                    ("box", "particles_per_side"),
                    n,
                    f"CONCEPT realises ICs on an n³ grid: n must be even and "
                    f"divisible by the {cores} MPI processes (resources.cores)",
                )
            )
        if not (config.outputs.snapshots or config.outputs.power_spectra):
            problems.append(
                (
                    ("outputs", "snapshots"),
                    False,
                    "CONCEPT needs snapshots or power spectra to write",
                )
            )
        return problems

    def prepare(self, config: RunConfig, rundir: Path) -> None:
        """Write ``inputs/params.py`` and, unless CONCEPT makes them, the ICs."""
        from simlab.ics import make_particles
        from simlab.io.concept import write_concept_snapshot, write_gadget_snapshot

        inputs = Path(rundir) / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        ic_file = ic_filename(config)
        if ic_file is not None:
            particles = make_particles(config)
            if ic_file.endswith(".gadget"):
                write_gadget_snapshot(inputs / ic_file, particles, config.cosmology)
            else:
                write_concept_snapshot(inputs / ic_file, particles, config.cosmology)
        (Path(rundir) / PARAMS).write_text(parameter_file(config), encoding="utf-8")

    def command(self, config: RunConfig, rundir: Path) -> list[str]:
        """``concept -n CORES -p inputs/params.py --local [-c override ...]``.

        ``--local`` always: the dispatcher's task already runs inside the job (or
        on this machine), so CONCEPT must not submit a job of its own; its
        ``mpiexec`` spans the job's allocation.
        """
        exe, source = find_executable(config)
        if exe is None:
            from simlab.errors import EngineError

            raise EngineError(
                f"CONCEPT executable not found ({source}); {_WHERE}",
                engine=self.name,
                rundir=str(rundir),
            )
        argv = [
            exe,
            "-n",
            str(int(config.resources.cores)),
            "-p",
            str(Path(rundir).resolve() / PARAMS),
            "--local",
        ]
        for override in overrides(config):
            argv += ["-c", override]
        return argv

    def parse_progress(self, line: str) -> Progress | None:
        """Progress from one stdout line (see :class:`ProgressParser`)."""
        return self._parser.feed(line)

    def outputs(self, rundir: Path) -> list[Path]:
        """Snapshots in ``output/`` (``snapshot_a=….hdf5`` or GADGET), in time order."""
        return _by_time(Path(rundir) / "output", _SNAPSHOT)

    def power_spectra(self, rundir: Path) -> list[Path]:
        """CONCEPT's ``powerspec_a=…`` text files in ``output/``, in time order."""
        return _by_time(Path(rundir) / "output", _POWERSPEC)

    def read_power_spectrum(self, path: Path, config: RunConfig) -> xr.DataArray:
        """One of :meth:`power_spectra` as simlab's P(k) DataArray, in h units."""
        from simlab.io.concept_powerspec import read_powerspec

        return read_powerspec(path, h=config.cosmology.h)

    def restart(self, config: RunConfig, rundir: Path) -> list[str] | None:
        """Continue from the latest snapshot before the end, if there is one.

        CONCEPT has no restart files; it starts from a snapshot with a_begin and
        the remaining output times given on the command line.
        """
        from simlab.io.concept import read_time

        end = config.outputs.times[-1]
        done = [(read_time(p), p) for p in self.outputs(rundir)]
        done = [(a, p) for a, p in done if a < end * (1 - 1e-6)]
        if not done:
            return None
        a, path = done[-1]
        remaining = tuple(t for t in config.outputs.times if t > a * (1 + 1e-6))
        kinds = [
            k
            for k, wanted in (
                ("snapshot", config.outputs.snapshots),
                ("powerspec", config.outputs.power_spectra),
            )
            if wanted
        ]
        times = "{" + ", ".join(f"{k!r}: {_literal(remaining)}" for k in kinds) + "}"
        return [
            *self.command(config, rundir),
            "-c",
            f"initial_conditions = {str(Path(path).resolve())!r}",
            "-c",
            f"a_begin = {float(a)!r}",
            "-c",
            f"output_times = {times}",
        ]

    def request_stop(self, rundir: Path) -> None:
        """CONCEPT has no clean-stop file: log it; cancel ends the run instead."""
        logger.warning(
            "%s: CONCEPT cannot be asked to stop cleanly; cancel the run and "
            "restart it from its last snapshot",
            rundir,
        )

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> str:
        """``completed`` after the closing line and status 0, else ``failed``.

        A run with warnings also exits 0 but ends with "run N finished" (without
        "successfully") and a ``log_err``: it is completed, and the warnings,
        the log_err path and its text go to ``status.json["concept"]``.
        """
        report = read_log(Path(rundir) / "log")
        log_err = report.get("log_err")
        if log_err and Path(log_err).is_file():
            text = Path(log_err).read_text(errors="replace")
            report["log_err_text"] = text[-4000:]
            (Path(rundir) / "concept_log_err").write_text(text)
        from simlab.runs.rundir import RunDir

        RunDir(rundir).update(concept=report)
        return "completed" if returncode == 0 and report["finished"] else "failed"


def _by_time(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found.append((float(match["a"]), path))
    return [path for _, path in sorted(found)]
