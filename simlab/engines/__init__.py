"""Registry of simulation engines: built-ins plus ``simlab.engines`` entry points.

A third-party engine that fails to load is reported with a warning and left out,
as xarray does for a broken backend: one broken plugin never breaks the others.
"""

from __future__ import annotations

import threading
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from simlab.errors import SimlabWarning

if TYPE_CHECKING:
    from simlab.engines.base import Engine

ENTRY_POINT_GROUP = "simlab.engines"


class EngineRegistry:
    """Name → engine, filled with the built-ins and, on first lookup, entry points."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._loaded_entry_points = False
        self._loading = threading.Lock()

    def register(self, engine: Engine) -> None:
        """Make ``engine`` available under ``engine.name``."""
        self._engines[engine.name] = engine

    def load_entry_points(self) -> None:
        """Register engines that other packages declare under ``simlab.engines``.

        Done once, under a lock, and marked done only at the end: a server thread
        looking up an engine while another thread loads them waits for the whole
        list instead of seeing a half-filled one.
        """
        with self._loading:
            if self._loaded_entry_points:
                return
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in self._engines:
                    continue
                try:
                    self.register(ep.load()())
                except Exception as exc:  # a plugin's own bug: report it, skip it
                    warnings.warn(
                        f"simlab engine {ep.name!r} ({ep.value}) could not be loaded "
                        f"and is skipped: {type(exc).__name__}: {exc}",
                        SimlabWarning,
                        stacklevel=2,
                    )
            self._loaded_entry_points = True

    def names(self) -> list[str]:
        """Sorted names of every engine available."""
        if not self._loaded_entry_points:
            self.load_entry_points()
        return sorted(self._engines)

    def get(self, name: str) -> Engine:
        """The engine called ``name``; KeyError lists the installed ones."""
        if name not in self._engines and not self._loaded_entry_points:
            self.load_entry_points()
        try:
            return self._engines[name]
        except KeyError:
            raise KeyError(
                f"unknown engine {name!r}; installed engines: {', '.join(self.names())}"
            ) from None


def _builtin_registry() -> EngineRegistry:
    from simlab.engines.pm import PMEngine

    reg = EngineRegistry()
    reg.register(PMEngine())
    return reg


registry = _builtin_registry()
