"""The Dispatcher: owns one dask cluster per (profile, code) and submits runs to it.

Each run is one task with ``resources={"run": 1}``, so a worker runs one simulation
at a time. Tasks are fire-and-forget: the run directory, not the future, carries
the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.dispatch.task import execute
from simlab.runs.rundir import RunDir
from simlab.runs.states import State
from simlab.settings import cluster_profile

if TYPE_CHECKING:
    from distributed import Client, Future


def start_cluster(profile: dict[str, Any]) -> Any:
    """Start the cluster a profile describes (``kind: local`` for now)."""
    options = dict(profile)
    kind = options.pop("kind", "local")
    if kind != "local":
        raise ValueError(
            f"cluster kind {kind!r} is not supported yet; allowed: 'local'"
        )
    from distributed import LocalCluster

    options.setdefault("n_workers", 1)
    return LocalCluster(
        threads_per_worker=1,
        processes=True,
        resources={"run": 1},
        dashboard_address=None,
        **options,
    )


class Dispatcher:
    """Submit runs to per-(profile, code) clusters; close them when done."""

    def __init__(self) -> None:
        self._clusters: dict[tuple[str, str], Any] = {}
        self._clients: dict[tuple[str, str], Client] = {}

    def client(self, profile: str, code: str) -> Client:
        """The client of the cluster for ``profile`` and ``code``, started on demand."""
        key = (profile, code)
        if key not in self._clients:
            from distributed import Client

            cluster = start_cluster(cluster_profile(profile))
            self._clusters[key] = cluster
            self._clients[key] = Client(cluster, set_as_default=False)
        return self._clients[key]

    def submit(self, rundir: RunDir, *, resume: bool = False) -> Future:
        """Queue the run and hand it to its cluster as one task."""
        config = rundir.config()
        client = self.client(config.resources.cluster, config.code.engine)
        rundir.transition(State.QUEUED, cluster=config.resources.cluster)
        return client.submit(
            execute,
            str(Path(rundir.path).resolve()),
            resume=resume,
            key=f"simlab-run-{rundir.id}",
            resources={"run": 1},
            pure=False,
            retries=0,
        )

    def close(self) -> None:
        """Shut down every client and cluster this dispatcher started."""
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
