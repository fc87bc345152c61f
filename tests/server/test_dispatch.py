"""Runs submitted through the REST API and carried out by the server's Dispatcher."""

from __future__ import annotations

import asyncio
import io
import json
import re
import zipfile

import pytest

from tests.server.configs import QUICK, SLOW

pytestmark = pytest.mark.slow


async def _json(response):
    return json.loads(response.body)


async def _until(fetch_state, predicate, timeout=120.0):
    """Poll ``fetch_state()`` until ``predicate`` holds; the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await fetch_state()
        if predicate(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(0.3)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_post_wait_runs_to_completion_and_serves_outputs(jp_fetch, manager):
    metrics = (await jp_fetch("metrics")).body.decode()
    submitted = _metric(metrics, 'simlab_runs_submitted_total{code="pm"}')
    # When a run is posted with wait=true
    response = await jp_fetch(
        "simlab/api/runs",
        method="POST",
        body=json.dumps(QUICK),
        params={"wait": "true", "timeout": 120},
        request_timeout=180,
    )
    # Then it answers 201 with the completed run and where it lives
    assert response.code == 201
    run = await _json(response)
    assert run["state"] == "completed"
    assert response.headers["Location"].endswith(f"/simlab/api/runs/{run['id']}")
    assert run["progress"]["fraction"] == pytest.approx(1.0)
    assert run["progress"]["a"] == pytest.approx(1.0)
    assert (manager.root / run["id"] / "status.json").is_file()

    # the listing shows it, with the catalogue in step with status.json
    listing = await _json(await jp_fetch("simlab/api/runs"))
    assert [r["id"] for r in listing["runs"]] == [run["id"]]
    assert listing["runs"][0]["state"] == "completed"

    # snapshots at the requested redshifts, read from the files' headers
    snaps = (await _json(await jp_fetch(f"simlab/api/runs/{run['id']}/snapshots")))[
        "snapshots"
    ]
    assert [s["z"] for s in snaps] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert [s["a"] for s in snaps] == pytest.approx([0.5, 1.0], abs=1e-6)
    for snap in snaps:
        path = manager.root / run["id"] / snap["path"]
        assert snap["size"] == path.stat().st_size

    # the log and the artifacts zip hold the same bytes as the run directory
    log = await _json(await jp_fetch(f"simlab/api/runs/{run['id']}/log"))
    assert log["text"] == (manager.root / run["id"] / "log").read_text()
    assert "process exited with status 0" in log["text"]
    zipped = await jp_fetch(
        f"simlab/api/runs/{run['id']}/artifacts", params={"parts": "log,output"}
    )
    with zipfile.ZipFile(io.BytesIO(zipped.body)) as zf:
        assert zf.read(f"{run['id']}/log").decode() == log["text"]
        names = zf.namelist()
    for snap in snaps:
        assert f"{run['id']}/{snap['path']}" in names

    # the live stream of a finished run replays the log and ends
    stream = await jp_fetch(f"simlab/api/runs/{run['id']}/events")
    events = _parse_sse(stream.body.decode())
    assert "".join(d["text"] for e, d in events if e == "log") == log["text"]
    assert events[-1] == ("end", {"state": "completed"})
    assert any(e == "status" and d["state"] == "completed" for e, d in events)

    # metrics count the submission and the catalogue gauges show the run
    metrics = (await jp_fetch("metrics")).body.decode()
    after = _metric(metrics, 'simlab_runs_submitted_total{code="pm"}')
    assert after == submitted + 1
    assert _metric(metrics, 'simlab_runs_by_state{state="completed"}') == 1
    assert _metric(metrics, "simlab_dispatch_latency_seconds_count") >= 1

    # the clusters route shows the local cluster the run used, and it scales
    clusters = await _json(await jp_fetch("simlab/api/clusters"))
    (cluster,) = clusters["clusters"]
    assert cluster["profile"] == "local"
    assert len(cluster["workers"]) == 1
    assert cluster["cores"] == sum(w["cores"] for w in cluster["workers"])
    response = await jp_fetch(
        f"simlab/api/clusters/{cluster['id']}/scale",
        method="POST",
        body=json.dumps({"workers": 2}),
    )
    assert response.code == 202

    async def workers():
        answer = await _json(await jp_fetch("simlab/api/clusters"))
        return len(answer["clusters"][0]["workers"])

    assert await _until(workers, lambda n: n == 2, timeout=60) == 2


def _parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_cancel_ends_a_running_run_cancelled(jp_fetch, manager):
    response = await jp_fetch("simlab/api/runs", method="POST", body=json.dumps(SLOW))
    assert response.code == 201
    run_id = (await _json(response))["id"]

    async def state():
        return await _json(await jp_fetch(f"simlab/api/runs/{run_id}"))

    # the ETA is measured: two progress reports of this segment are needed
    running = await _until(
        state,
        lambda r: r["state"] == "running" and r["eta_source"] == "progress",
        timeout=120,
    )
    assert running["state"] == "running"
    assert 0 < running["progress"]["fraction"] < 1
    assert running["eta"] is not None
    assert running["eta"] > 0
    # a follow-the-log request from an offset sees only new text
    first = await _json(await jp_fetch(f"simlab/api/runs/{run_id}/log"))
    await asyncio.sleep(1.0)
    more = await _json(
        await jp_fetch(
            f"simlab/api/runs/{run_id}/log", params={"offset": first["next"]}
        )
    )
    assert more["offset"] == first["next"]
    assert more["text"]
    assert not more["text"].startswith(first["text"][:20])

    response = await jp_fetch(f"simlab/api/runs/{run_id}", method="DELETE")
    assert response.code == 202
    final = await _until(state, lambda r: r["state"] == "cancelled", timeout=60)
    assert final["state"] == "cancelled"

    async def cancelled_ids():
        listing = await _json(
            await jp_fetch("simlab/api/runs", params={"state": "cancelled"})
        )
        return [r["id"] for r in listing["runs"]]

    assert await _until(cancelled_ids, lambda ids: ids, timeout=10) == [run_id]
    again = await jp_fetch(
        f"simlab/api/runs/{run_id}", method="DELETE", raise_error=False
    )
    assert again.code == 409
