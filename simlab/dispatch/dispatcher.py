"""The Dispatcher: owns one dask cluster per (profile, code, job shape) and submits
runs to it.

Each run is one task with ``resources={"run": 1}``, so a worker runs one simulation
at a time. Tasks are fire-and-forget: the run directory, not the future, carries the
outcome. A done-callback follows each future the dispatcher handed out: a run that
came back ``checkpointed`` is resubmitted from its checkpoint (the restart chain),
and a task lost with its worker marks its run ``failed`` with the reason.

Clusters are started under a lock, keyed by the profile (its name and contents),
the code and the job shape, where the shape only counts for batch kinds: a local
cluster serves every walltime. A profile's ``max_clusters`` (default 8) caps how
many it may have at once; an idle one is closed to make room.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.dispatch.job_exits import (
    TRAPPED_KINDS,
    JobExit,
    ended_dir,
    ended_jobs,
    exit_trap,
    forget,
    job_exit,
)
from simlab.dispatch.notebook_task import NOTEBOOK_TASK_FILE, execute_notebook_run
from simlab.dispatch.profiles import (
    batch_directives,
    cluster_class,
    cluster_options,
    import_batch_classes,
    is_batch,
)
from simlab.dispatch.task import execute
from simlab.errors import DispatchError
from simlab.state.export import copy_run
from simlab.state.liveness import mark_lost
from simlab.state.owners import process_ref
from simlab.state.rundir import CorruptRunError, RunDir, TransitionError, now
from simlab.state.states import State

if TYPE_CHECKING:
    from distributed import Client, Future

logger = logging.getLogger(__name__)

# whoever imports the Dispatcher (the owner process at start) does so from the
# main thread: the only place dask_jobqueue can be imported (see the function)
import_batch_classes()

#: Fraction of the job walltime a run may use before it checkpoints; the rest covers
#: worker start-up and writing the checkpoint before the worker's lifetime ends.
WALLTIME_SAFETY = 0.7
#: Clusters one profile may have at once unless it sets ``max_clusters``.
MAX_CLUSTERS = 8
#: The run directory file that says how to start a run and on which cluster.
LAUNCH_FILE = "launch.json"


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


@dataclass(frozen=True)
class Shape:
    """What a batch job of one run looks like (empty for local clusters)."""

    nodes: int = 1
    cores: int = 1
    walltime: str = ""
    memory: str | None = None


@dataclass
class ClusterRecord:
    """A cluster this dispatcher started (or a client of an existing scheduler)."""

    id: str
    profile: str
    kind: str
    code: str
    shape: Shape
    client: Client
    cluster: Any = None
    started: float = field(default_factory=time.time)
    tasks: int = 0
    #: the run root, and where batch jobs write their logs (batch kinds only)
    root: Path | None = None
    logs: Path | None = None
    #: names of the batch jobs whose workers have connected at some point
    seen: set[str] = field(default_factory=set)

    def scheduler_workers(self) -> dict[str, dict[str, Any]]:
        """The workers the scheduler knows now, by address (none if unreachable)."""
        try:
            return (self.client.scheduler_info() or {}).get("workers") or {}
        except Exception:
            return {}

    def model(self) -> dict[str, Any]:
        """JSON-ready description with the workers the scheduler knows now."""
        workers = [
            {
                "address": address,
                "name": str(worker.get("name", address)),
                "cores": worker.get("nthreads", 0),
                "memory": worker.get("memory_limit", 0),
                "state": worker.get("status", "running"),
            }
            for address, worker in sorted(self.scheduler_workers().items())
        ]
        return {
            "id": self.id,
            "profile": self.profile,
            "kind": self.kind,
            "code": self.code,
            "shape": vars(self.shape),
            "workers": workers,
            "cores": sum(w["cores"] for w in workers),
            "memory": sum(w["memory"] or 0 for w in workers),
            "dashboard": getattr(self.cluster, "dashboard_link", None),
            "started": self.started,
            "tasks": self.tasks,
        }


def launch_record(rundir: RunDir) -> dict[str, Any]:
    """The run's ``launch.json``: executable, launcher, walltime, cluster, profile."""
    data = rundir.read_json(LAUNCH_FILE)
    if not isinstance(data, dict) or "profile" not in data:
        raise DispatchError(f"{rundir.path / LAUNCH_FILE}: no cluster profile in it")
    return data


def cluster_key(
    name: str, profile: dict[str, Any], code: str, shape: Shape
) -> tuple[str, str, str, Shape]:
    """What makes two runs share a cluster: the profile (name and contents), the
    code and, for batch kinds only, the job shape."""
    digest = hashlib.sha256(
        json.dumps(profile, sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    kind = profile.get("kind", "local")
    return (name, digest, code, shape if is_batch(kind) else Shape())


def cluster_id(name: str, code: str, shape: Shape) -> str:
    """A URL-safe id: ``profile.code`` plus ``.NODESxCORES.HHMMSS`` for batch jobs."""
    if shape == Shape():
        return f"{name}.{code}"
    return (
        f"{name}.{code}.{shape.nodes}x{shape.cores}.{shape.walltime.replace(':', '')}"
    )


def start_cluster(profile: dict[str, Any], code: str, shape: Shape, root: Path) -> Any:
    """Start the cluster a profile describes, shaped for runs of ``shape``.

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
        return _start_cluster(profile, code, shape, root)


def _start_cluster(profile: dict[str, Any], code: str, shape: Shape, root: Path) -> Any:
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
    if not is_batch(kind):  # a class by import path, started as the profile says
        return cls(**options)
    workdir = jobs_dir(root)
    cluster = cls(
        security=Security.temporary(),
        shared_temp_directory=str(workdir),
        **batch_options(profile, code, shape, workdir),
    )
    cluster.adapt(minimum=0, maximum=int(profile.get("max_jobs", 4)))
    return cluster


def batch_log_dir(profile: dict[str, Any], workdir: Path) -> Path:
    """Where a batch profile's jobs write their logs: its ``log_directory``, else
    ``workdir/logs`` (the dispatcher reads a dead job's last lines there)."""
    return Path(profile.get("log_directory") or workdir / "logs")


def batch_options(
    profile: dict[str, Any], code: str, shape: Shape, workdir: Path
) -> dict[str, Any]:
    """The dask-jobqueue class's options for a batch profile's jobs of one shape:
    the profile's own keys, simlab's defaults and the run's batch directives."""
    from simlab.config import Resources, walltime_seconds

    kind = profile.get("kind", "local")
    options = cluster_options(profile)
    resources = Resources(nodes=shape.nodes, cores=shape.cores, walltime=shape.walltime)
    options.setdefault("walltime", shape.walltime)
    options.setdefault("cores", 1)
    options.setdefault("memory", shape.memory or "2GB")
    extra = list(options.get("job_extra_directives", []))
    options["job_extra_directives"] = extra + batch_directives(kind, resources)
    if kind == "slurm":
        options.setdefault("job_directives_skip", ["-n 1"])
    # each code's jobs are named after it, so `squeue` shows whose queue is whose
    options.setdefault("job_name", f"simlab-{code}")
    lifetime = int(walltime_seconds(shape.walltime) * 0.95)
    worker_args = list(options.get("worker_extra_args", []))
    options["worker_extra_args"] = [*worker_args, "--lifetime", f"{lifetime}s"]
    options["log_directory"] = str(batch_log_dir(profile, workdir))
    if kind in TRAPPED_KINDS:  # a job that dies before its worker connects is seen
        prologue = list(options.get("job_script_prologue") or [])
        options["job_script_prologue"] = exit_trap(ended_dir(workdir)) + prologue
    return options


def _forget_job(cluster: Any, name: str) -> None:
    """Drop an ended job from a dask-jobqueue cluster's spec and jobs."""
    cluster.worker_spec.pop(name, None)
    cluster.workers.pop(name, None)


#: Dispatchers alive in this process, so that a cancel can withdraw a task.
_LIVE: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


def withdraw(rundir: RunDir) -> bool:
    """Take a queued run back from whichever dispatcher here holds its task."""
    return any(dispatcher.withdraw(rundir) for dispatcher in list(_LIVE))


class Dispatcher:
    """Submit runs to per-(profile, code, shape) clusters; close them when done."""

    def __init__(self) -> None:
        self._clusters: dict[tuple[str, str, str, Shape], ClusterRecord] = {}
        self._watched: dict[str, Future] = {}
        self._copying: set[str] = set()  # runs whose artifacts are being copied
        self._where: dict[str, str] = {}  # run id → id of the cluster it is on
        self._lock = threading.RLock()
        self._closed = False
        self.ref = process_ref()
        _LIVE.add(self)

    def client(self, rundir: RunDir) -> Client:
        """The client of the cluster for this run, started under the lock if new."""
        launch = launch_record(rundir)
        config = rundir.config()
        res = config.resources
        shape = Shape(res.nodes, res.cores, res.walltime, res.memory)
        root = Path(rundir.path).resolve().parent
        name, profile = launch["cluster"], dict(launch["profile"])
        with self._lock:
            record = self._cluster(name, profile, config.code.engine, shape, root)
            record.tasks += 1
            return record.client

    def warm(self, name: str, profile: dict[str, Any], code: str, root: Path) -> None:
        """Start the local cluster runs of ``code`` on profile ``name`` will use,
        unless it is up: the owner does it while the submitting process writes the
        run's ICs. Only local clusters are warmed: a batch job or a cloud cluster
        would cost an allocation while it waits."""
        if profile.get("kind", "local") != "local":
            return
        with self._lock:
            self._cluster(name, profile, code, Shape(), root)

    def _cluster(
        self, name: str, profile: dict[str, Any], code: str, shape: Shape, root: Path
    ) -> ClusterRecord:
        """The cluster of runs of this kind, started if new (caller holds the lock)."""
        key = cluster_key(name, profile, code, shape)
        record = self._clusters.get(key)
        if record is None:
            self._make_room(name, profile)
            record = self._start(key, name, profile, code, root)
            self._clusters[key] = record
        return record

    def _start(
        self,
        key: tuple[str, str, str, Shape],
        name: str,
        profile: dict[str, Any],
        code: str,
        root: Path,
    ) -> ClusterRecord:
        from distributed import Client

        kind = profile.get("kind", "local")
        cid = cluster_id(name, code, key[3])
        if kind == "existing":
            # a scheduler someone else runs: its workers must offer run=1
            client = Client(profile["address"], set_as_default=False)
            return ClusterRecord(cid, name, kind, code, key[3], client)
        cluster = start_cluster(profile, code, key[3], root)
        client = Client(cluster, set_as_default=False)
        record = ClusterRecord(cid, name, kind, code, key[3], client, cluster)
        if is_batch(kind):
            record.root = root
            record.logs = batch_log_dir(profile, jobs_dir(root))
        return record

    def _make_room(self, name: str, profile: dict[str, Any]) -> None:
        """Close an idle cluster of the profile when it is at its cap."""
        cap = int(profile.get("max_clusters", MAX_CLUSTERS))
        mine = [(k, r) for k, r in self._clusters.items() if r.profile == name]
        if len(mine) < cap:
            return
        busy = set(self._where.values())
        for key, record in mine:
            if record.id not in busy:
                logger.info("closing idle cluster %s to make room", record.id)
                self._close_record(record)
                del self._clusters[key]
                return
        raise DispatchError(
            f"cluster profile {name!r} already runs {len(mine)} clusters, all busy "
            f"(max_clusters {cap}); runs of another job shape wait until one is "
            "free: submit later, or raise max_clusters in the profile"
        )

    def submit(
        self, rundir: RunDir, *, resume: bool = False, adopt: bool = False
    ) -> Future:
        """Queue the run and hand it to its cluster as one task.

        ``resume`` continues it from its checkpoint or last snapshot; ``adopt``
        takes over a run already queued by a dispatcher that is gone.
        """
        launch = launch_record(rundir)
        client = self.client(rundir)
        if adopt and rundir.state == State.QUEUED:
            # from a dead owner: a dispatcher, or a `simlab run` that ran it itself
            rundir.update(owner=self.ref, foreground=False)
        else:
            rundir.transition(State.QUEUED, cluster=launch["cluster"], owner=self.ref)
        path = str(Path(rundir.path).resolve())
        options = {"resources": {"run": 1}, "pure": False, "retries": 0}
        if (rundir.path / NOTEBOOK_TASK_FILE).exists():
            task = rundir.read_json(NOTEBOOK_TASK_FILE)
            future = client.submit(
                execute_notebook_run,
                path,
                task["template"],
                task["parameters"],
                key=f"simlab-point-{rundir.id}-{time.monotonic_ns()}",
                **options,
            )
        else:
            walltime = launch.get("walltime")
            future = client.submit(
                execute,
                path,
                resume=resume,
                time_limit=float(walltime) * WALLTIME_SAFETY if walltime else None,
                key=f"simlab-run-{rundir.id}-{time.monotonic_ns()}",
                **options,
            )
        with self._lock:
            self._where[rundir.id] = next(
                (r.id for r in self._clusters.values() if r.client is client), ""
            )
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
                self._where.pop(rundir.id, None)
        try:
            state = rundir.state
        except Exception:
            logger.exception("run %s: status unreadable after its task", rundir.id)
            return
        if future.status == "error":
            exc = future.exception()
            if not state.is_final:
                reason = f"its task ended with {type(exc).__name__}: {exc}"
                logger.warning("run %s: %s", rundir.id, reason)
                mark_lost(rundir, reason)
        elif future.status == "cancelled" and state.is_active:
            mark_lost(rundir, "its task was cancelled by the scheduler")
        elif (
            state == State.CHECKPOINTED
            and not rundir.status().get("stop_requested")
            and not self._closed
        ):
            logger.info(
                "run %s checkpointed: resubmitting from its checkpoint", rundir.id
            )
            try:
                self.submit(rundir, resume=True)
                return
            except Exception as exc:
                mark_lost(rundir, f"could not resubmit its next segment: {exc}")
        self._copy_artifacts(rundir)

    def _copy_artifacts(self, rundir: RunDir) -> None:
        """Copy an ended run to its profile's ``artifacts`` URL, in a thread of its
        own (snapshots take a while, the callback thread serves every run); the
        outcome goes to status.json. :meth:`pending` counts the copy, so an owner
        never exits in the middle of one."""
        try:
            url = launch_record(rundir)["profile"].get("artifacts")
            ended = rundir.state.is_final
        except Exception:
            logger.exception("run %s: status unreadable after its task", rundir.id)
            return
        if not url or not ended:
            return

        def copy() -> None:
            try:
                # a resumed run that ends again replaces its earlier copy
                where = copy_run(rundir, url, replace=True)
                rundir.update(artifacts={"url": where, "copied": now()})
            except Exception as exc:  # a failed copy never touches the run's state
                logger.warning("run %s: artifacts not copied: %s", rundir.id, exc)
                with contextlib.suppress(OSError):
                    rundir.update(artifacts={"url": url, "error": str(exc)})
            finally:
                with self._lock:
                    self._copying.discard(rundir.id)

        with self._lock:
            self._copying.add(rundir.id)
        threading.Thread(
            target=copy, name=f"simlab-artifacts-{rundir.id}", daemon=False
        ).start()

    def check_jobs(self) -> None:
        """Fail a waiting run for each batch job that ended before its worker
        connected (see :mod:`simlab.dispatch.job_exits`); called on each heartbeat.

        Only while none of the cluster's workers is connected: a job that failed
        beside a working one leaves the runs to that one. The failed job leaves
        the cluster's spec, so adapt may submit another for the runs still waiting.
        """
        with self._lock:
            records = [r for r in self._clusters.values() if r.kind in TRAPPED_KINDS]
        for record in records:
            try:
                self._check_jobs_of(record)
            except Exception:  # the heartbeat goes on; the next one tries again
                logger.exception("could not check the jobs of %s", record.id)

    def _check_jobs_of(self, record: ClusterRecord) -> None:
        assert record.root is not None and record.logs is not None
        ended = ended_dir(jobs_dir(record.root))
        workers = record.scheduler_workers().values()
        connected = {str(worker.get("name")) for worker in workers}
        record.seen |= connected
        exits = ended_jobs(ended)
        for name, job in list(record.cluster.workers.items()):
            job_id = str(getattr(job, "job_id", None))
            if job_id not in exits:
                continue
            forget(ended, job_id)
            if name in record.seen:  # it ended after serving: the lost-task path
                record.seen.discard(name)  # covers it; a new job may take the name
                continue
            # out of the cluster's books (on its loop: its own thread reads them),
            # so that adapt submits a new job, which may reuse the name
            record.cluster.loop.add_callback(_forget_job, record.cluster, name)
            if not connected:
                self._fail_waiting(record, job_exit(job_id, exits[job_id], record.logs))

    def _fail_waiting(self, record: ClusterRecord, exit: JobExit) -> None:
        """Fail the first run still queued on ``record``'s cluster, saying why."""
        with self._lock:
            waiting = [
                (run_id, self._watched[run_id])
                for run_id, cid in self._where.items()
                if cid == record.id and run_id in self._watched
            ]
        for run_id, future in waiting:
            rundir = RunDir(record.root / run_id)
            try:  # the state moves first: a task starting now leaves the run alone
                if rundir.state != State.QUEUED:
                    continue
                rundir.transition(
                    State.FAILED,
                    reason=exit.reason(),
                    diagnosis=exit.diagnosis().to_dict(),
                )
            except (TransitionError, CorruptRunError, OSError):
                continue  # it started or ended meanwhile: try the next one
            logger.warning("run %s: %s", run_id, exit.reason())
            future.cancel()
            return

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

    def held(self) -> list[str]:
        """Ids of the runs whose tasks this dispatcher follows."""
        with self._lock:
            return list(self._watched)

    def clusters(self) -> list[ClusterRecord]:
        """The clusters started here."""
        with self._lock:
            return list(self._clusters.values())

    def scale(self, cid: str, workers: int) -> None:
        """Ask cluster ``cid`` for ``workers`` workers (jobs for batch clusters)."""
        with self._lock:
            record = next((r for r in self._clusters.values() if r.id == cid), None)
        if record is None or record.cluster is None:
            known = ", ".join(r.id for r in self.clusters()) or "none"
            raise LookupError(f"cluster {cid} is not running here; running: {known}")
        record.cluster.scale(workers)

    def pending(self) -> int:
        """Number of runs whose tasks, or copies of their artifacts, have not
        finished yet."""
        with self._lock:
            return len(self._watched) + len(self._copying)

    def close(self) -> None:
        """Shut down every client and cluster started here."""
        self._closed = True
        with self._lock:
            records = list(self._clusters.values())
            self._clusters.clear()
        for record in records:
            self._close_record(record)

    @staticmethod
    def _close_record(record: ClusterRecord) -> None:
        record.client.close()
        if record.cluster is not None:
            record.cluster.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
