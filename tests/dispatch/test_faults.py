"""The fault matrix: kill -9 of each simlab process, Ctrl-C, a full disk.

After each fault every run ends in a final state with its reason within a bounded
time (or, when it had not started, is taken over and completes), its log is kept,
and ``simlab ls``, the catalogue, the REST view and the run directories agree
(``tests.helpers.assert_runs_agree``; no server runs here, so the REST rows come
from ``SimlabManager.list_runs``, the call the runs handler answers with).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import simlab
from simlab.dispatch.dispatcher import Dispatcher
from simlab.dispatch.owner import Owner
from simlab.service.run import Run
from simlab.state import owners
from simlab.state.states import State
from tests.conftest import IN_CI
from tests.helpers import alive, assert_runs_agree, wait_for

pytestmark = pytest.mark.slow

LONG = {
    "box": {"size": 128.0, "particles_per_side": 32},
    "gravity": {"steps": 2000},
    "metadata": {"name": "long"},
}
SHORT = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "gravity": {"steps": 5},
    "metadata": {"name": "short"},
}


def _running(root: Path, config: dict = LONG) -> Run:
    run = simlab.submit(config, root=root)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 120), run.status
    return run


def test_kill_9_of_the_code_fails_the_run_with_the_signal(tmp_path):
    run = _running(tmp_path)
    os.killpg(run.status["job_pid"], signal.SIGKILL)
    assert wait_for(lambda: run.state.is_final, 30), run.status
    assert run.state is State.FAILED, run.status
    assert "killed by signal 9 (SIGKILL)" in run.status["reason"]
    assert run.status["diagnosis"]["cause"] == "out-of-memory"
    assert "pm: step" in run.logs()
    assert_runs_agree(tmp_path)


def test_kill_9_of_the_dask_worker_fails_the_run_and_ends_its_code(tmp_path):
    run = _running(tmp_path)
    status = run.status
    os.kill(status["pid"], signal.SIGKILL)
    assert wait_for(lambda: run.state.is_final, 60), run.status
    assert run.state is State.FAILED, run.status
    assert run.status["reason"].startswith("lost:")
    assert wait_for(lambda: not alive(status["job_pid"]), 15)
    assert_runs_agree(tmp_path)


def test_kill_9_of_the_dispatcher_fails_the_running_and_requeues_the_rest(tmp_path):
    running = _running(tmp_path)
    waiting = [simlab.submit(SHORT, root=tmp_path) for _ in range(3)]
    assert all(w.state is State.QUEUED for w in waiting)
    record = owners.read_record(tmp_path)
    job = running.status["job_pid"]
    os.kill(record["pid"], signal.SIGKILL)
    # whoever looks next settles: the lost run fails with its reason, the queued
    # ones are taken over by a new dispatcher and run to the end
    assert wait_for(lambda: not alive(record["pid"]), 10)
    started = time.monotonic()
    simlab.runs(root=tmp_path)
    assert wait_for(lambda: running.state.is_final, 60), running.status
    assert running.state is State.FAILED and "lost" in running.status["reason"]
    assert wait_for(lambda: not alive(job), 15)
    assert wait_for(lambda: all(w.state.is_final for w in waiting), 120), [
        w.status for w in waiting
    ]
    assert {w.state for w in waiting} == {State.COMPLETED}
    assert time.monotonic() - started < 120
    assert owners.read_record(tmp_path)["pid"] != record["pid"]
    assert_runs_agree(tmp_path)


def test_cancel_of_a_queued_run_whose_dispatcher_is_gone(tmp_path):
    running = _running(tmp_path)
    waiting = simlab.submit(SHORT, root=tmp_path)
    os.kill(owners.read_record(tmp_path)["pid"], signal.SIGKILL)
    waiting.cancel()
    assert waiting.state is State.CANCELLED
    assert waiting.status["reason"] == "cancelled by the user"
    # the running one is failed by whoever looks next
    assert wait_for(lambda: simlab.runs(root=tmp_path) and running.state.is_final, 60)
    assert running.state is State.FAILED and "lost" in running.status["reason"]
    assert_runs_agree(tmp_path)


#: Seconds a Ctrl-C'd foreground run may take to exit: ~0.1 s on a quiet machine,
#: 5 s at load 10; CI's three xdist workers load the machine more than that.
EXIT_WAIT = 120


def _interruptible() -> None:
    """Let Ctrl-C reach the child as it does in a terminal: a command started as a
    shell's background job (``.ci/run &``) passes SIGINT on ignored, and Python
    then never raises KeyboardInterrupt (both tests hung in such a CI run)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


PYTHON_RUN = """
import sys, simlab
run = simlab.run({config!r}, root={root!r}, progress=False)
"""


def test_ctrl_c_of_simlab_run_cancels_the_run(tmp_path):
    code = PYTHON_RUN.format(config=LONG, root=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    assert wait_for(lambda: list(tmp_path.glob("[!.]*/status.json")), 120)
    (run,) = [Run(p.parent) for p in tmp_path.glob("[!.]*/status.json")]
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 120)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=EXIT_WAIT)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert wait_for(lambda: run.state.is_final, 30), run.status
    assert run.state is State.CANCELLED
    assert run.status["reason"] == (
        "interrupted by Ctrl-C in the foreground (while running)"
    )
    assert_runs_agree(tmp_path)


CANCEL_IMPORTS = """
import sys, time, simlab
run = simlab.submit({config!r}, root={root!r})
while (run.progress or {{}}).get("step", 0) < 2:
    time.sleep(0.1)
run.cancel()
print(sorted(m for m in ("distributed", "dask_jobqueue") if m in sys.modules))
"""


def test_cancelling_a_running_run_does_not_load_the_dispatcher(tmp_path):
    # Ctrl-C of `simlab run` cancels on its way out: importing dask's
    # distributed there took 0.5 s, and over 60 s on CI's loaded machine
    code = CANCEL_IMPORTS.format(config=LONG, root=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240
    )
    assert out.stdout.strip() == "[]", out.stderr
    (run,) = [Run(p.parent) for p in tmp_path.glob("[!.]*/status.json")]
    assert wait_for(lambda: run.state is State.CANCELLED, 60), run.status


def test_ctrl_c_of_the_cli_run_exits_130_and_cancels(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "simlab.cli", "run", "--root", str(tmp_path),
            "--quiet", "--set", "gravity.steps=2000", "--set", "box.size=128",
            "--set", "box.particles_per_side=32",
        ],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )  # fmt: skip
    assert wait_for(lambda: list(tmp_path.glob("[!.]*/status.json")), 120)
    (run,) = [Run(p.parent) for p in tmp_path.glob("[!.]*/status.json")]
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 120)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=EXIT_WAIT)
    assert proc.returncode == 130, err
    assert "the run was cancelled" in err and "Traceback" not in err
    assert wait_for(lambda: run.state is State.CANCELLED, 30), run.status
    assert_runs_agree(tmp_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs as run root: mounted for the test, unmounted after."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.strip()} (needs root)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    yield mount
    from tests.conftest import stop_dispatchers

    stop_dispatchers(mount)
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_run_with_enospc_in_status_and_log(small_disk):
    config = {
        "box": {"size": 64.0, "particles_per_side": 32},
        "outputs": {"redshifts": [3.0, 2.0, 1.0, 0.5, 0.0]},
        "gravity": {"steps": 20},
        "metadata": {"name": "full"},
    }
    run = simlab.submit(config, root=small_disk)
    assert wait_for(lambda: run.state.is_final, 180), run.status
    assert run.state is State.FAILED, run.status
    reason = run.status["reason"]
    assert "disk full (ENOSPC)" in reason, reason
    assert run.status["diagnosis"]["cause"] == "disk-full"
    assert "No space left on device" in run.logs()
    assert_runs_agree(small_disk)


def test_the_dispatcher_keeps_serving_when_its_record_hits_a_full_disk(small_disk):
    owner = Owner(small_disk)
    owner.dispatcher = Dispatcher()
    try:
        owner._write_record()
        first = owners.read_record(small_disk)
        fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError, match="No space left"):
            while True:  # fill the tmpfs to the last byte
                os.write(fd, b"\0" * 65536)
        os.close(fd)
        owner._write_record()  # logs the ENOSPC instead of ending the serve loop
        assert owners.read_record(small_disk) == first  # the old record, intact
        assert not list(owners.owners_dir(small_disk).glob(".*.tmp"))
    finally:
        owner.dispatcher.close()
