"""Dispatch and catalogue: submit → running latency, and listing 10,000 runs.

- Latency: ``simlab.submit`` of a tiny PM run on the ``local`` profile, from the
  call to the ``running`` time the task writes into ``status.json``. The first
  submit starts the LocalCluster (cold); later ones reuse it (warm). Each run is
  waited for before the next, so a worker is free.
- Catalogue: 10,000 run rows in ``simlab.state.catalog.Catalog`` (written in one
  transaction through its ``_write``, as ``reindex`` does), then typical queries.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks._harness import measure, missing, record
from tests import slurm_cluster

N_RUNS = 10_000
QUERIES = {
    "catalogue: first page, newest first": {},
    "catalogue: filter state + engine": {"state": "completed", "code": "gadget4"},
    "catalogue: filter tag": {"tag": "sweep-7"},
    "catalogue: name search, page 5": {"text": "run-12", "page": 5, "per_page": 10},
}


def _tiny_config(name: str) -> dict:
    return {
        "box": {"size": 32.0, "particles_per_side": 8},
        "outputs": {"redshifts": [0.0], "power_spectra": False},
        "gravity": {"steps": 2},
        "metadata": {"name": name},
    }


def case_submit(count: int, cluster: str = "local") -> Callable[[], dict]:
    """``count`` sequential submits; latencies in the step's extra.

    ``cluster="slurm"`` starts the one-node Slurm of ``tests/slurm_cluster.py``
    (root and Debian's slurm packages needed) for this process and submits there.
    """
    import atexit

    import dask.config

    import simlab

    profile = "local"
    if cluster == "slurm":
        state = slurm_cluster.state_dir()
        slurm_cluster.start(state)
        atexit.register(slurm_cluster.stop, state)
        dask.config.set({"simlab.clusters.benchslurm": slurm_cluster.PROFILE})
        profile = "benchslurm"
    roots: list[tempfile.TemporaryDirectory] = []  # removed when the worker exits

    def step() -> dict:
        roots.append(tempfile.TemporaryDirectory(prefix="simlab-bench-dispatch-"))
        root = Path(roots[-1].name)
        latencies = []
        for i in range(count):
            started = datetime.now(UTC)
            run = simlab.submit(_tiny_config(f"latency{i}"), cluster=profile, root=root)
            run.wait(timeout=300, poll=0.01)
            running = datetime.fromisoformat(run.status["times"]["running"])
            latencies.append((running - started).total_seconds())
        return {"latencies": latencies}

    return step


def _rows(root: Path) -> list[dict]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    states = ("completed", "failed", "running", "queued", "cancelled")
    engines = ("pm", "gadget4", "concept")
    rows = []
    for i in range(N_RUNS):
        created = (start + timedelta(minutes=i)).isoformat(timespec="milliseconds")
        run_id = f"run-{i}-20260101T000000-{i:06x}"
        rows.append(
            {
                "id": run_id,
                "name": f"run-{i}",
                "engine": engines[i % 3],
                "state": states[i % 5],
                "project": f"project-{i % 4}",
                "user": "bench",
                "sweep": f"sweep-{i % 50}",
                "tags": json.dumps([f"sweep-{i % 50}", "bench"]),
                "path": str(root / run_id),
                "fraction": 1.0,
                "config_hash": f"{i:016x}",
                "created": created,
                "queued": created,
                "running": created,
                "completed": created,
                "failed": None,
                "updated": created,
                "status_mtime": 0.0,
            }
        )
    return rows


def case_query(query: str) -> Callable[[], dict]:
    """A catalogue of :data:`N_RUNS` rows, then one query per step."""
    from simlab.state.catalog import Catalog

    folder = tempfile.TemporaryDirectory(prefix="simlab-bench-catalog-")
    root = Path(folder.name)
    catalog = Catalog(root)
    catalog._write(_rows(root), replace_all=True)
    kwargs = QUERIES[query]

    def step() -> dict:
        assert folder.name  # keeps the folder (and its removal at exit) alive
        rows, total = catalog.query(**kwargs)
        return {"rows": len(rows), "total": total}

    return step


CASES = {"submit": case_submit, "query": case_query}


def _latency_records(rec: dict, tool: str) -> list[dict]:
    """Cold (first submit starts the cluster) and warm rows from one measurement."""
    latencies = rec["extra"].pop("latencies", None)
    if not latencies:
        return [rec]
    warm = latencies[1:]
    return [
        record(
            tool,
            "submit → running (cold: starts the cluster)",
            "tiny PM run",
            latencies[0],
            latencies[0],
            rec["peak_rss_mb"],
        ),
        record(
            tool,
            "submit → running (warm)",
            "tiny PM run",
            min(warm),
            statistics.median(warm),
            rec["peak_rss_mb"],
            repeat=len(warm),
        ),
    ]


def run(quick: bool = False) -> list[dict]:
    """Submit latency (cold and warm) and catalogue queries on 10,000 runs."""
    records = []
    count = 3 if quick else 6
    clusters = {"local": "simlab local cluster"}
    why_not = slurm_cluster.available()
    if why_not is None:
        clusters["slurm"] = "simlab on Slurm (one node)"
    else:
        records.append(
            missing(
                "simlab on Slurm (one node)", "submit → running", "tiny PM run", why_not
            )
        )
    for cluster, tool in clusters.items():
        rec = measure(
            "bench_dispatch",
            "submit",
            {"count": count, "cluster": cluster},
            tool=tool,
            operation="submit → running",
            size="tiny PM run",
            repeat=1,
            warmup=0,
            timeout=900,
        )
        records.extend(_latency_records(rec, tool))
    records.extend(
        measure(
            "bench_dispatch",
            "query",
            {"query": query},
            tool="simlab Catalog (SQLite)",
            operation=query,
            size=f"{N_RUNS} runs",
            repeat=20,
            warmup=2,
        )
        for query in QUERIES
    )
    return records
