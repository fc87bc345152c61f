"""Prometheus metrics of simlab, served by jupyter_server's own ``/metrics``.

Counters and the dispatch-latency histogram are updated as requests arrive; the
gauges (runs by state and by code, pending tasks) are read from the catalogue of
the live manager at scrape time, so they are never stale.
"""

from __future__ import annotations

import logging
import sqlite3
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from simlab.server.manager import SimlabManager

SUBMITTED = Counter(
    "simlab_runs_submitted", "Runs submitted through the REST API", ["code"]
)
CANCELLED = Counter("simlab_runs_cancelled", "Runs cancelled through the REST API")
DISPATCH_LATENCY = Histogram(
    "simlab_dispatch_latency_seconds",
    "Time from a valid POST runs to the run being queued on its cluster",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)

logger = logging.getLogger(__name__)
_current: weakref.ref[SimlabManager] | None = None


def track(manager: SimlabManager) -> None:
    """Report this manager's runs in the gauges (a server has exactly one)."""
    global _current
    _current = weakref.ref(manager)


class _RunsCollector(Collector):
    """Gauges read from each live manager's catalogue when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "simlab_runs_by_state", "Runs in the catalogue by state", labels=["state"]
        )
        by_code = GaugeMetricFamily(
            "simlab_runs_by_code", "Runs in the catalogue by code", labels=["code"]
        )
        pending = GaugeMetricFamily(
            "simlab_dispatch_pending", "Runs handed to the dispatcher, not finished"
        )
        manager = _current() if _current is not None else None
        if manager is not None:
            try:
                counts = manager.catalog.counts()
            except sqlite3.Error:
                logger.exception("simlab metrics: catalogue unreadable")
                counts = {"state": {}, "engine": {}}
            for state, n in sorted(counts["state"].items()):
                by_state.add_metric([state], n)
            for code, n in sorted(counts["engine"].items()):
                by_code.add_metric([str(code)], n)
            pending.add_metric([], manager.pending())
        yield from (by_state, by_code, pending)


REGISTRY.register(_RunsCollector())
