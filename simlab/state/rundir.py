"""The run directory: the one source of truth about a run.

Layout::

    RUN_ID/
      config.json    the validated RunConfig
      launch.json    how to start the code (executable, launcher, walltime, profile)
      status.json    state, progress, times, host, error (replaced atomically)
      events.jsonl   append-only history of every transition
      log            the code's stdout and stderr
      inputs/        what the code reads (ICs, parameter files)
      output/        what the code writes (snapshots, spectra)
      .reserve       a little disk space kept back for the last words of a run

A run directory is created complete or not at all: it is assembled under a hidden
temporary name and renamed into place. Status changes hold an advisory lock so that
a worker and the user's process never interleave a read-modify-write. When the disk
fills up, the reserve is given back so that the failure and its reason can still
be written. This layer knows nothing of engines: whatever writes a run's inputs is
handed to :meth:`RunDir.create`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simlab.config import RunConfig, validate_config
from simlab.errors import ConfigError, SimlabError
from simlab.state.states import State, can_transition

RUN_ID_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$"
)
RESERVE_FILE = ".reserve"
#: Bytes kept back in every run directory for the status and log lines that
#: record a failure once the disk is full.
RESERVE_BYTES = 256 * 1024
#: Status fields that describe one segment of a run (one process of its code);
#: they go when the run is queued again, so a status never mixes two segments.
SEGMENT_FIELDS = (
    "returncode",
    "reason",
    "diagnosis",
    "log_tail",
    "command",
    "job_pid",
    "pid",
    "host",
    "worker",
    "job_id",
    "heartbeat",
    "progress_start",
    "stop_requested",
    "owner",
    "concept",  # CONCEPT's outcome details (Outcome.details): warnings, log_err
)


class TransitionError(SimlabError, ValueError):
    """A state change the run's life cycle does not allow."""


class CorruptRunError(SimlabError, ValueError):
    """A run directory whose status.json or config.json cannot be read."""


def checked_config(data: Any, where: str | Path) -> RunConfig:
    """``data`` of a config.json as a RunConfig; CorruptRunError names ``where``
    (a run directory's file or a published copy's URL)."""
    try:
        return validate_config(data)
    except ConfigError as exc:
        raise CorruptRunError(f"{where}: {exc}") from exc


def checked_status(status: Any, where: str | Path) -> dict[str, Any]:
    """``status`` of a status.json if it holds a valid state; CorruptRunError
    naming ``where`` if not."""
    if not isinstance(status, dict) or status.get("state") not in set(State):
        raise CorruptRunError(f"{where}: no valid state in it")
    return status


def now() -> str:
    """The current UTC time in ISO 8601, as every timestamp in a run directory."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers see the old or the new file, never a partial one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def private_root(root: str | Path) -> Path:
    """The run root, created owner-only (0700); an existing one of ours made so.

    On a shared machine (a JupyterHub) home folders are often world-listable, and
    a run root is nobody else's business: sharing goes through ``simlab publish``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = root.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        os.chmod(root, 0o700)
    return root


def new_run_id(name: str) -> str:
    """``NAME-YYYYMMDDTHHMMSS-xxxxxx``: sortable by creation, unique, path-safe."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(3)}"


class RunDir:
    """Paths and state of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def id(self) -> str:
        """The run id (the directory name)."""
        return self.path.name

    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "status.json")
    events_path = property(lambda self: self.path / "events.jsonl")
    log_path = property(lambda self: self.path / "log")
    inputs = property(lambda self: self.path / "inputs")
    output = property(lambda self: self.path / "output")
    results_path = property(lambda self: self.path / "results.json")

    @classmethod
    def create(
        cls,
        root: str | Path,
        config: RunConfig,
        *,
        prepare: Callable[[Path], None] | None = None,
        files: dict[str, Any] | None = None,
    ) -> RunDir:
        """Make a complete run directory for ``config`` under ``root`` (state created).

        ``files`` are JSON files to add (name → data); ``prepare`` writes the
        code's inputs into the folder it is given. Both run inside the temporary
        directory, so a failure while writing inputs leaves nothing behind.
        """
        root = private_root(root)
        run_id = new_run_id(config.metadata.name)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{run_id}."))
        try:
            staged = cls(tmp)
            staged.inputs.mkdir()
            staged.output.mkdir()
            staged.log_path.touch()
            with open(tmp / RESERVE_FILE, "wb") as fh:
                fh.truncate(0)
                fh.write(b"\0" * RESERVE_BYTES)  # real blocks, not a sparse file
            staged.config_path.write_text(config.model_dump_json(indent=1))
            for name, data in (files or {}).items():
                write_json_atomic(tmp / name, data)
            if prepare is not None:
                prepare(tmp)
            created = now()
            status = {
                "id": run_id,
                "state": State.CREATED.value,
                "engine": config.code.engine,
                "name": config.metadata.name,
                "created": created,
                "updated": created,
                "progress": None,
                "times": {State.CREATED.value: created},
            }
            write_json_atomic(staged.status_path, status)
            staged._append_event({"time": created, "state": State.CREATED.value})
            final = root / run_id
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(final)

    def config(self) -> RunConfig:
        """The run's configuration; CorruptRunError when it cannot be read."""
        return checked_config(self.read_json("config.json"), self.config_path)

    def read_json(self, name: str) -> Any:
        """A JSON file of the run directory; CorruptRunError names what is wrong."""
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            if isinstance(exc, FileNotFoundError) and not self.path.is_dir():
                raise  # the run directory itself is gone
            raise CorruptRunError(
                f"{path}: cannot be read ({type(exc).__name__}: {exc})"
            ) from exc

    def status(self) -> dict[str, Any]:
        """The current status record; CorruptRunError when it cannot be read."""
        return checked_status(self.read_json("status.json"), self.status_path)

    @property
    def state(self) -> State:
        """The current state."""
        return State(self.status()["state"])

    def events(self) -> list[dict[str, Any]]:
        """Every recorded transition, oldest first (a line cut short by a full
        disk or a crash is skipped)."""
        events = []
        with open(self.events_path) as fh:
            for line in fh:
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        return events

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _append_event(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, default=str) + "\n"
        try:
            with open(self.events_path, "a") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.release_reserve():
                raise
            with open(self.events_path, "a") as fh:
                fh.write(line)

    def transition(self, new: State | str, **fields: Any) -> dict[str, Any]:
        """Move to state ``new`` (checked), merge ``fields`` and record the event.

        Going back to ``queued`` (a restart chain or a resume) starts a new
        segment: the fields of the last one (:data:`SEGMENT_FIELDS`) are dropped.
        """
        new = State(new)
        with self._locked():
            status = self.status()
            old = status["state"]
            if not can_transition(old, new):
                raise TransitionError(
                    f"run {self.id}: cannot go from {old!r} to {new.value!r}"
                )
            stamp = now()
            if new == State.QUEUED and old != State.CREATED:
                for name in SEGMENT_FIELDS:
                    status.pop(name, None)
                status["segment"] = status.get("segment", 1) + 1
            status.update(fields, state=new.value, updated=stamp)
            status.setdefault("times", {})[new.value] = stamp
            # the event first: whoever sees the new state in status.json (read
            # without the lock) then finds its event too
            self._append_event(
                {"time": stamp, "state": new.value, "from": old, **fields}
            )
            self._write_status(status)
        return status

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (progress, heartbeat ...) without changing the state."""
        with self._locked():
            status = self.status()
            status.update(fields, updated=now())
            self._write_status(status)
        return status

    def _write_status(self, status: dict[str, Any]) -> None:
        """Replace status.json; on a full disk, give back the reserve and retry."""
        try:
            write_json_atomic(self.status_path, status)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.release_reserve():
                raise
            write_json_atomic(self.status_path, status)

    def release_reserve(self) -> bool:
        """Free the space kept back for a run's last words; False if none is left."""
        try:
            (self.path / RESERVE_FILE).unlink()
        except FileNotFoundError:
            return False
        return True

    def request(self, what: str, reason: str = "") -> None:
        """Leave a ``cancel`` or ``stop`` request (and why) for the process running
        the run."""
        if what not in ("cancel", "stop"):
            raise ValueError(f"unknown request {what!r}; allowed: 'cancel', 'stop'")
        (self.path / f".request-{what}").write_text(reason)

    def requested(self, what: str) -> bool:
        """Whether a ``cancel`` or ``stop`` request is pending."""
        return (self.path / f".request-{what}").exists()

    def request_reason(self, what: str) -> str:
        """Why a pending request was made ('' if it did not say, or none is left)."""
        try:
            return (self.path / f".request-{what}").read_text()[:500]
        except OSError:
            return ""

    def clear_requests(self) -> None:
        """Forget handled requests."""
        for what in ("cancel", "stop"):
            (self.path / f".request-{what}").unlink(missing_ok=True)


def host_info() -> dict[str, Any]:
    """Where a process runs: host name and pid, recorded with ``running``."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
