"""RunTable: the user's runs from the catalogue, filtered and sorted, one selectable.

The listing is a query of :class:`~simlab.state.catalog.Catalog` (synced from the
run directories first), so it scales to thousands of runs; selecting a run opens
its :class:`RunMonitor` or :class:`SnapshotViewer` below the table. A background
thread syncs the catalogue every ``poll`` seconds, as the Lab sidebar does, and
redoes the query when a run changed, so the table never lags behind the other
views of the same runs.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from simlab.state.catalog import TIME_COLUMNS, Catalog
from simlab.state.states import State
from simlab.widgets import styles

ALL = "(all)"
_MONO_CSS = "<style>.simlab-mono select { font-family: monospace; }</style>"
_ROW = "{state:<12} {fraction:>4} {engine:<8} {name:<20} {created:<19} {id}"


def format_row(row: dict[str, Any]) -> str:
    """One fixed-width line of the listing."""
    fraction = row.get("fraction")
    done = (
        "100%"
        if row["state"] == "completed"
        else (f"{100 * fraction:.0f}%" if fraction is not None else "")
    )
    return _ROW.format(
        state=row["state"],
        fraction=done,
        engine=row.get("engine") or "",
        name=(row.get("name") or "")[:20],
        created=(row.get("created") or "")[:19].replace("T", " "),
        id=row["id"],
    )


class RunTable(widgets.VBox):
    """Filter, sort and pick runs; open the picked one in a monitor or viewer.

    Parameters
    ----------
    root : path, optional
        run root (default: the ``simlab.run-root`` setting)
    sweep : str, optional
        show only the runs of this sweep
    per_page : int
        rows shown
    poll : float or None
        seconds between syncs of the catalogue in the background (None: only on
        Refresh and when a filter changes)
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        sweep: str | None = None,
        per_page: int = 200,
        poll: float | None = 2.0,
    ) -> None:
        from simlab.settings import run_root

        self.catalog = Catalog(root or run_root())
        self.sweep = sweep
        self.per_page = per_page
        self.poll = poll
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = widgets.Dropdown(
            options=[ALL, *(s.value for s in State)], description="state"
        )
        self.code = widgets.Dropdown(options=[ALL], description="code")
        self.tag = widgets.Text(description="tag", placeholder="any")
        self.text = widgets.Text(description="name", placeholder="contains")
        orders = [*TIME_COLUMNS, "name", "state", "engine"]
        self.order = widgets.Dropdown(
            options=orders, value="created", description="sort"
        )
        self.descending = widgets.Checkbox(value=True, description="newest first")
        self.listing = widgets.Select(rows=12, layout=widgets.Layout(width="100%"))
        self.listing.add_class("simlab-mono")
        self.header = widgets.HTML()
        self.detail = widgets.HTML()
        self.monitor_button = widgets.Button(description="Monitor", icon="line-chart")
        self.view_button = widgets.Button(description="View snapshots", icon="eye")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.monitor_button.on_click(lambda _: self.open_monitor())
        self.view_button.on_click(lambda _: self.open_viewer())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.area = widgets.VBox()
        self.message = widgets.HTML()
        self.rows: list[dict[str, Any]] = []
        self.total = 0
        for control in (
            self.state,
            self.code,
            self.tag,
            self.text,
            self.order,
            self.descending,
        ):
            control.observe(lambda _: self.refresh(), names="value")
        self.listing.observe(lambda _: self._show_detail(), names="value")
        super().__init__(
            [
                widgets.HTML(_MONO_CSS),
                widgets.HBox([self.state, self.code, self.tag]),
                widgets.HBox([self.text, self.order, self.descending]),
                self.header,
                self.listing,
                self.detail,
                widgets.HBox(
                    [self.monitor_button, self.view_button, self.refresh_button]
                ),
                self.message,
                self.area,
            ]
        )
        self.refresh()
        if poll:
            self.start()

    def start(self) -> None:
        """Follow the run root in the background (no-op if already following)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._follow, name="simlab-run-table", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop following the run root (Refresh still works)."""
        self._stop.set()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.refresh(only_if_changed=True)
            except (OSError, ValueError) as exc:  # a run directory mid-change
                self.message.value = html.escape(f"cannot read the runs: {exc}")

    def refresh(self, *, only_if_changed: bool = False) -> None:
        """Sync the catalogue with the run directories and redo the query (the
        widgets are redrawn only when the rows changed if ``only_if_changed``:
        another process may have changed the catalogue itself)."""
        with self._lock:
            self.catalog.sync()
            engines = sorted(e for e in self.catalog.counts()["engine"] if e)
            if list(self.code.options) != [ALL, *engines]:
                current = self.code.value
                self.code.options = [ALL, *engines]
                self.code.value = current if current in engines else ALL
            order = ("-" if self.descending.value else "") + self.order.value
            rows, total = self.catalog.query(
                state=None if self.state.value == ALL else self.state.value,
                code=None if self.code.value == ALL else self.code.value,
                tag=self.tag.value.strip() or None,
                text=self.text.value.strip() or None,
                sweep=self.sweep,
                order=order,
                per_page=self.per_page,
            )
            if only_if_changed and (rows, total) == (self.rows, self.total):
                return
            self.rows, self.total = rows, total
            self._draw()

    def _draw(self) -> None:
        selected = self.listing.value
        self.listing.options = [(format_row(r), r["id"]) for r in self.rows]
        ids = [r["id"] for r in self.rows]
        self.listing.value = selected if selected in ids else None
        self._show_detail()
        head = _ROW.format(
            state="state",
            fraction="done",
            engine="code",
            name="name",
            created="created (UTC)",
            id="id",
        )
        self.header.value = (
            f"<pre style='margin:0'>{html.escape(head)}</pre>"
            f"<span style='{styles.MUTED}'>"
            f"{len(self.rows)} of {self.total} run(s)</span>"
        )

    def _show_detail(self) -> None:
        """The selected run's id, state and, once it ended, why (as text)."""
        row = next((r for r in self.rows if r["id"] == self.listing.value), None)
        if row is None:
            self.detail.value = ""
            return
        text = f"<code>{html.escape(row['id'])}</code> · {html.escape(row['state'])}"
        if row.get("reason"):
            style = styles.ERROR if row["state"] in ("failed", "corrupt") else ""
            text += f"<br><span style='{style}'>{html.escape(row['reason'])}</span>"
        self.detail.value = text

    @property
    def selected(self) -> Any:
        """The selected :class:`~simlab.Run`, or None."""
        from simlab.service.run import Run

        row = next((r for r in self.rows if r["id"] == self.listing.value), None)
        return Run(row["path"]) if row else None

    def open_monitor(self) -> Any:
        """Show a RunMonitor for the selected run below the table."""
        from simlab.widgets.monitor import RunMonitor

        run = self.selected
        if run is None:
            self.message.value = "select a run first"
            return None
        monitor = RunMonitor(run)
        self.area.children = [monitor]
        return monitor

    def open_viewer(self) -> Any:
        """Show the selected run's snapshots below the table (the interactive
        viewer, or the static one without ipympl)."""
        from simlab.widgets.interactive import explore

        run = self.selected
        if run is None:
            self.message.value = "select a run first"
            return None
        try:
            viewer = explore(run)
        except ValueError as exc:
            self.message.value = html.escape(str(exc))
            return None
        self.area.children = [viewer]
        return viewer
