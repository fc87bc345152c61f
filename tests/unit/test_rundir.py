"""Run directories: complete-or-nothing creation, atomic status, checked transitions."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from simlab.config import RunConfig
from simlab.state.rundir import (
    RESERVE_BYTES,
    RESERVE_FILE,
    RUN_ID_RE,
    CorruptRunError,
    RunDir,
    TransitionError,
    write_json_atomic,
)
from simlab.state.states import TRANSITIONS, State, can_transition

SMALL = {"box": {"size": 32.0, "particles_per_side": 8}, "metadata": {"name": "tiny"}}


def _inputs(path):
    (path / "inputs" / "ics.hdf5").write_bytes(b"particles")


@pytest.fixture
def rundir(tmp_path):
    config = RunConfig.model_validate(SMALL)
    return RunDir.create(tmp_path, config, prepare=_inputs, files={"a.json": [1]})


def test_created_directory_is_complete(rundir, tmp_path):
    assert RUN_ID_RE.match(rundir.id), rundir.id
    assert rundir.id.startswith("tiny-")
    assert rundir.config() == RunConfig.model_validate(SMALL)
    assert rundir.state is State.CREATED
    assert (rundir.inputs / "ics.hdf5").read_bytes() == b"particles"
    assert rundir.read_json("a.json") == [1]
    assert (rundir.path / RESERVE_FILE).stat().st_size == RESERVE_BYTES
    assert rundir.output.is_dir()
    assert [e["state"] for e in rundir.events()] == ["created"]
    # nothing but the run directory itself is left in the root
    assert [p.name for p in tmp_path.iterdir()] == [rundir.id]


def test_failed_prepare_leaves_nothing_behind(tmp_path):
    def broken(path):
        (path / "inputs" / "half-written").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        RunDir.create(tmp_path, RunConfig.model_validate(SMALL), prepare=broken)
    assert list(tmp_path.iterdir()) == []


def test_a_new_segment_drops_the_last_one_s_fields(rundir):
    rundir.transition("queued")
    rundir.transition("running", host="a", pid=1, command=["x"], heartbeat=1.0)
    rundir.transition("checkpointed", returncode=0, stop_requested=False)
    status = rundir.transition("queued")
    assert status["segment"] == 2
    assert not {"returncode", "host", "pid", "command", "heartbeat"} & set(status)
    rundir.transition("running", host="b")
    rundir.transition("failed", returncode=1, reason="exit 1")
    rundir.update(concept={"finished": False})  # an engine's outcome details
    status = rundir.transition("queued")  # a resume
    assert status["segment"] == 3
    assert not {"returncode", "reason", "concept", "host"} & set(status)


def test_unreadable_status_is_a_corrupt_run_error(rundir):
    rundir.status_path.write_text('{"state": "runn')
    with pytest.raises(CorruptRunError, match=r"status\.json: cannot be read"):
        rundir.status()
    rundir.status_path.write_text('{"state": "flying"}')
    with pytest.raises(CorruptRunError, match="no valid state"):
        rundir.status()


def test_transitions_follow_the_life_cycle(rundir):
    rundir.transition("queued", cluster="local")
    rundir.transition("running", host="here")
    with pytest.raises(TransitionError, match="cannot go from 'running' to 'queued'"):
        rundir.transition("queued")
    status = rundir.transition("completed", returncode=0)
    assert status["state"] == "completed"
    assert status["host"] == "here"
    assert set(status["times"]) == {"created", "queued", "running", "completed"}
    assert [e["state"] for e in rundir.events()] == [
        "created",
        "queued",
        "running",
        "completed",
    ]
    with pytest.raises(TransitionError):
        rundir.transition("running")


def test_state_table_is_consistent():
    finals = {s for s in State if s.is_final}
    assert finals == {State.COMPLETED, State.FAILED, State.CANCELLED, State.CORRUPT}
    assert can_transition("running", "checkpointed")
    assert can_transition("checkpointed", "queued")
    # only a resume leaves failed or cancelled, and nothing leaves completed
    assert can_transition("failed", "queued") and can_transition("cancelled", "queued")
    assert not TRANSITIONS[State.COMPLETED] and not TRANSITIONS[State.CORRUPT]
    assert not can_transition("created", "completed")
    for targets in TRANSITIONS.values():
        assert State.CREATED not in targets


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    write_json_atomic(target, {"state": "running"})

    def crash(*args, **kwargs):
        raise OSError("crash while writing")

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(OSError):
        write_json_atomic(target, {"state": "completed"})
    assert json.loads(target.read_text()) == {"state": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def _hammer(path: str, worker: int, count: int) -> None:
    rundir = RunDir(path)
    for i in range(count):
        rundir.update(**{f"w{worker}": i})


def test_concurrent_updates_lose_nothing(rundir):
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_hammer, args=(str(rundir.path), w, 200)) for w in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    status = rundir.status()
    assert [status[f"w{w}"] for w in range(4)] == [199] * 4


def test_requests_are_files_the_task_can_see(rundir):
    assert not rundir.requested("cancel")
    rundir.request("cancel")
    assert rundir.requested("cancel")
    rundir.clear_requests()
    assert not rundir.requested("cancel")
    with pytest.raises(ValueError, match="allowed: 'cancel', 'stop'"):
        rundir.request("explode")


def test_a_state_is_in_the_events_before_status_json_says_it(rundir, monkeypatch):
    # readers take no lock: one that sees `completed` in status.json (Run.wait)
    # and then reads the events must find it there too
    seen = []
    write = RunDir._write_status

    def spy(self, status):
        seen.append((status["state"], [e["state"] for e in self.events()]))
        write(self, status)

    monkeypatch.setattr(RunDir, "_write_status", spy)
    for state in ("queued", "running", "completed"):
        rundir.transition(state)
    assert [(s, events[-1]) for s, events in seen] == [
        ("queued", "queued"),
        ("running", "running"),
        ("completed", "completed"),
    ]
