"""Many REST submissions at once: one cluster, listed, scalable, one run at a time."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime

import pytest

from simlab.state.states import State
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

TINY = {
    "box": {"size": 32.0, "particles_per_side": 8},
    "gravity": {"steps": 3},
    "resources": {"walltime": "00:07:00"},  # a walltime no run used before
}


#: Concurrent submissions (the issue's figure). Running all 20 one after the other
#: took 103 s on 2 cores, so the first RAN run to the end and the rest are
#: cancelled through the API (52 s, where the old 10-run version took 81 s).
SUBMITS = 20
RAN = 4


async def test_twenty_concurrent_submits_share_one_cluster(jp_fetch, manager):
    async def submit(i: int) -> dict:
        body = json.dumps({**TINY, "metadata": {"name": f"c{i:02d}"}})
        response = await jp_fetch("simlab/api/runs", method="POST", body=body)
        assert response.code == 201
        return json.loads(response.body)

    models = await asyncio.gather(*(submit(i) for i in range(SUBMITS)))
    assert len({m["id"] for m in models}) == SUBMITS
    clusters = json.loads((await jp_fetch("simlab/api/clusters")).body)["clusters"]
    assert [c["id"] for c in clusters] == ["local.pm"]
    (cluster,) = clusters
    assert len(cluster["workers"]) == 1  # the local profile's one worker
    scaled = await jp_fetch(
        "simlab/api/clusters",
        cluster["id"],
        "scale",
        method="POST",
        body=json.dumps({"workers": 1}),
    )
    assert scaled.code == 202

    def states() -> list[str]:
        return [manager.get(m["id"])["state"] for m in models]

    def enough() -> bool:
        return states().count("completed") >= RAN or "failed" in states()

    assert await asyncio.to_thread(wait_for, enough, 120), states()
    for model in models:  # the rest are cancelled, most while still queued
        if not State(manager.get(model["id"])["state"]).is_final:
            response = await jp_fetch(
                "simlab/api/runs", model["id"], method="DELETE", raise_error=False
            )
            assert response.code in (202, 409), response.body  # 409: just ended

    def ended() -> bool:
        return all(State(s).is_final for s in states())

    assert await asyncio.to_thread(wait_for, ended, 60), states()
    runs = [manager.get(m["id"]) for m in models]
    assert {r["state"] for r in runs} <= {"completed", "cancelled"}, runs
    assert sum(r["state"] == "completed" for r in runs) >= RAN
    # the one-worker limit held: no two runs were running at the same time
    spans = sorted(
        (
            datetime.fromisoformat(r["times"]["running"]),
            datetime.fromisoformat(r["times"][r["state"]]),
        )
        for r in runs
        if "running" in r["times"]
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    never_ran = [r for r in runs if "running" not in r["times"]]
    assert never_ran  # most were cancelled while queued behind the one worker
    assert all(r["reason"].startswith("cancelled") for r in never_ran), never_ran
    clusters = json.loads((await jp_fetch("simlab/api/clusters")).body)["clusters"]
    assert len(clusters) == 1
