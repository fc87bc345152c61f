"""A sweep starts its points through the one submission path, so it respects
``simlab.max-active-runs`` like any submission: a sweep (or a resume) that would
take the active runs above the limit is refused whole, before anything is made.

The dispatcher is replaced by a recorder that queues each run handed over (owned
by this live process, so no listing takes it for an orphan): these tests start no
process and no cluster.
"""

from __future__ import annotations

import json

import dask.config
import pytest

import simlab
from simlab.dispatch.notebook_task import NOTEBOOK_TASK_FILE
from simlab.service import submission
from simlab.service.submission import LimitError, create
from simlab.state.owners import process_ref
from tests.sweep.conftest import small_config

GRID = {"sigma8": [0.7, 0.8, 0.9]}


@pytest.fixture
def handed(monkeypatch):
    """The runs handed to the (recording) dispatcher, in order."""
    runs = []

    def hand_over(run, *, resume=False, wait=submission.QUEUE_WAIT):
        # what the dispatcher needs is there before the run is queued
        assert (run.path / NOTEBOOK_TASK_FILE).is_file()
        assert (run.path.parent / "sweeps").is_dir()
        run.dir.transition("queued", owner=process_ref())
        runs.append(run)
        return run

    monkeypatch.setattr(submission, "hand_over", hand_over)
    monkeypatch.setattr(submission, "warm_up", lambda plan, root: None)
    return runs


def _queued_run(root):
    run = create(small_config(), root=root)
    run.dir.transition("queued", owner=process_ref())
    return run


def _made(root):
    return sorted(p.parent.name for p in root.glob("*/status.json"))


def test_a_sweep_that_would_pass_max_active_runs_is_refused_whole(tmp_path, handed):
    busy = _queued_run(tmp_path)
    with (
        dask.config.set({"simlab.max-active-runs": 3}),
        pytest.raises(LimitError) as info,
    ):
        simlab.sweep(
            "run_simulation", grid=GRID, base=small_config(), root=tmp_path,
            wait=False, progress=False,
        )  # fmt: skip
    message = str(info.value)
    assert "1 runs are already queued or running" in message
    assert "this submission adds 3" in message
    assert "simlab.max-active-runs allows 3" in message
    assert handed == []
    assert _made(tmp_path) == [busy.id]  # no point's run, not even a created one
    assert not list((tmp_path / "sweeps").glob("*"))  # and no sweep directory


def test_a_sweep_within_the_limit_queues_every_point(tmp_path, handed):
    _queued_run(tmp_path)
    with dask.config.set({"simlab.max-active-runs": 4}):
        sweep = simlab.sweep(
            "run_simulation", grid=GRID, base=small_config(), root=tmp_path,
            wait=False, progress=False,
        )  # fmt: skip
    assert [run.id for run in handed] == [run.id for run in sweep.runs()]
    assert sweep.states() == ["queued"] * 3


def test_resume_respects_max_active_runs(tmp_path, handed):
    with dask.config.set({"simlab.max-active-runs": 3}):
        sweep = simlab.sweep(
            "run_simulation", grid=GRID, base=small_config(), root=tmp_path,
            wait=False, progress=False,
        )  # fmt: skip
    first = sweep.runs()[0]
    first.dir.transition("failed", reason="test: this point failed")
    before = (sweep.path / "sweep.json").read_text()
    # two points still queued and one more run active: a new run for the failed
    # point would make four
    _queued_run(tmp_path)
    with (
        dask.config.set({"simlab.max-active-runs": 3}),
        pytest.raises(LimitError, match=r"simlab\.max-active-runs allows 3"),
    ):
        simlab.Sweep(sweep.path).resume(wait=False, progress=False)
    assert (sweep.path / "sweep.json").read_text() == before
    assert len(_made(tmp_path)) == 4  # three points and the other run
    # within the limit, the failed point gets a new run, recorded in sweep.json
    with dask.config.set({"simlab.max-active-runs": 4}):
        resumed = simlab.Sweep(sweep.path).resume(wait=False, progress=False)
    runs = json.loads((sweep.path / "sweep.json").read_text())["points"][0]["runs"]
    assert runs[0] == first.id and runs[1] == handed[-1].id
    assert resumed.states() == ["queued"] * 3
