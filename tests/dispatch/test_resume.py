"""Stop and resume mean the same for every engine, through the run service.

PM and Gadget4 write a checkpoint on ``stop`` and continue from it; CONCEPT cannot,
so ``stop`` is refused with what to do instead, and a cancelled CONCEPT run is
resumed from its last snapshot. Every resume is a new segment of the same run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import simlab
from simlab.errors import RunError
from simlab.io.concept import read_particles as read_concept
from simlab.io.gadget4_files import read_particles as read_gadget4
from simlab.state.states import State
from tests.conftest import data_path
from tests.helpers import install_gadget4_stand_in, wait_for

pytestmark = pytest.mark.slow

PM = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "outputs": {"redshifts": [3.0, 1.0, 0.0]},
    "gravity": {"steps": 300},
    "metadata": {"name": "resumable"},
}


def _states(run) -> list[str]:
    return [event["state"] for event in run.dir.events()]


def _positions(path: Path) -> np.ndarray:
    with xr.open_dataset(path, engine="gadget4", group="PartType1") as ds:
        order = np.argsort(ds.ParticleIDs.values)
        return ds.Coordinates.values[order]


def _stamps(snapshots: list[Path]) -> dict[Path, tuple[int, int]]:
    """Inode and change time of every file of these snapshots: a file written
    again (even with its times copied, as ``shutil.copy2`` does) changes them."""
    files = []
    for path in snapshots:
        parent = path.parent
        files += (
            sorted(parent.iterdir()) if parent.name.startswith("snapdir_") else [path]
        )
    return {f: (f.stat().st_ino, f.stat().st_ctime_ns) for f in files}


def _assert_segments(run, ended: dict, straight) -> None:
    """Two segments: the first ended with the fields ``ended`` (its state and why),
    the second completed as the uninterrupted run did (same return code, reason)."""
    events = list(run.dir.events())
    assert [e["state"] for e in events][-5:] == [
        "running", ended["state"], "queued", "running", "completed"
    ]  # fmt: skip
    first = next(e for e in reversed(events) if e["state"] == ended["state"])
    assert {k: first.get(k) for k in ended} == ended
    status, reference = run.status, straight.status
    assert status["segment"] == 2 and reference.get("segment", 1) == 1
    assert [e["state"] for e in straight.dir.events()].count("running") == 1
    assert status["returncode"] == reference["returncode"] == 0
    assert status.get("reason") == reference.get("reason")
    assert "stop_requested" not in status


def _assert_same_final_snapshot(run, straight, read) -> None:
    """The resumed run's last snapshot holds the uninterrupted run's particles
    (read through simlab's reader) and is the same bytes."""
    mine, theirs = run.snapshots[-1], straight.snapshots[-1]
    assert mine.relative_to(run.path) == theirs.relative_to(straight.path)
    a, b = read(mine), read(theirs)
    assert a.a == b.a and len(a.ids) == len(b.ids) > 0
    for field in ("ids", "positions", "velocities"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for f, g in zip(_stamps([mine]), _stamps([theirs]), strict=True):
        assert f.name == g.name and f.read_bytes() == g.read_bytes()


def _at_step(run, step: int) -> None:
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= step, 120), (
        run.status
    )


def test_pm_stop_then_resume_ends_bitwise_equal(tmp_path):
    straight = simlab.run({**PM, "metadata": {"name": "straight"}}, root=tmp_path,
                          progress=False)  # fmt: skip
    run = simlab.submit(PM, root=tmp_path)
    _at_step(run, 20)
    run.stop()
    assert wait_for(lambda: run.state is State.CHECKPOINTED, 60), run.status
    assert run.status["stop_requested"] is True
    assert run.settled  # a stop the user asked for is not continued by itself
    simlab.resume(run.id, root=tmp_path)
    assert run.wait(timeout=120).state is State.COMPLETED
    assert _states(run)[-4:] == ["checkpointed", "queued", "running", "completed"]
    assert run.status["segment"] == 2
    assert "returncode" in run.status and "stop_requested" not in run.status
    for a, b in zip(straight.snapshots, run.snapshots, strict=True):
        np.testing.assert_array_equal(_positions(a), _positions(b))


def test_pm_cancelled_run_resumes_from_its_last_snapshot(tmp_path):
    straight = simlab.run({**PM, "metadata": {"name": "straight"}}, root=tmp_path,
                          progress=False)  # fmt: skip
    run = simlab.submit(PM, root=tmp_path)
    assert wait_for(lambda: len(run.snapshots) >= 1, 120), run.status
    run.cancel()
    assert wait_for(lambda: run.state is State.CANCELLED, 30)
    done = len(run.snapshots)
    assert done < 3
    resumed = run.resume()
    assert resumed.status["segment"] == 2
    assert run.wait(timeout=120).state is State.COMPLETED
    assert f"--from-snapshot {done - 1}" in " ".join(run.status["command"])
    assert f"continuing from output {done - 1}" in run.logs()
    # float32 snapshots, so equal to the straight run to float32 rounding
    np.testing.assert_allclose(
        _positions(run.snapshots[-1]), _positions(straight.snapshots[-1]), atol=1e-3
    )


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    done = simlab.run(
        {**PM, "gravity": {"steps": 5}, "outputs": {"redshifts": [0.0]}},
        root=tmp_path,
        progress=False,
    )
    with pytest.raises(RunError, match="only a checkpointed, cancelled or failed"):
        simlab.resume(done)
    fresh = simlab.submit(
        {**PM, "outputs": {"redshifts": [0.0]}, "gravity": {"steps": 3000}},
        root=tmp_path,
    )
    _at_step(fresh, 2)
    fresh.cancel()
    assert wait_for(lambda: fresh.state is State.CANCELLED, 30)
    with pytest.raises(RunError, match="no checkpoint or snapshot to continue from"):
        fresh.resume()


@pytest.fixture
def gadget4_profile(tmp_path, monkeypatch):
    import dask.config

    exe = install_gadget4_stand_in(tmp_path)
    monkeypatch.setenv(
        "SIMLAB_STAND_IN_FIXTURE", str(data_path("gadget4-small/ngenic32"))
    )
    monkeypatch.setenv("SIMLAB_STAND_IN_SPEEDUP", "40")
    profile = {"kind": "local", "launcher": "", "executables": {"gadget4": str(exe)}}
    with dask.config.set({"simlab.clusters.g4resume": profile}):
        yield "g4resume"


def test_gadget4_stop_then_resume_from_its_restart_files(
    tmp_path, monkeypatch, gadget4_profile
):
    from tests.engines.test_gadget4 import ngenic32_config, with_code

    config = with_code(ngenic32_config(), ("config_sh",))
    # the same config uninterrupted, in a root of its own: its own dispatcher
    # process, started with this environment, runs it beside the stopped one and
    # faster (the stand-in's speed-up is read from the environment)
    with monkeypatch.context() as env:
        env.setenv("SIMLAB_STAND_IN_SPEEDUP", "200")
        straight = simlab.submit(config, cluster=gadget4_profile, root=tmp_path / "a")
    run = simlab.submit(config, cluster=gadget4_profile, root=tmp_path / "b")
    _at_step(run, 150)  # snapdir_000 is written at sync point 141
    assert wait_for(lambda: len(run.snapshots) >= 1, 30), run.status
    run.stop()
    assert wait_for(lambda: run.state is State.CHECKPOINTED, 60), run.status
    stopped = run.progress["step"]
    done = len(run.snapshots)
    before = _stamps(run.snapshots)
    run.resume()
    assert run.wait(timeout=120).state is State.COMPLETED
    assert straight.wait(timeout=120).state is State.COMPLETED
    assert run.status["command"][-1] == "1"  # RestartFlag 1: the restart files
    assert run.progress["step"] == 501 and stopped < 501
    assert [p.parent.name for p in run.snapshots] == [
        f"snapdir_00{i}" for i in range(4)
    ]
    checkpointed = {"state": "checkpointed", "stop_requested": True, "reason": None}
    _assert_segments(run, {**checkpointed, "returncode": 0}, straight)
    # the second segment continued after the sync point it stopped at: the outputs
    # of the first were not written again
    assert _stamps(run.snapshots[:done]) == before
    segment = run.logs().split("simlab: running")[-1]
    assert "RESTART: Loading restart files" in segment
    assert f"Sync-Point {stopped + 1}," in segment
    assert f"Sync-Point {stopped}," not in segment
    _assert_same_final_snapshot(run, straight, read_gadget4)


def test_concept_stop_is_refused_and_a_cancelled_run_resumes(tmp_path, monkeypatch):
    from tests.engines.test_concept import FIXTURE_RUN

    # the same config uninterrupted, in a root of its own: its dispatcher process,
    # started without the delay, replays it beside the other one, and faster
    straight = simlab.submit(FIXTURE_RUN, root=tmp_path / "a")
    monkeypatch.setenv("SIMLAB_CONCEPT_TEST_DOUBLE_DELAY", "0.05")
    run = simlab.submit(FIXTURE_RUN, root=tmp_path / "b")
    assert wait_for(lambda: len(run.snapshots) >= 1, 120), run.status
    with pytest.raises(RunError, match="cannot write a checkpoint on request"):
        run.stop()
    assert run.state is State.RUNNING  # refused: nothing was asked of the code
    run.cancel()
    assert wait_for(lambda: run.state is State.CANCELLED, 30), run.status
    assert run.status["reason"] == "cancelled by the user (while running)"
    done = len(run.snapshots)
    before = _stamps(run.snapshots)
    run.resume()
    assert run.wait(timeout=120).state is State.COMPLETED
    assert straight.wait(timeout=120).state is State.COMPLETED
    command = run.status["command"]
    assert "a_begin = " in " ".join(command)
    assert any("snapshot_a=0.50" in part for part in command)
    segment = run.logs().split("simlab: running")[-1]
    assert "Time step 0" not in segment  # the second segment did not start afresh
    assert [p.name for p in run.snapshots] == [
        "snapshot_a=0.50.hdf5",
        "snapshot_a=1.00.hdf5",
    ]
    reason = "cancelled by the user (while running)"
    _assert_segments(run, {"state": "cancelled", "reason": reason}, straight)
    assert _stamps(run.snapshots[:done]) == before  # not written again
    _assert_same_final_snapshot(run, straight, read_concept)
