"""How long a run still needs: one rule for the CLI, the widgets and the sidebar.

While a run is ``running``, its time left is measured, not modelled: the task
stamps every progress report with the wall time (``progress.time``) and keeps the
first report of the segment (``progress_start``), so the rate is the fraction done
between the two over the seconds between them. Start-up (imports, reading ICs) is
thereby left out, and codes whose logs carry no elapsed time (Gadget4, CONCEPT) get
the same answer as the embedded engine. Before two reports exist the cost model
gives the expected duration; ended runs have no ETA. :func:`remaining` is the
one function the CLI (``simlab status``), the monitor widget and the REST run
model (the sidebar) call, so they show the same number.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.config import RunConfig

#: Least fraction of progress between two reports before a rate is trusted.
MIN_PROGRESS = 0.005


@dataclass(frozen=True)
class Eta:
    """Seconds left and where the number comes from (``progress`` or ``model``)."""

    seconds: float
    source: str


def rate(status: dict[str, Any]) -> float | None:
    """Fraction of the run done per second between the segment's first progress
    report and its latest, or None before two reports that far apart.

    Examples
    --------
    >>> rate({"progress_start": {"fraction": 0.1, "time": 100.0},
    ...       "progress": {"fraction": 0.3, "time": 120.0}})
    0.01
    """
    first, last = status.get("progress_start") or {}, status.get("progress") or {}
    try:
        f0, t0 = float(first["fraction"]), float(first["time"])
        f1, t1 = float(last["fraction"]), float(last["time"])
    except (KeyError, TypeError, ValueError):
        return None
    if f1 - f0 < MIN_PROGRESS or t1 <= t0:
        return None
    return round((f1 - f0) / (t1 - t0), 12)


def measured(status: dict[str, Any], now: float | None = None) -> Eta | None:
    """Seconds left for a running run from its measured rate; None without one.

    Examples
    --------
    >>> status = {"state": "running",
    ...           "progress_start": {"fraction": 0.1, "time": 100.0},
    ...           "progress": {"fraction": 0.3, "time": 120.0}}
    >>> measured(status, now=125.0)
    Eta(seconds=65.0, source='progress')
    """
    per_second = rate(status) if status.get("state") == "running" else None
    if per_second is None:
        return None
    last = status["progress"]
    left = (1.0 - float(last["fraction"])) / per_second
    since = (time.time() if now is None else now) - float(last["time"])
    return Eta(max(0.0, left - since), "progress")


#: Seconds a calibrated duration is reused per (run root, engine): a listing of
#: queued runs asks once, not once per row.
CALIBRATION_TTL = 30.0
_calibrations: dict[tuple[str, str], tuple[float, Any]] = {}
_calibrations_lock = threading.Lock()
_computing: dict[tuple[str, str], threading.Lock] = {}


def _calibration(root: Path | None, engine: str) -> Any:
    """The cost model's rate for ``engine`` on the completed runs under ``root``
    (the prior alone without a root), cached for :data:`CALIBRATION_TTL` s.

    One caller computes it while the others wait (20 submissions at once would
    otherwise each sync and query the catalogue)."""
    from simlab.service.cost import calibrate

    key = (str(root), engine)
    with _calibrations_lock:
        lock = _computing.setdefault(key, threading.Lock())
    with lock:
        hit = _calibrations.get(key)
        if hit is not None and time.monotonic() - hit[0] < CALIBRATION_TTL:
            return hit[1]
        catalog = None
        if root is not None:
            from simlab.state.catalog import Catalog

            try:
                catalog = Catalog(root)
            except OSError:
                catalog = None
        try:
            calibration = calibrate(catalog, engine)
        except OSError:
            calibration = calibrate(None, engine)
        _calibrations[key] = (time.monotonic(), calibration)
        return calibration


def remaining(
    status: dict[str, Any],
    config: RunConfig | Callable[[], RunConfig] | None,
    root: str | Path | None = None,
    *,
    now: float | None = None,
) -> Eta | None:
    """Seconds left, the one rule of the CLI, the monitor widget and the REST model:
    measured while running (:func:`measured`), the cost model before that (before
    two progress reports, or while created or queued), None once the run has
    ended or stopped.

    ``config`` is the run's configuration, or a function returning it (read only
    when the cost model is needed); ``root`` is the run root whose completed runs
    calibrate the model (the run directory's parent).

    Examples
    --------
    >>> remaining({"state": "running",
    ...            "progress_start": {"fraction": 0.1, "time": 100.0},
    ...            "progress": {"fraction": 0.3, "time": 120.0}}, None, now=125.0)
    Eta(seconds=65.0, source='progress')
    >>> remaining({"state": "completed"}, None) is None
    True
    """
    state = status.get("state")
    if state not in ("created", "queued", "running"):
        return None
    eta = measured(status, now)
    if eta is not None:
        return eta
    if callable(config):
        try:
            config = config()
        except (OSError, ValueError):
            return None
    if config is None:
        return None
    from simlab.service.cost import estimate

    calibration = _calibration(
        Path(root) if root is not None else None, config.code.engine
    )
    total = estimate(config, calibration=calibration).seconds
    done = (status.get("progress") or {}).get("fraction") or 0.0
    return Eta(max(0.0, total * (1.0 - done)), "model")
