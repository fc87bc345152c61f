"""REST: ``GET /simlab/api/runs`` through a real Jupyter server with 10,000 runs.

The case writes :data:`N_RUNS` small run directories, starts ``jupyter server`` on
them with the simlab extension (the run root given by ``DASK_SIMLAB__RUN_ROOT``),
waits for ``/simlab/api/ready`` and then times one authenticated HTTP request per
step, as the Lab sidebar makes them. Goal (issue 8): p50 < 50 ms.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from benchmarks._harness import measure

N_RUNS = 10_000
QUERIES = {
    "GET runs: first page": "",
    "GET runs: filter state + code": "state=completed&code=pm",
    "GET runs: name search": "text=run-12",
    "GET runs: page 150": "page=150&per_page=50",
}
STATES = ("completed", "failed", "running", "queued", "cancelled")


def _write_runs(root: Path) -> None:
    """``N_RUNS`` run directories as simlab leaves them, without running anything."""
    from simlab.config import RunConfig

    base = json.loads(RunConfig().model_dump_json())
    for i in range(N_RUNS):
        run_id = f"run-{i}-20260101T000000-{i:06x}"
        path = root / run_id
        (path / "inputs").mkdir(parents=True)
        (path / "output").mkdir()
        base["metadata"]["name"] = f"run-{i}"
        (path / "config.json").write_text(json.dumps(base))
        created = f"2026-01-01T00:00:{i % 60:02d}.000+00:00"
        status = {
            "id": run_id,
            "state": STATES[i % len(STATES)],
            "engine": "pm",
            "name": f"run-{i}",
            "created": created,
            "updated": created,
            "progress": None,
            "times": {"created": created},
        }
        (path / "status.json").write_text(json.dumps(status))
        (path / "events.jsonl").write_text("")
        (path / "log").write_text("")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def case_list(query: str) -> Callable[[], dict]:
    """A server over 10,000 runs; each step is one ``GET runs?QUERY``."""
    folder = Path(tempfile.mkdtemp(prefix="simlab-bench-rest-"))
    atexit.register(shutil.rmtree, folder, True)
    root = folder / "runs"
    _write_runs(root)
    token, port = secrets.token_hex(16), _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
        ],
        env={**os.environ, "DASK_SIMLAB__RUN_ROOT": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(server.terminate)
    base = f"http://127.0.0.1:{port}/simlab/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            if _get(f"{base}/runs?per_page=1", token)["total"] == N_RUNS:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("jupyter server with simlab did not list the runs")
        time.sleep(0.5)
    url = f"{base}/runs?{QUERIES[query]}"

    def step() -> dict:
        answer = _get(url, token)
        return {"rows": len(answer["runs"]), "total": answer["total"]}

    return step


CASES = {"list": case_list}


def run(quick: bool = False) -> list[dict]:
    """Latency of typical sidebar requests on a catalogue of 10,000 runs."""
    return [
        measure(
            "bench_rest",
            "list",
            {"query": query},
            tool="simlab REST (jupyter server)",
            operation=query,
            size=f"{N_RUNS} runs",
            repeat=10 if quick else 30,
            warmup=2,
            timeout=600,
            goal_p50_s=0.05,
        )
        for query in QUERIES
    ]
