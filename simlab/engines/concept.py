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

import math
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

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
from simlab.engines.concept_log import ProgressParser, read_log, strip_ansi

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig


#: Where the service's one rule looks for the ``concept`` script, as words.
_WHERE = (
    "set code.executable, executables.concept in the cluster profile, "
    "SIMLAB_CONCEPT, or put 'concept' on PATH"
)
PARAMS = "inputs/params.py"
_SNAPSHOT = re.compile(r"^snapshot_a=(?P<a>\d+(?:\.\d*)?)(?:\.hdf5)?$")
_POWERSPEC = re.compile(r"^powerspec_a=(?P<a>\d+(?:\.\d*)?)$")
_SEED_KEYS = ("primordial amplitudes", "primordial phases")
#: Largest |Ω_k| CONCEPT's flat universe absorbs (a preset with radiation on
#: carries Ω_k = -Ω_r ≈ -9e-5; CLASS then closes the budget with Λ)
FLAT = 1e-3
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class ConceptSeeds(BaseModel):
    """CONCEPT's two random seeds (its parameter ``random_seeds``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    primordial_amplitudes: Seed = Field(alias="primordial amplitudes")
    primordial_phases: Seed = Field(alias="primordial phases")


class ConceptOptions(EngineOptions):
    """``code.options`` of the concept engine."""

    gravity: Literal["pm", "p3m"] = Field(
        "p3m",
        description="gravity solver: 'p3m' (default; PM plus softened "
        "particle-particle forces, as Gadget4's TreePM) or 'pm'",
    )
    initial_conditions: Literal["simlab", "concept"] = Field(
        "simlab",
        description="'simlab': simlab's particles; 'concept': CONCEPT realises "
        "them with CLASS",
    )
    ic_format: Literal["concept", "gadget"] = Field(
        "concept", description="IC file: CONCEPT HDF5 or GADGET SnapFormat 2"
    )
    snapshot_type: Literal["concept", "gadget"] = Field(
        "concept", description="snapshot format CONCEPT writes"
    )
    A_s: float | None = Field(
        None,
        gt=0,
        lt=1e-7,
        description="primordial amplitude CONCEPT normalises by (default: the "
        "A_s whose sigma8 is cosmology.sigma8, from CLASS, CAMB or a formula)",
    )
    random_seeds: ConceptSeeds | None = Field(
        None, description="{'primordial amplitudes': int, 'primordial phases': int}"
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        max_length=100,
        description="{CONCEPT parameter name: literal value} passed as -c overrides",
    )

    @field_validator("parameters")
    @classmethod
    def _plain_literals(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            if not _parameter_name_ok(name):
                raise ValueError(f"parameter name {name!r} must be a Python identifier")
            problem = _literal_problem(item, name)
            if problem:
                raise ValueError(problem)
        return value


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


def options(config: RunConfig) -> ConceptOptions:
    """The run's ``code.options`` as the engine's model (validated before)."""
    return ConceptOptions.model_validate(config.code.options)


def overrides(config: RunConfig) -> list[str]:
    """``name = value`` strings for CONCEPT's ``-c`` from ``code.options.parameters``.

    Only checked names (Python identifiers, e.g. ``Δt_base_background_factor``) and
    plain literals reach the command line; the options model refuses the rest.
    """
    extra = options(config).parameters
    return [f"{name} = {_literal(value)}" for name, value in extra.items()]


def random_seeds(config: RunConfig) -> dict[str, int]:
    """CONCEPT's two seeds: ``code.options.random_seeds`` or ics.seed and seed + 1."""
    given = options(config).random_seeds
    if given is not None:
        return given.model_dump(by_alias=True)
    seed = int(config.ics.seed)
    return {_SEED_KEYS[0]: seed, _SEED_KEYS[1]: (seed + 1) % 2**63}


def amplitude(config: RunConfig) -> tuple[float, str]:
    """A_s CONCEPT gets and where it came from: ``code.options.A_s``, else the A_s
    whose σ8 is ``cosmology.sigma8`` (CLASS, else CAMB, else the matter-era
    formula with ``ics.transfer``; :mod:`simlab.linear.amplitude`)."""
    given = options(config).A_s
    if given is not None:
        return given, "from code.options.A_s"
    from simlab.linear.amplitude import primordial_amplitude

    found = primordial_amplitude(
        config.cosmology, config.ics.transfer, config.ics.transfer_file
    )
    how = {"class": "CLASS", "camb": "CAMB", "formula": "the matter-era formula"}
    return found.A_s, f"for sigma8 {config.cosmology.sigma8!r} by {how[found.source]}"


def background(config: RunConfig) -> list[str]:
    """Parameter-file lines that give CONCEPT the config's radiation and background.

    CLASS always has photons and massless neutrinos: ``class_params`` gives it the
    config's T_cmb and N_eff. Without ``cosmology.radiation`` CONCEPT's own matter
    + Λ background replaces CLASS's (``enable_class_background = False``), as the
    PM engine and Gadget4 evolve; CONCEPT's GADGET-2 tutorial finds this alone
    worth several percent in P(k).
    """
    cosmo = config.cosmology
    lines = [
        "# CLASS's radiation: simlab's T_cmb and N_eff",
        f"class_params = {_literal({'T_cmb': cosmo.T_cmb, 'N_ur': cosmo.N_eff})}",
    ]
    if not cosmo.radiation:
        lines += [
            "# cosmology.radiation is off: a matter + Λ background, as simlab's PM",
            "enable_class_background = False",
        ]
    return lines


def realization_options(config: RunConfig) -> dict[str, Any]:
    """How CONCEPT realises its own ICs: the config's LPT order and, without
    radiation in the background, Newtonian back-scaling of CLASS's z = 0
    synchronous-gauge δ as simlab's own ICs and N-GenIC do (CONCEPT's GADGET-2
    set-up); with radiation, CONCEPT's default N-body gauge at a_begin."""
    found: dict[str, Any] = {"LPT": config.ics.lpt_order}
    if not config.cosmology.radiation:
        found |= {"gauge": "synchronous", "back-scale": True}
    return found


def ic_filename(config: RunConfig) -> str | None:
    """Name of the IC file in ``inputs/``, or None when CONCEPT makes the ICs."""
    opts = options(config)
    if opts.initial_conditions == "concept":
        return None
    return "ics.gadget" if opts.ic_format == "gadget" else "ics.hdf5"


def parameter_file(config: RunConfig) -> str:
    """CONCEPT's parameter file for ``config`` (Python syntax, CONCEPT units).

    Every value is a validated number or a fixed string written with ``repr``;
    paths are relative to the file's folder (``param.dir``), so the run
    directory can be renamed or moved.
    """
    from simlab.__about__ import __version__

    cosmo = config.cosmology
    opts = options(config)
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
    gravity = opts.gravity
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
        f"snapshot_type = {opts.snapshot_type!r}",
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
    lines += background(config)
    a_s, source = amplitude(config)
    lines += [
        f"# A_s {source}: CONCEPT's linear P(k) (CLASS) then has sigma8 = "
        f"{cosmo.sigma8!r}, as the config",
        f"primordial_spectrum = {_literal({'A_s': a_s, 'n_s': cosmo.n_s})}",
    ]
    lines += [
        "",
        "# Physics",
        f"select_forces = {{'matter': {{'gravity': {gravity!r}}}}}",
    ]
    if gravity == "p3m":
        eps = config.softening
        lines.append(
            f"select_softening_length = {{'matter': {eps / h!r}*Mpc}}  "
            f"# {eps!r} Mpc/h, as Gadget4's"
        )
    if ic_file is None:
        lines += [
            "",
            "# Initial conditions realised by CONCEPT",
            f"random_seeds = {_literal(random_seeds(config))}",
            f"realization_options = {_literal(realization_options(config))}",
        ]
    return "\n".join(lines) + "\n"


class ConceptEngine:
    """Engine plugin for CONCEPT, driven through its ``concept`` script."""

    name = "concept"
    options_model = ConceptOptions
    executable_name = "concept"
    executable_env = "SIMLAB_CONCEPT"
    #: CONCEPT has no stop file: a run is cancelled and resumed from a snapshot
    can_checkpoint = False
    #: xarray backend that opens this engine's snapshots
    snapshot_backend = "concept"

    def __init__(self) -> None:
        self._parser = ProgressParser()

    def options_schema(self) -> dict[str, dict[str, Any]]:
        """``code.options`` this engine accepts, as JSON-schema nodes by name."""
        return options_schema(ConceptOptions)

    def health(self, launch: Launch | None = None) -> Health:
        """Ask the ``concept`` script for ``--version``; never raises."""
        exe = (launch or Launch()).executable
        if exe is None:
            return Health(ok=False, version="", message=f"CONCEPT not found; {_WHERE}")
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
        source = (launch or Launch()).source
        return Health(ok=True, version=version, message=f"{exe} (from {source})")

    def validate(self, config: RunConfig) -> list[Problem]:
        """Requests simlab cannot map to CONCEPT (its options already valid)."""
        problems: list[Problem] = []
        concept_ics = options(config).initial_conditions == "concept"
        if concept_ics and (config.ics.fixed or config.ics.paired):
            problems.append(
                (
                    ("ics", "fixed"),
                    True,
                    "fixed/paired fields are simlab ICs only; "
                    "use initial_conditions 'simlab'",
                )
            )
        if concept_ics and config.ics.transfer != "class":
            problems.append(
                (
                    ("ics", "transfer"),
                    config.ics.transfer,
                    "CONCEPT realises its own ICs from CLASS: set ics.transfer "
                    "'class' so the other engines get the same linear theory, or "
                    "use initial_conditions 'simlab'",
                )
            )
        if abs(config.cosmology.Omega_k) > FLAT:
            problems.append(
                (
                    ("cosmology", "OmegaLambda"),
                    config.cosmology.OmegaLambda,
                    f"CONCEPT's universe is flat (Λ closes the budget) but this "
                    f"config has Omega_k = {config.cosmology.Omega_k:.3g}; allowed: "
                    f"OmegaLambda = 1 - Omega0"
                    + (" - Omega_r" if config.cosmology.radiation else ""),
                )
            )
        if concept_ics and config.ics.file is not None:
            problems.append(
                (
                    ("code", "options", "initial_conditions"),
                    "concept",
                    "CONCEPT would realise its own particles, but ics.file gives "
                    "them; use initial_conditions 'simlab' (the file is converted)",
                )
            )
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

    def prepare(self, config: RunConfig, rundir: Path, launch: Launch) -> None:
        """Write ``inputs/params.py`` and, unless CONCEPT makes them, the ICs."""
        from simlab.ics import initial_particles
        from simlab.io.concept import write_concept_snapshot, write_gadget_snapshot

        inputs = Path(rundir) / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        ic_file = ic_filename(config)
        if ic_file is not None:
            particles = initial_particles(config)
            if ic_file.endswith(".gadget"):
                write_gadget_snapshot(inputs / ic_file, particles, config.cosmology)
            else:
                write_concept_snapshot(inputs / ic_file, particles, config.cosmology)
        (Path(rundir) / PARAMS).write_text(parameter_file(config), encoding="utf-8")

    def environment(self, config: RunConfig) -> dict[str, str | None]:
        """Variables to set (None: unset) in the code's process environment.

        CONCEPT runs ``resources.cores`` MPI processes of one thread each and gives
        CLASS as many OpenMP threads as it has processes per node; a set
        ``OMP_NUM_THREADS`` (dask's workers set 1) is ignored with a warning that
        fills ``log_err`` on every CLASS call, so it is removed.
        """
        return {**thread_environment(1), "OMP_NUM_THREADS": None}

    def command(self, config: RunConfig, rundir: Path, launch: Launch) -> list[str]:
        """``concept -n CORES -p inputs/params.py --local [-c override ...]``.

        ``--local`` always: the dispatcher's task already runs inside the job (or
        on this machine), so CONCEPT must not submit a job of its own; its
        ``mpiexec`` spans the job's allocation.
        """
        exe = launch.executable
        if exe is None:
            from simlab.errors import EngineError

            raise EngineError(
                f"CONCEPT executable not found; {_WHERE}",
                engine=self.name,
                rundir=str(rundir),
            )
        argv = [
            *launch.container_argv(rundir),  # CONCEPT starts its own mpiexec
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

    def restart(
        self, config: RunConfig, rundir: Path, launch: Launch
    ) -> list[str] | None:
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
            *self.command(config, rundir, launch),
            "-c",
            f"initial_conditions = {str(Path(path).resolve())!r}",
            "-c",
            f"a_begin = {float(a)!r}",
            "-c",
            f"output_times = {times}",
        ]

    def request_stop(self, rundir: Path) -> None:
        """CONCEPT has no clean-stop file (``can_checkpoint`` is False, so the
        service refuses ``stop``): cancel the run and resume it instead."""
        from simlab.errors import EngineError

        raise EngineError(
            "CONCEPT cannot write a checkpoint on request: cancel the run and "
            "resume it from its last snapshot",
            engine=self.name,
            rundir=str(rundir),
        )

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> Outcome:
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
        state = "completed" if returncode == 0 and report["finished"] else "failed"
        return Outcome(state, details={"concept": report})


def _by_time(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found.append((float(match["a"]), path))
    return [path for _, path in sorted(found)]
