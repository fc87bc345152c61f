"""Cluster profiles: named dask config turned into a running cluster.

A profile is ``simlab.clusters.NAME`` in dask config: ``kind`` picks the class and
every other key goes unchanged to it (dask-jobqueue renders the batch headers, simlab
never does). What simlab adds is small and pure: worker resources ``run=1``, the
batch directives of a multi-node run, and the MPI launcher line.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.config import Resources

#: kind → (module, class) of the cluster it starts.
KINDS: dict[str, tuple[str, str]] = {
    "local": ("distributed", "LocalCluster"),
    "slurm": ("dask_jobqueue", "SLURMCluster"),
    "pbs": ("dask_jobqueue", "PBSCluster"),
    "sge": ("dask_jobqueue", "SGECluster"),
    "lsf": ("dask_jobqueue", "LSFCluster"),
    "htcondor": ("dask_jobqueue", "HTCondorCluster"),
}
#: Keys of a profile that simlab reads itself and does not pass to the class.
SIMLAB_KEYS = (
    "kind",
    "launcher",
    "address",
    "max_jobs",
    "max_clusters",
    "executables",
)


def cluster_class(kind: str) -> type:
    """The cluster class of ``kind``; ValueError lists the allowed kinds."""
    if kind not in KINDS:
        raise ValueError(
            f"cluster kind {kind!r} is not known; allowed: "
            f"{', '.join([*KINDS, 'existing'])}"
        )
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def import_batch_classes() -> None:
    """Import dask-jobqueue now, from the main thread, keeping the SIGINT handler.

    dask_jobqueue installs a SIGINT handler when first imported: that raises outside
    the main thread (the Jupyter server starts clusters from worker threads) and in
    the main thread it would replace the host's own handler (Jupyter's).
    """
    if "dask_jobqueue" in sys.modules or (
        threading.current_thread() is not threading.main_thread()
    ):
        return
    handler = signal.getsignal(signal.SIGINT)
    try:
        importlib.import_module("dask_jobqueue")
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def cluster_options(profile: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the profile's class: its keys plus ``run=1`` resources."""
    options = {k: v for k, v in profile.items() if k not in SIMLAB_KEYS}
    kind = profile.get("kind", "local")
    if kind == "local":
        options.setdefault("n_workers", 1)
        options.setdefault("threads_per_worker", 1)
        options.setdefault("processes", True)
        options.setdefault("dashboard_address", None)
        options["resources"] = {"run": 1}
    else:
        extra = list(options.get("worker_extra_args", []))
        if not any(arg.startswith("--resources") for arg in extra):
            extra += ["--resources", "run=1"]
        options["worker_extra_args"] = extra
    return options


def batch_directives(kind: str, resources: Resources) -> list[str]:
    """Scheduler directives that give one job the nodes and tasks of one run.

    Examples
    --------
    >>> from simlab.config import Resources
    >>> batch_directives("slurm", Resources(cores=64, nodes=2))
    ['--nodes=2', '--ntasks=64']
    """
    nodes, cores = resources.nodes, resources.cores
    per_node = -(-cores // nodes)
    if kind == "slurm":
        return [f"--nodes={nodes}", f"--ntasks={cores}"]
    if kind == "pbs":
        return [f"-l select={nodes}:ncpus={per_node}:mpiprocs={per_node}"]
    if kind == "lsf":
        return [f"-n {cores}", f'-R "span[ptile={per_node}]"']
    if kind == "sge":
        return [f"-pe mpi {cores}"]
    return []


def mpi_launcher(profile: dict[str, Any], cores: int) -> list[str]:
    """The argv prefix that starts ``cores`` MPI ranks under this profile.

    ``launcher`` in the profile overrides the default (``srun`` under Slurm,
    ``mpirun -np`` elsewhere); ``{cores}`` in it is replaced.

    Examples
    --------
    >>> mpi_launcher({"kind": "slurm"}, 4)
    ['srun', '--ntasks=4']
    >>> mpi_launcher({"kind": "local", "launcher": "mpiexec -n {cores}"}, 2)
    ['mpiexec', '-n', '2']
    """
    template = profile.get("launcher")
    if template is None:
        template = (
            "srun --ntasks={cores}"
            if profile.get("kind") == "slurm"
            else ("mpirun -np {cores}")
        )
    return [part.replace("{cores}", str(int(cores))) for part in str(template).split()]
