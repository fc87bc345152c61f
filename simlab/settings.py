"""simlab's settings, kept in dask's configuration under the ``simlab`` key.

Defaults come from ``simlab/simlab.yaml``; users override them in their dask config
folder (``~/.config/dask/simlab.yaml``) or with ``DASK_SIMLAB__RUN_ROOT=...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

_DEFAULTS = Path(__file__).with_name("simlab.yaml")
dask.config.update_defaults(yaml.safe_load(_DEFAULTS.read_text()))


def run_root() -> Path:
    """The folder holding the user's run directories."""
    return Path(dask.config.get("simlab.run-root")).expanduser()


def cluster_profile(name: str) -> dict[str, Any]:
    """The named cluster profile; KeyError lists the known names."""
    profiles = dask.config.get("simlab.clusters", default={})
    if name not in profiles:
        raise KeyError(
            f"unknown cluster profile {name!r}; known profiles: "
            f"{', '.join(sorted(profiles))} (set simlab.clusters.{name} in dask config)"
        )
    return dict(profiles[name])
