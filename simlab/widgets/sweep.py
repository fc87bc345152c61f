"""SweepBuilder: pick parameters and values, see the grid, launch and follow a sweep.

Each RunConfig field is offered once, under the name a sweep knows it by
(:func:`simlab.service.sweeps.field_names`: the template's own name for it, else
the field's name). Every value is checked as it is typed, by the configuration's
own validators on the base configuration, so the messages are the form's, and
Launch stays disabled while anything is invalid. Launching calls
``simlab.sweep(template, grid=..., base=..., name=<base run name>, wait=False)``,
which names each point's run after the base name and its values.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from simlab.config import RunConfig, apply_overrides
from simlab.errors import ConfigError
from simlab.widgets import styles
from simlab.widgets.inputs import read_input
from simlab.widgets.schema import FieldSpec, sections

if TYPE_CHECKING:
    from simlab.widgets.form import RunForm

_ERROR_STYLE = styles.ERROR
_BASE_PROBLEM = "the base configuration is invalid"
#: Kinds of field a sweep can vary.
_SWEEPABLE = ("integer", "number", "enum", "boolean", "string")


def parameter_fields(template: str = "run_simulation") -> dict[str, FieldSpec]:
    """Sweepable parameter names → the RunConfig field each sets, one per field."""
    from simlab.service.sweeps import SweepError, field_names
    from simlab.service.sweeps.validation import notebook_parameters
    from simlab.templates import template_path

    try:
        declared = notebook_parameters(template_path(template))
    except (OSError, ValueError, SweepError):  # no such template: plain names
        declared = {}
    names = field_names(declared)
    return {
        names[spec.key]: spec
        for section in sections(RunConfig)
        for spec in section.fields
        if spec.kind in _SWEEPABLE and spec.key in names
    }


def field_error(spec: FieldSpec, value: Any, base: RunConfig) -> str | None:
    """The form's message for ``value`` in ``spec``'s field of ``base``, or None
    (``value`` is typed already: no note of what it was read as)."""
    try:
        apply_overrides(base, {spec.key: value}, read_as=False)
    except ConfigError as exc:
        mine = [e["msg"] for e in exc.errors if str(e["loc"]).startswith(spec.key)]
        return "; ".join(mine or [e["msg"] for e in exc.errors])
    return None


class _ParameterRow(widgets.HBox):
    def __init__(
        self,
        fields: dict[str, FieldSpec],
        on_change: Callable[[], None],
        remove: Callable,
    ) -> None:
        options = [(f"{name}  ({spec.key})", name) for name, spec in fields.items()]
        self.name = widgets.Dropdown(options=options, description="parameter")
        self.values = widgets.Text(
            placeholder="values, comma-separated", continuous_update=True
        )
        self.error = widgets.HTML()
        drop = widgets.Button(icon="trash", layout=widgets.Layout(width="40px"))
        drop.on_click(lambda _: remove(self))
        self.name.observe(lambda _: on_change(), names="value")
        self.values.observe(lambda _: on_change(), names="value")
        super().__init__(
            [self.name, self.values, drop, self.error],
            layout=widgets.Layout(flex_flow="row wrap"),
        )


def _typed(spec: FieldSpec, text: str) -> Any:
    """One typed value of ``spec`` from its text (ValueError if it is not one)."""
    if spec.kind == "enum":
        match = next((c for c in spec.choices if str(c) == text), None)
        if match is None:
            allowed = ", ".join(map(str, spec.choices))
            raise ValueError(f"not one of {allowed}")
        return match
    if spec.kind == "boolean":
        words = {"true": True, "yes": True, "1": True}
        words.update({"false": False, "no": False, "0": False})
        if text.lower() not in words:
            raise ValueError("not true or false")
        return words[text.lower()]
    return read_input(spec, widgets.Text(text))


class SweepBuilder(widgets.VBox):
    """Build a grid over RunConfig fields and launch it as a sweep.

    Parameters
    ----------
    base : RunConfig or RunForm, optional
        the configuration the points start from (a form's current config is read
        at launch time)
    template : str
        the notebook template each point runs
    """

    def __init__(
        self, base: RunConfig | RunForm | None = None, template: str = "run_simulation"
    ) -> None:
        self.base = base
        self.fields = parameter_fields(template)
        self.template = widgets.Text(template, description="template")
        self.cluster = widgets.Text("", description="cluster", placeholder="from base")
        self.rows_box = widgets.VBox()
        add = widgets.Button(description="Add parameter", icon="plus")
        add.on_click(lambda _: self.add_parameter())
        self.size = widgets.HTML()
        self.launch_button = widgets.Button(
            description="Launch sweep", button_style="primary", icon="rocket"
        )
        self.launch_button.on_click(lambda _: self.launch())
        self.message = widgets.HTML()
        self.progress = widgets.HTML()
        self.sweep: Any = None
        self._follow: threading.Thread | None = None
        super().__init__(
            [
                widgets.HBox([self.template, self.cluster]),
                self.rows_box,
                add,
                self.size,
                self.launch_button,
                self.message,
                self.progress,
            ]
        )
        self.add_class("simlab-sweep")
        self.update()

    def add_parameter(self, name: str | None = None, values: str = "") -> None:
        """Add a row; ``name`` and ``values`` fill it (e.g. "sigma8", "0.7, 0.8")."""
        row = _ParameterRow(self.fields, self.update, self._remove)
        if name is not None:
            row.name.value = name
        row.values.value = values
        self.rows_box.children = (*self.rows_box.children, row)
        self.update()

    def _remove(self, row: _ParameterRow) -> None:
        self.rows_box.children = tuple(
            r for r in self.rows_box.children if r is not row
        )
        self.update()

    def grid(self) -> tuple[dict[str, list[Any]], list[str]]:
        """The grid typed so far and the problems found reading it.

        Each value is read as its field's type and checked by the configuration's
        validators on the base configuration; its message shows on its row.
        """
        grid: dict[str, list[Any]] = {}
        problems: list[str] = []
        base, base_problem = self._checked_base()
        if base_problem:
            problems.append(base_problem)
        for row in self.rows_box.children:
            name = row.name.value
            spec = self.fields[name]
            values, row_problems = [], []
            for part in (p.strip() for p in row.values.value.split(",")):
                if not part:
                    continue
                try:
                    value = _typed(spec, part)
                except ValueError as exc:
                    row_problems.append(f"{name} = {part}: {exc}")
                    continue
                message = field_error(spec, value, base) if base else None
                if message:
                    row_problems.append(f"{name} = {part}: {message}")
                values.append(value)
            if name in grid:
                row_problems.append(f"{name} appears twice")
            elif not values and not row_problems:
                row_problems.append(f"{name}: no values")
            elif len(set(map(repr, values))) < len(values):
                row_problems.append(f"{name}: a value is given twice")
            else:
                grid[name] = values
            row.error.value = "<br>".join(
                f"<span style='{_ERROR_STYLE}'>{html.escape(p)}</span>"
                for p in row_problems
            )
            problems += row_problems
        return grid, problems

    def update(self) -> None:
        """Redraw the grid size and whether Launch is possible."""
        grid, problems = self.grid()
        count = math.prod(len(v) for v in grid.values()) if grid else 0
        shape = " × ".join(str(len(v)) for v in grid.values())
        if problems:
            # the rows show their own; a bad base configuration has no row
            shown = [p for p in problems if p.startswith(_BASE_PROBLEM)]
            self.size.value = "<br>".join(
                f"<span style='{_ERROR_STYLE}'>{html.escape(p)}</span>"
                for p in [f"{len(problems)} problem(s): fix them to launch", *shown]
            )
        else:
            self.size.value = (
                f"grid: {shape} = <b>{count}</b> run(s)"
                if grid
                else "grid: no parameters"
            )
        self.launch_button.disabled = not (grid and not problems)

    def _checked_base(self) -> tuple[RunConfig | None, str | None]:
        """The base configuration, or None and why it cannot be used."""
        try:
            return self._base_config(), None
        except ConfigError as exc:
            return None, f"{_BASE_PROBLEM}: {exc}"

    def _base_config(self) -> RunConfig:
        from simlab.widgets.form import RunForm

        if isinstance(self.base, RunForm):
            return self.base.config
        return self.base if self.base is not None else RunConfig()

    def launch(self) -> Any:
        """Start the sweep without waiting and follow its points' states."""
        from simlab.service.sweeps import sweep

        grid, problems = self.grid()
        if not grid or problems:
            self.update()
            return None
        try:
            base = self._base_config()
            self.sweep = sweep(
                self.template.value,
                grid=grid,
                base=base,
                cluster=self.cluster.value.strip() or None,
                name=base.metadata.name,
                wait=False,
            )
        except Exception as exc:  # boundary: show validation and launch errors
            self.message.value = (
                f"<pre style='{_ERROR_STYLE}'>{html.escape(str(exc))}</pre>"
            )
            return None
        self.message.value = f"launched sweep <code>{html.escape(self.sweep.id)}</code>"
        self._follow = threading.Thread(target=self._follow_sweep, daemon=True)
        self._follow.start()
        return self.sweep

    def _follow_sweep(self, poll: float = 1.0) -> None:
        from simlab.state.states import State

        stop = threading.Event()
        while True:
            counts = self.sweep.counts()
            self.progress.value = " · ".join(f"{k}: {v}" for k, v in counts.items())
            if all(State(k).is_final for k in counts):
                break
            stop.wait(poll)
