"""The group space: publish finished runs read-only, list them, open them."""

from __future__ import annotations

import json
import os
import stat

import dask.config
import pytest
from click.testing import CliRunner

from simlab.cli import main
from simlab.config import RunConfig
from simlab.service.publish import (
    RECORD,
    PublishedRun,
    PublishError,
    open_published,
    publish,
    published,
    unpublish,
)
from simlab.service.run import Run
from simlab.settings import run_root
from simlab.state.catalog import Catalog
from simlab.state.rundir import RunDir
from simlab.state.states import State
from simlab.testing import assert_snapshot_equal, fake_gadget4_snapshot

TINY = {
    "box": {"size": 32.0, "particles_per_side": 4},
    "gravity": {"steps": 2},
    "metadata": {"name": "tiny"},
}


def finished_run(state: State = State.COMPLETED) -> Run:
    """A run directory walked to ``state``, with one snapshot when completed."""
    rundir = RunDir.create(run_root(), RunConfig.model_validate(TINY))
    path = rundir.path
    for step in {
        State.QUEUED: [State.QUEUED],
        State.RUNNING: [State.QUEUED, State.RUNNING],
        State.COMPLETED: [State.QUEUED, State.RUNNING, State.COMPLETED],
        State.FAILED: [State.QUEUED, State.RUNNING, State.FAILED],
    }[state]:
        rundir.transition(step)
    if state == State.COMPLETED:
        fake_gadget4_snapshot(path / "output", npart=64, box_size=32.0)
        rundir.log_path.write_text("pm: step 2/2 a=1.000000 z=0.0000 elapsed=0.10s\n")
    return Run(path)


@pytest.fixture
def space(tmp_path):
    """A group space as the admin makes it: mode 3770, the caller's group."""
    folder = tmp_path / "group"
    folder.mkdir()
    os.chmod(folder, 0o3770)
    with dask.config.set({"simlab.group-root": str(folder)}):
        yield folder


def test_publish_copies_the_run_read_only_for_the_group(space):
    run = finished_run()
    target = publish(run.id)

    assert target == space / run.id
    record = json.loads((target / RECORD).read_text())
    assert record["owner"] == __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert record["uid"] == os.geteuid()
    assert (record["id"], record["state"], record["engine"]) == (
        run.id,
        "completed",
        "pm",
    )
    assert record["source"] == str(run.path)
    for name in ("config.json", "status.json", "events.jsonl", "log"):
        assert (target / name).read_bytes() == (run.path / name).read_bytes(), name
    assert not (target / "inputs").exists()
    # every folder 2750 and every file 0440, all in the space's group
    for path in [target, *target.rglob("*")]:
        info = path.stat()
        expected = 0o2750 if path.is_dir() else 0o440
        assert stat.S_IMODE(info.st_mode) == expected, path
        assert info.st_gid == space.stat().st_gid, path
    # the snapshot is the same file (a hard link on one filesystem), readable
    original = run.path / "output" / "snapshot_000.hdf5"
    copy = target / "output" / "snapshot_000.hdf5"
    assert copy.stat().st_ino == original.stat().st_ino
    assert_snapshot_equal(open_published(run.id).open_snapshot(), run.open_snapshot())
    assert [p.name for p in space.iterdir()] == [run.id]


@pytest.mark.parametrize("state", [State.QUEUED, State.RUNNING])
def test_unfinished_runs_are_refused_and_nothing_is_left(space, state):
    run = finished_run(state)
    with pytest.raises(PublishError, match=f"is {state.value}; only a finished run"):
        publish(run.id)
    assert list(space.iterdir()) == []


def test_a_failed_run_may_be_published_for_its_log(space):
    run = finished_run(State.FAILED)
    publish(run.id)
    [record] = published()
    assert (record["id"], record["state"]) == (run.id, "failed")


def test_publishing_twice_names_the_owner(space):
    run = finished_run()
    publish(run.id)
    with pytest.raises(PublishError, match="already published by"):
        publish(run.id)


def test_no_group_space_configured():
    run = finished_run()
    with pytest.raises(PublishError, match=r"set simlab.group-root"):
        publish(run.id)


def test_an_unsafe_group_space_is_refused_with_the_fix(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    os.chmod(folder, 0o775)
    run = finished_run()
    with pytest.raises(PublishError, match=r"mode 775; .*`chmod 3770 "):
        publish(run.id, group_space=folder)
    with pytest.raises(PublishError, match="does not exist"):
        publish(run.id, group_space=tmp_path / "missing")
    assert list(folder.iterdir()) == []


def test_published_runs_are_listed_and_read_only(space):
    first, second = finished_run(), finished_run()
    publish(first.id)
    publish(second.id)
    records = published()
    assert {r["id"] for r in records} == {first.id, second.id}
    assert all(r["path"] == str(space / r["id"]) for r in records)

    handle = open_published(first.id)
    assert isinstance(handle, PublishedRun)
    assert handle.state == State.COMPLETED
    with pytest.raises(PublishError, match="read-only; it cannot be cancelled"):
        handle.cancel()
    with pytest.raises(PublishError, match="is not published"):
        open_published(finished_run().id)
    with pytest.raises(PublishError, match="is not valid"):
        open_published("../etc")


def test_unpublish_removes_only_the_copy(space):
    run = finished_run()
    publish(run.id)
    unpublish(run.id)
    assert list(space.iterdir()) == []
    assert (run.path / "output" / "snapshot_000.hdf5").is_file()


def test_cli_publish_and_ls_group(space):
    run = finished_run()
    runner = CliRunner()
    result = runner.invoke(main, ["publish", run.id])
    assert result.exit_code == 0, result.output
    assert str(space / run.id) in result.output

    listing = runner.invoke(main, ["ls", "--group"])
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if run.id in line)
    assert "completed" in row.split()

    again = runner.invoke(main, ["publish", run.id])
    assert again.exit_code == 2
    assert "already published" in again.output

    removed = runner.invoke(main, ["publish", "--remove", run.id])
    assert removed.exit_code == 0, removed.output
    assert not (space / run.id).exists()


def test_run_root_is_made_private(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    os.chmod(root, 0o755)
    Catalog(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    fresh = tmp_path / "home" / "simlab" / "runs"
    RunDir.create(fresh, RunConfig.model_validate(TINY))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
