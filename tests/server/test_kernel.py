"""A run submitted from a kernel goes to the run root's dispatcher and outlives it."""

from __future__ import annotations

import asyncio
import json

import pytest

from simlab.state import owners
from tests.server.configs import SLOW

pytestmark = pytest.mark.slow

MEDIUM = {**SLOW, "gravity": {"steps": 600, "mesh": 32}, "metadata": {"name": "k"}}


async def _execute(client, code: str, expressions: dict[str, str]) -> dict:
    reply = await client.execute_interactive(
        code, user_expressions=expressions, timeout=120, output_hook=lambda m: None
    )
    content = reply["content"]
    assert content["status"] == "ok", content
    return {
        key: value["data"]["text/plain"]
        for key, value in content["user_expressions"].items()
    }


async def test_run_from_a_kernel_survives_the_kernel_restart(
    jp_fetch, jp_serverapp, manager
):
    # Given a kernel started by the server
    kernel = json.loads(
        (
            await jp_fetch(
                "api/kernels", method="POST", body=json.dumps({"name": "python3"})
            )
        ).body
    )
    km = jp_serverapp.kernel_manager.get_kernel(kernel["id"])
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        # When it submits a run with simlab.submit
        values = await _execute(
            client,
            f"import os, simlab\nrun = simlab.submit({MEDIUM!r}, "
            f"root={str(manager.root)!r})",
            {
                "id": "run.id",
                "owner": "run.status['owner']['pid']",
                "me": "os.getpid()",
            },
        )
    finally:
        client.stop_channels()
    run_id = values["id"].strip("'")
    # Then the run root's dispatcher holds it, not the kernel, and the server sees it
    assert manager.started
    assert int(values["owner"]) == owners.read_record(manager.root)["pid"]
    assert values["owner"] != values["me"]
    status = manager.root / run_id / "status.json"

    async def state():
        return json.loads(status.read_text())["state"]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while await state() != "running" and loop.time() < deadline:
        await asyncio.sleep(0.2)
    assert await state() == "running"

    # When the kernel restarts while the run is running
    response = await jp_fetch(
        "api", "kernels", kernel["id"], "restart", method="POST", body="{}"
    )
    assert response.code == 200
    assert await state() == "running"

    # Then the run still completes and is listed
    deadline = loop.time() + 180
    while await state() not in ("completed", "failed", "cancelled"):
        assert loop.time() < deadline, "run did not finish"
        await asyncio.sleep(0.5)
    final = json.loads(status.read_text())
    log = (manager.root / run_id / "log").read_text()
    assert final["state"] == "completed", (final.get("reason"), log[-2000:])
    listing = json.loads((await jp_fetch("simlab/api/runs")).body)
    assert [(r["id"], r["state"]) for r in listing["runs"]] == [(run_id, "completed")]
    await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
