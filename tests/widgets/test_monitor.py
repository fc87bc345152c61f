"""RunMonitor on real runs of the embedded engine through a real LocalCluster."""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import simlab
from simlab.state.states import State
from simlab.widgets.form import RunForm
from simlab.widgets.interactive import InteractiveViewer
from simlab.widgets.monitor import RunMonitor, timing
from tests.helpers import wait_for

SMALL = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "gravity": {"steps": 8},
    "outputs": {"redshifts": [1.0, 0.0]},
    "resources": {"cores": 1},
    "metadata": {"name": "widget-small"},
}
LONG = {
    "box": {"size": 128.0, "particles_per_side": 32},
    "gravity": {"steps": 2000},
    "resources": {"cores": 1},
    "metadata": {"name": "widget-long"},
}


@pytest.mark.slow
def test_monitor_follows_a_submitted_run_to_completed():
    form = RunForm(SMALL)
    run = form.submit()
    assert run is not None, form.message.value
    assert run.id in form.message.value
    monitor = RunMonitor(run, poll=0.2)
    assert monitor.updating
    assert monitor.join(timeout=120), "the monitor still polls a run that ended"
    assert run.state is State.COMPLETED
    assert monitor.state == "completed"
    assert "completed" in monitor.badge.value
    assert monitor.progress.value == 100.0
    assert monitor.progress.bar_style == "success"
    steps = run.progress["steps"]
    assert f"step {steps}/{steps}" in monitor.progress_text.value
    assert "z = 0.00" in monitor.progress_text.value
    assert monitor.timing.value.startswith("took ")  # no ETA for an ended run
    assert "ETA" not in monitor.timing.value
    assert "process exited with status 0" in monitor.log_view.value
    assert monitor.cancel_button.disabled and monitor.stop_button.disabled
    names = [row.children[0].value for row in monitor.snapshot_list.children]
    assert len(names) == 2
    assert "snapshot_000.hdf5" in names[0] and "z = 1.00" in names[0]
    viewer = monitor.open_snapshot(1)
    assert isinstance(viewer, InteractiveViewer)  # ipympl is in the test extra
    assert monitor.viewer_area.children == (viewer,)
    assert np.isfinite(viewer.image_array).any()


@pytest.mark.slow
def test_a_viewer_that_fails_to_open_when_the_run_completes_says_so():
    # the viewer opens from the monitor's thread: its error must reach the user
    def broken_viewer(run, index):
        raise RuntimeError(f"no figure for {run.id} #{index}")

    run = simlab.submit(SMALL)
    monitor = RunMonitor(
        run, poll=0.2, view_when_done=True, open_snapshot=broken_viewer
    )
    assert monitor.join(timeout=120), "the monitor still polls a run that ended"
    assert monitor.state == "completed"
    assert html.unescape(monitor.message.value) == (
        f"could not open snapshot 1 in the viewer: no figure for {run.id} #1; "
        "its view button under Snapshots tries again"
    )


@pytest.mark.slow
def test_cancel_from_the_monitor_cancels_the_run():
    run = simlab.submit(LONG)
    monitor = RunMonitor(run, poll=0.2)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
    monitor.cancel_button.click()
    assert monitor.confirm.layout.display != "none"
    assert run.state is State.RUNNING  # nothing happens before the confirmation
    monitor.keep_button.click()
    assert monitor.confirm.layout.display == "none"
    time.sleep(0.5)
    assert run.state is State.RUNNING
    monitor.cancel_button.click()
    monitor.confirm_button.click()
    assert monitor.join(timeout=60)
    assert run.state is State.CANCELLED
    assert monitor.state == "cancelled"
    assert "cancelled" in monitor.badge.value
    assert 0 < monitor.progress.value < 100
    assert "cancel requested" in run.logs()


def test_eta_is_the_measured_rate_from_the_first_progress_report():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = start.timestamp()
    status = {
        "state": "running",
        "times": {"running": start.isoformat()},
        # 10 s of start-up before the first report, then 0.2 of the run in 20 s
        "progress_start": {"fraction": 0.05, "time": t0 + 10},
        "progress": {"fraction": 0.25, "time": t0 + 30},
    }
    elapsed, eta = timing(status, now=start + timedelta(seconds=30))
    assert elapsed == 30.0
    assert eta == pytest.approx(75.0)  # 0.75 left at 0.01 per second
    elapsed, eta = timing(status, now=start + timedelta(seconds=40))
    assert eta == pytest.approx(65.0)  # counting down between reports
    status["progress"] = {"fraction": 0.051, "time": t0 + 12}
    assert timing(status, now=start + timedelta(seconds=30))[1] is None
    status.update(
        state="failed",
        times={
            **status["times"],
            "failed": (start + timedelta(seconds=50)).isoformat(),
        },
    )
    assert timing(status, now=start + timedelta(hours=1)) == (50.0, None)


@pytest.fixture
def failed_run(tmp_path):
    """A real PM run that failed: its IC file was overwritten with garbage."""
    from simlab.dispatch.task import execute
    from simlab.service.submission import create

    run = create({**SMALL, "metadata": {"name": "broken"}}, root=tmp_path)
    (run.dir.inputs / "ics.hdf5").write_bytes(b"garbage")
    run.dir.transition("queued")
    assert execute(run.path) == "failed"
    return run


def test_a_failed_run_shows_its_reason_as_text_and_no_dead_controls(failed_run):
    monitor = RunMonitor(failed_run, autostart=False)
    status = failed_run.status
    assert monitor.settled and monitor.state == "failed"
    # the reason and the code's own last words are on the page, not in a tooltip
    assert html.escape(status["reason"]) in monitor.reason.value
    for line in status["diagnosis"]["lines"]:
        assert html.escape(line) in monitor.diagnosis.value
    assert "ics.hdf5" in monitor.diagnosis.value
    assert "ETA" not in monitor.timing.value
    assert monitor.timing.value.startswith("failed after ")
    for button in (monitor.cancel_button, monitor.stop_button):
        assert button.disabled and button.layout.display == "none"
    # nothing to continue from (no checkpoint, no snapshot): no Resume either
    assert failed_run.restart_command() is None
    assert monitor.resume_button.layout.display == "none"


def test_run_table_shows_the_selected_runs_reason(failed_run):
    from simlab.widgets.table import RunTable

    table = RunTable(root=failed_run.path.parent)
    assert table.detail.value == ""
    table.listing.value = failed_run.id
    assert failed_run.id in table.detail.value and "failed" in table.detail.value
    assert "var(--jp-error-color1)" in table.detail.value
    assert "ics.hdf5" in table.detail.value


def test_run_table_follows_runs_that_change_without_a_refresh(tmp_path):
    from simlab.service.submission import create
    from simlab.widgets.table import RunTable

    run = create({**SMALL, "metadata": {"name": "followed"}}, root=tmp_path)
    table = RunTable(root=tmp_path, poll=0.1)
    try:
        assert [r["state"] for r in table.rows] == ["created"]
        run.dir.transition("queued")
        assert wait_for(lambda: [r["state"] for r in table.rows] == ["queued"], 10)
        assert table.listing.options[0][0].startswith("queued")
        # a second run, made by another process, shows up as well
        other = create({**SMALL, "metadata": {"name": "another"}}, root=tmp_path)
        assert wait_for(lambda: len(table.rows) == 2, 10), table.rows
        assert other.id in {r["id"] for r in table.rows}
        assert "2 of 2 run(s)" in table.header.value
    finally:
        table.stop()
    assert table._thread is not None
    table._thread.join(5)
    assert not table._thread.is_alive()


@pytest.mark.slow
def test_resume_a_checkpointed_run_from_the_monitor():
    run = simlab.submit(LONG)
    monitor = RunMonitor(run, poll=0.2)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
    assert monitor.resume_button.layout.display == "none"
    assert monitor.cancel_button.layout.display == ""
    monitor.stop_button.click()
    assert monitor.join(timeout=60), "the monitor still polls a stopped run"
    assert run.state is State.CHECKPOINTED and monitor.state == "checkpointed"
    assert monitor.resume_button.layout.display == ""
    assert not monitor.resume_button.disabled
    assert monitor.cancel_button.layout.display == "none"
    step = run.progress["step"]
    monitor.resume_button.click()
    assert monitor.updating, "the monitor follows the resumed run"
    assert wait_for(lambda: (run.progress or {}).get("step", 0) > step, 60), run.status
    assert run.status["segment"] == 2
    assert monitor.state in ("queued", "running")
    assert monitor.resume_button.layout.display == "none"
    assert monitor.cancel_button.layout.display == ""
    run.cancel()
    assert monitor.join(timeout=60)
    assert monitor.state == "cancelled"
