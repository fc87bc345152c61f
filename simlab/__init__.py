"""simlab: configure, run, watch and analyse N-body simulations from Jupyter."""

from __future__ import annotations

from simlab.__about__ import __version__
from simlab.api import create, run, runs, submit
from simlab.compare import compare
from simlab.config import RunConfig, load_config, validate_config
from simlab.io.snapshots import open_series, open_snapshot
from simlab.runs.run import Run

__all__ = [
    "Run",
    "RunConfig",
    "__version__",
    "compare",
    "create",
    "load_config",
    "open_series",
    "open_snapshot",
    "run",
    "runs",
    "submit",
    "validate_config",
]
