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


async def test_ten_concurrent_submits_share_one_cluster(jp_fetch, manager):
    async def submit(i: int) -> dict:
        body = json.dumps({**TINY, "metadata": {"name": f"c{i:02d}"}})
        response = await jp_fetch("simlab/api/runs", method="POST", body=body)
        assert response.code == 201
        return json.loads(response.body)

    models = await asyncio.gather(*(submit(i) for i in range(10)))
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

    def ended() -> bool:
        return all(
            manager.get(m["id"])["state"] in ("completed", "failed") for m in models
        )

    assert await asyncio.to_thread(wait_for, ended, 300)
    runs = [manager.get(m["id"]) for m in models]
    assert {r["state"] for r in runs} == {State.COMPLETED.value}
    # the one-worker limit held: no two runs were running at the same time
    spans = sorted(
        (
            datetime.fromisoformat(r["times"]["running"]),
            datetime.fromisoformat(r["times"]["completed"]),
        )
        for r in runs
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    clusters = json.loads((await jp_fetch("simlab/api/clusters")).body)["clusters"]
    assert len(clusters) == 1
