"""Run configuration: the pydantic models behind widgets, REST, CLI and parameter files.

``RunConfig.model_json_schema()`` is the one schema every interface uses. Each field
carries its unit and allowed range, so an invalid value is reported with the field's
dotted path, the value given and what is allowed (see :func:`validate_config`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from simlab.errors import ConfigError

#: Named cosmologies. Planck 2018 (TT,TE,EE+lowE+lensing+BAO, Table 2 last column)
#: is the default; "planck15" is the set used by the Gadget4 and CONCEPT fixtures.
PRESETS: dict[str, dict[str, float]] = {
    "planck18": {
        "Omega0": 0.3111,
        "OmegaLambda": 0.6889,
        "OmegaBaryon": 0.04897,
        "h": 0.6766,
        "sigma8": 0.8102,
        "n_s": 0.9665,
    },
    "planck15": {
        "Omega0": 0.3089,
        "OmegaLambda": 0.6911,
        "OmegaBaryon": 0.0486,
        "h": 0.6774,
        "sigma8": 0.8159,
        "n_s": 0.9667,
    },
    "wmap9": {
        "Omega0": 0.2865,
        "OmegaLambda": 0.7135,
        "OmegaBaryon": 0.04628,
        "h": 0.6932,
        "sigma8": 0.820,
        "n_s": 0.9608,
    },
    "eds": {
        "Omega0": 1.0,
        "OmegaLambda": 0.0,
        "OmegaBaryon": 0.05,
        "h": 0.7,
        "sigma8": 0.8,
        "n_s": 1.0,
    },
}

# ASCII classes only: pydantic's regex engine reads \d and \s as Unicode classes,
# which would let other scripts' digits through to #SBATCH lines
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_WALLTIME_PATTERN = r"^([0-9]{1,3}-)?[0-9]{1,3}:[0-9]{2}(:[0-9]{2})?$"
_MEMORY_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,3})? ?(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)$"
#: Most output times a run may ask for (each is a snapshot and a spectrum).
MAX_OUTPUTS = 1000
#: Longest text echoed back in an error message, in characters.
ECHO_LIMIT = 80

Name = Annotated[str, Field(pattern=_NAME_PATTERN)]
#: A file path as text: no control characters (nothing breaks a line of a
#: parameter file or a command), at most 4096 characters.
PathText = Annotated[
    str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f]+$")
]


class _Section(BaseModel):
    """Common settings: unknown keys are errors, assignments are validated, and
    every float is finite (an ``inf`` must never reach a parameter file)."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, allow_inf_nan=False
    )


class Cosmology(_Section):
    """Flat or curved ΛCDM background and the primordial spectrum.

    Any value given explicitly overrides the one of ``preset``.
    """

    preset: Literal["planck18", "planck15", "wmap9", "eds"] | None = Field(
        "planck18", description="named parameter set the other fields start from"
    )
    Omega0: float = Field(
        PRESETS["planck18"]["Omega0"],
        gt=0,
        le=2,
        description="total matter density Ω_m today (Gadget4 Omega0)",
    )
    OmegaLambda: float = Field(
        PRESETS["planck18"]["OmegaLambda"],
        ge=0,
        le=2,
        description="cosmological-constant density Ω_Λ today",
    )
    OmegaBaryon: float = Field(
        PRESETS["planck18"]["OmegaBaryon"],
        ge=0,
        le=1,
        description="baryon density Ω_b today (shapes the transfer function only)",
    )
    h: float = Field(
        PRESETS["planck18"]["h"],
        gt=0.2,
        le=1.5,
        description="Hubble parameter H0 / (100 km/s/Mpc)",
    )
    sigma8: float = Field(
        PRESETS["planck18"]["sigma8"],
        gt=0,
        le=3,
        description="rms linear overdensity in 8 Mpc/h spheres at z=0",
    )
    n_s: float = Field(
        PRESETS["planck18"]["n_s"],
        gt=0.5,
        le=1.5,
        description="primordial spectral index",
    )
    T_cmb: float = Field(2.7255, gt=0, le=10, description="CMB temperature today in K")
    radiation: bool = Field(
        False,
        description="radiation (photons from T_cmb, N_eff massless neutrinos) in "
        "E(a) and the growth factor, as CONCEPT/CAMB/CLASS; off as Gadget4",
    )
    N_eff: float = Field(
        3.044,
        ge=0,
        le=10,
        description="effective number of massless neutrino species (radiation "
        "with `radiation`, and the CAMB/CLASS transfer functions)",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "Omega_m" in data:
                data.setdefault("Omega0", data.pop("Omega_m"))
            preset = data.get("preset", "planck18")
            if preset in PRESETS:
                for key, value in PRESETS[preset].items():
                    data.setdefault(key, value)
        return data

    @model_validator(mode="after")
    def _check_baryons(self) -> Self:
        if self.OmegaBaryon >= self.Omega0:
            _raise(
                ("OmegaBaryon",),
                self.OmegaBaryon,
                "must be smaller than Omega0 ({Omega0})",
                Omega0=self.Omega0,
            )
        a_bounce = _bounce(self.Omega0, self.OmegaLambda)
        if a_bounce is not None:
            _raise(
                ("OmegaLambda",),
                self.OmegaLambda,
                "with Omega0={Omega0} there is no big bang: H² would be negative "
                "at a={a:.3g} (the universe bounces); allowed: OmegaLambda below "
                "{limit:.4g} for this Omega0",
                Omega0=self.Omega0,
                a=a_bounce,
                limit=_largest_lambda(self.Omega0),
            )
        return self

    @property
    def Omega_m(self) -> float:
        """Alias of ``Omega0`` under its usual name."""
        return self.Omega0

    @property
    def Omega_r(self) -> float:
        """Radiation density today in the background; 0 unless ``radiation``."""
        from simlab.linear.background import params

        return params(self).Omega_r

    @property
    def Omega_k(self) -> float:
        """Curvature density 1 - Ω_m - Ω_Λ - Ω_r (Ω_r = 0 without ``radiation``).

        Presets are flat without radiation; with it they carry Ω_k = -Ω_r unless
        ``OmegaLambda`` is given as 1 - Omega0 - Omega_r (docs/linear-theory.md).
        """
        return 1.0 - self.Omega0 - self.OmegaLambda - self.Omega_r


def _bounce(omega_m: float, omega_l: float) -> float | None:
    """The scale factor in (0, 1] where H² < 0 (no big bang), or None.

    a³H²/H0² = Ω_m + Ω_k a + Ω_Λ a³ is positive at a → 0 and 1 at a = 1; inside,
    its only minimum is where its derivative Ω_k + 3 Ω_Λ a² vanishes.

    Examples
    --------
    >>> _bounce(0.3, 0.7) is None, round(_bounce(0.1, 2.0), 3)
    (True, 0.428)
    """
    omega_k = 1.0 - omega_m - omega_l
    if omega_k >= 0 or omega_l <= 0:
        return None
    a = math.sqrt(-omega_k / (3.0 * omega_l))
    if a < 1.0 and omega_m + omega_k * a + omega_l * a**3 <= 0:
        return a
    return None


def _largest_lambda(omega_m: float) -> float:
    """The largest Ω_Λ that still has a big bang for this Ω_m (bisection)."""
    low, high = 0.0, 10.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (low, mid) if _bounce(omega_m, mid) is not None else (mid, high)
    return low


class Box(_Section):
    """The periodic simulation volume and its particle load."""

    size: float = Field(128.0, gt=0, le=1e5, description="comoving box side in Mpc/h")
    particles_per_side: int = Field(
        64, ge=2, le=4096, description="particles per side (N^(1/3))"
    )

    @property
    def n_particles(self) -> int:
        """Total number of particles."""
        return self.particles_per_side**3


class InitialConditions(_Section):
    """How the starting particle set is made (Zel'dovich or 2LPT)."""

    z_start: float | None = Field(
        None, gt=0, le=1000, description="starting redshift (or give a_start)"
    )
    a_start: float | None = Field(
        None, gt=0, lt=1, description="starting scale factor (or give z_start)"
    )
    seed: int = Field(
        42, ge=0, lt=2**63, description="random seed of the Gaussian field"
    )
    lpt_order: Literal[1, 2] = Field(
        2, description="1: Zel'dovich approximation, 2: second-order LPT"
    )
    transfer: Literal[
        "eisenstein_hu", "eisenstein_hu_nowiggle", "camb", "class", "file"
    ] = Field(
        "eisenstein_hu",
        description="transfer function: Eisenstein & Hu (1998) with or without "
        "BAO, computed by CAMB or CLASS (optional packages), or read from "
        "transfer_file",
    )
    transfer_file: str | None = Field(
        None,
        description="CAMB or CLASS transfer table, or a two-column k [h/Mpc], "
        "P(k) [(Mpc/h)^3] table, at z=0 (with transfer: file)",
    )
    file: PathText | None = Field(
        None,
        description="start from this IC file instead (Gadget4 HDF5, single or "
        "multi-file, or GADGET SnapFormat 1/2 as N-GenIC, MUSIC and monofonIC "
        "write); its box, particle count, time and cosmology must match",
    )
    fixed: bool = Field(
        False, description="fix mode amplitudes to the mean (Angulo & Pontzen 2016)"
    )
    paired: bool = Field(
        False, description="flip every phase by π (the second run of a pair)"
    )

    @field_validator("transfer_file", "file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """The file's absolute path (the model never opens it: a submission
        checks that it exists and parses, a stored config loads without it)."""
        return None if value is None else str(Path(value).expanduser().resolve())

    @model_validator(mode="after")
    def _transfer_file_with_file(self) -> Self:
        if self.transfer == "file" and self.transfer_file is None:
            _raise(
                ("transfer_file",),
                None,
                "transfer: file needs transfer_file (a CAMB, CLASS or P(k) table)",
            )
        if self.transfer != "file" and self.transfer_file is not None:
            _raise(
                ("transfer_file",),
                self.transfer_file,
                "is read only with transfer: file (transfer is {t!r})",
                t=self.transfer,
            )
        return self

    @model_validator(mode="after")
    def _no_field_options_with_a_file(self) -> Self:
        for name in ("fixed", "paired"):
            if self.file is not None and getattr(self, name):
                _raise(
                    (name,),
                    True,
                    "shapes simlab's own Gaussian field; the particles come from "
                    "ics.file, so leave it false",
                )
        return self

    @model_validator(mode="after")
    def _one_start_time(self) -> Self:
        if self.z_start is not None and self.a_start is not None:
            expected = 1.0 / (1.0 + self.z_start)
            if not math.isclose(self.a_start, expected, rel_tol=1e-6):
                _raise(
                    ("a_start",),
                    self.a_start,
                    "contradicts z_start={z} (a_start would be {a:.6g}); give one",
                    z=self.z_start,
                    a=expected,
                )
        return self

    @property
    def start(self) -> float:
        """Starting scale factor; z = 49 (a = 0.02) when neither time is given."""
        if self.a_start is not None:
            return self.a_start
        if self.z_start is not None:
            return 1.0 / (1.0 + self.z_start)
        return 0.02


class Outputs(_Section):
    """When snapshots and spectra are written. Give redshifts or scale factors,
    each time once (at most 1000); outputs are numbered in time order."""

    redshifts: list[Annotated[float, Field(ge=0, le=1000)]] | None = Field(
        None,
        max_length=MAX_OUTPUTS,
        description=f"output redshifts (z >= 0), each once; at most {MAX_OUTPUTS}",
    )
    scale_factors: list[Annotated[float, Field(gt=0, le=1)]] | None = Field(
        None,
        max_length=MAX_OUTPUTS,
        description=f"output scale factors in (a_start, 1], each once; at most "
        f"{MAX_OUTPUTS}",
    )
    snapshots: bool = Field(True, description="write particle snapshots")
    power_spectra: bool = Field(True, description="write P(k) at each output")

    @model_validator(mode="after")
    def _one_kind_each_time_once(self) -> Self:
        if self.redshifts is not None and self.scale_factors is not None:
            _raise(
                ("scale_factors",),
                self.scale_factors,
                "give either redshifts or scale_factors, not both",
            )
        kind = "scale_factors" if self.scale_factors is not None else "redshifts"
        given = getattr(self, kind)
        if given is None:
            return self
        if not given:
            _raise((kind,), given, "give at least one output time (or leave it out)")
        seen: dict[float, int] = {}
        for i, value in enumerate(given):
            key = round(float(value), 9)
            if key in seen:
                _raise(
                    (kind, i),
                    value,
                    "output time given twice (also {kind}[{first}]); each output "
                    "time must be given once",
                    kind=kind,
                    first=seen[key],
                )
            seen[key] = i
        return self

    @property
    def times(self) -> list[float]:
        """Output scale factors, sorted; a = 1 alone when nothing is given."""
        if self.scale_factors is not None:
            return sorted(self.scale_factors)
        if self.redshifts is not None:
            return sorted(1.0 / (1.0 + z) for z in self.redshifts)
        return [1.0]


class Gravity(_Section):
    """Force calculation and time stepping."""

    mesh: int | None = Field(
        None,
        ge=8,
        le=8192,
        description="PM mesh cells per side (default: 2 x particles per side; "
        "use a multiple of particles per side, 3x or 4x for more small-scale power)",
    )
    steps: int = Field(
        30, ge=1, le=100_000, description="number of global time steps (PM)"
    )
    stepping: Literal["loga", "a", "mixed"] = Field(
        "mixed",
        description="steps evenly spaced in ln a, in a, or mixed: in ln a up to "
        "a = 0.1 and in a after it",
    )
    softening: float | None = Field(
        None,
        gt=0,
        description="comoving Plummer-equivalent softening in Mpc/h for codes with "
        "particle-particle forces (Gadget4, CONCEPT's P3M; default: 1/30 of the "
        "mean particle spacing)",
    )


class Code(_Section):
    """Which simulation code runs, and options only that code understands."""

    engine: str = Field(
        "pm",
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="simulation code (engine name)",
    )
    executable: PathText | None = Field(
        None, description="path to the code's executable (external codes)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="engine-specific options, checked by the engine's own model",
    )


class Resources(_Section):
    """What the run asks of the machine or batch system."""

    cores: int = Field(2, ge=1, le=1_000_000, description="cores (MPI ranks)")
    nodes: int = Field(1, ge=1, le=100_000, description="nodes")
    memory: str | None = Field(
        None, pattern=_MEMORY_PATTERN, description="memory per node, e.g. '4GB'"
    )
    walltime: str = Field(
        "01:00:00",
        pattern=_WALLTIME_PATTERN,
        description="[D-]HH:MM[:SS], more than zero; minutes and seconds below 60",
    )
    cluster: Name = Field("local", description="cluster profile name")

    @field_validator("walltime")
    @classmethod
    def _walltime_in_range(cls, value: str) -> str:
        clock = value.rpartition("-")[2]
        parts = [int(p) for p in clock.split(":")]
        if any(p >= 60 for p in parts[1:]):
            raise ValueError("minutes and seconds must be below 60 ([D-]HH:MM[:SS])")
        if walltime_seconds(value) == 0:
            raise ValueError("a run needs more than zero time")
        return value

    @property
    def walltime_seconds(self) -> int:
        """The walltime in seconds."""
        return walltime_seconds(self.walltime)


def walltime_seconds(walltime: str) -> int:
    """Seconds in a ``[D-]HH:MM[:SS]`` walltime.

    Examples
    --------
    >>> walltime_seconds("1-00:30:00"), walltime_seconds("00:02")
    (88200, 120)
    """
    days, _, clock = walltime.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes, seconds = ([*parts, 0])[:3]
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


class Metadata(_Section):
    """Who and what the run is for; free to choose, used in listings."""

    name: Name = Field("run", description="short name (letters, digits, . _ -)")
    project: Name | None = Field(None, description="project the run belongs to")
    user: Name | None = Field(None, description="owner (default: current user)")
    tags: list[Name] = Field(default_factory=list, description="labels for search")
    description: str = Field("", max_length=2000, description="free text")
    sweep: Name | None = Field(None, description="id of the sweep the run belongs to")


class RunConfig(_Section):
    """A complete, validated description of one simulation run."""

    cosmology: Cosmology = Field(default_factory=Cosmology)
    box: Box = Field(default_factory=Box)
    ics: InitialConditions = Field(default_factory=InitialConditions)
    outputs: Outputs = Field(default_factory=Outputs)
    gravity: Gravity = Field(default_factory=Gravity)
    code: Code = Field(default_factory=Code)
    resources: Resources = Field(default_factory=Resources)
    metadata: Metadata = Field(default_factory=Metadata)

    def __init__(self, **data: Any) -> None:
        """Validate keyword sections; errors are :class:`ConfigError`, field by field.

        (pydantic routes ``model_validate`` through a custom ``__init__`` too, so
        :func:`validate_config` is the front door that keeps these errors intact.)
        """
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(config_errors(exc)) from None

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        a_start = self.ics.start
        errors = []
        kind = (
            "scale_factors" if self.outputs.scale_factors is not None else "redshifts"
        )
        values = getattr(self.outputs, kind) or []
        for i, value in enumerate(values):
            a = value if kind == "scale_factors" else 1.0 / (1.0 + value)
            if not a_start < a <= 1.0 and len(errors) < 5:  # the first few say it
                errors.append(
                    _error(
                        ("outputs", kind, i),
                        value,
                        "output at a={a:.6g} is not in (a_start={a0:.6g}, 1]",
                        a=a,
                        a0=a_start,
                    )
                )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def mesh(self) -> int:
        """PM mesh cells per side, defaulting to twice the particles per side."""
        return self.gravity.mesh or 2 * self.box.particles_per_side

    @property
    def softening(self) -> float:
        """Plummer-equivalent comoving softening in Mpc/h that every code with
        particle-particle forces gets: ``gravity.softening``, else 1/30 of the mean
        particle spacing."""
        if self.gravity.softening is not None:
            return self.gravity.softening
        return self.box.size / self.box.particles_per_side / 30.0

    def config_hash(self) -> str:
        """Short SHA-256 of the physics (metadata and resources left out)."""
        return physics_hash(self.model_dump(mode="json"))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Dump as YAML (and write it to ``path`` if given)."""
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Load a YAML or JSON file; errors name the file and every bad field."""
        return load_config(path)


def physics_hash(data: dict[str, Any]) -> str:
    """Short SHA-256 of a dumped config without its metadata and resources."""
    physics = {k: v for k, v in data.items() if k not in ("metadata", "resources")}
    blob = json.dumps(physics, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _error(
    loc: tuple[str | int, ...], value: Any, msg: str, **ctx: Any
) -> InitErrorDetails:
    """One pydantic error entry; ``msg`` is formatted with ``ctx`` here."""
    return InitErrorDetails(
        type=PydanticCustomError("value_error", msg.format(**ctx) if ctx else msg),
        loc=loc,
        input=value,
    )


def _raise(loc: tuple[str | int, ...], value: Any, msg: str, **ctx: Any) -> None:
    raise ValidationError.from_exception_data(
        "RunConfig", [_error(loc, value, msg, **ctx)]
    )


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def human_number(value: float) -> str:
    """A limit as people write it: whole numbers in full, others shortest.

    Examples
    --------
    >>> human_number(1e6), human_number(9223372036854775807), human_number(1e-07)
    ('1000000', '9223372036854775807', '1e-07')
    """
    if float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def _allowed(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    """Describe the allowed values of the field at ``loc`` from the JSON schema."""
    schema = _schema(model)
    defs = schema.get("$defs", {})
    node: dict[str, Any] = schema
    for part in loc:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        if isinstance(part, int):
            node = node.get("items", {})
            continue
        props = node.get("properties", {})
        if part not in props:
            return ""
        node = props[part]
        for option in node.get("anyOf", []):
            if option.get("type") != "null":
                node = {**option, **{k: v for k, v in node.items() if k != "anyOf"}}
                break
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    if "enum" in node:
        return "one of " + ", ".join(repr(v) for v in node["enum"])
    if "const" in node:
        return f"{node['const']!r}"
    low = node.get("exclusiveMinimum", node.get("minimum"))
    high = node.get("exclusiveMaximum", node.get("maximum"))
    if low is not None or high is not None:
        left = "(" if "exclusiveMinimum" in node or low is None else "["
        right = ")" if "exclusiveMaximum" in node or high is None else "]"
        kind = "an integer" if node.get("type") == "integer" else "a number"
        lo = "-inf" if low is None else human_number(low)
        hi = "inf" if high is None else human_number(high)
        return f"{kind} in {left}{lo}, {hi}{right}"
    if "pattern" in node:
        what = node.get("description", "text")
        return f"{what} (ASCII, matching {node['pattern']})"
    return ""


#: Most field errors one ConfigError lists (the rest are counted).
MAX_ERRORS = 20


def echo(value: Any) -> Any:
    """``value`` as an error message may repeat it: short, and safe to ``repr``.

    Long text is cut to :data:`ECHO_LIMIT` characters, huge integers and long
    containers are described instead of shown (an integer of 5000 digits cannot
    even be printed by default).

    Examples
    --------
    >>> echo("x" * 100)[-20:]
    'xx… (100 characters)'
    >>> echo(10**5000), echo(list(range(50))), echo(0.5)
    ('<integer of about 5000 digits>', '<list of 50 items>', 0.5)
    """
    if isinstance(value, str):
        if len(value) <= ECHO_LIMIT:
            return value
        return f"{value[:ECHO_LIMIT]}… ({len(value)} characters)"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        if value.bit_length() <= 96:
            return value
        return f"<integer of about {round(value.bit_length() * math.log10(2))} digits>"
    if isinstance(value, list | tuple):
        if len(value) > 10:
            return f"<list of {len(value)} items>"
        return [echo(v) for v in value]
    if isinstance(value, dict):
        if len(value) > 10:
            return f"<mapping of {len(value)} keys>"
        return {echo(str(k)): echo(v) for k, v in value.items()}
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else f"{text[:ECHO_LIMIT]}…"


def config_errors(
    exc: ValidationError, model: type[BaseModel] | None = None, prefix: str = ""
) -> list[dict[str, Any]]:
    """Turn a pydantic error into ``[{'loc', 'value', 'msg'}]`` with allowed ranges.

    ``model`` is the model whose schema describes the allowed values (default
    RunConfig) and ``prefix`` the dotted path of that model inside a RunConfig
    (``code.options`` for an engine's options). At most :data:`MAX_ERRORS` are
    listed; values are shortened with :func:`echo`.
    """
    model = model or RunConfig
    errors = []
    found = exc.errors(include_url=False)
    for err in found[:MAX_ERRORS]:
        loc = tuple(err["loc"])
        msg = err["msg"]
        if err["type"] != "value_error":
            allowed = _allowed(model, loc)
            if allowed:
                msg = f"{msg}; allowed: {allowed}"
        else:
            msg = msg.removeprefix("Value error, ")
        path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + loc)
        errors.append(
            {
                "loc": path or "(config)",
                "value": echo(err.get("input")),
                "msg": msg,
            }
        )
    if len(found) > MAX_ERRORS:
        errors.append(
            {
                "loc": prefix or "(config)",
                "value": None,
                "msg": f"and {len(found) - MAX_ERRORS} more invalid value(s)",
            }
        )
    return errors


def validate_config(data: RunConfig | dict[str, Any]) -> RunConfig:
    """Validate a mapping into a :class:`RunConfig`, raising :class:`ConfigError`.

    Examples
    --------
    >>> validate_config({"cosmology": {"Omega0": 3}})
    Traceback (most recent call last):
    ...
    simlab.errors.ConfigError: 1 invalid field(s) in the run configuration:
      cosmology.Omega0 = 3: Input should be ... allowed: a number in (0, 2]
    """
    if isinstance(data, RunConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(
            [
                {
                    "loc": "(config)",
                    "value": data,
                    "msg": f"must be a mapping, found {type(data).__name__}",
                }
            ]
        )
    return RunConfig(**data)


def load_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from a YAML or JSON file."""
    return validate_config(read_config_file(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML or JSON config file holds, not yet validated.

    ConfigError (location ``(file)``) when it cannot be read, parsed, or is not a
    mapping; forms use this to show a file's invalid values next to their fields.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            [
                {
                    "loc": "(file)",
                    "value": str(path),
                    "msg": f"cannot read: {exc.strerror}",
                }
            ]
        ) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(
            [
                {
                    "loc": "(file)",
                    "value": str(path),
                    "msg": f"not valid YAML/JSON: {exc}",
                }
            ]
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                {
                    "loc": "(file)",
                    "value": str(path),
                    "msg": f"must hold a mapping, found {type(data).__name__}",
                }
            ]
        )
    return data


_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _scalar(text: str) -> Any:
    """One plain value by :func:`parse_value`'s rule (no lists or mappings)."""
    raw = text.strip()
    if _NUMBER.fullmatch(raw):
        number = float(raw)
        if re.fullmatch(r"[+-]?[0-9]+", raw) and abs(number) < 2**63:
            return int(raw)
        return number
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    return text


class _FlowLoader(yaml.SafeLoader):
    """YAML flow lists and mappings whose plain (unquoted) values are typed by
    :func:`parse_value`'s own rule, not YAML 1.1's (which reads ``2e-9`` as text,
    ``yes`` as true and ``010`` as eight); quoted values stay text."""

    #: no implicit YAML types: every plain value is typed by _scalar
    yaml_implicit_resolvers: ClassVar[dict[Any, list[Any]]] = {}


def _plain_or_quoted(loader: _FlowLoader, node: yaml.ScalarNode) -> Any:
    value = loader.construct_scalar(node)
    if node.style is None and value == "":
        return None  # an empty value, as in "{a: }"
    return _scalar(value) if node.style is None else value


_FlowLoader.add_constructor("tag:yaml.org,2002:str", _plain_or_quoted)


def parse_value(text: str) -> Any:
    """A value typed on a command line or in a form, by one rule for every face.

    Integers and numbers in any float notation (``2e-9``, ``1E5``, ``.5``) are
    numbers; ``true``/``false`` booleans; ``null`` None; ``[...]`` and ``{...}``
    YAML flow lists and mappings, whose values follow the same rule (quoted ones
    stay text); anything else is text as typed.

    Examples
    --------
    >>> parse_value("2e-9"), parse_value("64"), parse_value("true"), parse_value("x y")
    (2e-09, 64, True, 'x y')
    >>> parse_value("[1.0, 0]"), parse_value("0.3, 5")
    ([1.0, 0], '0.3, 5')
    >>> parse_value("[2e-9, 1.0]"), parse_value("{A_s: 2.1e-9, name: '1e3'}")
    ([2e-09, 1.0], {'A_s': 2.1e-09, 'name': '1e3'})
    """
    raw = text.strip()
    if raw[:1] in "[{":  # (and "": None, as YAML reads it)
        try:
            return yaml.load(raw, Loader=_FlowLoader)  # a SafeLoader
        except yaml.YAMLError:
            return text
    return _scalar(text)


def _type_name(value: Any) -> str:
    names = {str: "text", bool: "a boolean", int: "an integer", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


def apply_overrides(
    config: RunConfig, overrides: dict[str, Any], *, read_as: bool = True
) -> RunConfig:
    """Return a copy with dotted-path overrides (``{"box.size": 64}``) applied.

    Setting ``cosmology.preset`` resets the preset's parameters unless they are
    overridden too, so ``{"cosmology.preset": "wmap9"}`` means WMAP9 values. An
    error at an overridden field says what type the override was read as (for
    text read from a command line), unless ``read_as`` is False (values already
    typed as their field's type, as the sweep builder's are).
    """
    data = config.model_dump(mode="json")
    if "cosmology.preset" in overrides:
        for key in PRESETS["planck18"]:
            data["cosmology"].pop(key, None)
    for dotted, value in overrides.items():
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", dotted):
            raise ConfigError(
                [{"loc": echo(dotted), "value": echo(value), "msg": "not a field path"}]
            )
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(
                    [
                        {
                            "loc": dotted,
                            "value": echo(value),
                            "msg": f"no section {part!r}",
                        }
                    ]
                )
            node = node[part]
        node[leaf] = value
    try:
        return validate_config(data)
    except ConfigError as exc:
        for error in exc.errors:
            if read_as and error["loc"] in overrides:
                given = overrides[error["loc"]]
                error["msg"] += f" (the override was read as {_type_name(given)})"
        raise ConfigError(exc.errors) from None
