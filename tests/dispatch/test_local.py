"""Runs through a real LocalCluster: cancel, failure reasons, nothing left running."""

from __future__ import annotations

import os
import time

import pytest

from simlab.api import create
from simlab.dispatch.dispatcher import Dispatcher
from simlab.dispatch.task import execute
from simlab.runs.states import State

LONG = {
    "box": {"size": 128.0, "particles_per_side": 32},
    "gravity": {"steps": 2000},
    "metadata": {"name": "long"},
}


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_cancel_ends_a_running_run_and_its_process(tmp_path):
    run = create(LONG, root=tmp_path)
    with Dispatcher() as dispatcher:
        future = dispatcher.submit(run.dir)
        assert _wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
        assert run.state is State.RUNNING
        pid = run.status["job_pid"]
        assert _alive(pid)
        started = time.monotonic()
        run.cancel()
        assert future.result(timeout=30) == "cancelled"
        assert time.monotonic() - started < 10
    assert run.state is State.CANCELLED
    assert not _alive(pid)
    assert "cancel requested" in run.logs()
    assert [e["state"] for e in run.dir.events()][-1] == "cancelled"


def test_engine_crash_marks_run_failed_with_reason_and_log(tmp_path):
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    (run.dir.inputs / "ics.hdf5").unlink()  # the engine will not find its ICs
    run.dir.transition("queued")
    assert execute(run.path) == "failed"
    status = run.status
    assert status["state"] == "failed"
    assert status["returncode"] != 0
    assert "exited with status" in status["reason"]
    assert any("ics.hdf5" in line for line in status["log_tail"])
    assert "ics.hdf5" in run.logs()


def test_missing_executable_fails_cleanly(tmp_path, monkeypatch):
    from simlab.engines import pm

    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    monkeypatch.setattr(
        pm.PMEngine, "command", lambda self, config, rundir: ["/nonexistent/code"]
    )
    run.dir.transition("queued")
    assert execute(run.path) == "failed"
    assert "cannot start '/nonexistent/code'" in run.status["reason"]


def test_cancel_before_start_never_launches(tmp_path):
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    run.dir.transition("queued")
    run.dir.request("cancel")
    assert execute(run.path) == "cancelled"
    assert "job_pid" not in run.status
