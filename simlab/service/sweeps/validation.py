"""Checking a sweep before anything runs: the template's parameters and each point.

A sweep's points set notebook parameters; the ones named after a RunConfig field
(:func:`config_fields`) also set that field of the point's run. Every point is
checked against the notebook's ``parameters`` cell (unknown name, wrong type) and
gets the complete run check of the service; all problems are raised together in
one :class:`SweepValidationError`.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

from simlab.config import RunConfig, apply_overrides
from simlab.errors import ConfigError, SimlabError
from simlab.service.validation import Plan, validate_run

#: Notebook parameter through which a sweep tells the notebook its run directory.
RUN_DIR_PARAMETER = "run_dir"
_SCALARS = (bool, int, float, str, type(None))


class SweepValidationError(ExceptionGroup, SimlabError, ValueError):
    """Every bad point of a sweep, one sub-exception (and one line) each."""

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"  {line}" for e in self.exceptions for line in str(e).splitlines()]
        return "\n".join(lines)


class SweepError(SimlabError, RuntimeError):
    """A sweep that cannot be started, resumed or read."""


# --------------------------------------------------------------------------
# parameters: the notebook's cell and the RunConfig fields behind them


def config_fields() -> dict[str, str]:
    """Notebook parameter names that stand for RunConfig fields → dotted paths.

    A field is reachable by ``section_field`` (``box_size``, ``ics_seed``) and,
    when no other section has a field of that name, by its bare name (``sigma8``,
    ``steps``, ``particles_per_side``).

    Examples
    --------
    >>> fields = config_fields()
    >>> fields["sigma8"], fields["box_size"], fields["steps"]
    ('cosmology.sigma8', 'box.size', 'gravity.steps')
    """
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for section, info in RunConfig.model_fields.items():
        model = info.annotation
        for leaf in getattr(model, "model_fields", {}):
            names[f"{section}_{leaf}"] = f"{section}.{leaf}"
            counts[leaf] = counts.get(leaf, 0) + 1
    for section, info in RunConfig.model_fields.items():
        for leaf in getattr(info.annotation, "model_fields", {}):
            if counts[leaf] == 1:
                names.setdefault(leaf, f"{section}.{leaf}")
    return names


def field_names(declared: dict[str, Any] | None = None) -> dict[str, str]:
    """One parameter name per RunConfig field (dotted path → name), no aliases.

    The name the notebook declares for the field if it declares one (``box_size``
    in ``run_simulation``), else the bare field name when no other section has it
    (``Omega0``), else ``section_field`` (``ics_seed``).

    Examples
    --------
    >>> names = field_names({"box_size": {}})
    >>> names["box.size"], names["cosmology.Omega0"], names["metadata.name"]
    ('box_size', 'Omega0', 'name')
    """
    aliases: dict[str, list[str]] = {}
    for name, dotted in config_fields().items():
        aliases.setdefault(dotted, []).append(name)
    chosen = {}
    for dotted, names in aliases.items():
        leaf = dotted.split(".")[1]
        named = [n for n in names if n in (declared or {})]
        chosen[dotted] = named[0] if named else leaf if leaf in names else names[0]
    return chosen


def notebook_parameters(template: Path) -> dict[str, dict[str, Any]]:
    """The ``parameters`` cell of ``template`` as papermill infers it.

    A template without a cell tagged ``parameters`` is an error, not a warning:
    a sweep could not set anything in it.
    """
    import nbformat
    import papermill

    nb = nbformat.read(template, as_version=4)
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise SweepError(
            f"template {template} has no cell tagged 'parameters'; a sweep sets its "
            "values there (tag one code cell 'parameters')"
        )
    return papermill.inspect_notebook(str(template))


def declared_type(parameter: dict[str, Any]) -> str:
    """Type name of a notebook parameter: its annotation, else its default's type.

    Examples
    --------
    >>> declared_type({"inferred_type_name": "None", "default": "0.81"})
    'float'
    >>> declared_type({"inferred_type_name": "int", "default": "3"})
    'int'
    """
    if parameter["inferred_type_name"] != "None":
        return parameter["inferred_type_name"]
    try:
        value = ast.literal_eval(parameter["default"])
    except (ValueError, SyntaxError):
        return "None"  # an expression: anything goes
    return "None" if value is None else type(value).__name__


def _type_problem(value: Any, declared: str) -> str | None:
    """Why ``value`` does not fit a parameter whose default is of type ``declared``."""
    if isinstance(value, list | tuple):
        if not all(isinstance(v, _SCALARS) for v in value):
            return "a list may hold only numbers, booleans, text or None"
        return None if declared in ("list", "tuple", "None") else f"expected {declared}"
    if not isinstance(value, _SCALARS):
        return (
            f"a {type(value).__name__} cannot be a notebook parameter; "
            "allowed: number, bool, str, None or a list of them"
        )
    fits = {
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }
    if declared in fits and not fits[declared]:
        return f"expected {declared} (the type of the notebook's default)"
    return None


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last name varying fastest.

    Examples
    --------
    >>> grid_points({"sigma8": [0.7, 0.8], "Omega0": [0.3]})
    [{'sigma8': 0.7, 'Omega0': 0.3}, {'sigma8': 0.8, 'Omega0': 0.3}]
    """
    names = list(grid)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*grid.values())
    ]


def validate_points(
    template: Path, points: list[dict[str, Any]], base: RunConfig
) -> list[Plan]:
    """Check every point before anything runs; return each point's run plan.

    Every point gets the same complete check as any run (the RunConfig fields,
    the engine's options, the profile and the executable). A RunConfig field the
    notebook does not declare may be swept when the notebook takes ``run_dir``:
    it sets the point's run configuration only. Raises
    :class:`SweepValidationError` listing every unknown or ill-typed parameter
    and every invalid field a point makes, point by point.
    """
    declared = notebook_parameters(template)
    fields = config_fields()
    # a notebook that runs the run simlab prepared (run_dir) honours every field of
    # its configuration, so any RunConfig field can be swept, declared or not
    config_only = RUN_DIR_PARAMETER in declared
    problems: list[Exception] = []
    configs: list[Plan] = []
    for index, point in enumerate(points):
        bad = False
        for name, value in point.items():
            if name not in declared and not (name in fields and config_only):
                bad = True
                also = " and any RunConfig field" if config_only else ""
                problems.append(
                    ValueError(
                        f"point {index}: unknown parameter {name!r} = {value!r}; "
                        f"{template.name} has: {', '.join(sorted(declared))}{also}"
                    )
                )
                continue
            if name not in declared:
                continue  # a RunConfig field only: it sets the point's run
            why = _type_problem(value, declared_type(declared[name]))
            if why:
                bad = True
                problems.append(
                    TypeError(f"point {index}: parameter {name} = {value!r}: {why}")
                )
        if bad:
            continue
        overrides = {fields[n]: v for n, v in point.items() if n in fields}
        try:
            config = apply_overrides(base, overrides) if overrides else base
            configs.append(validate_run(config))
        except ConfigError as exc:
            problems += [
                ValueError(f"point {index}: {e['loc']} = {e['value']!r}: {e['msg']}")
                for e in exc.errors
            ]
    if problems:
        raise SweepValidationError(
            f"{len(problems)} problem(s) in the sweep over {template.name}; "
            "nothing was started:",
            problems,
        )
    return configs


def injected_parameters(
    point: dict[str, Any], config: RunConfig, declared: dict[str, Any], rundir: Path
) -> dict[str, Any]:
    """The values papermill injects: the point, the config fields the notebook
    declares (from the validated config) and the run directory."""
    data = config.model_dump(mode="json")
    params: dict[str, Any] = {}
    for name, dotted in config_fields().items():
        if name in declared:
            section, leaf = dotted.split(".")
            params[name] = data[section][leaf]
    params.update({k: v for k, v in point.items() if k in declared})
    if RUN_DIR_PARAMETER in declared:
        params[RUN_DIR_PARAMETER] = str(rundir)
    return params
