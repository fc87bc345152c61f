"""Archive and delete: only ended runs, only inside the run root, never a 500."""

from __future__ import annotations

import json

import pytest

from simlab.server.manager import ARCHIVE_DIR
from tests.server.conftest import fake_run


async def _listed(jp_fetch) -> list[str]:
    answer = json.loads((await jp_fetch("simlab/api/runs")).body)
    return [run["id"] for run in answer["runs"]]


async def test_archive_moves_an_ended_run_out_of_the_listing(jp_fetch, manager):
    # Given a completed run and a failed one in the listing
    done = fake_run(manager.root, "done", state="completed")
    kept = fake_run(manager.root, "kept", state="failed")
    manager.catalog.reindex()
    assert sorted(await _listed(jp_fetch)) == sorted([done.name, kept.name])
    # When the completed one is archived
    response = await jp_fetch("simlab/api/runs", done.name, "archive", method="POST",
                              body="")  # fmt: skip
    # Then its directory, log included, sits in the archive and the listing drops it
    answer = json.loads(response.body)
    target = manager.root / ARCHIVE_DIR / done.name
    assert answer == {"id": done.name, "path": str(target)}
    assert not done.exists()
    assert (target / "log").read_text() == f"log of {done.name}\n"
    assert await _listed(jp_fetch) == [kept.name]
    # and after a full catalogue sync it stays out
    manager.refresh()
    assert await _listed(jp_fetch) == [kept.name]


async def test_delete_removes_the_directory_without_following_links(
    jp_fetch, manager, tmp_path
):
    # Given a cancelled run whose output holds a link to a file outside the root
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    run = fake_run(manager.root, "gone", state="cancelled")
    (run / "output" / "link").symlink_to(outside)
    manager.catalog.reindex()
    # When it is deleted
    response = await jp_fetch("simlab/api/runs", run.name, "delete", method="POST",
                              body="")  # fmt: skip
    # Then the run directory is gone, the linked file is not
    assert json.loads(response.body) == {"id": run.name, "deleted": True}
    assert not run.exists()
    assert outside.read_text() == "keep me"
    assert await _listed(jp_fetch) == []
    assert not list((manager.root / ".simlab").glob("deleting-*"))


async def test_a_corrupt_run_can_be_deleted(jp_fetch, manager):
    run = fake_run(manager.root, "broken")
    (run / "status.json").write_text("{not json")
    manager.catalog.reindex()
    await jp_fetch("simlab/api/runs", run.name, "delete", method="POST", body="")
    assert not run.exists()


@pytest.mark.parametrize("action", ["archive", "delete"])
@pytest.mark.parametrize("state", ["created", "queued", "running", "checkpointed"])
async def test_a_run_that_has_not_ended_is_refused_with_409(
    jp_fetch, manager, action, state
):
    run = fake_run(manager.root, "live", state=state)
    response = await jp_fetch("simlab/api/runs", run.name, action, method="POST",
                              body="", raise_error=False)  # fmt: skip
    assert response.code == 409
    message = json.loads(response.body)["message"]
    assert f"is {state}" in message and "cancel it first" in message
    assert (run / "status.json").is_file()


@pytest.mark.parametrize("action", ["archive", "delete"])
@pytest.mark.parametrize(
    ("run_id", "code"),
    [
        ("..", 400),
        ("%2E%2E", 400),
        ("..%2F..%2Fetc", 400),
        ("a b", 400),
        ("nope-20260101T000000-000000", 404),
    ],
)
async def test_bad_or_unknown_ids_are_4xx_and_touch_nothing(
    jp_fetch, manager, action, run_id, code
):
    kept = fake_run(manager.root, "kept")
    response = await jp_fetch(f"simlab/api/runs/{run_id}/{action}", method="POST",
                              body="", raise_error=False)  # fmt: skip
    assert response.code == code, json.loads(response.body)["message"]
    assert (kept / "status.json").is_file()


@pytest.mark.parametrize("action", ["archive", "delete"])
async def test_a_linked_run_directory_outside_the_root_is_404(
    jp_fetch, manager, tmp_path, action
):
    # Given a run directory elsewhere, linked into the run root under a run id
    elsewhere = fake_run(tmp_path / "elsewhere", "alien", state="completed")
    link = manager.root / elsewhere.name
    link.symlink_to(elsewhere)
    # When it is archived or deleted through the link
    response = await jp_fetch("simlab/api/runs", elsewhere.name, action,
                              method="POST", body="", raise_error=False)  # fmt: skip
    # Then it is not found and nothing outside the root is moved or removed
    assert response.code == 404
    assert (elsewhere / "status.json").is_file()
    assert link.is_symlink()


async def test_an_id_already_in_the_archive_is_409_and_both_are_kept(jp_fetch, manager):
    # Given a run archived, and a run directory of the same id made again
    run = fake_run(manager.root, "twice")
    await jp_fetch("simlab/api/runs", run.name, "archive", method="POST", body="")
    again = fake_run(manager.root, "twice")
    (again / "log").write_text("second\n")
    # When it is archived too
    response = await jp_fetch("simlab/api/runs", run.name, "archive", method="POST",
                              body="", raise_error=False)  # fmt: skip
    # Then it is refused and neither copy is lost
    assert response.code == 409
    assert "already in the archive" in json.loads(response.body)["message"]
    assert (again / "log").read_text() == "second\n"
    archived = manager.root / ARCHIVE_DIR / run.name / "log"
    assert archived.read_text() == f"log of {run.name}\n"
