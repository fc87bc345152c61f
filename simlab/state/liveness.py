"""Find runs whose process is gone while their status says they are under way.

A worker killed with its batch job (scancel, node loss, OOM) cannot record its own
end. The user side notices instead: a run on this host whose worker process or
dispatcher (which holds the task's dask scheduler) no longer exists, or any run whose
heartbeat is older than ``simlab.heartbeat-timeout`` seconds, becomes ``failed``
with the reason, so nothing stays ``running`` forever.

A ``queued`` run (or one checkpointed on its way to the next segment) waits in its
owner's dispatcher; when that owner is gone the run is an *orphan*. This module
only says so (:func:`orphan_reason`); the service hands orphans to a live owner.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

import psutil

from simlab.state import owners
from simlab.state.rundir import CorruptRunError, RunDir, TransitionError
from simlab.state.states import State


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a running run counts as lost."""
    from simlab import settings

    return float(settings.get("heartbeat-timeout"))


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def lost_reason(status: dict, timeout: float, now: float | None = None) -> str | None:
    """Why a ``running`` status describes a lost run, or None while it looks alive.

    Examples
    --------
    >>> lost_reason({"state": "running", "heartbeat": 0.0, "host": "x"}, 60, now=90)
    'no heartbeat for 90 s (limit 60 s): its worker or batch job is gone'
    """
    if status.get("state") != State.RUNNING.value:
        return None
    now = time.time() if now is None else now
    pid, host = status.get("pid"), status.get("host")
    if pid and host == socket.gethostname() and not process_running(pid):
        # a run in the foreground (simlab run) ran in the command's own process
        what = "command" if status.get("foreground") else "worker process"
        return f"its {what} {pid} on {host} is gone"
    owner = status.get("owner")
    if (
        owner
        and owner.get("host") == socket.gethostname()
        and not owners.alive(owner, "")
    ):
        # the dask scheduler lived in that dispatcher: the task can never report back
        return f"its dispatcher (pid {owner.get('pid')} on {owner.get('host')}) is gone"
    beat = status.get("heartbeat")
    if beat is not None and now - beat > timeout:
        return (
            f"no heartbeat for {now - beat:.0f} s (limit {timeout:.0f} s): "
            "its worker or batch job is gone"
        )
    return None


def end_orphan(status: dict) -> None:
    """Kill the code's process group if it outlived its worker on this host."""
    pid = status.get("job_pid")
    if pid and status.get("host") == socket.gethostname():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def mark_lost(rundir: RunDir, reason: str) -> bool:
    """Fail a run whose task is gone, ending any process of it left here."""
    try:
        status = rundir.transition(State.FAILED, reason=f"lost: {reason}")
    except TransitionError:  # it ended on its own meanwhile
        return False
    end_orphan(status)
    return True


def reap(rundir: RunDir, timeout: float | None = None) -> bool:
    """Mark the run ``failed`` if it is lost; True if it was.

    A run directory that cannot be read (deleted meanwhile, or corrupt) is left
    to the catalogue, which lists it as such.
    """
    timeout = heartbeat_timeout() if timeout is None else timeout
    try:
        status = rundir.status()
    except (CorruptRunError, FileNotFoundError):
        return False
    reason = lost_reason(status, timeout)
    return reason is not None and mark_lost(rundir, reason)


def waits_for_owner(status: dict) -> bool:
    """Queued, or checkpointed by a time limit on its way to the next segment."""
    state = status.get("state")
    return state == State.QUEUED.value or (
        state == State.CHECKPOINTED.value and not status.get("stop_requested")
    )


def orphan_reason(status: dict, root: str, timeout: float | None = None) -> str | None:
    """Why a run waiting in a dispatcher has no live owner any more, or None.

    Examples
    --------
    >>> orphan_reason({"state": "completed"}, "/tmp") is None
    True
    """
    if not waits_for_owner(status):
        return None
    ref = status.get("owner")
    if not ref:
        return "no dispatcher ever took it"
    timeout = heartbeat_timeout() if timeout is None else timeout
    if owners.alive(ref, root, timeout):
        return None
    return f"its dispatcher (pid {ref.get('pid')} on {ref.get('host')}) is gone"
