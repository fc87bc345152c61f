"""simlab: configure, run, watch and analyse N-body simulations from Jupyter."""

from __future__ import annotations

from simlab.__about__ import __version__
from simlab.api import create, run
from simlab.config import RunConfig, load_config, validate_config
from simlab.runs.run import Run

__all__ = [
    "Run",
    "RunConfig",
    "__version__",
    "create",
    "load_config",
    "run",
    "validate_config",
]
