"""The server's one manager: the run root and its catalogue, as JSON-ready models.

Handlers stay thin: they parse the request, call one method here and serialise the
answer. Submitting, cancelling, stopping and resuming go through the run service,
the same door as the CLI and Python: the runs belong to the run root's dispatcher
process, not to the server, so they carry on when the server stops or dies. Every
path this class touches is checked to lie inside the run root (symbolic links are
never followed out of it), and run ids must match
:data:`simlab.state.rundir.RUN_ID_RE` before any path is built.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simlab.errors import (
    ConfigError,
    DispatchError,
    EngineError,
    RunError,
    RunRootError,
    SimlabError,
)
from simlab.server import metrics
from simlab.service import eta, submission
from simlab.service.run import Run
from simlab.service.validation import validate_run
from simlab.settings import cluster_profile, run_root
from simlab.state import owners
from simlab.state.catalog import Catalog
from simlab.state.rundir import RUN_ID_RE, CorruptRunError, RunDir
from simlab.state.states import State

logger = logging.getLogger(__name__)

#: Least seconds between background catalogue refreshes from the run directories;
#: the pause is also at least SYNC_PAUSE_FACTOR times the last refresh's duration,
#: so a huge run root never keeps a core busy.
SYNC_INTERVAL = 2.0
SYNC_PAUSE_FACTOR = 5.0
#: Largest log slice one request returns, in bytes.
LOG_CHUNK = 1 << 20
#: Parts of a run directory the artifacts zip may contain.
ARTIFACT_PARTS = {
    "config": "config.json",
    "status": "status.json",
    "events": "events.jsonl",
    "log": "log",
    "results": "results.json",
    "inputs": "inputs",
    "output": "output",
    "notebooks": "notebooks",
}
DEFAULT_PARTS = ("config", "status", "events", "log", "results")
#: Where archived run directories go, below the run root (out of every listing).
ARCHIVE_DIR = ".simlab/archive"


class NotFound(SimlabError, LookupError):
    """A run, cluster or file that does not exist (HTTP 404)."""


class Conflict(SimlabError):
    """A request the run's current state does not allow (HTTP 409)."""


class BadRequest(SimlabError, ValueError):
    """A malformed parameter (HTTP 400)."""


class Unavailable(SimlabError):
    """The run was created but its cluster could not take it (HTTP 503)."""


def _parse_time(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def run_model(rundir: RunDir, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON model of one run: its catalogue row overlaid with status.json.

    A run whose status.json cannot be read is ``corrupt``, with the reason.
    """
    model = dict(row or {})
    try:
        status = rundir.status()
    except CorruptRunError as exc:
        model.update(
            id=rundir.id, state=State.CORRUPT.value, reason=str(exc), eta=None,
            eta_source=None,
            progress=None, times={}, path=str(rundir.path),
        )  # fmt: skip
        return model
    left = eta.remaining(status, rundir.config, rundir.path.parent)
    model.update(
        id=rundir.id,
        name=status.get("name", model.get("name")),
        engine=status.get("engine", model.get("engine")),
        state=status["state"],
        progress=status.get("progress"),
        eta=left.seconds if left is not None else None,
        eta_source=left.source if left is not None else None,
        times=status.get("times", {}),
        updated=status.get("updated"),
        reason=status.get("reason"),
        diagnosis=status.get("diagnosis"),
        cluster=status.get("cluster"),
        segment=status.get("segment", 1),
        path=str(rundir.path),
    )
    return model


class SimlabManager:
    """Owns the user's run root and its catalogue for this server."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root or run_root()).expanduser()
        self.catalog = Catalog(self.root)
        self._real_root = self.root.resolve()
        self._sync_lock = threading.Lock()
        self._next_sync = 0.0
        self._sync_callback: Any = None
        metrics.track(self)

    # -- runs ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """Whether the run root's dispatcher process is up on this host."""
        return owners.holds_lock(self.root)

    def rundir(self, run_id: str) -> RunDir:
        """The run directory of ``run_id``, checked to be a run inside the root."""
        if not RUN_ID_RE.match(run_id):
            raise BadRequest(
                f"run id {run_id[:80]!r} is not valid: expected "
                "NAME-YYYYMMDDTHHMMSS-xxxxxx (letters, digits, '.', '_', '-')"
            )
        path = self.root / run_id
        if (
            path.is_symlink()
            or not path.resolve().is_relative_to(self._real_root)
            or not (path / "status.json").is_file()
        ):
            raise NotFound(f"run {run_id} not found in {self.root}")
        return RunDir(path)

    def member(self, rundir: RunDir, name: str) -> Path | None:
        """A file of the run directory that may be served: a regular file, not a
        link, inside the run directory; None when there is none."""
        path = rundir.path / name
        if path.is_symlink() or not path.is_file():
            return None
        if not path.resolve().is_relative_to(rundir.path.resolve()):
            return None
        return path

    def refresh(self) -> None:
        """Bring the catalogue up to date with the run directories, and settle runs
        no live process owns (blocking)."""
        with self._sync_lock:
            started = time.monotonic()
            submission.settle(self.root)
            self._next_sync = time.monotonic() + max(
                SYNC_INTERVAL, SYNC_PAUSE_FACTOR * (time.monotonic() - started)
            )

    def start_background_sync(self) -> None:
        """Refresh the catalogue in a thread now and then, off the request path.

        Listings read the catalogue as it is and overlay each row with its
        status.json, so a request never waits for a scan of the whole run root.
        The first refresh runs at once: runs a dead server or dispatcher left
        behind are settled when the server starts.
        """
        from tornado.ioloop import PeriodicCallback

        def tick() -> None:
            if self._sync_lock.locked() or time.monotonic() < self._next_sync:
                return
            threading.Thread(
                target=self._sync_logged, name="simlab-catalog-sync", daemon=True
            ).start()

        tick()
        self._sync_callback = PeriodicCallback(tick, 1000 * SYNC_INTERVAL / 4)
        self._sync_callback.start()

    def _sync_logged(self) -> None:
        try:
            self.refresh()
        except Exception:  # a background thread: log, retry at the next tick
            logger.exception("simlab: catalogue refresh failed")

    def list_runs(
        self, *, page: int = 1, per_page: int = 50, **filters: Any
    ) -> dict[str, Any]:
        """One page of runs with the total and page count, filters as Catalog.query."""
        try:
            rows, total = self.catalog.query(page=page, per_page=per_page, **filters)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        runs = []
        for row in rows:
            rundir = RunDir(row["path"])
            if rundir.status_path.is_file():
                runs.append(self._model(rundir, row))
        return {
            "runs": runs,
            "total": total,
            "page": page,
            "per_page": per_page,
            "pages": max(1, math.ceil(total / per_page)),
        }

    def get(self, run_id: str) -> dict[str, Any]:
        """The model of one run, with its configuration."""
        rundir = self.rundir(run_id)
        model = self._model(rundir, self.catalog.get(run_id))
        try:
            model["config"] = rundir.read_json("config.json")
        except CorruptRunError:
            model["config"] = None
        return model

    def _model(self, rundir: RunDir, row: dict[str, Any] | None) -> dict[str, Any]:
        """The run model; a catalogue row found behind status.json is refreshed."""
        model = run_model(rundir, row)
        if row is None or row.get("state") != model["state"]:
            self.catalog.add(rundir)
        return model

    def _handle(self, run_id: str) -> Run:
        rundir = self.rundir(run_id)
        try:
            rundir.status()
        except CorruptRunError as exc:
            raise Conflict(f"run {run_id} cannot be read: {exc}") from exc
        return Run(rundir.path)

    def submit(
        self, config: dict[str, Any], cluster: str | None = None
    ) -> dict[str, Any]:
        """Validate, create and dispatch a run through the one submission path
        (:func:`simlab.service.submission.submit_plans`); ConfigError names each
        bad field. Nothing here runs the code's executable: a build that cannot run
        the configuration fails the run when it starts, with the reason."""
        plan = validate_run(config, cluster=cluster)
        queued_from: list[float] = []

        def created(runs: list[Run]) -> None:
            metrics.SUBMITTED.labels(code=plan.config.code.engine).inc()
            queued_from.append(time.perf_counter())

        try:
            [run] = submission.submit_plans([plan], self.root, created=created)
        except submission.LimitError as exc:
            raise Conflict(str(exc)) from exc
        except EngineError as exc:
            # the code refused to prepare this configuration (e.g. a Config.sh
            # build without an option it needs): a refused configuration, not a
            # server bug
            raise ConfigError(
                [{"loc": "code", "value": plan.config.code.engine, "msg": str(exc)}]
            ) from exc
        except DispatchError as exc:
            raise Unavailable(f"{exc}; the run is failed") from exc
        except RunRootError as exc:  # the server's run root, not the request
            raise Unavailable(str(exc)) from exc
        metrics.DISPATCH_LATENCY.observe(time.perf_counter() - queued_from[0])
        return {**run_model(run.dir), "notes": list(plan.notes)}

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Ask a run to end ``cancelled``; Conflict if it has already ended."""
        run = self._handle(run_id)
        state = run.state
        if state.is_final:
            raise Conflict(f"run {run_id} is already {state.value}; nothing to cancel")
        run.cancel()
        metrics.CANCELLED.inc()
        self.catalog.add(run.dir)
        return run_model(run.dir)

    def stop(self, run_id: str) -> dict[str, Any]:
        """Ask a running run to checkpoint and stop; Conflict when it cannot."""
        run = self._handle(run_id)
        try:
            run.stop()
        except RunError as exc:
            raise Conflict(str(exc)) from exc
        return run_model(run.dir)

    def resume(self, run_id: str) -> dict[str, Any]:
        """Continue a checkpointed, cancelled or failed run; Conflict when it cannot."""
        run = self._handle(run_id)
        try:
            submission.resume(run)
        except (RunError, submission.LimitError) as exc:
            raise Conflict(str(exc)) from exc
        except DispatchError as exc:
            raise Unavailable(str(exc)) from exc
        self.catalog.add(run.dir)
        return run_model(run.dir)

    def _ended(self, run_id: str, action: str) -> RunDir:
        """The run directory of an ended run; Conflict while it may still change."""
        rundir = self.rundir(run_id)
        try:
            state = rundir.state
        except CorruptRunError:
            return rundir  # an unreadable run can only be put away
        if not state.is_final:
            raise Conflict(
                f"run {run_id} is {state.value}; only a completed, failed, cancelled "
                f"or corrupt run can be {action} (cancel it first)"
            )
        return rundir

    def archive(self, run_id: str) -> dict[str, Any]:
        """Move an ended run's directory to ``ROOT/.simlab/archive``: kept, unlisted."""
        rundir = self._ended(run_id, "archived")
        folder = self.root / ARCHIVE_DIR
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / rundir.id
        if target.exists():
            raise Conflict(f"run {run_id} is already in the archive: {target}")
        rundir.path.rename(target)
        self.catalog.remove(run_id)
        return {"id": run_id, "path": str(target)}

    def delete(self, run_id: str) -> dict[str, Any]:
        """Remove an ended run's directory for good.

        It is first renamed out of the listing (atomic), so a half-removed run is
        never seen; links inside are removed, never followed.
        """
        import shutil

        rundir = self._ended(run_id, "deleted")
        private = self.root / ".simlab"
        private.mkdir(exist_ok=True, mode=0o700)
        trash = private / f"deleting-{rundir.id}"
        rundir.path.rename(trash)
        self.catalog.remove(run_id)
        shutil.rmtree(trash)
        return {"id": run_id, "deleted": True}

    def log(
        self, run_id: str, offset: int | None = None, tail: int | None = None
    ) -> dict[str, Any]:
        """A slice of the run's log from byte ``offset``, or its last ``tail`` lines.

        ``next`` is the offset to ask for next time to follow the log.
        """
        rundir = self.rundir(run_id)
        log = self.member(rundir, "log")
        size = log.stat().st_size if log is not None else 0
        if offset is not None and tail is not None:
            raise BadRequest("give offset or tail, not both")
        if offset is not None and not 0 <= offset <= size:
            raise BadRequest(f"offset={offset} is outside the log (0 to {size} bytes)")
        if tail is not None and not 1 <= tail <= 100_000:
            raise BadRequest(f"tail={tail}: allowed 1 to 100000 lines")
        start = offset or 0
        if tail is not None:
            start = max(0, size - LOG_CHUNK)
        data = b""
        if log is not None:
            with open(log, "rb") as fh:
                fh.seek(start)
                data = fh.read(min(LOG_CHUNK, size - start))
        if offset is not None and len(data) == LOG_CHUNK:
            # end on a line boundary so a multibyte character is never split
            cut = data.rfind(b"\n") + 1
            data = data[:cut] if cut else data
        text = data.decode("utf-8", errors="replace")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:])
            start = size - len(text.encode("utf-8", errors="replace"))
        return {
            "text": text,
            "offset": start,
            "next": start + len(data) if tail is None else size,
            "size": size,
        }

    def snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """Snapshot files written so far, with size, time and scale factor."""
        from simlab.engines import registry

        rundir = self.rundir(run_id)
        try:
            engine = rundir.status().get("engine")
            paths = registry.get(engine).outputs(rundir.path)
        except CorruptRunError as exc:
            raise Conflict(f"run {run_id} cannot be read: {exc}") from exc
        except KeyError as exc:
            raise NotFound(f"run {run_id}: {exc.args[0]}") from exc
        base = rundir.path.resolve()
        paths = [
            p for p in paths if not p.is_symlink() and p.resolve().is_relative_to(base)
        ]
        return [self._snapshot_model(i, p, rundir) for i, p in enumerate(paths)]

    def _snapshot_model(self, index: int, path: Path, rundir: RunDir) -> dict[str, Any]:
        stat = path.stat()
        model: dict[str, Any] = {
            "index": index,
            "name": path.name,
            "path": str(path.relative_to(rundir.path)),
            "size": stat.st_size,
            "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            "a": None,
            "z": None,
        }
        try:
            import h5py

            with h5py.File(path, "r") as fh:
                header = fh["Header"].attrs
                model["a"] = float(header["Time"])
                model["z"] = float(header["Redshift"])
        except (OSError, KeyError) as exc:
            logger.info("snapshot %s: no header time (%s)", path, exc)
        return model

    def results(self, run_id: str) -> dict[str, Any]:
        """The values recorded in results.json (empty when nothing was recorded)."""
        rundir = self.rundir(run_id)
        results = self.member(rundir, "results.json")
        if results is None:
            return {}
        try:
            return json.loads(results.read_text())
        except (OSError, ValueError) as exc:
            raise Conflict(f"run {run_id}: results.json cannot be read: {exc}") from exc

    def artifact_files(
        self, run_id: str, parts: list[str] | None
    ) -> Iterator[tuple[str, Path]]:
        """(name in the zip, path) of every regular file of the chosen parts.

        Symbolic links are skipped, so a link in ``output/`` can never pull a file
        from outside the run directory into the zip.
        """
        rundir = self.rundir(run_id)
        parts = list(parts or DEFAULT_PARTS)
        unknown = sorted(set(parts) - set(ARTIFACT_PARTS))
        if unknown:
            raise BadRequest(
                f"parts {', '.join(map(repr, unknown))} unknown; allowed: "
                f"{', '.join(ARTIFACT_PARTS)}"
            )
        base = rundir.path.resolve()
        prefix = rundir.id
        for part in parts:
            top = rundir.path / ARTIFACT_PARTS[part]
            if top.is_symlink() or not top.exists():
                continue
            if top.is_file():
                yield f"{prefix}/{top.name}", top
                continue
            for folder, dirs, files in os.walk(top, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    path = Path(folder) / name
                    if path.is_symlink() or not path.is_file():
                        continue
                    if not path.resolve().is_relative_to(base):
                        continue
                    yield f"{prefix}/{path.relative_to(rundir.path)}", path

    # -- codes, clusters, stats ------------------------------------------------------
    def codes(self) -> list[dict[str, Any]]:
        """Every installed engine with its health check (executables found by the
        run service's rule for the ``local`` profile)."""
        from simlab.engines import registry
        from simlab.engines.base import Launch
        from simlab.service.executables import find_executable

        profile = cluster_profile("local")
        models = []
        for name in registry.names():
            engine = registry.get(name)
            found = find_executable(engine, None, profile)
            launch = Launch(found.path, found.source, container=found.container)
            health = engine.health(launch)
            models.append(
                {
                    "name": name,
                    "ok": health.ok,
                    "version": health.version,
                    "message": health.message,
                }
            )
        return models

    def clusters(self) -> dict[str, Any]:
        """Cluster profiles and the clusters every simlab dispatcher of this run
        root runs now (on any host), with their workers."""
        from simlab import settings

        profiles = settings.profiles()
        started = [
            {**cluster, "host": record["host"]}
            for record in owners.records(self.root)
            for cluster in record.get("clusters", [])
        ]
        return {
            "profiles": [
                {"name": name, "kind": (p or {}).get("kind", "local")}
                for name, p in sorted(profiles.items())
            ],
            "clusters": started,
        }

    def scale(self, cluster_id: str, workers: int) -> None:
        """Ask a running cluster for ``workers`` workers (jobs for batch clusters)."""
        if not 0 <= workers <= 1000:
            raise BadRequest(f"workers={workers}: allowed 0 to 1000")
        running = [c["id"] for c in self.clusters()["clusters"]]
        if cluster_id not in running:
            raise NotFound(
                f"cluster {cluster_id[:80]} is not running; running clusters: "
                f"{', '.join(running) or 'none'}"
            )
        request = {"op": "scale", "cluster": cluster_id, "workers": workers}
        answer = owners.await_reply(
            self.root, owners.post(self.root, request), timeout=30
        )
        if answer is None:
            raise Unavailable(
                f"the dispatcher did not answer the scale of {cluster_id}"
            )
        if not answer.get("ok"):
            raise Conflict(f"cluster {cluster_id}: {answer.get('error')}")

    def publish(self, run_id: str) -> dict[str, Any]:
        """Publish a finished run into the group space; Conflict when refused."""
        from simlab.service.publish import PublishError, publish

        rundir = self.rundir(run_id)
        try:
            target = publish(run_id, root=self.root)
        except PublishError as exc:
            raise Conflict(str(exc)) from exc
        return {"id": rundir.id, "path": str(target)}

    def published(self) -> list[dict[str, Any]]:
        """The runs in the group space (empty when none is configured)."""
        from simlab.service.publish import PublishError, published

        try:
            return published()
        except PublishError:
            return []

    def stats(self) -> dict[str, Any]:
        """Counts by state and code, mean run durations by code and the queue length."""
        counts = self.catalog.counts()
        durations: dict[str, list[float]] = {}
        page = 1
        while True:
            rows, total = self.catalog.query(
                state=State.COMPLETED.value, page=page, per_page=1000
            )
            for row in rows:
                start, end = _parse_time(row["running"]), _parse_time(row["completed"])
                if start is not None and end is not None:
                    durations.setdefault(row["engine"], []).append(end - start)
            if page * 1000 >= total:
                break
            page += 1
        return {
            "total": sum(counts["state"].values()),
            "by_state": counts["state"],
            "by_code": counts["engine"],
            "mean_duration": {
                code: sum(values) / len(values) for code, values in durations.items()
            },
            "pending": self.pending(),
        }

    def pending(self) -> int:
        """Runs the run root's dispatchers hold whose tasks have not finished."""
        return sum(len(r.get("runs", [])) for r in owners.records(self.root))

    def close(self) -> None:
        """Stop refreshing the catalogue (the runs and their dispatcher go on)."""
        if self._sync_callback is not None:
            self._sync_callback.stop()
