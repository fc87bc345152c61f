"""The Dispatcher: owns one dask cluster per (profile, code) and submits runs to it.

Each run is one task with ``resources={"run": 1}``, so a worker runs one simulation
at a time. Tasks are fire-and-forget: the run directory, not the future, carries the
outcome. A done-callback follows each future the dispatcher handed out: a run that
came back ``checkpointed`` is resubmitted from its checkpoint (the restart chain),
and a task lost with its worker marks its run ``failed`` with the reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.dispatch.profiles import (
    batch_directives,
    cluster_class,
    cluster_options,
    import_batch_classes,
)
from simlab.dispatch.task import execute
from simlab.runs.liveness import mark_lost
from simlab.runs.rundir import RunDir, TransitionError
from simlab.runs.states import State
from simlab.settings import cluster_profile

if TYPE_CHECKING:
    from distributed import Client, Future

    from simlab.config import RunConfig

logger = logging.getLogger(__name__)

# whoever imports the Dispatcher (the Jupyter server extension at load) does so from
# the main thread: the only place dask_jobqueue can be imported (see the function)
import_batch_classes()

#: Fraction of the job walltime a run may use before it checkpoints; the rest covers
#: worker start-up and writing the checkpoint before the worker's lifetime ends.
WALLTIME_SAFETY = 0.7


def walltime_seconds(walltime: str) -> int:
    """Seconds in a ``[D-]HH:MM[:SS]`` walltime.

    Examples
    --------
    >>> walltime_seconds("1-00:30:00"), walltime_seconds("00:02")
    (88200, 120)
    """
    days, _, clock = walltime.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes, seconds = ([*parts, 0])[:3]
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def jobs_dir(root: Path) -> Path:
    """``ROOT/.simlab/jobs``: TLS credentials and batch logs, readable by the user only.

    It lives in the run root because compute nodes must read the credentials, and
    the run root is on the filesystem they share with the login node.
    """
    path = Path(root) / ".simlab" / "jobs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in (path, path.parent):
        os.chmod(folder, 0o700)
    return path


def start_cluster(profile: dict[str, Any], config: RunConfig, root: Path) -> Any:
    """Start the cluster a profile describes, shaped for runs like ``config``.

    Batch kinds get TLS with temporary credentials kept in ``jobs_dir(root)``, the
    directives that give one job the run's nodes and tasks, and ``adapt`` so that
    idle jobs go away.
    """
    import dask.config
    import distributed  # noqa: F401  (its config defaults must load outside the set)

    # a task whose worker died is never rerun from scratch: its run is failed
    settings: dict[str, Any] = {"distributed.scheduler.allowed-failures": 0}
    if profile.get("kind", "local") == "local" and not profile.get("dashboard_address"):
        # without a dashboard, distributed still serves scheduler and worker pages
        # (task names, logs, call stacks) over plain HTTP on localhost; on a shared
        # machine other users could read them, so serve none
        settings["distributed.scheduler.http.routes"] = []
        settings["distributed.worker.http.routes"] = []
    with dask.config.set(settings):
        return _start_cluster(profile, config, root)


def _start_cluster(profile: dict[str, Any], config: RunConfig, root: Path) -> Any:
    from distributed.security import Security

    kind = profile.get("kind", "local")
    cls = cluster_class(kind)
    options = cluster_options(profile)
    if kind == "local":
        # TLS with credentials held in memory: on a shared machine (a hub) other
        # users cannot reach this scheduler or its workers and run code as us
        options.setdefault("security", Security.temporary())
        if not options.get("dashboard_address"):
            # the HTTP server distributed starts anyway: any free loopback port,
            # not 8787 (which a user's own dashboard may want)
            scheduler = dict(options.get("scheduler_kwargs") or {})
            scheduler.setdefault("dashboard_address", "127.0.0.1:0")
            options["scheduler_kwargs"] = scheduler
        return cls(**options)

    resources = config.resources
    options.setdefault("walltime", resources.walltime)
    options.setdefault("cores", 1)
    options.setdefault("memory", resources.memory or "2GB")
    extra = list(options.get("job_extra_directives", []))
    options["job_extra_directives"] = extra + batch_directives(kind, resources)
    if kind == "slurm":
        options.setdefault("job_directives_skip", ["-n 1"])
    # each code's jobs are named after it, so `squeue` shows whose queue is whose
    options.setdefault("job_name", f"simlab-{config.code.engine}")
    lifetime = int(walltime_seconds(resources.walltime) * 0.95)
    worker_args = list(options.get("worker_extra_args", []))
    options["worker_extra_args"] = [*worker_args, "--lifetime", f"{lifetime}s"]
    workdir = jobs_dir(root)
    options.setdefault("log_directory", str(workdir / "logs"))
    cluster = cls(
        security=Security.temporary(), shared_temp_directory=str(workdir), **options
    )
    cluster.adapt(minimum=0, maximum=int(profile.get("max_jobs", 4)))
    return cluster


#: Dispatchers alive in this process, so that ``Run.cancel`` can withdraw a task.
_LIVE: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


def withdraw(rundir: RunDir) -> bool:
    """Take a queued run back from whichever dispatcher here holds its task."""
    return any(dispatcher.withdraw(rundir) for dispatcher in list(_LIVE))


class Dispatcher:
    """Submit runs to per-(profile, code) clusters; close them when done."""

    def __init__(self) -> None:
        self._clusters: dict[tuple[Any, ...], Any] = {}
        self._clients: dict[tuple[Any, ...], Client] = {}
        self._watched: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._closed = False
        _LIVE.add(self)

    def client(self, config: RunConfig, root: Path) -> Client:
        """The client of the cluster for this run's profile, code and shape."""
        res = config.resources
        key = (res.cluster, config.code.engine, res.nodes, res.cores, res.walltime)
        if key not in self._clients:
            from distributed import Client

            profile = cluster_profile(res.cluster)
            if profile.get("kind") == "existing":
                # a scheduler someone else runs: its workers must offer run=1
                self._clients[key] = Client(profile["address"], set_as_default=False)
            else:
                cluster = start_cluster(profile, config, root)
                self._clusters[key] = cluster
                self._clients[key] = Client(cluster, set_as_default=False)
        return self._clients[key]

    def submit(self, rundir: RunDir, *, resume: bool = False) -> Future:
        """Queue the run and hand it to its cluster as one task."""
        config = rundir.config()
        client = self.client(config, Path(rundir.path).resolve().parent)
        profile = cluster_profile(config.resources.cluster)
        time_limit = None
        if profile.get("kind", "local") != "local":
            time_limit = walltime_seconds(config.resources.walltime) * WALLTIME_SAFETY
        rundir.transition(State.QUEUED, cluster=config.resources.cluster)
        future = client.submit(
            execute,
            str(Path(rundir.path).resolve()),
            resume=resume,
            time_limit=time_limit,
            key=f"simlab-run-{rundir.id}-{time.monotonic_ns()}",
            resources={"run": 1},
            pure=False,
            retries=0,
        )
        with self._lock:
            self._watched[rundir.id] = future
        future.add_done_callback(lambda done: self._settle(rundir, done))
        return future

    def _settle(self, rundir: RunDir, future: Future) -> None:
        """Act on a finished task: continue a restart chain or record a lost task.

        Runs in distributed's callback thread as soon as the task ends. The
        dispatcher then drops its reference; should the scheduler ever recompute the
        task, ``execute`` sees a run that is no longer queued and leaves it alone.
        """
        with self._lock:
            if self._watched.get(rundir.id) is future:
                del self._watched[rundir.id]
        if future.status == "error":
            exc = future.exception()
            if not rundir.state.is_final:
                reason = f"its task ended with {type(exc).__name__}: {exc}"
                logger.warning("run %s: %s", rundir.id, reason)
                mark_lost(rundir, reason)
        elif (
            rundir.state == State.CHECKPOINTED
            and not rundir.status().get("stop_requested")
            and not self._closed
        ):
            logger.info(
                "run %s checkpointed: resubmitting from its checkpoint", rundir.id
            )
            self.submit(rundir, resume=True)

    def withdraw(self, rundir: RunDir) -> bool:
        """Cancel a run whose task has not started yet; False if it has or is not ours.

        The state moves first, so a task that starts a moment later finds the run
        no longer queued and leaves it alone.
        """
        with self._lock:
            future = self._watched.get(rundir.id)
        if future is None:
            return False
        try:
            rundir.transition(State.CANCELLED, reason="cancelled while queued")
        except TransitionError:
            return False
        rundir.clear_requests()
        future.cancel()
        return True

    def clusters(self) -> dict[tuple[Any, ...], Any]:
        """The clusters started here, by (profile, engine, nodes, cores, walltime)."""
        return dict(self._clusters)

    def pending(self) -> int:
        """Number of runs whose tasks have not finished yet."""
        with self._lock:
            return len(self._watched)

    def close(self) -> None:
        """Shut down every client and cluster started here."""
        self._closed = True
        for client in self._clients.values():
            client.close()
        for cluster in self._clusters.values():
            cluster.close()
        self._clients.clear()
        self._clusters.clear()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
