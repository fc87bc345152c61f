"""RunMonitor: a run's state, progress, timing, log tail, snapshots and controls.

A daemon thread reads the run directory (status.json, the log, output/) every
``poll`` seconds and updates the widgets; the kernel stays free, and the thread
ends by itself once the run reaches a final state. The run directory is the only
source: a monitor can be opened on any run, from any process.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from simlab.service.cost import format_bytes, format_seconds
from simlab.service.eta import measured, remaining
from simlab.service.run import state_badge
from simlab.state.states import State
from simlab.widgets import styles

if TYPE_CHECKING:
    from simlab.service.run import Run

logger = logging.getLogger(__name__)

#: Bytes read from the end of the log for the tail.
_TAIL_BYTES = 16_384


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, reading only its end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_BYTES))
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _parse_time(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def timing(
    status: dict[str, Any], now: datetime | None = None
) -> tuple[float, float | None]:
    """Elapsed seconds of the current segment and the measured ETA (None if not
    measured yet, or the run is not running): :func:`simlab.service.eta.measured`.
    """
    times = status.get("times") or {}
    started = _parse_time(times.get("running"))
    if started is None:
        return 0.0, None
    state = State(status["state"])
    end = _parse_time(times.get(state.value)) if state.is_final else None
    elapsed = max(0.0, ((end or now or datetime.now(UTC)) - started).total_seconds())
    stamp = now.timestamp() if now is not None else None
    eta = measured(status, stamp)
    return elapsed, eta.seconds if eta is not None else None


def _failure_html(status: dict[str, Any]) -> tuple[str, str]:
    """The reason of an ended run and its evidence lines, as text on the page."""
    reason = status.get("reason")
    if not reason:
        return "", ""
    state = State(status["state"])
    style = styles.ERROR if state in (State.FAILED, State.CORRUPT) else styles.MUTED
    shown = f"<span style='{style}'>{html.escape(reason)}</span>"
    lines = (status.get("diagnosis") or {}).get("lines") or []
    if not lines:
        return shown, ""
    evidence = html.escape("\n".join(lines))
    return shown, f"<pre style='{styles.LOG}'>{evidence}</pre>"


class RunMonitor(widgets.VBox):
    """Watch one run: state badge, progress, ETA, log tail, snapshots, cancel/stop.

    Parameters
    ----------
    run : Run
        the run to watch
    poll : float
        seconds between reads of the run directory
    autostart : bool
        start the background updates now (else call :meth:`start`)
    open_snapshot : callable, optional
        ``f(run, index)`` called by a snapshot's "view" button; by default a
        :class:`~simlab.widgets.viewer.SnapshotViewer` opens below the monitor
    view_when_done : bool
        open the last snapshot once the run has completed
    """

    def __init__(
        self,
        run: Run,
        *,
        poll: float = 1.0,
        autostart: bool = True,
        open_snapshot: Callable[[Run, int], Any] | None = None,
        view_when_done: bool = False,
    ) -> None:
        self.run = run
        self.view_when_done = view_when_done
        self.poll = poll
        self._open_snapshot = open_snapshot
        self.title = widgets.HTML(
            f"<b>{html.escape(run.id)}</b> "
            f"<span style='{styles.MUTED}'>{html.escape(str(run.path))}</span>"
        )
        self.badge = widgets.HTML()
        self.progress = widgets.FloatProgress(
            min=0.0, max=100.0, layout=widgets.Layout(width="320px")
        )
        self.progress_text = widgets.HTML()
        self.timing = widgets.HTML()
        self.log_view = widgets.HTML()
        self.log_view.add_class("simlab-monitor-log")
        self.reason = widgets.HTML()
        self.diagnosis = widgets.HTML()
        self.cancel_button = widgets.Button(
            description="Cancel", button_style="danger", icon="stop"
        )
        self.stop_button = widgets.Button(
            description="Stop with checkpoint", button_style="warning", icon="pause"
        )
        self.confirm_button = widgets.Button(
            description="Yes, cancel the run", button_style="danger"
        )
        self.resume_button = widgets.Button(
            description="Resume",
            button_style="primary",
            icon="play",
            tooltip="continue from the checkpoint or the last snapshot",
            layout=widgets.Layout(display="none"),
        )
        self.keep_button = widgets.Button(description="No, keep it running")
        self.confirm = widgets.HBox(
            [widgets.HTML("Cancel this run?"), self.confirm_button, self.keep_button],
            layout=widgets.Layout(display="none"),
        )
        self.cancel_button.on_click(lambda _: self.ask_cancel())
        self.confirm_button.on_click(lambda _: self.confirm_cancel())
        self.keep_button.on_click(lambda _: self._hide_confirm())
        self.stop_button.on_click(lambda _: self.request_stop())
        self.resume_button.on_click(lambda _: self.resume())
        self.message = widgets.HTML()
        self.snapshot_list = widgets.VBox()
        self.viewer_area = widgets.VBox()
        self.state: str = ""
        self.settled = False
        self._shown_snapshots: list[Path] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._resumable: bool | None = None
        self._state_callbacks: list[Callable[[str], Any]] = []
        super().__init__(
            [
                widgets.HBox([self.title, self.badge]),
                widgets.HBox([self.progress, self.progress_text]),
                self.timing,
                self.reason,
                self.diagnosis,
                widgets.HBox(
                    [self.cancel_button, self.stop_button, self.resume_button]
                ),
                self.confirm,
                self.message,
                widgets.HTML("<b>Log</b>"),
                self.log_view,
                widgets.HTML("<b>Snapshots</b>"),
                self.snapshot_list,
                self.viewer_area,
            ]
        )
        self.add_class("simlab-monitor")
        self.refresh()
        if autostart:
            self.start()

    # updates -----------------------------------------------------------------

    def start(self) -> None:
        """Start the background updates (no-op if running or the run has ended)."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self.settled:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"simlab-monitor-{self.run.id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the background updates (the run itself goes on)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the updates to end (the run to end); True if they have."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def updating(self) -> bool:
        """Whether the background thread is still following the run."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.refresh()
            except (OSError, ValueError) as exc:  # a status file mid-replacement
                self.message.value = html.escape(f"cannot read the run: {exc}")
                continue
            if self.settled:
                break
        if self.view_when_done and self.state == State.COMPLETED and self.run.snapshots:
            self._view_last()

    def _view_last(self) -> None:
        """Open the completed run's last snapshot. A failure is shown in the
        monitor: raised in this thread, it would end with it unseen."""
        last = len(self.run.snapshots) - 1
        try:
            self.open_snapshot(last)
        except Exception as exc:  # whatever the viewer met, the user is told
            logger.exception("opening snapshot %d of run %s", last, self.run.id)
            self.message.value = html.escape(
                f"could not open snapshot {last} in the viewer: {exc}; "
                "its view button under Snapshots tries again"
            )

    def on_state(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(state)`` whenever the run's state changes."""
        self._state_callbacks.append(callback)

    def refresh(self) -> None:
        """Read the run directory once and update every part of the monitor."""
        with self._lock:
            status = self.run.status
            changed = status["state"] != self.state
            self.state = status["state"]
            state = State(self.state)
            self.badge.value = state_badge(self.state)
            progress = status.get("progress") or {}
            fraction = float(progress.get("fraction") or 0.0)
            if state == State.COMPLETED:
                fraction = 1.0
            self.progress.value = round(100.0 * fraction, 1)
            self.progress.bar_style = {
                "completed": "success",
                "failed": "danger",
                "cancelled": "warning",
            }.get(self.state, "info")
            self.progress_text.value = self._progress_text(progress, fraction)
            self.timing.value = self._timing_text(status)
            self.reason.value, self.diagnosis.value = _failure_html(status)
            self.settled = state.is_final or (
                state == State.CHECKPOINTED and bool(status.get("stop_requested"))
            )
            self._show_controls(state)
            tail = log_tail(self.run.dir.log_path)
            self.log_view.value = f"<pre style='{styles.LOG}'>{html.escape(tail)}</pre>"
            self._update_snapshots()
        if changed:
            for callback in self._state_callbacks:
                callback(self.state)

    def _show_controls(self, state: State) -> None:
        """Cancel and Stop while they can act, Resume once the run can go on."""
        active = state in (State.CREATED, State.QUEUED, State.RUNNING)
        self.cancel_button.disabled = not active
        self.cancel_button.layout.display = "" if active else "none"
        self.stop_button.disabled = state != State.RUNNING
        self.stop_button.layout.display = "" if active else "none"
        if not active:
            self._hide_confirm()
        resumable = state in (State.CHECKPOINTED, State.FAILED, State.CANCELLED)
        if resumable and self._resumable is None:
            self._resumable = self.run.restart_command() is not None
        elif not resumable:
            self._resumable = None
        show = resumable and bool(self._resumable)
        self.resume_button.disabled = not show
        self.resume_button.layout.display = "" if show else "none"

    def _progress_text(self, progress: dict[str, Any], fraction: float) -> str:
        parts = [f"{100 * fraction:.0f}%"]
        if progress:
            steps = progress.get("steps")
            step = progress.get("step")
            parts.append(f"step {step}/{steps}" if steps else f"step {step}")
            parts.append(f"a = {progress['a']:.4f}")
            parts.append(f"z = {progress['z']:.2f}")
        return " · ".join(parts)

    def _timing_text(self, status: dict[str, Any]) -> str:
        elapsed, _ = timing(status)
        state = State(status["state"])
        if state == State.COMPLETED:
            return f"took {format_seconds(elapsed)}"
        if state.is_final or state == State.CHECKPOINTED:
            ran = (status.get("times") or {}).get("running")
            return f"{state.value} after {format_seconds(elapsed)}" if ran else ""
        eta = remaining(status, lambda: self.run.config, self.run.path.parent)
        if eta is None:
            return f"elapsed {format_seconds(elapsed)}"
        if eta.source == "model":
            return (
                f"elapsed {format_seconds(elapsed)} · "
                f"ETA ≈ {format_seconds(eta.seconds)} (cost model)"
            )
        if eta.seconds < 1.0:  # the last step is done; the code is writing outputs
            return f"elapsed {format_seconds(elapsed)} · finishing"
        return f"elapsed {format_seconds(elapsed)} · ETA {format_seconds(eta.seconds)}"

    def _update_snapshots(self) -> None:
        snapshots = self.run.snapshots
        if snapshots == self._shown_snapshots:
            return
        times = self.run.config.outputs.times
        rows = []
        for index, path in enumerate(snapshots):
            a = times[index] if index < len(times) else None
            when = f"a = {a:.4f}, z = {1 / a - 1:.2f}" if a else ""
            button = widgets.Button(description="view", icon="eye")
            button.on_click(lambda _, i=index: self.open_snapshot(i))
            size = format_bytes(path.stat().st_size) if path.exists() else ""
            rows.append(
                widgets.HBox(
                    [
                        widgets.HTML(
                            f"<code>{html.escape(path.name)}</code> {when} · {size}",
                            layout=widgets.Layout(width="420px"),
                        ),
                        button,
                    ]
                )
            )
        self.snapshot_list.children = rows
        self._shown_snapshots = list(snapshots)

    # actions -----------------------------------------------------------------

    def open_snapshot(self, index: int) -> Any:
        """Open snapshot ``index`` in the viewer (or the ``open_snapshot`` hook):
        the interactive one, or the static one without ipympl."""
        if self._open_snapshot is not None:
            return self._open_snapshot(self.run, index)
        from simlab.widgets.interactive import explore

        viewer = explore(self.run, index=index)
        self.viewer_area.children = [viewer]
        return viewer

    def ask_cancel(self) -> None:
        """Show the confirmation; nothing is cancelled until it is confirmed."""
        self.confirm.layout.display = ""

    def _hide_confirm(self) -> None:
        self.confirm.layout.display = "none"

    def confirm_cancel(self) -> None:
        """Cancel the run (the confirmation's "yes")."""
        self._hide_confirm()
        self.run.cancel()
        self.message.value = "cancel requested"
        self.refresh()

    def resume(self) -> None:
        """Continue the run as a new segment and follow it again."""
        from simlab.errors import RunError

        try:
            self.run.resume()
        except RunError as exc:
            self.message.value = (
                f"<span style='{styles.ERROR}'>{html.escape(str(exc))}</span>"
            )
            return
        self.message.value = "resumed: the run continues as a new segment"
        self._resumable = None
        self.refresh()
        self.start()

    def request_stop(self) -> None:
        """Ask the code to write a checkpoint and stop (the run ends checkpointed)."""
        from simlab.errors import RunError

        try:
            self.run.stop()
        except RunError as exc:
            self.message.value = html.escape(str(exc))
            return
        self.message.value = (
            "stop requested: the code writes a checkpoint and the run ends "
            "<i>checkpointed</i>"
        )
