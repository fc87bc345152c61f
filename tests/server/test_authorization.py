"""Jupyter's Authorizer holds for every simlab route: read-only means read-only."""

from __future__ import annotations

import json

import pytest

from simlab.server.routes import ROUTES
from tests.server.conftest import fake_run, server_config

SAMPLE = {"run_id": "done-20260101T000000-000000", "cluster_id": "local.pm"}


@pytest.fixture
def jp_server_config():
    return server_config(authorizer_class="tests.server.authorizers.ReadOnlyAuthorizer")


def _calls():
    for pattern, handler in ROUTES:
        path = pattern
        for group, value in SAMPLE.items():
            path = path.replace(f"(?P<{group}>[^/]+)", value)
        for verb in ("get", "post", "delete"):
            if verb in vars(handler):
                yield verb.upper(), path


async def test_read_only_users_can_read_and_change_nothing(jp_fetch, manager):
    fake_run(manager.root, "done", state="completed")
    manager.catalog.reindex()
    writes, reads = 0, 0
    for method, path in _calls():
        body = json.dumps({"workers": 1}) if method == "POST" else None
        if path == "runs" and method == "POST":
            body = json.dumps({"box": {"particles_per_side": 8}})
        response = await jp_fetch(
            "simlab/api", path, method=method, body=body, raise_error=False
        )
        if method == "GET":
            reads += 1
            assert response.code != 403, (method, path)
        else:
            writes += 1
            assert response.code == 403, (method, path, response.code)
    assert writes >= 6 and reads >= 10
    # and nothing was created, cancelled or resumed
    assert [p.parent.name for p in manager.root.glob("*/status.json")] == [
        SAMPLE["run_id"]
    ]
    answer = json.loads((await jp_fetch("simlab/api/runs", SAMPLE["run_id"])).body)
    assert answer["state"] == "completed"
