"""What ``simlab doctor`` checks: the engines, MPI launchers and batch schedulers here.

Each check is ``(section, name, ok, detail)``: ``ok`` is True when found and
working, False when a part simlab needs is missing or broken, and None for an
optional part that is absent (a Gadget4 build, ``srun`` on a laptop). Engines are
checked per cluster profile with the executable rule runs use
(:mod:`simlab.service.executables`), saying where each executable came from.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

Check = tuple[str, str, bool | None, str]

#: Launchers the profiles may name, and the batch systems dask-jobqueue drives.
LAUNCHERS = ("mpirun", "mpiexec", "srun")
SCHEDULERS = {
    "slurm": "sbatch",
    "pbs": "qsub",
    "sge": "qsub",
    "lsf": "bsub",
    "htcondor": "condor_submit",
}
PACKAGES = ("simlab", "dask", "distributed", "dask-jobqueue", "xarray", "h5py", "numpy")


def checks(cluster: str | None = None) -> Iterator[Check]:
    """Every check, in the order ``simlab doctor`` prints them; engines for every
    cluster profile, or only for ``cluster``."""
    yield "python", sys.executable, True, sys.version.split()[0]
    for package in PACKAGES:
        try:
            yield "package", package, True, version(package)
        except PackageNotFoundError:
            yield "package", package, False, "not installed"
    yield from _engines(cluster)
    for launcher in LAUNCHERS:
        path = shutil.which(launcher)
        yield "mpi", launcher, True if path else None, path or "not on PATH"
    for kind, command in SCHEDULERS.items():
        path = shutil.which(command)
        yield "scheduler", kind, True if path else None, path or f"no {command}"
    yield _run_root()


def _engines(cluster: str | None) -> Iterator[Check]:
    from simlab import settings
    from simlab.engines import registry
    from simlab.engines.base import Launch
    from simlab.service.executables import find_executable
    from simlab.settings import cluster_profile

    names = [cluster] if cluster else sorted(settings.profiles())
    for profile_name in names:
        try:
            profile = cluster_profile(profile_name)
        except KeyError as exc:
            yield "profile", profile_name, False, exc.args[0]
            continue
        for name in registry.names():
            engine = registry.get(name)
            found = find_executable(engine, None, profile)
            label = f"{name}@{profile_name}"
            # the embedded engine must always work, and so must an executable
            # that a setting names; a code found nowhere is merely absent
            required = name == "pm" or found.source != "PATH"
            if found.problem is not None:
                yield "engine", label, False if required else None, found.problem
                continue
            launch = Launch(found.path, found.source, container=found.container)
            health = engine.health(launch)
            ok = True if health.ok else (False if required else None)
            where = f" [from {found.source}]" if found.path else ""
            detail = f"{health.version} {health.message}{where}".strip()
            yield "engine", label, ok, detail


def _run_root() -> Check:
    from simlab.settings import run_root

    root = run_root()
    probe = root if root.exists() else root.parent
    while not probe.exists():
        probe = probe.parent
    writable = os.access(probe, os.W_OK)
    return "run-root", str(root), writable, "writable" if writable else "not writable"
