"""Cluster profiles: named dask config turned into a running cluster.

A profile is ``simlab.clusters.NAME`` in dask config: ``kind`` picks the class and
every other key goes unchanged to it (dask-jobqueue renders the batch headers, simlab
never does). What simlab adds is small and pure: worker resources ``run=1``, the
batch directives of a multi-node run, and the MPI launcher line. ``kind`` may also be
the import path of any dask cluster class (``dask_kubernetes.operator.KubeCluster``
or ``module:Class``), which gets the profile's options exactly as written.
"""

from __future__ import annotations

import importlib
import os
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
    "container",
    "artifacts",
)
#: How each container runtime runs a command in an image, with the run directory
#: bound at the same path and as the working directory ({rundir}, {image} filled in).
CONTAINER_RUNTIMES: dict[str, tuple[str, ...]] = {
    "apptainer": ("exec", "--bind", "{rundir}", "--pwd", "{rundir}"),
    "singularity": ("exec", "--bind", "{rundir}", "--pwd", "{rundir}"),
    "podman": ("run", "--rm", "--volume", "{rundir}:{rundir}", "--workdir", "{rundir}"),
}


#: What a profile's ``kind`` may be, for error messages.
ALLOWED_KINDS = (
    f"{', '.join([*KINDS, 'existing'])}, or the import path of a dask cluster class "
    "(package.module.Class or package.module:Class)"
)


def is_import_path(kind: str) -> bool:
    """Whether ``kind`` names a cluster class by import path, not a built-in kind."""
    return "." in kind or ":" in kind


def is_batch(kind: str) -> bool:
    """Whether ``kind`` submits batch jobs with a walltime (the dask-jobqueue kinds)."""
    return kind in KINDS and kind != "local"


def check_kind(kind: str) -> None:
    """Raise ValueError unless ``kind`` can start a cluster (imports only paths)."""
    if kind != "existing" and kind not in KINDS:
        cluster_class(kind)


def cluster_class(kind: str) -> type:
    """The cluster class of ``kind``; ValueError says why it cannot be used."""
    if is_import_path(kind):
        return _class_by_path(kind)
    if kind not in KINDS:
        raise ValueError(
            f"cluster kind {kind!r} is not known; allowed: {ALLOWED_KINDS}"
        )
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def _class_by_path(path: str) -> type:
    """Import ``package.module.Class`` or ``package.module:Class``; it must be a
    subclass of distributed's ``Cluster`` (what simlab scales and connects to)."""
    from distributed.deploy.cluster import Cluster

    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import cluster class {path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Cluster)):
        raise ValueError(
            f"{path!r} is not a dask cluster class (a subclass of "
            "distributed.deploy.Cluster)"
        )
    return cls


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
    if is_import_path(kind):
        return options  # exactly as written: simlab cannot know the class's options
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


def container_prefix(profile: dict[str, Any]) -> tuple[str, ...]:
    """The argv that runs a code inside the profile's ``container`` (or ()).

    ``container`` holds ``image`` (a path or a registry reference), ``runtime``
    (apptainer, singularity or podman), optionally ``command`` (the runtime's
    executable, default the runtime's name on PATH) and ``options`` (extra
    arguments, a list). ValueError names the bad key.

    Examples
    --------
    >>> container_prefix({"container": {"image": "g4.sif", "runtime": "apptainer"}})
    ('apptainer', 'exec', '--bind', '{rundir}', '--pwd', '{rundir}', 'g4.sif')
    """
    spec = profile.get("container")
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise ValueError(f"container must be a mapping, got {spec!r}")
    unknown = sorted(set(spec) - {"image", "runtime", "command", "options"})
    if unknown:
        raise ValueError(
            f"container has unknown keys {unknown}; allowed: image, runtime, "
            "command, options"
        )
    runtime = spec.get("runtime", "apptainer")
    if runtime not in CONTAINER_RUNTIMES:
        raise ValueError(
            f"container.runtime {runtime!r} is not known; allowed: "
            f"{', '.join(CONTAINER_RUNTIMES)}"
        )
    image, options = spec.get("image"), spec.get("options", [])
    if not isinstance(image, str) or not image:
        raise ValueError(f"container.image must name an image, got {image!r}")
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError(
            f"container.options must be a list of strings, got {options!r}"
        )
    command = os.path.expanduser(str(spec.get("command") or runtime))
    image = os.path.expanduser(image)  # argv reaches no shell to expand a ~
    return (command, *CONTAINER_RUNTIMES[runtime], *options, image)
