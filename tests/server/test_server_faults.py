"""kill -9 of a real Jupyter server with running and queued runs, then a restart.

The runs belong to the run root's dispatcher process, not to the server: they carry
on while no server runs, and the restarted server shows them as they are.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import assert_runs_agree, wait_for

pytestmark = pytest.mark.slow

TOKEN = "simlab-test-token"
QUICK = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "gravity": {"steps": 20},
    "metadata": {"name": "quick"},
}
LONGER = {**QUICK, "gravity": {"steps": 400}, "metadata": {"name": "longer"}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(root: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "DASK_SIMLAB__RUN_ROOT": str(root)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
            f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root.parent}",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert wait_for(lambda: _ready(port), 90), "the server did not start"
    return proc


def _ready(port: int) -> bool:
    try:
        return _call(port, "GET", "health")["status"] == "ok"
    except OSError:
        return False


def _call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/simlab/api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {TOKEN}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _state(port: int, run_id: str) -> str:
    return _call(port, "GET", f"runs/{run_id}")["state"]


def test_runs_outlive_a_killed_server_and_show_after_restart(tmp_path):
    root = tmp_path / "runs"
    port = _free_port()
    server = _server(root, port)
    try:
        running = _call(port, "POST", "runs", LONGER)["id"]
        queued = [_call(port, "POST", "runs", QUICK)["id"] for _ in range(3)]
        assert wait_for(lambda: _state(port, running) == "running", 120)
        assert {_state(port, r) for r in queued} == {"queued"}
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    # no server now: the runs go on in their dispatcher process
    status = root / running / "status.json"
    assert wait_for(lambda: json.loads(status.read_text())["state"] == "completed", 180)
    port = _free_port()
    server = _server(root, port)
    try:
        for run_id in [running, *queued]:
            assert wait_for(lambda r=run_id: _state(port, r) == "completed", 180), (
                _call(port, "GET", f"runs/{run_id}")
            )
        listed = _call(port, "GET", "runs?per_page=100")
        assert {r["id"]: r["state"] for r in listed["runs"]} == dict.fromkeys(
            [running, *queued], "completed"
        )
        # GET runs, `simlab ls`, the catalogue and the run directories agree
        assert_runs_agree(root, rest=listed["runs"])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
