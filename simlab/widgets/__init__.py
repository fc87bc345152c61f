"""Notebook widgets: configure, launch, watch and look at runs (ipywidgets 8).

``launcher()`` shows everything in one cell; the parts can be used alone:
:class:`RunForm`, :class:`RunMonitor`, :class:`RunTable`, :class:`SnapshotViewer`
and :class:`SweepBuilder`.
"""

from __future__ import annotations

from simlab.widgets.form import RunForm
from simlab.widgets.launcher import Launcher, launcher
from simlab.widgets.monitor import RunMonitor
from simlab.widgets.sweep import SweepBuilder
from simlab.widgets.table import RunTable
from simlab.widgets.viewer import SnapshotViewer

__all__ = [
    "Launcher",
    "RunForm",
    "RunMonitor",
    "RunTable",
    "SnapshotViewer",
    "SweepBuilder",
    "launcher",
]
