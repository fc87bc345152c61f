"""``simlab.widgets.launcher()``: the one-cell entry point, form → monitor → viewer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from simlab.widgets.form import RunForm
from simlab.widgets.monitor import RunMonitor
from simlab.widgets.sweep import SweepBuilder
from simlab.widgets.table import RunTable

if TYPE_CHECKING:
    from simlab.config import RunConfig
    from simlab.service.run import Run


class Launcher(widgets.VBox):
    """Tabs for a new run, the run list and sweeps; a submitted run is followed
    below them, and its last snapshot opens in the viewer when it completes."""

    def __init__(
        self, config: RunConfig | dict[str, Any] | None = None, *, poll: float = 1.0
    ) -> None:
        self.poll = poll
        self.form = RunForm(config)
        self.table = RunTable()
        self.sweeps = SweepBuilder(self.form)
        self.tabs = widgets.Tab(
            [self.form, self.table, self.sweeps], titles=["New run", "Runs", "Sweep"]
        )
        self.area = widgets.VBox()
        self.monitor: RunMonitor | None = None
        self.form.on_submit(self.follow)
        # the Runs tab lists what the catalogue says now, not when it was opened
        self.tabs.observe(self._tab_shown, names="selected_index")
        super().__init__([widgets.HTML("<h3>simlab</h3>"), self.tabs, self.area])
        self.add_class("simlab-launcher")

    def follow(self, run: Run) -> RunMonitor:
        """Show a monitor for ``run`` (called when the form submits)."""
        if self.monitor is not None:
            self.monitor.stop()
        self.monitor = RunMonitor(run, poll=self.poll, view_when_done=True)
        self.monitor.on_state(lambda _: self.table.refresh())
        self.area.children = [self.monitor]
        self.table.refresh()
        return self.monitor

    def _tab_shown(self, change: dict[str, Any]) -> None:
        if change["new"] == 1:
            self.table.refresh()


def launcher(
    config: RunConfig | dict[str, Any] | None = None, *, poll: float = 1.0
) -> Launcher:
    """The simlab launcher: configure and submit a run, watch it, view its snapshots.

    Examples
    --------
    In a notebook cell::

        import simlab.widgets
        simlab.widgets.launcher()
    """
    return Launcher(config, poll=poll)
