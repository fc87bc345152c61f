"""Every check a run passes before anything is written, the same for every door.

:func:`validate_run` runs the configuration's own field checks, then what only
the chosen engine can judge (its options model and :meth:`Engine.validate`), then
the cluster profile and the executable. Every problem found is reported at once
as a :class:`~simlab.errors.ConfigError` naming the field, the value and what is
allowed. Nothing is run and nothing is written: the result, a :class:`Plan`, says
how the run will be started, and the service creates the run from it.
"""

from __future__ import annotations

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
    errors += _table_errors(config)
    found = find_executable(engine, config, profile)
    if found.problem is not None:
        errors.append(_error("code.executable", config.code.executable, found.problem))
    if errors:
        raise ConfigError(errors)
    launcher = mpi_launcher(profile, config.resources.cores) if found.path else []
    batch = is_batch(kind)
    launch = Launch(
        executable=found.path,
        source=found.source,
        launcher=tuple(launcher),
        walltime=float(config.resources.walltime_seconds) if batch else None,
    )
    advise = getattr(engine, "advise", None)
    notes = tuple(advise(config)) if advise is not None else ()
    return Plan(config, engine, name, profile, launch, notes)
