"""Naming a process for good: a live owner stays alive through clock changes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simlab.state import owners


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_live_process_stays_alive_when_the_wall_clock_moves(child):
    ref = owners.process_ref(child.pid)
    if "ticks" not in ref:
        pytest.skip("no /proc/PID/stat here: start times are wall-clock seconds")
    assert owners.alive(ref, "")
    # as seen by a process whose idea of the boot time is 5 minutes off (a clock
    # step or NTP correction between the two processes' first psutil calls)
    assert owners.alive({**ref, "started": ref["started"] - 300}, "")


def test_another_process_on_the_same_pid_is_not_the_one_named(child):
    ref = owners.process_ref(child.pid)
    if "ticks" not in ref:
        pytest.skip("no /proc/PID/stat here: start times are wall-clock seconds")
    assert not owners.alive({**ref, "ticks": ref["ticks"] + 1}, "")
    child.kill()
    child.wait()
    assert not owners.alive(ref, "")


def test_start_ticks_of_a_process_name_with_spaces_and_parentheses(tmp_path):
    exe = tmp_path / "a (b) c"
    exe.symlink_to(sys.executable)
    proc = subprocess.Popen([str(exe), "-c", "import time; time.sleep(30)"])
    try:
        ticks = owners.start_ticks(proc.pid)
        assert ticks is None or ticks == owners.process_ref(proc.pid)["ticks"] > 0
    finally:
        proc.kill()
        proc.wait()
