"""simlab: configure, run, watch and analyse N-body simulations from Jupyter.

The public names are imported on first use (PEP 562), so ``import simlab`` stays
fast for the CLI and for each notebook a sweep starts; dask, xarray and scipy load
only when something needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from simlab.__about__ import __version__

# ``compare`` and ``sweep`` share their names with their modules: bind the functions
# now, or importing the module later would put the module in their place
from simlab.compare import compare
from simlab.sweep import Sweep, sweep

#: public name → module that defines it
_EXPORTS = {
    "create": "simlab.api",
    "run": "simlab.api",
    "runs": "simlab.api",
    "submit": "simlab.api",
    "RunConfig": "simlab.config",
    "load_config": "simlab.config",
    "validate_config": "simlab.config",
    "open_series": "simlab.io.snapshots",
    "open_snapshot": "simlab.io.snapshots",
    "record": "simlab.results",
    "Run": "simlab.runs.run",
}

__all__ = [
    "Run",
    "RunConfig",
    "Sweep",
    "__version__",
    "compare",
    "create",
    "load_config",
    "open_series",
    "open_snapshot",
    "record",
    "run",
    "runs",
    "submit",
    "sweep",
    "validate_config",
]

if TYPE_CHECKING:
    from simlab.api import create, run, runs, submit
    from simlab.config import RunConfig, load_config, validate_config
    from simlab.io.snapshots import open_series, open_snapshot
    from simlab.results import record
    from simlab.runs.run import Run


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'simlab' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
