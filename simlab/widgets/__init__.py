"""Notebook widgets: configure, launch, watch and look at runs (ipywidgets 8).

``launcher()`` shows everything in one cell; the parts can be used alone:
:class:`RunForm`, :class:`RunMonitor`, :class:`RunTable`,
:class:`InteractiveViewer` (zoom and pan, with ipympl; :func:`explore` falls back
to the static :class:`SnapshotViewer` without it) and :class:`SweepBuilder`.
"""

from __future__ import annotations

from simlab.widgets.form import RunForm
from simlab.widgets.interactive import InteractiveViewer, explore
from simlab.widgets.launcher import Launcher, launcher
from simlab.widgets.monitor import RunMonitor
from simlab.widgets.sweep import SweepBuilder
from simlab.widgets.table import RunTable
from simlab.widgets.viewer import SnapshotViewer

__all__ = [
    "InteractiveViewer",
    "Launcher",
    "RunForm",
    "RunMonitor",
    "RunTable",
    "SnapshotViewer",
    "SweepBuilder",
    "explore",
    "launcher",
]
