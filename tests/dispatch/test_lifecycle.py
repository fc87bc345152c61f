"""The ``simlab`` command driving real runs from separate processes.

``simlab submit`` returns at once and exits; the run root's dispatcher process keeps
the run going. Then ``status``, ``logs -f``, ``ls``, ``cancel`` and ``reindex`` are used
exactly as a user would, each in a process of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from simlab.service.run import find_run
from simlab.state.states import State
from tests.helpers import LONG_RUN, SIMLAB, SMALL_RUN, alive, wait_for


def simlab(*args: str, root: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SIMLAB, *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_submit_returns_and_the_run_completes_after_the_command_exits(tmp_path):
    started = time.monotonic()
    submitted = simlab(
        "submit", *SMALL_RUN, "--set", "metadata.name=cli", root=tmp_path
    )
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    assert run_id.startswith("cli-")
    assert time.monotonic() - started < 30  # it did not wait for the run
    # `logs -f` follows the log until the run ends, then exits by itself
    follow = simlab("logs", run_id, "-f", root=tmp_path)
    assert follow.returncode == 0, follow.stderr
    assert "pm: step 8/8" in follow.stdout
    assert follow.stdout.rstrip().endswith("process exited with status 0")
    run = find_run(run_id, tmp_path)
    assert run.state is State.COMPLETED
    status = simlab("status", run_id, root=tmp_path)
    assert "state:    completed" in status.stdout
    assert "100.0%" in status.stdout
    record = json.loads(simlab("status", run_id, "--json", root=tmp_path).stdout)
    assert record["state"] == "completed" and record["returncode"] == 0
    listed = simlab("ls", "--state", "completed", root=tmp_path).stdout
    assert run_id in listed
    assert run_id not in simlab("ls", "--state", "failed", root=tmp_path).stdout
    assert "indexed 1 runs" in simlab("reindex", root=tmp_path).stdout


@pytest.mark.slow
def test_cli_cancel_ends_a_run_the_dispatcher_holds(tmp_path):
    run_id = simlab("submit", *LONG_RUN, root=tmp_path).stdout.strip()
    run = find_run(run_id, tmp_path)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
    pid = run.status["job_pid"]
    result = simlab("cancel", run_id, root=tmp_path)
    assert result.returncode == 0 and f"{run_id}: " in result.stdout
    assert wait_for(lambda: run.state is State.CANCELLED, timeout=30)
    assert wait_for(lambda: not alive(pid), timeout=10)


@pytest.mark.slow
def test_killed_engine_fails_the_run_with_its_status_and_log(tmp_path):
    run_id = simlab("submit", *LONG_RUN, root=tmp_path).stdout.strip()
    run = find_run(run_id, tmp_path)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
    os.kill(run.status["job_pid"], signal.SIGKILL)
    assert wait_for(lambda: run.state is State.FAILED, timeout=30)
    assert run.status["returncode"] == -signal.SIGKILL
    assert "killed by signal 9 (SIGKILL)" in run.status["reason"]
    assert "pm: step" in run.logs()


@pytest.mark.slow
def test_killed_worker_leaves_the_run_failed_not_running(tmp_path):
    run_id = simlab("submit", *LONG_RUN, root=tmp_path).stdout.strip()
    run = find_run(run_id, tmp_path)
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
    engine_pid = run.status["job_pid"]
    os.kill(run.status["pid"], signal.SIGKILL)  # the dask worker process itself
    assert wait_for(lambda: run.state is State.FAILED, timeout=60)
    assert "lost" in run.status["reason"]
    assert wait_for(lambda: not alive(engine_pid), timeout=10)  # no orphan left
    listed = simlab("ls", root=tmp_path).stdout
    assert f"{run_id}" in listed and "failed" in listed


def test_bad_run_ids_are_refused_by_name(tmp_path):
    for bad in ("../etc", "a/b", ".hidden"):
        result = simlab("status", bad, root=tmp_path, timeout=60)
        assert result.returncode == 2
        assert "is not valid" in result.stderr
    missing = simlab("status", "nope-1", root=tmp_path, timeout=60)
    assert missing.returncode == 2 and "no run 'nope-1'" in missing.stderr


def test_an_owner_whose_root_is_removed_exits_and_a_new_root_gets_its_own(tmp_path):
    import shutil

    from simlab.dispatch import owner
    from simlab.state import owners

    root = tmp_path / "runs"
    owner.ensure(root)
    assert wait_for(lambda: owners.read_record(root), 30)
    first = owners.read_record(root)["pid"]
    # the live owner may write its record while the tree goes (rmtree then meets
    # "Directory not empty"): remove until it is gone
    assert wait_for(lambda: shutil.rmtree(root, True) or not root.exists(), 30)
    root.mkdir()  # the same path again: the old owner must not serve it
    assert wait_for(lambda: not alive(first), 30)
    owner.ensure(root)
    assert wait_for(lambda: owners.read_record(root), 30)
    assert owners.read_record(root)["pid"] != first
    assert owner.stop(root)
