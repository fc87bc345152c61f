"""A dask cluster class named by import path in tests: a LocalCluster that keeps
the options it was given, so a test can check that simlab passed them unchanged."""

from __future__ import annotations

from typing import Any, ClassVar

from distributed import LocalCluster


class RecordingCluster(LocalCluster):
    """LocalCluster that remembers its keyword arguments (for the test's eyes)."""

    received: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        type(self).received = dict(options)
        super().__init__(**options)


class NotACluster:
    """An importable class that is no dask cluster: profiles naming it are refused."""
