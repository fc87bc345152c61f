"""Stop and resume mean the same for every engine, through the run service.

PM and Gadget4 write a checkpoint on ``stop`` and continue from it; CONCEPT cannot,
so ``stop`` is refused with what to do instead, and a cancelled CONCEPT run is
resumed from its last snapshot. Every resume is a new segment of the same run.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import simlab
from simlab.errors import RunError
from simlab.state.states import State
from tests.conftest import data_path
from tests.helpers import wait_for

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

    exe = tmp_path / "bin" / "gadget4_test_double"
    exe.parent.mkdir()
    stand_in = Path(__file__).parents[1] / "stand_ins" / "gadget4_test_double.py"
    shutil.copy(stand_in, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(
        "SIMLAB_STAND_IN_FIXTURE", str(data_path("gadget4-small/ngenic32"))
    )
    monkeypatch.setenv("SIMLAB_STAND_IN_SPEEDUP", "20")
    profile = {"kind": "local", "launcher": "", "executables": {"gadget4": str(exe)}}
    with dask.config.set({"simlab.clusters.g4resume": profile}):
        yield "g4resume"


def test_gadget4_stop_then_resume_from_its_restart_files(tmp_path, gadget4_profile):
    from tests.engines.test_gadget4 import ngenic32_config, with_code

    config = with_code(ngenic32_config(), ("config_sh",))
    run = simlab.submit(config, cluster=gadget4_profile, root=tmp_path)
    _at_step(run, 30)
    run.stop()
    assert wait_for(lambda: run.state is State.CHECKPOINTED, 60), run.status
    stopped = run.progress["step"]
    run.resume()
    assert run.wait(timeout=120).state is State.COMPLETED
    assert run.status["command"][-1] == "1"  # RestartFlag 1: the restart files
    assert run.progress["step"] == 501 and stopped < 501
    assert [p.parent.name for p in run.snapshots] == [
        f"snapdir_00{i}" for i in range(4)
    ]


def test_concept_stop_is_refused_and_a_cancelled_run_resumes(tmp_path, monkeypatch):
    from tests.engines.test_concept import FIXTURE_RUN

    monkeypatch.setenv("SIMLAB_CONCEPT_TEST_DOUBLE_DELAY", "0.05")
    run = simlab.submit(FIXTURE_RUN, root=tmp_path)
    assert wait_for(lambda: len(run.snapshots) >= 1, 120), run.status
    with pytest.raises(RunError, match="cannot write a checkpoint on request"):
        run.stop()
    assert run.state is State.RUNNING  # refused: nothing was asked of the code
    run.cancel()
    assert wait_for(lambda: run.state is State.CANCELLED, 30), run.status
    run.resume()
    assert run.wait(timeout=120).state is State.COMPLETED
    command = run.status["command"]
    assert "a_begin = " in " ".join(command)
    assert any("snapshot_a=0.50" in part for part in command)
    segment = run.logs().split("simlab: running")[-1]
    assert "Time step 0" not in segment  # the second segment did not start afresh
    assert [p.name for p in run.snapshots] == [
        "snapshot_a=0.50.hdf5",
        "snapshot_a=1.00.hdf5",
    ]
