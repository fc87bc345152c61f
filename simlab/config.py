"""Run configuration: the pydantic models behind widgets, REST, CLI and parameter files.

``RunConfig.model_json_schema()`` is the one schema every interface uses. Each field
carries its unit and allowed range, so an invalid value is reported with the field's
dotted path, the value given and what is allowed (see :func:`validate_config`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
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

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_WALLTIME_PATTERN = r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$"
_MEMORY_PATTERN = r"^\d+(\.\d+)?\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)$"

Name = Annotated[str, Field(pattern=_NAME_PATTERN)]


class _Section(BaseModel):
    """Common settings: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


_CHECK_FILES: ContextVar[bool] = ContextVar("simlab_check_files", default=True)


@contextmanager
def unchecked_files() -> Iterator[None]:
    """Validate configs without opening the files they name (``ics.transfer_file``).

    For a stored config (a run's ``config.json``) whose table may have moved, or on
    a machine that cannot see it: the path is kept as written.

    Examples
    --------
    >>> stored = {"ics": {"transfer": "file", "transfer_file": "/gone/pk.dat"}}
    >>> with unchecked_files():
    ...     RunConfig(**stored).ics.transfer_file
    '/gone/pk.dat'
    """
    token = _CHECK_FILES.set(False)
    try:
        yield
    finally:
        _CHECK_FILES.reset(token)


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
    fixed: bool = Field(
        False, description="fix mode amplitudes to the mean (Angulo & Pontzen 2016)"
    )
    paired: bool = Field(
        False, description="flip every phase by π (the second run of a pair)"
    )

    @field_validator("transfer_file")
    @classmethod
    def _readable_table(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An absolute path to a table that parses; not opened inside
        :func:`unchecked_files` or with validation context ``{"check_files": False}``.
        """
        if value is None:
            return None
        path = Path(value).expanduser()
        skip = (info.context or {}).get("check_files", True) is False
        if skip or not _CHECK_FILES.get():
            return str(path)
        from simlab.linear.tables import TableError, read_table

        path = path.resolve()
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        try:
            read_table(path)
        except TableError as exc:
            raise ValueError(str(exc)) from None
        return str(path)

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
    """When snapshots and spectra are written. Give redshifts or scale factors."""

    redshifts: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, description="output redshifts (z >= 0)"
    )
    scale_factors: list[Annotated[float, Field(gt=0, le=1)]] | None = Field(
        None, description="output scale factors in (a_start, 1]"
    )
    snapshots: bool = Field(True, description="write particle snapshots")
    power_spectra: bool = Field(True, description="write P(k) at each output")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.redshifts is not None and self.scale_factors is not None:
            _raise(
                ("scale_factors",),
                self.scale_factors,
                "give either redshifts or scale_factors, not both",
            )
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
        description="PM mesh cells per side (default: 2 x particles per side)",
    )
    steps: int = Field(
        30, ge=1, le=100_000, description="number of global time steps (PM)"
    )
    stepping: Literal["loga", "a"] = Field(
        "loga", description="steps evenly spaced in ln a or in a"
    )
    softening: float | None = Field(
        None,
        gt=0,
        description="comoving softening length in Mpc/h for tree codes "
        "(default: 1/30 of the mean particle spacing)",
    )


class Code(_Section):
    """Which simulation code runs, and options only that code understands."""

    engine: str = Field(
        "pm", pattern=r"^[a-z][a-z0-9_]*$", description="simulation code (engine name)"
    )
    executable: str | None = Field(
        None, description="path to the code's executable (external codes)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="engine-specific options"
    )


class Resources(_Section):
    """What the run asks of the machine or batch system."""

    cores: int = Field(2, ge=1, le=1_000_000, description="cores (MPI ranks)")
    nodes: int = Field(1, ge=1, le=100_000, description="nodes")
    memory: str | None = Field(
        None, pattern=_MEMORY_PATTERN, description="memory per node, e.g. '4GB'"
    )
    walltime: str = Field(
        "01:00:00", pattern=_WALLTIME_PATTERN, description="[D-]HH:MM[:SS]"
    )
    cluster: Name = Field("local", description="cluster profile name")


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
            if not a_start < a <= 1.0:
                errors.append(
                    _error(
                        ("outputs", kind, i),
                        value,
                        "output at a={a:.6g} is not in (a_start={a0:.6g}, 1]",
                        a=a,
                        a0=a_start,
                    )
                )
        from simlab.engines import registry

        try:
            engine = registry.get(self.code.engine)
        except KeyError:
            errors.append(
                _error(
                    ("code", "engine"),
                    self.code.engine,
                    "unknown engine; installed: {names}",
                    names=", ".join(registry.names()),
                )
            )
        else:
            errors += [
                _error(loc, value, msg) for loc, value, msg in engine.validate(self)
            ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def mesh(self) -> int:
        """PM mesh cells per side, defaulting to twice the particles per side."""
        return self.gravity.mesh or 2 * self.box.particles_per_side

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


def _allowed(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    """Describe the allowed values of the field at ``loc`` from the JSON schema."""
    schema = model.model_json_schema()
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
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        return f"{kind} in {left}{lo}, {hi}{right}"
    if "pattern" in node:
        return f"text matching {node['pattern']}"
    return ""


def config_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Turn a pydantic error into ``[{'loc', 'value', 'msg'}]`` with allowed ranges."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        msg = err["msg"]
        if err["type"] != "value_error":
            allowed = _allowed(RunConfig, loc)
            if allowed:
                msg = f"{msg}; allowed: {allowed}"
        else:
            msg = msg.removeprefix("Value error, ")
        errors.append(
            {
                "loc": ".".join(str(p) for p in loc) or "(config)",
                "value": err.get("input"),
                "msg": msg,
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


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy with dotted-path overrides (``{"box.size": 64}``) applied.

    Setting ``cosmology.preset`` resets the preset's parameters unless they are
    overridden too, so ``{"cosmology.preset": "wmap9"}`` means WMAP9 values.
    """
    data = config.model_dump(mode="json")
    if "cosmology.preset" in overrides:
        for key in PRESETS["planck18"]:
            data["cosmology"].pop(key, None)
    for dotted, value in overrides.items():
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", dotted):
            raise ConfigError(
                [{"loc": dotted, "value": value, "msg": "not a field path"}]
            )
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(
                    [{"loc": dotted, "value": value, "msg": f"no section {part!r}"}]
                )
            node = node[part]
        node[leaf] = value
    return validate_config(data)
