"""The one rule that finds a simulation code's executable, for runs and for doctor.

The most specific setting wins:

1. ``code.executable`` of the run;
2. ``executables.<engine>`` in the run's cluster profile (dask config
   ``simlab.clusters.<profile>.executables.<engine>``);
3. the engine's environment variable (``SIMLAB_GADGET4``, ``SIMLAB_CONCEPT``);
4. the engine's executable name on ``PATH`` (``Gadget4``, ``concept``).

A setting that names something that does not exist or cannot be executed is an
error naming that setting; nothing is ever run to find out. When the profile names
a ``container``, the executable lives in the image: the same settings name it, it
is taken as written (default: the engine's name on the image's PATH), and what is
checked on this machine is the runtime and, for a local image file, the image.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.dispatch.profiles import container_prefix

if TYPE_CHECKING:
    from simlab.config import RunConfig
    from simlab.engines.base import Engine


@dataclass(frozen=True)
class Found:
    """Where the rule looked and what it found."""

    path: str | None
    source: str
    problem: str | None = None
    #: the container runtime's argv prefix when the executable is in an image
    container: tuple[str, ...] = ()


def find_executable(
    engine: Engine, config: RunConfig | None, profile: dict[str, Any] | None
) -> Found:
    """The executable of ``engine`` for a run (or, with ``config=None``, a profile).

    Examples
    --------
    >>> from simlab.engines import registry
    >>> find_executable(registry.get("pm"), None, None)
    Found(path=None, source='embedded', problem=None, container=())
    """
    name = engine.executable_name
    if name is None:
        return Found(None, "embedded")
    executables = (profile or {}).get("executables") or {}
    candidates = [
        ("code.executable", config.code.executable if config is not None else None),
        (
            f"executables.{engine.name} of the cluster profile",
            executables.get(engine.name) if isinstance(executables, dict) else None,
        ),
        (engine.executable_env, os.environ.get(engine.executable_env or "")),
    ]
    if (profile or {}).get("container") is not None:
        return _in_container(name, candidates, profile or {})
    for source, value in candidates:
        if not value:
            continue
        value = str(Path(str(value)).expanduser())
        found = shutil.which(value)
        if found is None:
            return Found(
                None,
                source,
                f"{source} names {value!r}, which does not exist or is not executable",
            )
        return Found(str(Path(found).absolute()), source)
    found = shutil.which(name)
    if found is None:
        return Found(
            None,
            "PATH",
            f"no {name} executable: set code.executable, executables."
            f"{engine.name} in the cluster profile, or {engine.executable_env}, "
            f"or put {name} on PATH",
        )
    return Found(found, "PATH")


def _in_container(
    name: str, candidates: list[tuple[str, Any]], profile: dict[str, Any]
) -> Found:
    """The executable inside the profile's container image, the runtime checked."""
    try:
        prefix = container_prefix(profile)
        runtime, image = prefix[0], prefix[-1]
    except ValueError as exc:
        return Found(None, "container of the cluster profile", str(exc))
    if shutil.which(runtime) is None:
        return Found(
            None,
            "container.command of the cluster profile",
            f"the container runtime {runtime!r} is not on PATH or not executable",
        )
    local_file = "://" not in image and image.endswith((".sif", ".img"))
    if local_file and not Path(image).expanduser().is_file():
        return Found(
            None,
            "container.image of the cluster profile",
            f"container.image names {image!r}, which does not exist",
        )
    for source, value in candidates:
        if value:
            return Found(
                str(value), f"{source}, inside the container image", None, prefix
            )
    return Found(name, "the container image's PATH", None, prefix)
