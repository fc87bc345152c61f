"""simlab's settings, kept in dask's configuration under the ``simlab`` key.

Defaults come from ``simlab/simlab.yaml``; users override them in their dask config
folder (``~/.config/dask/simlab.yaml``) or with ``DASK_SIMLAB__RUN_ROOT=...``. Every
read goes through :func:`get`, which merges the defaults back in first: a
``dask.config.set({"simlab.run-root": ...})`` block entered before simlab was
imported would otherwise take the whole ``simlab`` key with it when it exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

_DEFAULTS = yaml.safe_load(Path(__file__).with_name("simlab.yaml").read_text())
dask.config.update_defaults(_DEFAULTS)


def get(key: str, default: Any = None) -> Any:
    """The setting ``simlab.<key>`` (user's value, else simlab's default)."""
    dask.config.update(dask.config.config, _DEFAULTS, priority="old")
    return dask.config.get(f"simlab.{key}", default=default)


def run_root() -> Path:
    """The folder holding the user's run directories."""
    return Path(get("run-root")).expanduser()


def profiles() -> dict[str, dict[str, Any]]:
    """Every cluster profile by name."""
    return dict(get("clusters", {}) or {})


def cluster_profile(name: str) -> dict[str, Any]:
    """The named cluster profile; KeyError lists the known names."""
    known = profiles()
    if name not in known:
        raise KeyError(
            f"unknown cluster profile {name!r}; known profiles: "
            f"{', '.join(sorted(known))} (set simlab.clusters.{name} in dask config)"
        )
    return dict(known[name] or {})
