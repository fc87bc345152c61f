"""The server's one manager: run root, catalogue and Dispatcher, as JSON-ready models.

Handlers stay thin: they parse the request, call one method here and serialise the
answer. Every path this class touches is checked to lie inside the run root, and
run ids must match :data:`simlab.runs.rundir.RUN_ID_RE` before any path is built.
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

from simlab import api
from simlab.config import RunConfig, validate_config
from simlab.dispatch.dispatcher import Dispatcher
from simlab.errors import ConfigError, SimlabError
from simlab.runs.catalog import Catalog
from simlab.runs.rundir import RUN_ID_RE, RunDir
from simlab.runs.states import State
from simlab.server import metrics
from simlab.settings import cluster_profile, run_root

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


def eta_seconds(status: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds left for a running run, extrapolated from its progress so far.

    Examples
    --------
    >>> eta_seconds({"state": "running", "progress": {"fraction": 0.25, "elapsed": 30}})
    90.0
    """
    progress = status.get("progress") or {}
    fraction = progress.get("fraction")
    if status.get("state") != State.RUNNING or not fraction:
        return None
    elapsed = progress.get("elapsed")
    if elapsed is None:
        started = _parse_time((status.get("times") or {}).get("running"))
        if started is None:
            return None
        elapsed = (now or time.time()) - started
    return elapsed * (1.0 - fraction) / fraction


def run_model(rundir: RunDir, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON model of one run: its catalogue row overlaid with status.json."""
    status = rundir.status()
    model = dict(row or {})
    model.update(
        id=rundir.id,
        name=status.get("name", model.get("name")),
        engine=status.get("engine", model.get("engine")),
        state=status["state"],
        progress=status.get("progress"),
        eta=eta_seconds(status),
        times=status.get("times", {}),
        updated=status.get("updated"),
        reason=status.get("reason"),
        cluster=status.get("cluster"),
        path=str(rundir.path),
    )
    return model


class SimlabManager:
    """Owns the user's run root, its catalogue and the Dispatcher of this server."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root or run_root()).expanduser()
        self.catalog = Catalog(self.root)
        self._real_root = self.root.resolve()
        self._dispatcher: Dispatcher | None = None
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._next_sync = 0.0
        self._sync_callback: Any = None
        metrics.track(self)

    # -- runs ---------------------------------------------------------------------
    @property
    def dispatcher(self) -> Dispatcher:
        """The Dispatcher, started on first submission."""
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = Dispatcher()
            return self._dispatcher

    @property
    def started(self) -> bool:
        """Whether the Dispatcher has started (a run was submitted)."""
        return self._dispatcher is not None

    def rundir(self, run_id: str) -> RunDir:
        """The run directory of ``run_id``, checked to be a run inside the root."""
        if not RUN_ID_RE.match(run_id):
            raise BadRequest(
                f"run id {run_id!r} is not valid: expected NAME-YYYYMMDDTHHMMSS-xxxxxx "
                "(letters, digits, '.', '_', '-')"
            )
        path = self.root / run_id
        if (
            not path.resolve().is_relative_to(self._real_root)
            or not (path / "status.json").is_file()
        ):
            raise NotFound(f"run {run_id} not found in {self.root}")
        return RunDir(path)

    def refresh(self) -> None:
        """Bring the catalogue up to date with the run directories (blocking)."""
        with self._sync_lock:
            started = time.monotonic()
            self.catalog.sync()
            self._next_sync = time.monotonic() + max(
                SYNC_INTERVAL, SYNC_PAUSE_FACTOR * (time.monotonic() - started)
            )

    def start_background_sync(self) -> None:
        """Refresh the catalogue in a thread now and then, off the request path.

        Listings read the catalogue as it is and overlay each row with its
        status.json, so a request never waits for a scan of the whole run root.
        """
        from tornado.ioloop import PeriodicCallback

        def tick() -> None:
            if self._sync_lock.locked() or time.monotonic() < self._next_sync:
                return
            threading.Thread(
                target=self._sync_logged, name="simlab-catalog-sync", daemon=True
            ).start()

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
        model["config"] = json.loads(rundir.config_path.read_text())
        return model

    def _model(self, rundir: RunDir, row: dict[str, Any] | None) -> dict[str, Any]:
        """The run model; a catalogue row found behind status.json is refreshed."""
        model = run_model(rundir, row)
        if row is None or row.get("state") != model["state"]:
            self.catalog.add(rundir)
        return model

    def submit(
        self, config: dict[str, Any], cluster: str | None = None
    ) -> dict[str, Any]:
        """Validate, create and dispatch a run; ConfigError names each bad field."""
        if cluster is not None:
            config = {**config}
            config["resources"] = {**config.get("resources", {}), "cluster": cluster}
        valid = validate_config(config)
        self._check_cluster(valid)
        try:
            api.check_active_limit(self.root)
        except SimlabError as exc:
            raise Conflict(str(exc)) from exc
        run = api.create(valid, self.root)
        started = time.perf_counter()
        metrics.SUBMITTED.labels(code=valid.code.engine).inc()
        try:
            api.dispatch(run, self.dispatcher)
        except Exception as exc:
            logger.exception("run %s: could not dispatch", run.id)
            raise Unavailable(
                f"run {run.id} could not be dispatched and is failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        metrics.DISPATCH_LATENCY.observe(time.perf_counter() - started)
        return run_model(run.dir)

    @staticmethod
    def _check_cluster(config: RunConfig) -> None:
        """ConfigError at ``resources.cluster`` for an unknown cluster profile."""
        try:
            cluster_profile(config.resources.cluster)
        except KeyError as exc:
            raise ConfigError(
                [
                    {
                        "loc": "resources.cluster",
                        "value": config.resources.cluster,
                        "msg": exc.args[0],
                    }
                ]
            ) from None

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Ask a run to end ``cancelled``; Conflict if it has already ended."""
        from simlab.runs.run import Run

        rundir = self.rundir(run_id)
        state = rundir.state
        if state.is_final:
            raise Conflict(f"run {run_id} is already {state.value}; nothing to cancel")
        Run(rundir.path).cancel()
        metrics.CANCELLED.inc()
        self.catalog.add(rundir)
        return run_model(rundir)

    def stop(self, run_id: str) -> dict[str, Any]:
        """Ask a running run to checkpoint and stop; Conflict unless it is running."""
        rundir = self.rundir(run_id)
        state = rundir.state
        if state != State.RUNNING:
            raise Conflict(
                f"run {run_id} is {state.value}; only a running run can be stopped"
            )
        rundir.request("stop")
        return run_model(rundir)

    def log(
        self, run_id: str, offset: int | None = None, tail: int | None = None
    ) -> dict[str, Any]:
        """A slice of the run's log from byte ``offset``, or its last ``tail`` lines.

        ``next`` is the offset to ask for next time to follow the log.
        """
        rundir = self.rundir(run_id)
        size = rundir.log_path.stat().st_size if rundir.log_path.exists() else 0
        if offset is not None and tail is not None:
            raise BadRequest("give offset or tail, not both")
        if offset is not None and not 0 <= offset <= size:
            raise BadRequest(f"offset={offset} is outside the log (0 to {size} bytes)")
        if tail is not None and not 1 <= tail <= 100_000:
            raise BadRequest(f"tail={tail}: allowed 1 to 100000 lines")
        start = offset or 0
        if tail is not None:
            start = max(0, size - LOG_CHUNK)
        with open(rundir.log_path, "rb") as fh:
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
        engine = rundir.status().get("engine")
        try:
            paths = registry.get(engine).outputs(rundir.path)
        except KeyError as exc:
            raise NotFound(f"run {run_id}: {exc.args[0]}") from exc
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
        if not rundir.results_path.is_file():
            return {}
        return json.loads(rundir.results_path.read_text())

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
        """Every installed engine with its health check."""
        from simlab.engines import registry

        models = []
        for name in registry.names():
            health = registry.get(name).health()
            models.append(
                {
                    "name": name,
                    "ok": health.ok,
                    "version": health.version,
                    "message": health.message,
                }
            )
        return models

    def _started(self) -> dict[tuple[Any, ...], Any]:
        # the Dispatcher keys its clusters by (profile, code, nodes, cores, walltime)
        if self._dispatcher is None:
            return {}
        return self._dispatcher.clusters()

    @staticmethod
    def cluster_id(key: tuple[Any, ...]) -> str:
        """A URL-safe id for a started cluster: profile.code.NODESxCORES.walltime."""
        profile, code, nodes, cores, walltime = key
        return f"{profile}.{code}.{nodes}x{cores}.{walltime.replace(':', '')}"

    def clusters(self) -> dict[str, Any]:
        """Cluster profiles and the clusters started from them, with their workers."""
        import dask.config

        profiles = dask.config.get("simlab.clusters", default={}) or {}
        started = []
        for key, cluster in self._started().items():
            info = getattr(cluster, "scheduler_info", {}) or {}
            workers = [
                {
                    "address": address,
                    "name": str(worker.get("name", address)),
                    "cores": worker.get("nthreads", 0),
                    "memory": worker.get("memory_limit", 0),
                    "state": worker.get("status", "running"),
                }
                for address, worker in sorted((info.get("workers") or {}).items())
            ]
            started.append(
                {
                    "id": self.cluster_id(key),
                    "profile": key[0],
                    "code": key[1],
                    "kind": profiles.get(key[0], {}).get("kind", "local"),
                    "workers": workers,
                    "cores": sum(w["cores"] for w in workers),
                    "memory": sum(w["memory"] or 0 for w in workers),
                    "dashboard": getattr(cluster, "dashboard_link", None),
                }
            )
        return {
            "profiles": [
                {"name": name, "kind": (p or {}).get("kind", "local")}
                for name, p in sorted(profiles.items())
            ],
            "clusters": started,
        }

    def scale(self, cluster_id: str, workers: int) -> None:
        """Ask a started cluster for ``workers`` workers (jobs for batch clusters)."""
        if not 0 <= workers <= 1000:
            raise BadRequest(f"workers={workers}: allowed 0 to 1000")
        for key, cluster in self._started().items():
            if self.cluster_id(key) == cluster_id:
                cluster.scale(workers)
                return
        known = ", ".join(self.cluster_id(k) for k in self._started()) or "none"
        raise NotFound(
            f"cluster {cluster_id} is not running; running clusters: {known}"
        )

    def publish(self, run_id: str) -> dict[str, Any]:
        """Publish a finished run into the group space; Conflict when refused."""
        from simlab.publish import PublishError, publish

        rundir = self.rundir(run_id)
        try:
            target = publish(run_id, root=self.root)
        except PublishError as exc:
            raise Conflict(str(exc)) from exc
        return {"id": rundir.id, "path": str(target)}

    def published(self) -> list[dict[str, Any]]:
        """The runs in the group space (empty when none is configured)."""
        from simlab.publish import PublishError, published

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
        """Runs handed to the Dispatcher whose tasks have not finished."""
        return self._dispatcher.pending() if self._dispatcher is not None else 0

    def close(self) -> None:
        """Stop refreshing the catalogue; shut down the Dispatcher's clusters."""
        if self._sync_callback is not None:
            self._sync_callback.stop()
        with self._lock:
            if self._dispatcher is not None:
                self._dispatcher.close()
                self._dispatcher = None
