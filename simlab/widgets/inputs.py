"""One typed ipywidgets input per kind of schema field, and its value both ways.

``make_input`` picks the widget from the field's kind (number, integer, enum ...),
``read_input`` turns what the user typed into the value the configuration gets
(``""`` means "not given" for optional fields) and ``write_input`` shows a value.
"""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as widgets
import yaml

from simlab.widgets.schema import FieldSpec, plain_text

NONE_LABEL = "(none)"
_INPUT_LAYOUT = {"width": "220px", "min_width": "140px", "flex": "0 1 220px"}


def make_input(spec: FieldSpec, choices: list[str] | None = None) -> widgets.Widget:
    """A widget for ``spec``; ``choices`` offers known values for a text field."""
    layout = widgets.Layout(**_INPUT_LAYOUT)
    common = {"layout": layout, "tooltip": plain_text(spec.description)}
    kind = spec.kind
    if kind == "enum":
        options: list[Any] = [(str(c), c) for c in spec.choices]
        if spec.nullable:
            options.insert(0, (NONE_LABEL, None))
        return widgets.Dropdown(options=options, **common)
    if kind == "boolean" and spec.nullable:  # a checkbox cannot say "not given"
        options = [(NONE_LABEL, None), ("true", True), ("false", False)]
        return widgets.Dropdown(options=options, **common)
    if kind == "boolean":
        return widgets.Checkbox(indent=False, **common)
    if kind in ("integer", "number") and not spec.nullable:
        cls = widgets.IntText if kind == "integer" else widgets.FloatText
        return cls(continuous_update=True, **common)
    if kind == "mapping":
        return widgets.Textarea(
            placeholder="key: value (YAML)", continuous_update=True, **common
        )
    if kind == "string" and spec.constraints.get("maxLength", 0) > 200:
        return widgets.Textarea(continuous_update=True, **common)
    placeholder = {
        "list": "comma-separated",
        "integer": "default",
        "number": "default",
    }.get(kind, "")
    if spec.nullable and kind == "string":
        placeholder = "not set"
    if choices:
        return widgets.Combobox(
            options=choices,
            ensure_option=False,
            placeholder=placeholder,
            continuous_update=True,
            **common,
        )
    return widgets.Text(placeholder=placeholder, continuous_update=True, **common)


def _scalar(text: str, kind: str | None) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    return text


def read_input(spec: FieldSpec, widget: widgets.Widget) -> Any:
    """The value typed in ``widget``; ValueError says what could not be read."""
    value = widget.value
    kind = spec.kind
    if kind in ("enum", "boolean") or isinstance(value, int | float):
        return value
    text = str(value).strip()
    if kind == "mapping":
        try:
            data = yaml.safe_load(text) if text else {}
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc.problem}") from exc
        if not isinstance(data, dict):
            raise ValueError("must be 'key: value' lines (a YAML mapping)")
        return data
    if text == "":
        if kind == "list":
            return None if spec.nullable else []
        return None if spec.nullable else ""
    if kind == "list":
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            return [_scalar(p, spec.item_kind) for p in parts]
        except ValueError:
            raise ValueError(
                f"{text!r}: give {spec.item_kind} values separated by commas"
            ) from None
    try:
        return _scalar(text, kind)
    except ValueError:
        raise ValueError(
            f"{text!r} is not {'an' if kind == 'integer' else 'a'} {kind}"
        ) from None


def write_input(spec: FieldSpec, widget: widgets.Widget, value: Any) -> None:
    """Show ``value`` (a JSON-ready configuration value) in ``widget``."""
    if isinstance(widget, widgets.Dropdown | widgets.Checkbox | widgets.IntText):
        widget.value = value
    elif isinstance(widget, widgets.FloatText):
        widget.value = float(value)
    elif spec.kind == "mapping":
        widget.value = (
            yaml.safe_dump(value, default_flow_style=False, sort_keys=False)
            if value
            else ""
        )
    elif spec.kind == "list":
        widget.value = "" if value is None else ", ".join(_text(v) for v in value)
    else:
        widget.value = "" if value is None else _text(value)


def _text(value: Any) -> str:
    """Numbers exactly as JSON writes them (``0.5``, ``1e-05``), text as is."""
    return value if isinstance(value, str) else json.dumps(value)
