"""Every REST route through a real jupyter_server: answers, codes, auth, filters."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta

import pytest

from simlab.__about__ import __version__
from simlab.engines import registry
from simlab.server.routes import ROUTES
from tests.server.conftest import fake_run

#: A value for each named group of the route table.
SAMPLE = {"run_id": "nope-20260101T000000-000000", "cluster_id": "local.pm.1x1.010000"}


async def _json(response):
    return json.loads(response.body)


def _verbs(handler: type) -> list[str]:
    return [
        verb
        for verb in ("get", "post", "delete", "put", "patch")
        if verb in vars(handler)
    ]


async def test_every_route_refuses_requests_without_a_token(jp_fetch):
    # When each verb of each route is called without credentials
    seen = 0
    for pattern, handler in ROUTES:
        path = pattern
        for group, value in SAMPLE.items():
            path = path.replace(f"(?P<{group}>[^/]+)", value)
        for verb in _verbs(handler):
            body = "{}" if verb in ("post", "put", "patch") else None
            response = await jp_fetch(
                "simlab/api",
                path,
                method=verb.upper(),
                body=body,
                headers={"Authorization": ""},
                raise_error=False,
            )
            # Then the server refuses it
            assert response.code == 403, (verb, path, response.code)
            seen += 1
    assert seen >= len(ROUTES)


async def test_health_ready_and_codes(jp_fetch, manager):
    health = await _json(await jp_fetch("simlab/api/health"))
    assert health["status"] == "ok"
    assert health["version"] == __version__
    assert health["run_root"] == str(manager.root)
    assert health["dispatcher"] is False
    ready = await _json(await jp_fetch("simlab/api/ready"))
    assert ready == {"ready": True}
    codes = (await _json(await jp_fetch("simlab/api/codes")))["codes"]
    assert [c["name"] for c in codes] == registry.names()
    pm = next(c for c in codes if c["name"] == "pm")
    assert pm["ok"] is True
    assert pm["version"] == __version__


async def test_a_broken_catalogue_is_rebuilt_not_a_500(jp_fetch, manager):
    fake_run(manager.root, "kept")
    # A new file in its place: a background refresh still holding the old one
    # checkpoints into that one, never back over the garbage.
    garbage = manager.catalog.path.with_name("garbage")
    garbage.write_bytes(b"this is not a SQLite database" * 100)
    os.replace(garbage, manager.catalog.path)
    for suffix in ("-wal", "-shm"):
        manager.catalog.path.with_name(manager.catalog.path.name + suffix).unlink(
            missing_ok=True
        )
    ready = await jp_fetch("simlab/api/ready")
    assert await _json(ready) == {"ready": True}
    listed = await _json(await jp_fetch("simlab/api/runs"))
    assert [r["name"] for r in listed["runs"]] == ["kept"]
    assert list(manager.root.glob(".simlab-catalog.sqlite.broken-*"))


@pytest.fixture
def catalogue(manager):
    """500 fake runs with known states, codes, projects, tags, sweeps and times."""
    rng = random.Random(5)
    states = ["completed", "failed", "cancelled", "created", "queued"]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    facts = []
    for i in range(500):
        fact = {
            "name": f"{rng.choice(['lcdm', 'wdm', 'box'])}{i % 7}",
            "state": states[i % 5],
            "engine": "pm" if i % 3 else "gadget4",
            "project": rng.choice(["alpha", "beta", None]),
            "sweep": "s1" if i % 10 == 0 else None,
            "tags": ("hires",) if i % 4 == 0 else (),
            "created": start + timedelta(minutes=i),
        }
        fact["path"] = fake_run(
            manager.root,
            fact["name"],
            state=fact["state"],
            engine=fact["engine"],
            project=fact["project"],
            sweep=fact["sweep"],
            tags=fact["tags"],
            created=fact["created"],
            suffix=i,
        )
        facts.append(fact)
    manager.catalog.reindex()
    return facts


async def test_list_pages_cover_every_run_once_in_order(jp_fetch, catalogue):
    # When all pages of 37 runs are read, oldest first
    ids = []
    page, pages = 1, None
    while pages is None or page <= pages:
        answer = await _json(
            await jp_fetch(
                "simlab/api/runs",
                params={"order": "created", "page": page, "per_page": 37},
            )
        )
        assert answer["total"] == 500
        pages = answer["pages"]
        ids += [run["id"] for run in answer["runs"]]
        page += 1
    # Then there are ceil(500/37) pages holding every run once, by creation time
    assert pages == 14
    expected = [f["path"].name for f in sorted(catalogue, key=lambda f: f["created"])]
    assert ids == expected


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"state": "failed"}, lambda f: f["state"] == "failed"),
        ({"code": "gadget4"}, lambda f: f["engine"] == "gadget4"),
        ({"project": "beta"}, lambda f: f["project"] == "beta"),
        ({"tag": "hires"}, lambda f: "hires" in f["tags"]),
        ({"sweep": "s1"}, lambda f: f["sweep"] == "s1"),
        ({"text": "wdm"}, lambda f: "wdm" in f["name"]),
        (
            {"state": "completed", "code": "pm", "text": "box"},
            lambda f: (
                f["state"] == "completed" and f["engine"] == "pm" and "box" in f["name"]
            ),
        ),
    ],
)
async def test_filters_match_the_runs_written(jp_fetch, catalogue, params, keep):
    answer = await _json(
        await jp_fetch("simlab/api/runs", params={**params, "per_page": 1000})
    )
    expected = {f["path"].name for f in catalogue if keep(f)}
    assert answer["total"] == len(expected)
    assert {run["id"] for run in answer["runs"]} == expected
    # newest first by default
    created = [run["created"] for run in answer["runs"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"state": "sleeping"}, "sleeping"),
        ({"order": "size"}, "order"),
        ({"page": "0"}, "page"),
        ({"per_page": "5000"}, "per_page"),
        ({"page": "two"}, "page"),
    ],
)
async def test_bad_list_parameters_are_400_naming_them(jp_fetch, manager, params, word):
    response = await jp_fetch("simlab/api/runs", params=params, raise_error=False)
    assert response.code == 400
    assert word in (await _json(response))["message"]


async def test_stats_counts_and_mean_durations(jp_fetch, manager):
    for i, (state, engine, duration) in enumerate(
        [
            ("completed", "pm", 10.0),
            ("completed", "pm", 30.0),
            ("completed", "gadget4", 100.0),
            ("failed", "pm", 3.0),
            ("created", "gadget4", None),
        ]
    ):
        fake_run(
            manager.root,
            "st",
            state=state,
            engine=engine,
            duration=duration,
            suffix=i,
        )
    manager.catalog.reindex()
    stats = await _json(await jp_fetch("simlab/api/stats"))
    assert stats["total"] == 5
    assert stats["by_state"] == {"completed": 3, "failed": 1, "created": 1}
    assert stats["by_code"] == {"pm": 3, "gadget4": 2}
    assert stats["mean_duration"] == {"pm": 20.0, "gadget4": 100.0}
    assert stats["pending"] == 0


async def test_unknown_run_is_404_and_malformed_id_is_400(jp_fetch, manager):
    for suffix in ("", "/log", "/snapshots", "/results", "/artifacts"):
        response = await jp_fetch(
            f"simlab/api/runs/{SAMPLE['run_id']}{suffix}", raise_error=False
        )
        assert response.code == 404, suffix
        assert SAMPLE["run_id"] in (await _json(response))["message"]
    response = await jp_fetch("simlab/api/runs/not a run id", raise_error=False)
    assert response.code == 400
    assert "not valid" in (await _json(response))["message"]


async def test_log_offset_and_tail(jp_fetch, manager):
    path = fake_run(manager.root, "logged")
    lines = [f"line {i} é\n" for i in range(50)]
    (path / "log").write_text("".join(lines))
    whole = await _json(await jp_fetch(f"simlab/api/runs/{path.name}/log"))
    assert whole["text"] == "".join(lines)
    assert whole["next"] == whole["size"] == len("".join(lines).encode())
    middle = len("".join(lines[:20]).encode())
    rest = await _json(
        await jp_fetch(f"simlab/api/runs/{path.name}/log", params={"offset": middle})
    )
    assert rest["text"] == "".join(lines[20:])
    tail = await _json(
        await jp_fetch(f"simlab/api/runs/{path.name}/log", params={"tail": 3})
    )
    assert tail["text"] == "".join(lines[-3:])
    assert tail["offset"] == whole["size"] - len(tail["text"].encode())
    for params in ({"offset": whole["size"] + 1}, {"offset": -1}, {"tail": 0}):
        response = await jp_fetch(
            f"simlab/api/runs/{path.name}/log", params=params, raise_error=False
        )
        assert response.code == 400, params


async def test_results_and_run_detail(jp_fetch, manager):
    path = fake_run(manager.root, "res", project="alpha", tags=("a", "b"))
    manager.catalog.reindex()
    assert await _json(await jp_fetch(f"simlab/api/runs/{path.name}/results")) == {}
    (path / "results.json").write_text(json.dumps({"sigma8_measured": 0.81}))
    results = await _json(await jp_fetch(f"simlab/api/runs/{path.name}/results"))
    assert results == {"sigma8_measured": 0.81}
    run = await _json(await jp_fetch(f"simlab/api/runs/{path.name}"))
    assert run["state"] == "completed"
    assert run["project"] == "alpha"
    assert run["tags"] == ["a", "b"]
    assert run["config"]["metadata"]["name"] == "res"


async def test_a_failed_run_carries_its_diagnosis(jp_fetch, manager):
    from simlab.engines.diagnosis import diagnose
    from simlab.state.rundir import RunDir

    path = fake_run(manager.root, "broke", state="failed")
    found = diagnose(["mpirun has detected an attempt to run as root."], 1)
    RunDir(path).update(
        reason=found.reason("mpirun exited with status 1"),
        diagnosis=found.to_dict(),
    )
    manager.catalog.reindex()
    run = await _json(await jp_fetch(f"simlab/api/runs/{path.name}"))
    assert run["diagnosis"]["cause"] == "mpi-root"
    assert run["diagnosis"]["lines"] == [
        "mpirun has detected an attempt to run as root."
    ]
    assert run["reason"].startswith("OpenMPI refuses to run as root")
    (listed,) = (await _json(await jp_fetch("simlab/api/runs")))["runs"]
    assert listed["diagnosis"] == run["diagnosis"]


async def test_invalid_config_is_422_with_every_field_and_leaves_nothing(
    jp_fetch, manager
):
    before = _listing(manager.root)
    response = await jp_fetch(
        "simlab/api/runs",
        method="POST",
        body=json.dumps({"cosmology": {"Omega0": 3}, "box": {"particles_per_side": 0}}),
        raise_error=False,
    )
    assert response.code == 422
    errors = {e["loc"]: e for e in (await _json(response))["errors"]}
    assert set(errors) == {"cosmology.Omega0", "box.particles_per_side"}
    assert errors["cosmology.Omega0"]["value"] == 3
    assert "(0, 2]" in errors["cosmology.Omega0"]["msg"]
    assert _listing(manager.root) == before
    assert manager.started is False


async def test_unknown_cluster_profile_is_422_at_resources_cluster(jp_fetch, manager):
    response = await jp_fetch(
        "simlab/api/runs",
        method="POST",
        body=json.dumps({"resources": {"cluster": "nowhere"}}),
        raise_error=False,
    )
    assert response.code == 422
    (error,) = (await _json(response))["errors"]
    assert error["loc"] == "resources.cluster"
    assert "nowhere" in error["msg"]
    assert "local" in error["msg"]


@pytest.mark.parametrize("body", ["{not json", "[1, 2]"])
async def test_body_that_is_not_a_config_object_is_400(jp_fetch, manager, body):
    response = await jp_fetch(
        "simlab/api/runs", method="POST", body=body, raise_error=False
    )
    assert response.code == 400


async def test_cancel_and_stop_of_a_finished_run_are_409(jp_fetch, manager):
    path = fake_run(manager.root, "done")
    for method, suffix in (("DELETE", ""), ("POST", "/stop")):
        response = await jp_fetch(
            f"simlab/api/runs/{path.name}{suffix}",
            method=method,
            body="{}" if method == "POST" else None,
            raise_error=False,
        )
        assert response.code == 409
        assert "completed" in (await _json(response))["message"]


async def test_cancel_of_a_created_run_cancels_it_at_once(jp_fetch, manager):
    path = fake_run(manager.root, "waiting", state="created")
    response = await jp_fetch(f"simlab/api/runs/{path.name}", method="DELETE")
    assert response.code == 202
    assert json.loads((path / "status.json").read_text())["state"] == "cancelled"


async def test_clusters_lists_profiles_before_any_run(jp_fetch, manager):
    answer = await _json(await jp_fetch("simlab/api/clusters"))
    assert {"name": "local", "kind": "local"} in answer["profiles"]
    assert answer["clusters"] == []
    response = await jp_fetch(
        "simlab/api/clusters/local.pm.1x1.010000/scale",
        method="POST",
        body=json.dumps({"workers": 2}),
        raise_error=False,
    )
    assert response.code == 404
    response = await jp_fetch(
        "simlab/api/clusters/local.pm.1x1.010000/scale",
        method="POST",
        body=json.dumps({"workers": "many"}),
        raise_error=False,
    )
    assert response.code == 400
    assert "workers" in (await _json(response))["message"]


async def test_publish_a_finished_run_and_list_the_group_space(
    jp_fetch, manager, tmp_path
):
    import os

    import dask.config

    space = tmp_path / "group"
    space.mkdir()
    os.chmod(space, 0o3770)
    done = fake_run(manager.root, "pub")
    busy = fake_run(manager.root, "busy", state="running", suffix=1)
    with dask.config.set({"simlab.group-root": str(space)}):
        assert (await _json(await jp_fetch("simlab/api/published")))["runs"] == []
        response = await jp_fetch(
            "simlab/api/runs", done.name, "publish", method="POST", body=""
        )
        assert response.code == 201
        answer = await _json(response)
        assert answer == {"id": done.name, "path": str(space / done.name)}
        assert (space / done.name / "config.json").read_bytes() == (
            done / "config.json"
        ).read_bytes()
        listed = (await _json(await jp_fetch("simlab/api/published")))["runs"]
        assert [run["path"] for run in listed] == [str(space / done.name)]
        refused = await jp_fetch(
            "simlab/api/runs",
            busy.name,
            "publish",
            method="POST",
            body="",
            raise_error=False,
        )
        assert refused.code == 409
        assert not (space / busy.name).exists()


def _listing(root) -> list[str]:
    """What the run root holds, without SQLite's own side files (-wal, -shm)."""
    return sorted(
        p.name for p in root.iterdir() if not p.name.endswith(("-wal", "-shm"))
    )
