"""``simlab run`` with no dispatcher up runs its run in its own process.

Each test drives the real command in a process of its own, as a user in a
terminal would, and reads what it left in the run root: the run directory, its
status and log, and whether a dispatcher was started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simlab.dispatch import owner
from simlab.service.run import Run
from simlab.state import owners
from simlab.state.states import State
from tests.helpers import (
    LONG_RUN,
    SIMLAB,
    SMALL_RUN,
    alive,
    assert_runs_agree,
    wait_for,
)

pytestmark = pytest.mark.slow


def _start(*args: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SIMLAB, "run", "--root", str(root), "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _only_run(root: Path) -> Run:
    (status,) = root.glob("[!.]*/status.json")
    return Run(status.parent)


def test_simlab_run_runs_in_its_own_process_when_no_dispatcher_is_up(tmp_path):
    proc = _start(*SMALL_RUN, "--set", "metadata.name=here", root=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run = _only_run(tmp_path)
    assert f"run {run.id} completed" in out
    status = run.status
    assert status["foreground"] is True
    assert status["pid"] == proc.pid and status["owner"]["pid"] == proc.pid
    assert [*status["times"]] == ["created", "queued", "running", "completed"]
    # the engine's process was started while the run directory was made
    assert "(in a process started ahead)" in run.logs()
    assert "pm: step 8/8" in run.logs()
    shown = subprocess.run(
        [*SIMLAB, "status", run.id, "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"runs in:  the simlab run command, pid {proc.pid}" in shown
    # and nothing else was: no dispatcher, no cluster
    assert owners.read_record(tmp_path) is None
    assert not owners.holds_lock(tmp_path)
    assert_runs_agree(tmp_path)


def test_simlab_run_leaves_the_scientific_libraries_to_the_engine_process(tmp_path):
    # the command's own start is on the path to a run's first step: numpy, scipy
    # and dask's distributed load in the engine's process (started ahead), never
    # in the command's (-X importtime is not passed on to the engine's process)
    command = [sys.executable, "-X", "importtime", "-m", "simlab.cli", "run"]
    done = subprocess.run(
        [*command, "--root", str(tmp_path), "--quiet", *SMALL_RUN],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"simlab.service.submission", "simlab.engines.pm"} <= imported
    assert not {"numpy", "scipy", "distributed", "xarray"} & imported
    assert _only_run(tmp_path).state is State.COMPLETED


def test_simlab_run_hands_its_run_to_a_dispatcher_that_is_up(tmp_path):
    owner.ensure(tmp_path)
    try:
        assert wait_for(lambda: owners.read_record(tmp_path), 60)
        dispatcher = owners.read_record(tmp_path)["pid"]
        proc = _start(*SMALL_RUN, root=tmp_path)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        status = _only_run(tmp_path).status
        assert status["state"] == State.COMPLETED.value
        assert "foreground" not in status
        assert status["owner"]["pid"] == dispatcher
        assert status["pid"] not in (proc.pid, dispatcher)  # its cluster's worker
    finally:
        owner.stop(tmp_path)


def test_a_time_limit_is_continued_segment_by_segment_in_the_foreground(tmp_path):
    proc = _start(
        "--set", "box.particles_per_side=32", "--set", "box.size=128",
        "--set", "gravity.steps=200", "--set", "code.options.time_limit=1.0",
        root=tmp_path,
    )  # fmt: skip
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    run = _only_run(tmp_path)
    log = run.logs()
    assert log.count("(time limit reached)") >= 1, log
    assert log.count("pm: resumed at step") == log.count("(time limit reached)")
    assert run.state is State.COMPLETED and run.status["foreground"] is True
    assert run.status["segment"] == log.count("pm: resumed at step") + 1
    assert run.status["progress"]["step"] == 200


def test_kill_9_of_simlab_run_fails_its_run_and_ends_the_engine(tmp_path):
    proc = _start(*LONG_RUN, root=tmp_path)
    assert wait_for(lambda: list(tmp_path.glob("[!.]*/status.json")), 120)
    run = _only_run(tmp_path)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 120)
    engine = run.status["job_pid"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    # the engine writes to nobody now: it ends at its next line of output
    assert wait_for(lambda: not alive(engine), 30)
    listed = subprocess.run(
        [*SIMLAB, "ls", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert run.state is State.FAILED
    reason = run.status["reason"]
    assert f"its command {proc.pid} on" in reason and "is gone" in reason, reason
    assert "pm: step 2/" in run.logs()
    assert_runs_agree(tmp_path)


def test_a_run_its_command_stops_following_is_cancelled_not_left(tmp_path, monkeypatch):
    from simlab.service import submission

    def follow_then_fail(run: Run, show_progress: bool) -> None:
        assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 120)
        raise OSError("the terminal went away")

    monkeypatch.setattr(submission, "_follow", follow_then_fail)
    config = {
        "box": {"size": 128.0, "particles_per_side": 32},
        "gravity": {"steps": 2000},
    }
    with pytest.raises(OSError, match="terminal went away"):
        submission.run(config, root=tmp_path, progress=False, here=True)
    run = _only_run(tmp_path)
    assert run.status["foreground"] is True
    assert run.state is State.CANCELLED
    assert (
        "its command stopped following it: the terminal went away"
        in (run.status["reason"])
    )
    assert not alive(run.status["job_pid"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_a_closed_terminal_cancels_the_foreground_run(sig, tmp_path):
    proc = _start(*LONG_RUN, root=tmp_path)
    assert wait_for(lambda: list(tmp_path.glob("[!.]*/status.json")), 120)
    run = _only_run(tmp_path)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 120)
    engine = run.status["job_pid"]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "the run was cancelled" in err and "Traceback" not in err
    assert run.state is State.CANCELLED
    name = signal.Signals(sig).name
    assert (
        run.status["reason"]
        == f"interrupted by {name} in the foreground (while running)"
    )
    assert not alive(engine)
    assert_runs_agree(tmp_path)


def test_a_refused_run_starts_no_engine_process(tmp_path, monkeypatch):
    import dask.config

    from simlab.service import foreground, submission

    started = []
    monkeypatch.setattr(foreground, "start_engine_ahead", started.append)
    with (
        dask.config.set({"simlab.max-active-runs": 0}),
        pytest.raises(submission.LimitError),
    ):
        submission.run({"box": {"particles_per_side": 8}}, root=tmp_path, here=True)
    assert started == []
    assert not list(tmp_path.glob("[!.]*/status.json"))
