"""A real jupyter_server with the simlab extension, and run directories to serve."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# pytest-jupyter's fixtures and hooks (jp_fetch, jp_serverapp, async tests) for
# this folder only: as a global plugin its autouse fixtures would wrap every test
from pytest_jupyter.jupyter_server import *  # noqa: F403

from simlab.config import RunConfig
from simlab.state.owners import process_ref
from simlab.state.rundir import write_json_atomic


def server_config(**app: object) -> dict:
    """Jupyter server settings: simlab enabled, every unauthenticated request
    refused, plus ``app`` (more ``ServerApp`` settings)."""
    return {
        "ServerApp": {
            "jpserver_extensions": {
                "simlab.server": True,
                "jupyter_server_terminals": False,
            },
            "allow_unauthenticated_access": False,
            **app,
        }
    }


@pytest.fixture
def jp_server_config():
    """Enable simlab and refuse every request that is not authenticated."""
    return server_config()


@pytest.fixture
def manager(jp_serverapp):
    """The server's SimlabManager; its clusters are closed after the test."""
    manager = jp_serverapp.web_app.settings["simlab_manager"]
    yield manager
    manager.close()


def fake_run(
    root: Path,
    name: str,
    *,
    state: str = "completed",
    engine: str = "pm",
    created: datetime | None = None,
    duration: float | None = None,
    project: str | None = None,
    sweep: str | None = None,
    tags: tuple[str, ...] = (),
    suffix: int = 0,
) -> Path:
    """Write a run directory with the given facts, without running anything."""
    created = created or datetime(2026, 1, 1, tzinfo=UTC)
    run_id = f"{name}-{created:%Y%m%dT%H%M%S}-{suffix:06x}"
    path = root / run_id
    path.mkdir(parents=True)
    config = json.loads(RunConfig().model_dump_json())
    config["code"]["engine"] = engine
    config["metadata"].update(name=name, project=project, sweep=sweep, tags=list(tags))
    (path / "config.json").write_text(json.dumps(config))
    times = {"created": created.isoformat()}
    if duration is not None:
        running = created + timedelta(seconds=5)
        times["running"] = running.isoformat()
        times[state] = (running + timedelta(seconds=duration)).isoformat()
    write_json_atomic(
        path / "status.json",
        {
            "id": run_id,
            "state": state,
            "engine": engine,
            "name": name,
            "created": created.isoformat(),
            "updated": created.isoformat(),
            "progress": None,
            "times": times,
            # a queued run waits in a live dispatcher (here: this test process),
            # else the server settles it as an orphan
            **({"owner": process_ref()} if state == "queued" else {}),
        },
    )
    (path / "events.jsonl").write_text("")
    (path / "log").write_text(f"log of {run_id}\n")
    for folder in ("inputs", "output"):
        (path / folder).mkdir()
    return path
