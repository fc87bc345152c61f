"""Read a run configuration's JSON schema into field descriptions the form draws.

The form never names a field: everything it shows (sections, kinds of input, units,
defaults, allowed values, help) comes from ``model.model_json_schema()`` through
:func:`sections`, so a field added to :class:`~simlab.config.RunConfig` appears in
the form without widget code.
"""

from __future__ import annotations

import html
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
        """Allowed values as a person writes them (``0 < Omega0 ≤ 2``, ``seed ≥ 0``,
        ``cores ≤ 1,000,000``), for the help text; limits that only mark a machine
        integer's range are left out."""
        c = self.constraints
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        low = c.get("exclusiveMinimum", c.get("minimum"))
        high = c.get("exclusiveMaximum", c.get("maximum"))
        low = None if low is None or abs(low) >= _MACHINE_LIMIT else low
        high = None if high is None or abs(high) >= _MACHINE_LIMIT else high
        lower = "<" if "exclusiveMinimum" in c else "≤"
        upper = "<" if "exclusiveMaximum" in c else "≤"
        if low is not None and high is not None:
            return f"{number(low)} {lower} {self.name} {upper} {number(high)}"
        if low is not None:
            return f"{self.name} {'>' if lower == '<' else '≥'} {number(low)}"
        if high is not None:
            return f"{self.name} {upper} {number(high)}"
        return ""


#: Limits at or beyond 2^53 mark a machine integer's range, not a choice.
_MACHINE_LIMIT = 2**53


def number(value: float) -> str:
    """A limit as people write it: digits grouped by thousands, no exponent for
    whole numbers.

    Examples
    --------
    >>> number(1e6), number(100000), number(0.5), number(1e-8)
    ('1,000,000', '100,000', '0.5', '1e-08')
    """
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


_LITERAL = re.compile(r"``(.+?)``|(?<![\w`]):\w+:`~?(.+?)`|`([^`]+?)`")


def help_html(text: str) -> str:
    r"""A docstring or description as HTML text: reStructuredText literals and
    roles as ``<code>``, line breaks inside a paragraph as spaces.

    Examples
    --------
    >>> help_html("Overrides the one of ``preset``\nwhen x < 1.")
    'Overrides the one of <code>preset</code> when x &lt; 1.'
    """
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    out = []
    for paragraph in paragraphs:
        parts, last = [], 0
        for match in _LITERAL.finditer(paragraph):
            parts.append(html.escape(paragraph[last : match.start()]))
            literal = next(g for g in match.groups() if g is not None)
            parts.append(f"<code>{html.escape(literal)}</code>")
            last = match.end()
        parts.append(html.escape(paragraph[last:]))
        out.append("".join(parts))
    return "<br>".join(out)


def plain_text(text: str) -> str:
    r"""A docstring or description as one line of plain text (for tooltips).

    Examples
    --------
    >>> plain_text("Overrides the one of ``preset``\nwhen given.")
    'Overrides the one of preset when given.'
    """
    flat = " ".join(text.split())
    return _LITERAL.sub(lambda m: next(g for g in m.groups() if g is not None), flat)


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
