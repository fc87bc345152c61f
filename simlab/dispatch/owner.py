"""The owner of a run root on this host: the one process whose Dispatcher runs its runs.

Every door (Python, the CLI, sweeps, widgets, the Jupyter server) creates a run's
directory itself and then posts a ``dispatch`` request into the owner's inbox
(:mod:`simlab.state.owners`); :func:`ensure` starts the owner first if none is up.
The owner is ``python -m simlab.dispatch.owner ROOT`` in a session of its own, so it
outlives the kernel, terminal or server that started it: runs keep going when any
of those exits or dies, and the clusters of all of them are one list.

While it lives it holds the root's lock for this host, rewrites its record every
:data:`~simlab.state.owners.HEARTBEAT_INTERVAL` seconds (pid, heartbeat, clusters,
runs held), withdraws queued runs someone asked to cancel, and at start adopts the
runs a dead owner left queued. It exits after ``simlab.dispatcher.idle-timeout``
seconds without a run, or on SIGTERM or a ``stop`` request, ending what it holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from simlab.state import owners
from simlab.state.catalog import Catalog
from simlab.state.liveness import (
    orphan_reason,
    process_running,
    reap,
    waits_for_owner,
)
from simlab.state.rundir import (
    CorruptRunError,
    RunDir,
    TransitionError,
    write_json_atomic,
)
from simlab.state.states import State

if TYPE_CHECKING:  # the dispatcher (dask, dask-jobqueue) loads in the owner only
    from simlab.dispatch.dispatcher import Dispatcher

logger = logging.getLogger(__name__)

#: Seconds between looks at the inbox.
POLL = 0.1
#: Seconds :func:`ensure` waits for a new owner to take the lock.
START_TIMEOUT = 60.0
#: Seconds a stopping owner gives its running runs to end after cancelling them.
STOP_GRACE = 15.0
#: The owner this process launched last, per run root (so it is launched once).
_launched: dict[Path, int] = {}
_launching = threading.Lock()
#: What the launcher process runs: start the owner in a session of its own, writing
#: to the log ``argv[1]``, print its pid and exit.
_LAUNCHER = (
    "import subprocess, sys; "
    "log = open(sys.argv[1], 'ab'); "
    "print(subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, "
    "stderr=subprocess.STDOUT, start_new_session=True).pid)"
)


def idle_timeout() -> float:
    """Seconds an owner with no run waits before it exits."""
    from simlab import settings

    return float(settings.get("dispatcher.idle-timeout"))


def start(root: str | Path) -> None:
    """Launch this host's owner of ``root`` unless one is up or starting; do not
    wait. Submitting calls it before writing the run's ICs, so the owner's imports
    overlap with that work."""
    root = Path(root).resolve()
    with _launching:  # threads of one process (a server's handlers) launch one
        if not owners.holds_lock(root) and not _starting(root):
            _launched[root] = _launch(root)


def _launch(root: Path) -> int:
    """Start the owner of ``root`` and return its pid."""
    # a short-lived launcher starts the owner and exits, so the owner is nobody's
    # child: no zombie is left behind if it dies, and it outlives us
    done = subprocess.run(
        [
            sys.executable, "-c", _LAUNCHER, str(_log_path(root)),
            sys.executable, "-m", "simlab.dispatch.owner", str(root),
        ],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=True, timeout=60,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def ensure(root: str | Path) -> None:
    """Start this host's owner of ``root`` unless one is up; wait until it is."""
    root = Path(root).resolve()
    start(root)
    deadline = time.monotonic() + START_TIMEOUT
    relaunches = 2  # an owner launched earlier may have idled out meanwhile
    while not owners.holds_lock(root):
        if time.monotonic() > deadline or (not _starting(root) and not relaunches):
            raise RuntimeError(
                f"the dispatcher of {root} did not start; log: {_log_path(root)}"
            )
        if not _starting(root):
            relaunches -= 1
            start(root)
        time.sleep(0.05)


def _starting(root: Path) -> bool:
    """Whether the owner this process launched for ``root`` still runs."""
    pid = _launched.get(root)
    return pid is not None and process_running(pid)


def _log_path(root: Path) -> Path:
    """The owners' log of ``root`` on this host."""
    return owners.owners_dir(root) / f"{owners.record_path(root).stem}.log"


def stop(root: str | Path, timeout: float = 30.0) -> bool:
    """Ask this host's owner of ``root`` to end; True once no owner is up."""
    root = Path(root).resolve()
    if not owners.holds_lock(root):
        return True
    owners.post(root, {"op": "stop"})
    deadline = time.monotonic() + timeout
    while owners.holds_lock(root):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Owner:
    """The dispatcher process of one run root on this host."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.dispatcher: Dispatcher | None = None
        self._lock_file: IO[str] | None = None
        self._stopping = threading.Event()
        self._last_busy = time.monotonic()

    # -- life ----------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take the root's lock for this host; False if another owner holds it."""
        fh = open(owners.lock_path(self.root), "a")  # noqa: SIM115 (held for life)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._lock_file = fh
        return True

    def serve(self) -> None:
        """Adopt orphans, then handle requests until idle, stopped or signalled."""
        from simlab.dispatch.dispatcher import Dispatcher

        self.dispatcher = Dispatcher()
        self._write_record()
        self._adopt()
        timeout = idle_timeout()
        next_beat = 0.0
        while not self._stopping.is_set():
            if not self._lock_in_place():
                logger.warning("%s was removed or replaced: exiting", self.root)
                break
            self._handle_inbox()
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + owners.HEARTBEAT_INTERVAL
            if self.dispatcher.pending():
                self._last_busy = now
            elif now - self._last_busy > timeout:
                logger.info("no run for %.0f s: exiting", timeout)
                break
            self._stopping.wait(POLL)

    def _lock_in_place(self) -> bool:
        """Whether the lock file held is still the root's (a root deleted and made
        again must not be served by the owner of the old one)."""
        assert self._lock_file is not None
        held = os.fstat(self._lock_file.fileno())
        try:  # the path itself: lock_path() would make the folders again
            now = os.stat(self._lock_file.name)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def request_stop(self, *_: Any) -> None:
        """End the serve loop (SIGTERM, SIGINT or a ``stop`` request)."""
        self._stopping.set()

    def shutdown(self) -> None:
        """Cancel what is still held, close the clusters, give up the lock."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            held = [RunDir(self.root / run_id) for run_id in dispatcher.held()]
            for rundir in held:
                with contextlib.suppress(OSError, CorruptRunError):
                    if not rundir.state.is_final:
                        rundir.request("cancel", "its dispatcher was shut down")
                        dispatcher.withdraw(rundir)
            deadline = time.monotonic() + STOP_GRACE
            while dispatcher.pending() and time.monotonic() < deadline:
                time.sleep(0.1)
            for rundir in held:
                with contextlib.suppress(OSError, CorruptRunError, TransitionError):
                    if not rundir.state.is_final:
                        rundir.transition(
                            State.CANCELLED, reason="its dispatcher was shut down"
                        )
            dispatcher.close()
            self.dispatcher = None
        owners.record_path(self.root).unlink(missing_ok=True)
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- work ------------------------------------------------------------------------
    def _adopt(self) -> None:
        """Take over runs a dead owner left waiting; fail those lost mid-run."""
        catalog = Catalog(self.root)
        catalog.sync()
        for state in (State.QUEUED, State.CHECKPOINTED, State.RUNNING):
            rows, _ = catalog.query(state=state.value, per_page=1000)
            for row in rows:
                rundir = RunDir(row["path"])
                with contextlib.suppress(CorruptRunError, FileNotFoundError):
                    if state == State.RUNNING:
                        reap(rundir)
                        continue
                    status = rundir.status()
                    if waits_for_owner(status) and orphan_reason(status, self.root):
                        self._dispatch(
                            rundir,
                            resume=state == State.CHECKPOINTED,
                            adopt=state == State.QUEUED,
                        )

    def _handle_inbox(self) -> None:
        for path in sorted(owners.inbox(self.root).glob("*.json")):
            try:
                request = json.loads(path.read_text())
            except (OSError, ValueError):
                request = None
            path.unlink(missing_ok=True)
            if isinstance(request, dict):
                self._last_busy = time.monotonic()
                error = self._handle(request)
                if request.get("id"):
                    answer = {"ok": error is None, "error": error}
                    try:
                        owners.reply(self.root, str(request["id"]), answer)
                    except OSError as exc:  # the asker times out and says so
                        logger.warning("could not answer %s: %s", request["id"], exc)

    def _handle(self, request: dict[str, Any]) -> str | None:
        """Carry out one request; None when done, else why it was refused."""
        op = request.get("op")
        if op == "stop":
            self.request_stop()
            return None
        if op == "dispatch":
            path = Path(str(request.get("run", ""))).resolve()
            if path.parent != self.root or not (path / "status.json").is_file():
                return f"{path} is not a run directory of {self.root}"
            return self._dispatch(RunDir(path), resume=bool(request.get("resume")))
        if op == "warm":
            threading.Thread(target=self._warm, args=(request,), daemon=True).start()
            return None
        if op == "scale":
            try:
                self.dispatcher.scale(str(request["cluster"]), int(request["workers"]))
            except (KeyError, ValueError, LookupError) as exc:
                return str(exc)
            return None
        return f"unknown request {op!r}"

    def _warm(self, request: dict[str, Any]) -> None:
        """Start the cluster a run about to be dispatched will use (best effort: the
        dispatch itself says what went wrong, if anything)."""
        try:
            self.dispatcher.warm(
                str(request["cluster"]),
                dict(request["profile"]),
                str(request["code"]),
                self.root,
            )
        except Exception as exc:  # a thread's boundary: logged, never raised
            logger.warning("could not warm a cluster for %s: %s", request, exc)

    def _dispatch(
        self, rundir: RunDir, *, resume: bool = False, adopt: bool = False
    ) -> str | None:
        """Hand a run to the dispatcher; a run that cannot be dispatched fails."""
        try:
            self.dispatcher.submit(rundir, resume=resume, adopt=adopt)
        except Exception as exc:  # the run must not stay waiting: fail it, say why
            logger.exception("run %s: could not dispatch", rundir.id)
            reason = f"could not dispatch: {type(exc).__name__}: {exc}"
            with contextlib.suppress(TransitionError, CorruptRunError, OSError):
                rundir.transition(State.FAILED, reason=reason)
            return reason
        return None

    def _heartbeat(self) -> None:
        """Rewrite the record; withdraw queued runs someone asked to cancel; fail
        a waiting run for each batch job that died before its worker connected."""
        self.dispatcher.check_jobs()
        for run_id in self.dispatcher.held():
            rundir = RunDir(self.root / run_id)
            with contextlib.suppress(OSError, CorruptRunError):
                if rundir.requested("cancel") and rundir.state == State.QUEUED:
                    self.dispatcher.withdraw(rundir)
        self._write_record()

    def _write_record(self) -> None:
        record = {
            **self.dispatcher.ref,
            "kind": "dispatcher",
            "root": str(self.root),
            "heartbeat": time.time(),
            "runs": self.dispatcher.held(),
            "clusters": [c.model() for c in self.dispatcher.clusters()],
        }
        try:
            write_json_atomic(owners.record_path(self.root), record)
        except OSError as exc:  # a full disk must not end the runs this owner holds
            logger.warning("could not write the owner record: %s", exc)


def main(argv: list[str] | None = None) -> int:
    """``python -m simlab.dispatch.owner ROOT``: serve until idle or stopped."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    owner = Owner(Path(argv[0]))
    if not owner.acquire():
        logger.info("another dispatcher owns %s on this host", owner.root)
        return 0
    signal.signal(signal.SIGTERM, owner.request_stop)
    signal.signal(signal.SIGINT, owner.request_stop)
    logger.info("dispatcher of %s started (pid %d)", owner.root, os.getpid())
    try:
        owner.serve()
    finally:
        owner.shutdown()
    logger.info("dispatcher of %s stopped", owner.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
