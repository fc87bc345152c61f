"""SweepBuilder: pick parameters and values, see the grid, launch and follow a sweep.

Parameters are the notebook names :func:`simlab.service.sweeps.config_fields`
maps to RunConfig fields; values are typed per field (from the same schema the
form uses). Launching calls ``simlab.sweep(template, grid=..., base=...,
cluster=..., wait=False)``.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from simlab.config import RunConfig
from simlab.widgets import styles
from simlab.widgets.inputs import read_input
from simlab.widgets.schema import FieldSpec, sections

if TYPE_CHECKING:
    from simlab.widgets.form import RunForm

_ERROR_STYLE = styles.ERROR
#: Kinds of field a sweep can vary.
_SWEEPABLE = ("integer", "number", "enum", "boolean", "string")


def parameter_fields() -> dict[str, FieldSpec]:
    """Sweepable notebook parameter names → the RunConfig field they set."""
    specs = {f.key: f for s in sections(RunConfig) for f in s.fields}
    from simlab.service.sweeps import config_fields

    names = config_fields()
    return {
        name: specs[path]
        for name, path in sorted(names.items())
        if path in specs and specs[path].kind in _SWEEPABLE
    }


class _ParameterRow(widgets.HBox):
    def __init__(
        self, names: list[str], on_change: Callable[[], None], remove: Callable
    ) -> None:
        self.name = widgets.Dropdown(options=names, description="parameter")
        self.values = widgets.Text(
            placeholder="values, comma-separated", continuous_update=True
        )
        self.error = widgets.HTML()
        drop = widgets.Button(icon="trash", layout=widgets.Layout(width="40px"))
        drop.on_click(lambda _: remove(self))
        self.name.observe(lambda _: on_change(), names="value")
        self.values.observe(lambda _: on_change(), names="value")
        super().__init__([self.name, self.values, drop, self.error])


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
        self.fields = parameter_fields()
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
        self.update()

    def add_parameter(self, name: str | None = None, values: str = "") -> None:
        """Add a row; ``name`` and ``values`` fill it (e.g. "sigma8", "0.7, 0.8")."""
        row = _ParameterRow(list(self.fields), self.update, self._remove)
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
        """The grid typed so far and the problems found reading it."""
        grid: dict[str, list[Any]] = {}
        problems: list[str] = []
        for row in self.rows_box.children:
            spec = self.fields[row.name.value]
            values = []
            for part in (p.strip() for p in row.values.value.split(",")):
                if not part:
                    continue
                probe = widgets.Text(part)
                try:
                    value = read_input(spec, probe) if spec.kind != "enum" else part
                except ValueError as exc:
                    problems.append(f"{row.name.value}: {exc}")
                    continue
                if spec.kind == "boolean":
                    value = part.lower() in ("1", "true", "yes")
                if spec.kind == "enum":
                    value = next((c for c in spec.choices if str(c) == part), part)
                values.append(value)
            row.error.value = ""
            if row.name.value in grid:
                problems.append(f"{row.name.value} appears twice")
            elif values:
                grid[row.name.value] = values
            else:
                row.error.value = f"<span style='{_ERROR_STYLE}'>no values</span>"
        return grid, problems

    def update(self) -> None:
        """Redraw the grid size and whether Launch is possible."""
        grid, problems = self.grid()
        count = math.prod(len(v) for v in grid.values()) if grid else 0
        shape = " × ".join(str(len(v)) for v in grid.values())
        self.size.value = (
            f"grid: {shape} = <b>{count}</b> run(s)" if grid else "grid: no parameters"
        )
        if problems:
            self.size.value += "".join(
                f"<br><span style='{_ERROR_STYLE}'>{html.escape(p)}</span>"
                for p in problems
            )
        self.launch_button.disabled = not (grid and not problems)

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
            self.sweep = sweep(
                self.template.value,
                grid=grid,
                base=self._base_config(),
                cluster=self.cluster.value.strip() or None,
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
