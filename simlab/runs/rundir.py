"""The run directory: the one source of truth about a run.

Layout::

    RUN_ID/
      config.json    the validated RunConfig
      status.json    state, progress, times, host, error (replaced atomically)
      events.jsonl   append-only history of every transition
      log            the code's stdout and stderr
      inputs/        what the code reads (ICs, parameter files)
      output/        what the code writes (snapshots, spectra)

A run directory is created complete or not at all: it is assembled under a hidden
temporary name and renamed into place. Status changes hold an advisory lock so that
a worker and the user's process never interleave a read-modify-write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simlab.config import RunConfig
from simlab.errors import SimlabError
from simlab.runs.states import State, can_transition

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}-\d{8}T\d{6}-[0-9a-f]{6}$")


class TransitionError(SimlabError, ValueError):
    """A state change the run's life cycle does not allow."""


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
    def create(cls, root: str | Path, config: RunConfig) -> RunDir:
        """Make a complete run directory for ``config`` under ``root`` (state created).

        The engine's ``prepare`` runs inside the temporary directory, so a failure
        while writing inputs leaves nothing behind.
        """
        from simlab.engines import registry

        root = private_root(root)
        run_id = new_run_id(config.metadata.name)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{run_id}."))
        try:
            staged = cls(tmp)
            staged.inputs.mkdir()
            staged.output.mkdir()
            staged.log_path.touch()
            staged.config_path.write_text(config.model_dump_json(indent=1))
            registry.get(config.code.engine).prepare(config, tmp)
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
        """The run's configuration."""
        return RunConfig.model_validate_json(self.config_path.read_text())

    def status(self) -> dict[str, Any]:
        """The current status record."""
        return json.loads(self.status_path.read_text())

    @property
    def state(self) -> State:
        """The current state."""
        return State(self.status()["state"])

    def events(self) -> list[dict[str, Any]]:
        """Every recorded transition, oldest first."""
        with open(self.events_path) as fh:
            return [json.loads(line) for line in fh if line.strip()]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _append_event(self, event: dict[str, Any]) -> None:
        with open(self.events_path, "a") as fh:
            fh.write(json.dumps(event, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def transition(self, new: State | str, **fields: Any) -> dict[str, Any]:
        """Move to state ``new`` (checked), merge ``fields`` and record the event."""
        new = State(new)
        with self._locked():
            status = self.status()
            old = status["state"]
            if not can_transition(old, new):
                raise TransitionError(
                    f"run {self.id}: cannot go from {old!r} to {new.value!r}"
                )
            stamp = now()
            status.update(fields, state=new.value, updated=stamp)
            status.setdefault("times", {})[new.value] = stamp
            write_json_atomic(self.status_path, status)
            self._append_event(
                {"time": stamp, "state": new.value, "from": old, **fields}
            )
        return status

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (progress, heartbeat ...) without changing the state."""
        with self._locked():
            status = self.status()
            status.update(fields, updated=now())
            write_json_atomic(self.status_path, status)
        return status

    def request(self, what: str) -> None:
        """Leave a ``cancel`` or ``stop`` request for the process running the run."""
        if what not in ("cancel", "stop"):
            raise ValueError(f"unknown request {what!r}; allowed: 'cancel', 'stop'")
        (self.path / f".request-{what}").write_text(now())

    def requested(self, what: str) -> bool:
        """Whether a ``cancel`` or ``stop`` request is pending."""
        return (self.path / f".request-{what}").exists()

    def clear_requests(self) -> None:
        """Forget handled requests."""
        for what in ("cancel", "stop"):
            (self.path / f".request-{what}").unlink(missing_ok=True)


def host_info() -> dict[str, Any]:
    """Where a process runs: host name and pid, recorded with ``running``."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
