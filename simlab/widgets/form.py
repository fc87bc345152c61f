"""RunForm: a run configuration form generated from the RunConfig JSON schema.

Every input, label, unit, default and help text comes from the schema (see
:mod:`simlab.widgets.schema`); validation is the configuration's own, so the form
shows exactly the messages the CLI and REST API give, each next to its field.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import yaml
from pydantic import BaseModel, ValidationError

from simlab.config import RunConfig, config_errors, read_config_file
from simlab.errors import ConfigError, SimlabError
from simlab.service.validation import validate_run
from simlab.widgets import styles
from simlab.widgets.inputs import make_input, read_input, write_input
from simlab.widgets.schema import (
    FieldSpec,
    Section,
    field_spec,
    help_html,
    plain_text,
    sections,
)

if TYPE_CHECKING:
    from simlab.service.cost import Calibration
    from simlab.service.run import Run

_LABEL_LAYOUT = {"width": "190px", "min_width": "120px", "flex": "0 1 190px"}
#: The help text takes the rest of the line and goes below the input when the
#: panel is narrow, instead of squeezing label and input.
_HELP_LAYOUT = {"flex": "1 1 240px", "min_width": "200px"}
_WRAP_LAYOUT = {"flex_flow": "row wrap", "align_items": "center"}
#: Tab titles at their full width, wrapping onto a second row in a narrow panel,
#: in the body text's colour.
_FORM_CSS = (
    "<style>"
    ".simlab-form .lm-TabBar-content { flex-wrap: wrap; }"
    ".simlab-form .lm-TabBar-tab { flex: 0 0 auto; min-width: fit-content;"
    " max-width: none; }"
    ".simlab-form .lm-TabBar-tabLabel { overflow: visible; text-overflow: clip; }"
    # ipywidgets greys the titles of the tabs not shown (4.3:1 in the light theme)
    ":is(.simlab-launcher, .simlab-form) .widget-tab .lm-TabBar-tab"
    " { color: var(--jp-ui-font-color1) !important; }"
    "</style>"
)
_ERROR_STYLE = f"{styles.ERROR};font-size:90%"
_HELP_STYLE = styles.HELP


def _engine_names() -> list[str]:
    from simlab.engines import registry

    return registry.names()


def _cluster_names() -> list[str]:
    from simlab import settings

    return sorted(settings.profiles())


#: Where an engine's own options live in the configuration.
OPTIONS_PATH = ("code", "options")


def engine_option_specs(engine: str) -> list[FieldSpec]:
    """One field per option the engine declares (``Engine.options_schema``).

    Every option is optional: an empty input means "not given", so the engine's
    default applies. An unknown engine declares none.
    """
    from simlab.engines import registry

    try:
        nodes = registry.get(engine).options_schema()
    except (KeyError, AttributeError):
        return []
    return [
        field_spec((*OPTIONS_PATH, name), {"anyOf": [node, {"type": "null"}]}, {})
        for name, node in nodes.items()
    ]


#: Known values offered (not imposed) for free-text fields, by dotted path.
CHOICES: dict[str, Callable[[], list[str]]] = {
    "code.engine": _engine_names,
    "resources.cluster": _cluster_names,
}


def _auto() -> widgets.Layout:
    """A button as wide as its label, never cut to "Save …"."""
    return widgets.Layout(width="auto", min_width="fit-content")


class FieldRow(widgets.VBox):
    """Label, input and help on one line, the field's error message below."""

    def __init__(self, spec: FieldSpec, choices: list[str] | None = None) -> None:
        self.spec = spec
        self.input = make_input(spec, choices)
        label = widgets.HTML(
            f"<b>{html.escape(spec.label)}</b>",
            layout=widgets.Layout(**_LABEL_LAYOUT),
            tooltip=plain_text(spec.description),
        )
        text = help_html(spec.description)
        if spec.allowed:
            text += f"{' — ' if text else ''}{html.escape(spec.allowed)}"
        self.help = widgets.HTML(
            f"<span style='{_HELP_STYLE}'>{text}</span>",
            layout=widgets.Layout(**_HELP_LAYOUT),
        )
        self.error = widgets.HTML("", layout=widgets.Layout(display="none"))
        line = widgets.HBox(
            [label, self.input, self.help], layout=widgets.Layout(**_WRAP_LAYOUT)
        )
        super().__init__([line, self.error])

    def show_error(self, message: str | None) -> None:
        """Show ``message`` under the field, or hide the error line."""
        if message:
            self.error.value = (
                f"<span style='{_ERROR_STYLE}'>⚠ {html.escape(message)}</span>"
            )
            self.error.layout.display = ""
        else:
            self.error.value = ""
            self.error.layout.display = "none"

    @property
    def error_message(self) -> str:
        """The message shown, '' when the field is valid."""
        text = self.error.value
        return (
            html.unescape(text.split("⚠ ", 1)[1].rsplit("</span>", 1)[0])
            if text
            else ""
        )


class RunForm(widgets.VBox):
    """Configure a run; ``form.config`` is the validated RunConfig.

    Parameters
    ----------
    config : RunConfig or mapping, optional
        starting values (default: the model's defaults)
    model : pydantic model class
        the configuration model whose JSON schema the form is built from
    submit : callable, optional
        called with the config by the Submit button (default :func:`simlab.submit`)
    """

    def __init__(
        self,
        config: RunConfig | dict[str, Any] | None = None,
        *,
        model: type[BaseModel] = RunConfig,
        submit: Callable[[Any], Run] | None = None,
    ) -> None:
        self.model = model
        self.sections: list[Section] = sections(model)
        self.rows: dict[str, FieldRow] = {}
        #: inputs of the chosen engine's own options, rebuilt when it changes
        self.option_rows: dict[str, FieldRow] = {}
        self.option_box = widgets.VBox()
        self._options_engine: str | None = None
        pages = []
        for section in self.sections:
            rows = []
            for spec in section.fields:
                source = CHOICES.get(spec.key)
                row = FieldRow(spec, source() if source else None)
                row.input.observe(self._changed, names="value")
                self.rows[spec.key] = row
                rows.append(row)
            caption = widgets.HTML(
                f"<i style='{_HELP_STYLE}'>{help_html(section.description)}</i>"
            )
            if section.key == OPTIONS_PATH[0]:
                rows.append(self.option_box)
            pages.append(widgets.VBox([caption, *rows]))
        self.tabs = widgets.Tab(pages, titles=[s.title for s in self.sections])
        self.summary = widgets.HTML()
        self.estimate_line = widgets.HTML()
        self.path = widgets.Text(
            "run.yaml", description="YAML file", layout=widgets.Layout(width="320px")
        )
        self.submit_button = widgets.Button(
            description="Submit", button_style="primary", icon="play", layout=_auto()
        )
        self.save_button = widgets.Button(
            description="Save YAML", icon="save", layout=_auto()
        )
        self.load_button = widgets.Button(
            description="Load YAML", icon="folder-open", layout=_auto()
        )
        self.submit_button.on_click(lambda _: self.submit())
        self.save_button.on_click(lambda _: self._guarded(self.save_yaml))
        self.load_button.on_click(lambda _: self._guarded(self.load_yaml))
        self.message = widgets.HTML()
        self._submit = submit
        self._callbacks: list[Callable[[Run], None]] = []
        self._calibrations: dict[str, Calibration] = {}
        self._config: BaseModel | None = None
        self._errors: dict[str, str] = {}
        self._quiet = False
        super().__init__(
            [
                widgets.HTML(_FORM_CSS),
                self.tabs,
                self.summary,
                self.estimate_line,
                widgets.HBox(
                    [self.submit_button, self.path, self.save_button, self.load_button],
                    layout=widgets.Layout(**_WRAP_LAYOUT),
                ),
                self.message,
            ]
        )
        self.add_class("simlab-form")
        self.set_config(config if config is not None else model())

    # values ------------------------------------------------------------------

    def set_config(self, config: BaseModel | dict[str, Any]) -> None:
        """Show ``config`` (a model or a possibly invalid mapping) in the inputs."""
        data = (
            config.model_dump(mode="json")
            if isinstance(config, BaseModel)
            else self._complete(config)
        )
        self._quiet = True
        try:
            for row in self.rows.values():
                node: Any = data
                for part in row.spec.path:
                    node = (
                        node.get(part, row.spec.default)
                        if isinstance(node, dict)
                        else None
                    )
                write_input(row.spec, row.input, node)
            engine = (data.get("code") or {}).get("engine")
            self._show_engine_options(engine)
            given = _at(data, OPTIONS_PATH) or {}
            for row in self.option_rows.values():
                write_input(row.spec, row.input, given.get(row.spec.name))
        finally:
            self._quiet = False
        self.validate()

    def _show_engine_options(self, engine: str | None) -> None:
        """One input per option of ``engine``; the free-form mapping otherwise."""
        if engine == self._options_engine:
            return
        self._options_engine = engine
        self.option_rows = {}
        for spec in engine_option_specs(engine or ""):
            row = FieldRow(spec)
            row.input.observe(self._changed, names="value")
            self.option_rows[spec.key] = row
        self.option_box.children = list(self.option_rows.values())
        generic = self.rows.get(".".join(OPTIONS_PATH))
        if generic is not None:
            generic.layout.display = "none" if self.option_rows else ""

    def _complete(self, data: dict[str, Any]) -> dict[str, Any]:
        """Fill sections a mapping leaves out, as the model would (presets too)."""
        base = self.model().model_dump(mode="json")
        for key, value in data.items():
            section_type = self._section_type(key)
            if section_type is None or not isinstance(value, dict):
                base[key] = value
                continue
            try:
                base[key] = section_type.model_validate(value).model_dump(mode="json")
            except ValidationError:
                base[key] = {**base.get(key, {}), **value}
        return base

    def _section_type(self, key: str) -> type[BaseModel] | None:
        info = self.model.model_fields.get(key)
        kind = info.annotation if info else None
        return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The nested mapping typed in the form, and inputs that could not be read."""
        data: dict[str, Any] = {}
        unreadable: dict[str, str] = {}
        for row, value in _read(self.rows, unreadable):
            node = data
            for part in row.spec.path[:-1]:
                node = node.setdefault(part, {})
            node[row.spec.name] = value
        if self.option_rows:
            options = {
                row.spec.name: value
                for row, value in _read(self.option_rows, unreadable)
                if value not in (None, {})  # empty: not given, engine default
            }
            data.setdefault(OPTIONS_PATH[0], {})[OPTIONS_PATH[1]] = options
        return data, unreadable

    # validation --------------------------------------------------------------

    def validate(self) -> bool:
        """Check the inputs with the model; show each error next to its field."""
        data, errors = self.values()
        self._config = None
        if not errors:
            try:
                config = self.model(**data)
                if isinstance(config, RunConfig):
                    # the same complete check a submission gets (engine options,
                    # cluster profile, executable), so Submit is never refused
                    config = validate_run(config).config
                self._config = config
            except ConfigError as exc:
                errors = self._locate(exc.errors)
            except ValidationError as exc:
                errors = self._locate(config_errors(exc))
        self._errors = errors
        for key, row in {**self.rows, **self.option_rows}.items():
            row.show_error(errors.get(key))
        self._show_state()
        return self._config is not None

    def _locate(self, records: list[dict[str, Any]]) -> dict[str, str]:
        """Attach each error to the field its location falls in (longest prefix)."""
        located: dict[str, str] = {}
        known = {**self.rows, **self.option_rows}
        for record in records:
            parts = str(record["loc"]).split(".")
            key = next(
                (
                    ".".join(parts[:n])
                    for n in range(len(parts), 0, -1)
                    if ".".join(parts[:n]) in known
                ),
                "(config)",
            )
            message = record["msg"]
            if key != record["loc"]:
                message = f"{record['loc']}: {message}"
            located[key] = f"{located[key]}; {message}" if key in located else message
        return located

    def _show_state(self) -> None:
        valid = self._config is not None
        self.submit_button.disabled = not valid
        self.save_button.disabled = not valid
        for index, section in enumerate(self.sections):
            bad = any(f.key in self._errors for f in section.fields)
            self.tabs.set_title(index, f"⚠ {section.title}" if bad else section.title)
        if valid:
            self.summary.value = ""
            self.estimate_line.value = self._estimate_text()
            return
        self.estimate_line.value = ""
        items = "".join(
            f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>"
            for k, v in self._errors.items()
        )
        self.summary.value = (
            f"<div style='{_ERROR_STYLE}'>{len(self._errors)} invalid field(s):"
            f"<ul style='margin:0'>{items}</ul></div>"
        )

    def _estimate_text(self) -> str:
        from simlab.service.cost import calibrate, estimate

        config = self._config
        if not isinstance(config, RunConfig):
            return ""
        engine = config.code.engine
        if engine not in self._calibrations:
            from simlab.settings import run_root
            from simlab.state.catalog import Catalog

            self._calibrations[engine] = calibrate(Catalog(run_root()), engine)
        est = estimate(config, calibration=self._calibrations[engine])
        return (
            f"<span style='{_HELP_STYLE}'>Estimate: {html.escape(est.summary())}</span>"
        )

    def _changed(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        rows = {**self.rows, **self.option_rows}.values()
        owner = next(r for r in rows if r.input is change["owner"])
        if owner.spec.name == "preset" and change["new"] is not None:
            self._apply_preset(owner.spec.path[:-1], change["new"])
        if owner.spec.key == "code.engine":
            self._show_engine_options(change["new"])
        self.validate()

    def _apply_preset(self, section: tuple[str, ...], preset: Any) -> None:
        """A preset fills its siblings, as it does in a config file."""
        section_type = self._section_type(section[0]) if section else None
        if section_type is None:
            return
        values = section_type.model_validate({"preset": preset}).model_dump(mode="json")
        self._quiet = True
        try:
            for name, value in values.items():
                row = self.rows.get(".".join((*section, name)))
                if row is not None and name != "preset":
                    write_input(row.spec, row.input, value)
        finally:
            self._quiet = False

    @property
    def valid(self) -> bool:
        """Whether the inputs form a valid configuration."""
        return self._config is not None

    @property
    def errors(self) -> dict[str, str]:
        """Messages by dotted field path ('(config)' for ones without a field)."""
        return dict(self._errors)

    @property
    def config(self) -> RunConfig:
        """The validated configuration; ConfigError lists every invalid field."""
        if self._config is None:
            raise ConfigError(
                [{"loc": k, "value": None, "msg": v} for k, v in self._errors.items()]
            )
        return self._config  # type: ignore[return-value]

    # actions -----------------------------------------------------------------

    def save_yaml(self, path: str | Path | None = None) -> Path:
        """Write the validated configuration as YAML (to the path box by default)."""
        target = Path(path or self.path.value).expanduser()
        text = yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False)
        target.write_text(text)
        self.message.value = f"saved <code>{html.escape(str(target))}</code>"
        return target

    def load_yaml(self, path: str | Path | None = None) -> None:
        """Fill the form from a YAML or JSON file; invalid values show their errors."""
        source = Path(path or self.path.value).expanduser()
        data = read_config_file(source)
        self.set_config(data)
        unknown = sorted(
            f"{section}.{name}" if isinstance(body, dict) else section
            for section, body in data.items()
            for name in (body if isinstance(body, dict) else [None])
            if (f"{section}.{name}" if name else section) not in self.rows
        )
        note = f"; ignored unknown field(s): {', '.join(unknown)}" if unknown else ""
        self.message.value = (
            f"loaded <code>{html.escape(str(source))}</code>{html.escape(note)}"
        )

    def on_submit(self, callback: Callable[[Run], None]) -> None:
        """Call ``callback(run)`` after each successful submission."""
        self._callbacks.append(callback)

    def submit(self) -> Run | None:
        """Submit the configuration (Submit button); None if it is invalid."""
        if not self.validate():
            return None
        submit = self._submit
        if submit is None:
            from simlab.service.submission import submit
        try:
            run = submit(self.config)
        except ConfigError as exc:  # refused: each message next to its field
            self._errors = self._locate(exc.errors)
            for key, row in {**self.rows, **self.option_rows}.items():
                row.show_error(self._errors.get(key))
            self.message.value = (
                f"<span style='{_ERROR_STYLE}'>submission refused: "
                f"{len(self._errors)} invalid field(s), shown next to them</span>"
            )
            return None
        except SimlabError as exc:  # refused for a reason the form cannot show
            self.message.value = (
                f"<span style='{_ERROR_STYLE}'>submission refused: "
                f"{html.escape(str(exc))}</span>"
            )
            return None
        except Exception as exc:  # boundary: show any other failure in the form
            self.message.value = (
                f"<span style='{_ERROR_STYLE}'>submission failed: "
                f"{html.escape(f'{type(exc).__name__}: {exc}')}</span>"
            )
            return None
        self.message.value = f"submitted run <code>{html.escape(run.id)}</code>"
        for callback in self._callbacks:
            callback(run)
        return run

    def _guarded(self, action: Callable[[], Any]) -> None:
        """Run a button's action; show a ConfigError in the form, not a traceback."""
        try:
            action()
        except ConfigError as exc:
            self.message.value = (
                f"<span style='{_ERROR_STYLE}'>{html.escape(str(exc))}</span>"
            )


def _at(data: Any, path: tuple[str, ...]) -> Any:
    """``data[path[0]][path[1]]...``, None where a level is missing."""
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _read(
    rows: dict[str, FieldRow], unreadable: dict[str, str]
) -> Iterator[tuple[FieldRow, Any]]:
    """Each row with the value typed in it; what cannot be read goes to
    ``unreadable`` under the row's key instead."""
    for key, row in rows.items():
        try:
            yield row, read_input(row.spec, row.input)
        except ValueError as exc:
            unreadable[key] = str(exc)
