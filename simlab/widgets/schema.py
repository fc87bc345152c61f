"""Read a run configuration's JSON schema into field descriptions the form draws.

The form never names a field: everything it shows (sections, kinds of input, units,
defaults, allowed values, help) comes from ``model.model_json_schema()`` through
:func:`sections`, so a field added to :class:`~simlab.config.RunConfig` appears in
the form without widget code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

Kind = Literal["enum", "integer", "number", "boolean", "string", "list", "mapping"]

#: Units recognised at the end of "... in UNIT" in a field description.
_UNIT_RE = re.compile(r"\bin (Mpc/h|kpc/h|km/s|K|s|GB|MB)(?=$|[\s,;)])")


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field of the configuration, as the form needs it."""

    path: tuple[str, ...]
    kind: Kind
    nullable: bool
    default: Any
    description: str = ""
    unit: str | None = None
    choices: tuple[Any, ...] = ()
    item_kind: str | None = None
    constraints: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Dotted path, as in error locations and ``apply_overrides``."""
        return ".".join(self.path)

    @property
    def name(self) -> str:
        """The field's own name (its key in YAML)."""
        return self.path[-1]

    @property
    def label(self) -> str:
        """Name with the unit, e.g. ``size [Mpc/h]``."""
        return f"{self.name} [{self.unit}]" if self.unit else self.name

    @property
    def allowed(self) -> str:
        """Allowed values in words (range, choices or pattern), for the help text."""
        c = self.constraints
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        low = c.get("exclusiveMinimum", c.get("minimum"))
        high = c.get("exclusiveMaximum", c.get("maximum"))
        if low is None and high is None:
            return ""
        left = "(" if "exclusiveMinimum" in c or low is None else "["
        right = ")" if "exclusiveMaximum" in c or high is None else "]"
        lo = "-∞" if low is None else f"{low:g}"
        hi = "∞" if high is None else f"{high:g}"
        return f"{left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Section:
    """A group of fields (one sub-model of the configuration)."""

    key: str
    title: str
    description: str
    fields: tuple[FieldSpec, ...]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _unwrap_null(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The non-null branch of ``anyOf: [X, null]``, merged with the outer keys."""
    options = node.get("anyOf")
    if not options:
        return node, False
    nullable = any(o.get("type") == "null" for o in options)
    rest = [o for o in options if o.get("type") != "null"]
    outer = {k: v for k, v in node.items() if k != "anyOf"}
    return ({**rest[0], **outer} if len(rest) == 1 else outer), nullable


def _kind(node: dict[str, Any]) -> Kind:
    if "enum" in node:
        return "enum"
    kind = node.get("type")
    if kind in ("integer", "number", "boolean", "string"):
        return kind
    if kind == "array":
        return "list"
    return "mapping"


def field_spec(
    path: tuple[str, ...], node: dict[str, Any], defs: dict[str, Any]
) -> FieldSpec:
    """Describe one leaf field from its schema node."""
    node, nullable = _unwrap_null(_resolve(node, defs))
    kind = _kind(node)
    description = node.get("description", "")
    unit = _UNIT_RE.search(description)
    if "default" in node:
        default = node["default"]
    else:  # default_factory fields: an empty container of their type
        default = [] if kind == "list" else {} if kind == "mapping" else None
    constraints = {
        k: node[k]
        for k in (
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "pattern",
            "maxLength",
        )
        if k in node
    }
    return FieldSpec(
        path=path,
        kind=kind,
        nullable=nullable,
        default=default,
        description=description,
        unit=unit.group(1) if unit else None,
        choices=tuple(node.get("enum", ())),
        item_kind=node.get("items", {}).get("type") if kind == "list" else None,
        constraints=constraints,
    )


def _title(name: str) -> str:
    """``InitialConditions`` → ``Initial conditions``."""
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name)
    return " ".join(words).capitalize() if words else name


def sections(model: type[BaseModel]) -> list[Section]:
    """The sections of ``model``'s schema and their leaf fields, in schema order.

    Top-level fields that are sub-models become sections; other top-level fields
    are gathered in a final "General" section.
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    result: list[Section] = []
    general: list[FieldSpec] = []
    for key, node in schema.get("properties", {}).items():
        target = _resolve(node, defs)
        if target.get("type") == "object" and "properties" in target:
            fields = tuple(
                field_spec((key, name), sub, defs)
                for name, sub in target["properties"].items()
            )
            title = _title(target.get("title", key))
            result.append(Section(key, title, target.get("description", ""), fields))
        else:
            general.append(field_spec((key,), node, defs))
    if general:
        result.append(Section("", "General", "", tuple(general)))
    return result


def leaf_paths(model: type[BaseModel]) -> list[str]:
    """Dotted paths of every leaf field of ``model`` (what the form must cover)."""
    return [f.key for s in sections(model) for f in s.fields]
