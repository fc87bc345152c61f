"""Execute one run on whatever machine the task lands on.

The task starts the engine's command in its own process group, copies every line
of its output to ``log``, turns progress lines into ``status.json`` updates, and
honours cancel and stop requests left in the run directory. It only ever writes
inside the run directory; the outcome is the run's final state, not a return value
anyone has to keep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from simlab.engines import registry
from simlab.runs.rundir import RunDir, host_info
from simlab.runs.states import State

logger = logging.getLogger(__name__)

#: Seconds between status writes while progress lines stream in.
STATUS_INTERVAL = 0.5
#: Seconds a process group gets after SIGTERM before SIGKILL.
KILL_GRACE = 5.0
#: Log lines kept for the failure reason.
TAIL_LINES = 20


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _terminate(proc: subprocess.Popen[str]) -> None:
    """End the whole process group: SIGTERM, then SIGKILL after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def execute(path: str | Path, *, resume: bool = False) -> str:
    """Run the engine for the run at ``path`` to its end; return the final state.

    Whatever goes wrong, the run does not stay ``running``: an unexpected error marks
    it ``failed`` with the error as its reason, then propagates.
    """
    rundir = RunDir(path)
    try:
        return _execute(rundir, resume)
    except BaseException as exc:
        logger.exception("run %s: task failed", rundir.id)
        if not rundir.state.is_final:
            rundir.transition(State.FAILED, reason=f"{type(exc).__name__}: {exc}")
        raise


def _execute(rundir: RunDir, resume: bool) -> str:
    config = rundir.config()
    engine = registry.get(config.code.engine)
    argv = engine.restart(config, rundir.path) if resume else None
    argv = argv or engine.command(config, rundir.path)
    if rundir.requested("cancel"):
        rundir.transition(State.CANCELLED, reason="cancelled before start")
        return State.CANCELLED.value
    a_start, a_end = config.ics.start, config.outputs.times[-1]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with open(rundir.log_path, "a", buffering=1) as log:
        log.write(f"simlab: running {' '.join(argv)}\n")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=rundir.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        except OSError as exc:
            reason = f"cannot start {argv[0]!r}: {exc.strerror} (exit code none)"
            log.write(f"simlab: {reason}\n")
            rundir.transition(State.FAILED, reason=reason, command=argv)
            return State.FAILED.value
        rundir.transition(State.RUNNING, command=argv, **host_info(), job_pid=proc.pid)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        last_write = 0.0
        latest = None
        cancelled = False
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                log.write(line)
                tail.append(line.rstrip("\n"))
                progress = engine.parse_progress(line)
                if progress is not None:
                    latest = progress
            now = time.monotonic()
            if latest is not None and now - last_write > STATUS_INTERVAL:
                rundir.update(
                    progress={
                        **latest.to_dict(),
                        "fraction": latest.fraction(a_start, a_end),
                    },
                    heartbeat=time.time(),
                )
                latest, last_write = None, now
            if rundir.requested("stop"):
                engine.request_stop(rundir.path)
                (rundir.path / ".request-stop").unlink(missing_ok=True)
            if rundir.requested("cancel") and not cancelled:
                cancelled = True
                log.write("simlab: cancel requested, ending the process group\n")
                _terminate(proc)
        returncode = proc.wait()
        log.write(f"simlab: process exited with status {returncode}\n")
    if latest is not None:
        rundir.update(
            progress={**latest.to_dict(), "fraction": latest.fraction(a_start, a_end)}
        )
    if cancelled:
        rundir.clear_requests()
        rundir.transition(State.CANCELLED, returncode=returncode)
        return State.CANCELLED.value
    outcome = engine.outcome(config, rundir.path, returncode)
    if outcome == State.FAILED.value:
        reason = f"{argv[0]} exited with status {returncode}"
        rundir.transition(
            State.FAILED, returncode=returncode, reason=reason, log_tail=list(tail)
        )
    else:
        rundir.transition(State(outcome), returncode=returncode)
    return outcome
