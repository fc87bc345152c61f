"""Who owns the runs of a run root: one dispatcher process per (run root, host).

The owner keeps a record at ``ROOT/.simlab/owners/HOST.json`` (its pid, start
time, a heartbeat and the clusters it runs) and holds an exclusive lock on
``HOST.lock`` while it lives. Every run it queues carries an ``owner`` reference
(host, pid, start time) in its status.json, so any process can tell whether the
process that owns a run is still there: on the same host by its pid and start
time, elsewhere by the record's heartbeat. Requests to the owner are small JSON
files dropped in ``HOST.inbox/``. This module only knows the layout and the
liveness rule; the owner itself is :mod:`simlab.dispatch.owner`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from simlab.state.rundir import write_json_atomic

#: Seconds between two heartbeats of an owner record.
HEARTBEAT_INTERVAL = 2.0


def owners_dir(root: str | Path) -> Path:
    """``ROOT/.simlab/owners``, readable by the user only."""
    path = Path(root) / ".simlab" / "owners"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in (path, path.parent):
        os.chmod(folder, 0o700)
    return path


def record_path(root: str | Path, host: str | None = None) -> Path:
    """The owner record of ``host`` (default: this host)."""
    return owners_dir(root) / f"{host or socket.gethostname()}.json"


def lock_path(root: str | Path, host: str | None = None) -> Path:
    """The lock the owner of ``host`` holds while it lives."""
    return owners_dir(root) / f"{host or socket.gethostname()}.lock"


def inbox(root: str | Path, host: str | None = None) -> Path:
    """The folder of requests to the owner of ``host``."""
    path = owners_dir(root) / f"{host or socket.gethostname()}.inbox"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def post(root: str | Path, request: dict[str, Any], answer: bool = True) -> str:
    """Drop a request for this host's owner (handled in order); return its id.

    With ``answer`` the owner replies under that id (:func:`await_reply`)."""
    request_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    body = {**request, "id": request_id} if answer else request
    write_json_atomic(inbox(root) / f"{request_id}.json", body)
    return request_id


def has_requests(root: str | Path) -> bool:
    """Whether requests wait in this host's inbox (creates nothing to find out)."""
    folder = Path(root) / ".simlab" / "owners" / f"{socket.gethostname()}.inbox"
    return folder.is_dir() and any(folder.glob("*.json"))


def replies(root: str | Path, host: str | None = None) -> Path:
    """The folder where the owner of ``host`` answers requests."""
    path = owners_dir(root) / f"{host or socket.gethostname()}.replies"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def reply(root: str | Path, request_id: str, answer: dict[str, Any]) -> None:
    """The owner's answer to one request (``ok`` and, if not, ``error``)."""
    write_json_atomic(replies(root) / f"{request_id}.json", answer)


def await_reply(
    root: str | Path, request_id: str, timeout: float
) -> dict[str, Any] | None:
    """The owner's answer to request ``request_id``, or None after ``timeout`` s."""
    path = replies(root) / f"{request_id}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.02)
            continue
        path.unlink(missing_ok=True)
        return answer if isinstance(answer, dict) else None
    return None


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux's
    ``/proc/PID/stat`` field 22); None where there is no such file.

    Unlike a start time in wall-clock seconds (psutil's ``create_time``, boot time
    plus these ticks, with the boot time read once per process), no clock step or
    NTP correction moves it, so two processes always agree on it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_ref(pid: int | None = None) -> dict[str, Any]:
    """(host, pid, start time) naming one process for good (pids are reused);
    ``ticks`` (:func:`start_ticks`) where the system has them."""
    pid = pid or os.getpid()
    ref: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": pid,
        "started": psutil.Process(pid).create_time(),
    }
    ticks = start_ticks(pid)
    if ticks is not None:
        ref["ticks"] = ticks
    return ref


def read_record(root: str | Path, host: str | None = None) -> dict[str, Any] | None:
    """The owner record of ``host``, or None if there is none (or it is torn)."""
    try:
        record = json.loads(record_path(root, host).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def records(root: str | Path) -> list[dict[str, Any]]:
    """Every host's owner record that is alive, for listings (clusters)."""
    found = []
    for path in sorted(owners_dir(root).glob("*.json")):
        record = read_record(root, path.stem)
        if record is not None and alive(record, root):
            found.append(record)
    return found


def alive(ref: dict[str, Any], root: str | Path, timeout: float = 60.0) -> bool:
    """Whether the process ``ref`` names (see :func:`process_ref`) still runs.

    On this host: its pid exists with the same start time. On another: that
    host's owner record is this process and its heartbeat is younger than
    ``timeout`` seconds.
    """
    if ref.get("host") == socket.gethostname():
        try:
            process = psutil.Process(int(ref["pid"]))
            started, status = process.create_time(), process.status()
        except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
            return False
        if status == psutil.STATUS_ZOMBIE:
            return False
        ticks = start_ticks(process.pid) if "ticks" in ref else None
        if ticks is not None:  # a wall-clock change since it started moves nothing
            return ticks == int(ref["ticks"])
        return abs(started - float(ref.get("started", started))) < 1.0
    record = read_record(root, ref.get("host"))
    return (
        record is not None
        and record.get("pid") == ref.get("pid")
        and time.time() - float(record.get("heartbeat", 0)) < timeout
    )


def holds_lock(root: str | Path) -> bool:
    """Whether some process holds this host's owner lock (an owner is up)."""
    with open(lock_path(root), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with contextlib.suppress(OSError):
            fcntl.flock(fh, fcntl.LOCK_UN)
        return False
