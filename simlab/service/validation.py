"""Every check a run passes before anything is written, the same for every door.

:func:`validate_run` runs the configuration's own field checks, then what only
the chosen engine can judge (its options model and :meth:`Engine.validate`), then
the cluster profile and the executable. Every problem found is reported at once
as a :class:`~simlab.errors.ConfigError` naming the field, the value and what is
allowed. Nothing is run and nothing is written: the result, a :class:`Plan`, says
how the run will be started, and the service creates the run from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from simlab.config import (
    RunConfig,
    apply_overrides,
    config_errors,
    echo,
    validate_config,
)
from simlab.dispatch.profiles import check_kind, is_batch, mpi_launcher
from simlab.engines import registry
from simlab.engines.base import Launch
from simlab.errors import ConfigError
from simlab.service.executables import find_executable
from simlab.settings import cluster_profile

if TYPE_CHECKING:
    from simlab.engines.base import Engine


@dataclass(frozen=True)
class Plan:
    """A run that passed every check, and how it will be started."""

    config: RunConfig
    engine: Engine
    cluster: str
    profile: dict[str, Any]
    launch: Launch
    #: what the engine advises about a valid config (shown by every face)
    notes: tuple[str, ...] = ()

    def launch_record(self) -> dict[str, Any]:
        """What the run directory's ``launch.json`` keeps for the dispatcher."""
        return {
            **self.launch.to_dict(),
            "cluster": self.cluster,
            "profile": self.profile,
        }


def _error(loc: str, value: Any, msg: str) -> dict[str, Any]:
    return {"loc": loc, "value": echo(value), "msg": msg}


def _job_shape_errors(name: str, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """A batch job holds one run, sized by its resources (its ranks as tasks); the
    job's dask worker only watches it. ``cores`` or ``processes`` above 1 would give
    every rank that many CPUs (Slurm: --cpus-per-task) or put two runs in one job."""
    if not is_batch(profile.get("kind", "local")):
        return []
    return [
        _error(
            "resources.cluster",
            name,
            f"profile {name!r} sets {key}: {profile[key]!r}; simlab sizes each batch "
            f"job from the run's resources (resources.cores ranks on "
            f"resources.nodes nodes) and its dask worker takes one core, so {key} "
            f"must be 1 (or left out)",
        )
        for key in ("cores", "processes")
        if profile.get(key, 1) != 1
    ]


def _artifacts_errors(name: str, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """A profile's ``artifacts`` must be an object-storage URL (runs that end on
    the profile are copied there)."""
    url = profile.get("artifacts")
    if url is None:
        return []
    from simlab.io.remote import EXAMPLES, is_url  # fsspec only for profiles with one

    if isinstance(url, str) and is_url(url):
        return []
    message = (
        f"profile {name!r}: artifacts={url!r} is not an object-storage URL; "
        f"expected one such as {EXAMPLES}"
    )
    return [_error("resources.cluster", name, message)]


def _table_errors(config: RunConfig) -> list[dict[str, Any]]:
    """``ics.transfer_file`` must exist and parse (the model does not open it)."""
    path = config.ics.transfer_file
    if path is None:
        return []
    from simlab.linear.tables import TableError, read_table

    if not Path(path).is_file():
        return [_error("ics.transfer_file", path, f"no such file: {path}")]
    try:
        read_table(path)
    except TableError as exc:
        return [_error("ics.transfer_file", path, str(exc))]
    return []


def _start_given(config: RunConfig) -> str:
    """The config's starting time as the user gave it (or its default)."""
    ics = config.ics
    if ics.z_start is not None:
        return f"ics.z_start {ics.z_start:g}"
    if ics.a_start is not None:
        return f"ics.a_start {ics.a_start:g}"
    return f"ics.z_start {1 / ics.start - 1:g} (the default)"


def _ics_file_errors(config: RunConfig) -> list[dict[str, Any]]:
    """``ics.file`` must be a readable IC file whose header agrees with the config:
    box, particle count, starting time, and Omega0/OmegaLambda/h where recorded
    (every disagreement in one message, each naming both values)."""
    path = config.ics.file
    if path is None:
        return []
    from simlab.errors import SnapshotError
    from simlab.io.ics_file import TOLERANCE, length_unit, read_header

    if not Path(path).exists():
        return [_error("ics.file", path, f"no such file: {path}")]
    try:
        head = read_header(path)
    except SnapshotError as exc:
        return [_error("ics.file", path, str(exc))]
    problems = []
    box = config.box.size
    unit = length_unit(head, box)
    if unit is None:
        problems.append(
            f"box {head.box_size:g} in the file (in Mpc/h or kpc/h: the file "
            f"records no unit), box.size {box:g} in the config"
        )
    elif not math.isclose(head.box_size * unit, box, rel_tol=TOLERANCE):
        problems.append(
            f"box {head.box_size * unit:g} Mpc/h in the file, box.size {box:g} "
            "in the config"
        )
    n = config.box.particles_per_side
    if head.n_particles != n**3:
        problems.append(
            f"{head.n_particles} particles in the file, box.particles_per_side "
            f"{n} ({n**3} particles) in the config"
        )
    if head.other_particles:
        problems.append(
            f"{head.other_particles} particles of other types than 1 (gas, "
            "stars, ...) in the file; simlab runs dark matter of one mass only"
        )
    if not math.isclose(head.a, config.ics.start, rel_tol=TOLERANCE):
        problems.append(
            f"starting redshift {1 / head.a - 1:g} (a = {head.a:.6g}) in the "
            f"file, {_start_given(config)} in the config (set ics.a_start to "
            f"{head.a:.6g})"
        )
    cosmo = config.cosmology
    for name, found, wanted in (
        ("Omega0", head.omega0, cosmo.Omega0),
        ("OmegaLambda", head.omega_lambda, cosmo.OmegaLambda),
        ("h", head.h, cosmo.h),
    ):
        if found is not None and not math.isclose(found, wanted, rel_tol=TOLERANCE):
            problems.append(
                f"{name} {found:g} in the file, cosmology.{name} {wanted:g} in the "
                "config"
            )
    return [_error("ics.file", path, "; ".join(problems))] if problems else []


def option_errors(engine: Engine, config: RunConfig) -> list[dict[str, Any]]:
    """Problems with ``code.options`` according to the engine's options model."""
    try:
        engine.options_model.model_validate(config.code.options)
    except ValidationError as exc:
        return config_errors(exc, engine.options_model, prefix="code.options")
    return []


def validate_run(
    data: RunConfig | dict[str, Any], *, cluster: str | None = None
) -> Plan:
    """Check a run completely (fields, engine, options, profile, executable).

    ``cluster`` overrides ``resources.cluster``. Raises ConfigError listing every
    problem; returns the :class:`Plan` otherwise.
    """
    config = validate_config(data)
    if cluster is not None:
        config = apply_overrides(config, {"resources.cluster": cluster})
    errors: list[dict[str, Any]] = []
    try:
        engine = registry.get(config.code.engine)
    except KeyError:
        raise ConfigError(
            [
                _error(
                    "code.engine",
                    config.code.engine,
                    f"unknown engine; installed: {', '.join(registry.names())}",
                )
            ]
        ) from None
    errors += option_errors(engine, config)
    if not errors:
        errors += [
            _error(".".join(map(str, loc)), value, msg)
            for loc, value, msg in engine.validate(config)
        ]
    name = config.resources.cluster
    try:
        profile = cluster_profile(name)
    except KeyError as exc:
        errors.append(_error("resources.cluster", name, exc.args[0]))
        raise ConfigError(errors) from None
    kind = profile.get("kind", "local")
    try:
        check_kind(kind)
    except ValueError as exc:
        errors.append(_error("resources.cluster", name, f"profile {name!r}: {exc}"))
    errors += _job_shape_errors(name, profile)
    errors += _artifacts_errors(name, profile)
    errors += _table_errors(config)
    errors += _ics_file_errors(config)
    found = find_executable(engine, config, profile)
    if found.problem is not None and found.source.startswith("container"):
        message = f"profile {name!r}: {found.problem}"
        errors.append(_error("resources.cluster", name, message))
    elif found.problem is not None:
        errors.append(_error("code.executable", config.code.executable, found.problem))
    if errors:
        raise ConfigError(errors)
    launcher = mpi_launcher(profile, config.resources.cores) if found.path else []
    batch = is_batch(kind)
    launch = Launch(
        executable=found.path,
        source=found.source,
        launcher=tuple(launcher),
        container=found.container,
        walltime=float(config.resources.walltime_seconds) if batch else None,
    )
    advise = getattr(engine, "advise", None)
    notes = tuple(advise(config)) if advise is not None else ()
    return Plan(config, engine, name, profile, launch, notes)
