"""simlab: configure, run, watch and analyse N-body simulations from Jupyter.

Every public name is imported on first use (PEP 562), so ``import simlab`` stays
fast for the CLI and for each notebook a sweep starts; dask, xarray and scipy load
only when something needs them. No subpackage shares a name with a public
function, so ``simlab.runs()`` or ``simlab.sweep(...)`` mean the same whatever was
imported before.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

from simlab.__about__ import __version__

#: public name → module that defines it
_EXPORTS = {
    "compare": "simlab.service.compare",
    "create": "simlab.service.submission",
    "resume": "simlab.service.submission",
    "run": "simlab.service.submission",
    "runs": "simlab.service.submission",
    "submit": "simlab.service.submission",
    "RunConfig": "simlab.config",
    "load_config": "simlab.config",
    "validate_config": "simlab.config",
    "open_series": "simlab.io.snapshots",
    "open_snapshot": "simlab.io.snapshots",
    "record": "simlab.service.results",
    "Run": "simlab.service.run",
    "Sweep": "simlab.service.sweeps",
    "sweep": "simlab.service.sweeps",
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
    "resume",
    "run",
    "runs",
    "submit",
    "sweep",
    "validate_config",
]

if TYPE_CHECKING:
    from simlab.config import RunConfig, load_config, validate_config
    from simlab.io.snapshots import open_series, open_snapshot
    from simlab.service.compare import compare
    from simlab.service.results import record
    from simlab.service.run import Run
    from simlab.service.submission import create, resume, run, runs, submit
    from simlab.service.sweeps import Sweep, sweep


def _live_run(run: Any) -> dict[str, Any]:
    from simlab.widgets.display import run_mimebundle

    return run_mimebundle(run)


def _register_display() -> None:
    """In a Jupyter kernel, show Runs as live monitors (widgets render there).

    Registered by name, so neither the Run class nor ipywidgets is imported now;
    the service layer never imports the widgets.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    formatter = shell.display_formatter.mimebundle_formatter
    formatter.for_type_by_name("simlab.service.run", "Run", _live_run)


_register_display()


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'simlab' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
