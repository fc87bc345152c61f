"""Runs through a real LocalCluster: cancel, failure reasons, nothing left running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simlab.dispatch.dispatcher import Dispatcher
from simlab.dispatch.task import execute
from simlab.service.submission import create
from simlab.state.states import State
from tests.helpers import alive, wait_for

LONG = {
    "box": {"size": 128.0, "particles_per_side": 32},
    "gravity": {"steps": 2000},
    "metadata": {"name": "long"},
}


@pytest.mark.slow
def test_cancel_ends_a_running_run_and_its_process(tmp_path):
    run = create(LONG, root=tmp_path)
    with Dispatcher() as dispatcher:
        future = dispatcher.submit(run.dir)
        assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
        assert run.state is State.RUNNING
        pid = run.status["job_pid"]
        assert alive(pid)
        started = time.monotonic()
        run.cancel()
        assert future.result(timeout=30) == "cancelled"
        assert time.monotonic() - started < 10
    assert run.state is State.CANCELLED
    assert not alive(pid)
    assert "cancel requested" in run.logs()
    assert [e["state"] for e in run.dir.events()][-1] == "cancelled"


def _environ(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


@pytest.mark.slow
def test_the_code_does_not_inherit_the_nannys_malloc_setting(tmp_path):
    # dask's nanny starts its worker with MALLOC_TRIM_THRESHOLD_ for the worker's
    # memory; inherited, it made every PM step map and zero its meshes anew
    run = create(LONG, root=tmp_path)
    with Dispatcher() as dispatcher:
        dispatcher.submit(run.dir)
        assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
        worker, code = _environ(run.status["pid"]), _environ(run.status["job_pid"])
        run.cancel()
    assert worker["MALLOC_TRIM_THRESHOLD_"] == "65536"
    assert "MALLOC_TRIM_THRESHOLD_" not in code
    assert code["OMP_NUM_THREADS"] == str(run.config.resources.cores)


def test_engine_crash_marks_run_failed_with_reason_and_log(tmp_path):
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    (run.dir.inputs / "ics.hdf5").write_bytes(b"garbage")  # ICs the engine cannot read
    run.dir.transition("queued")
    assert execute(run.path) == "failed"
    status = run.status
    assert status["state"] == "failed"
    assert status["returncode"] != 0
    assert "exited with status" in status["reason"]
    assert any("ics.hdf5" in line for line in status["log_tail"])
    assert "ics.hdf5" in run.logs()
    # no known cause: the reason ends with the code's last meaningful line
    assert status["diagnosis"]["cause"] == "unknown"
    last = status["diagnosis"]["lines"][-1]
    assert "ics.hdf5" in last and status["reason"].endswith(last)


def test_missing_executable_fails_cleanly(tmp_path, monkeypatch):
    from simlab.engines import pm

    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    monkeypatch.setattr(pm.PMEngine, "command", lambda *args: ["/nonexistent/code"])
    run.dir.transition("queued")
    assert execute(run.path) == "failed"
    assert "cannot start '/nonexistent/code'" in run.status["reason"]
    assert run.status["diagnosis"]["cause"] == "missing-executable"
    assert "Fix: set code.executable" in run.status["reason"]


def test_cancel_before_start_never_launches(tmp_path):
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    run.dir.transition("queued")
    run.dir.request("cancel")
    assert execute(run.path) == "cancelled"
    assert "job_pid" not in run.status


def test_stale_heartbeat_marks_a_running_run_failed(tmp_path):
    from simlab.state.liveness import reap

    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    run.dir.transition("queued")
    run.dir.transition("running", host="node-that-died", pid=1, heartbeat=time.time())
    assert not reap(run.dir, timeout=60)
    assert run.state is State.RUNNING
    run.dir.update(heartbeat=time.time() - 120)
    assert reap(run.dir, timeout=60)
    assert run.state is State.FAILED
    assert "no heartbeat for 120 s" in run.status["reason"]


def test_a_dead_worker_on_this_host_is_noticed_at_once(tmp_path):
    import socket
    import subprocess

    from simlab.service.submission import runs

    gone = subprocess.Popen(["true"])
    gone.wait()
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    run.dir.transition("queued")
    run.dir.transition(
        "running", host=socket.gethostname(), pid=gone.pid, heartbeat=time.time()
    )
    [listed] = runs(root=tmp_path)
    assert listed.state is State.FAILED
    assert f"worker process {gone.pid}" in listed.status["reason"]


def test_active_run_limit_refuses_with_a_clear_message(tmp_path):
    import dask.config

    from simlab.errors import SimlabError
    from simlab.service.submission import submit

    first = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    first.dir.transition("queued")
    with (
        dask.config.set({"simlab.max-active-runs": 1}),
        pytest.raises(SimlabError, match=r"simlab\.max-active-runs allows 1"),
    ):
        submit({"box": {"particles_per_side": 8}}, root=tmp_path)
    assert len(list(tmp_path.glob("*/status.json"))) == 1  # nothing half-made


@pytest.mark.slow
def test_cancelling_a_queued_run_withdraws_it_before_it_starts(tmp_path):
    busy = create(LONG, root=tmp_path)
    waiting = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    with Dispatcher() as dispatcher:
        dispatcher.submit(busy.dir)  # one worker: the second run has to queue
        assert wait_for(lambda: busy.state is State.RUNNING)
        future = dispatcher.submit(waiting.dir)
        waiting.cancel()
        assert waiting.state is State.CANCELLED
        assert waiting.status["reason"] == "cancelled while queued"
        assert wait_for(lambda: future.status == "cancelled", timeout=10)
        busy.cancel()
        assert wait_for(lambda: busy.state is State.CANCELLED, timeout=30)
    assert "job_pid" not in waiting.status  # its code never started


@pytest.mark.slow
def test_stop_checkpoints_and_the_chain_does_not_continue(tmp_path):
    run = create(LONG, root=tmp_path)
    with Dispatcher() as dispatcher:
        dispatcher.submit(run.dir)
        assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2)
        run.stop()
        assert wait_for(lambda: run.settled, timeout=30)
        assert run.state is State.CHECKPOINTED
        assert run.status["stop_requested"] is True
        time.sleep(1.0)
        assert dispatcher.pending() == 0  # not resubmitted
    assert run.state is State.CHECKPOINTED
    assert (run.path / "checkpoint").exists()
    assert "stop requested" in run.logs()


@pytest.mark.slow
def test_existing_scheduler_profile_runs_on_its_workers(tmp_path):
    import dask.config
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, resources={"run": 1}, dashboard_address=None
    ) as cluster:
        profile = {"kind": "existing", "address": cluster.scheduler_address}
        with dask.config.set({"simlab.clusters.shared": profile}):
            run = create(
                {"box": {"particles_per_side": 8}, "resources": {"cluster": "shared"}},
                root=tmp_path,
            )
            with Dispatcher() as dispatcher:
                dispatcher.submit(run.dir).result(timeout=60)
        assert run.state is State.COMPLETED
        assert run.status["worker"] in cluster.scheduler_info["workers"]


def test_estimated_duration_from_the_cost_model_then_from_progress(tmp_path):
    from simlab.service.cost import estimate

    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    prior = estimate(run.config, False).seconds
    assert run.estimated_duration == pytest.approx(prior)  # no past runs here
    run.dir.transition("queued")
    run.dir.transition("running")
    start = {"step": 1, "a": 0.1, "fraction": 0.05, "time": 1000.0}
    run.dir.update(
        progress_start=start,
        progress={"step": 5, "a": 0.5, "fraction": 0.25, "time": 1030.0},
    )
    # measured: 0.2 of the run in 30 s, so 150 s in all, counted from the first
    # report (start-up before it is left out)
    assert run.estimated_duration == pytest.approx(150.0, rel=0.01)


def test_clusters_are_keyed_by_profile_code_and_batch_shape_only():
    from simlab.dispatch.dispatcher import Shape, cluster_id, cluster_key

    local = {"kind": "local", "n_workers": 1}
    short, long = Shape(1, 2, "00:10:00"), Shape(1, 2, "05:00:00")
    # a local cluster serves every walltime; a batch job is shaped like its run
    assert cluster_key("l", local, "pm", short) == cluster_key("l", local, "pm", long)
    slurm = {"kind": "slurm", "queue": "q"}
    assert cluster_key("s", slurm, "pm", short) != cluster_key("s", slurm, "pm", long)
    # the profile's contents count, not only its name
    other = {**local, "n_workers": 2}
    assert cluster_key("l", local, "pm", short) != cluster_key("l", other, "pm", short)
    assert cluster_id("l", "pm", Shape()) == "l.pm"
    assert cluster_id("s", "pm", long) == "s.pm.1x2.050000"


@pytest.mark.slow
@pytest.mark.parametrize(("key", "value"), [("cores", 32), ("processes", 2)])
def test_a_batch_profile_whose_job_would_not_fit_the_run_is_a_field_error(
    tmp_path, key, value
):
    # cores: 32 would be --cpus-per-task=32 for each of the run's --ntasks ranks
    import dask.config

    import simlab
    from simlab.errors import ConfigError

    profile = {"kind": "slurm", "queue": "q", key: value}
    with (
        dask.config.set({"simlab.clusters.wide": profile}),
        pytest.raises(ConfigError) as caught,
    ):
        simlab.submit({"resources": {"cluster": "wide", "cores": 4}}, root=tmp_path)
    (error,) = caught.value.errors
    assert error["loc"] == "resources.cluster"
    assert f"sets {key}: {value}" in error["msg"] and "must be 1" in error["msg"]
    assert not list(tmp_path.iterdir())  # nothing half-made


def test_a_profile_at_its_cluster_cap_refuses_a_new_cluster_with_the_reason(
    tmp_path,
):
    import dask.config

    from simlab.errors import DispatchError
    from tests.engines.test_concept import FIXTURE_RUN

    profile = {"kind": "local", "n_workers": 1, "max_clusters": 1}
    with dask.config.set({"simlab.clusters.capped": profile}):
        busy = create({**LONG, "resources": {"cluster": "capped"}}, root=tmp_path)
        other = create(
            {**FIXTURE_RUN, "resources": {"cluster": "capped"}}, root=tmp_path
        )
    with Dispatcher() as dispatcher:
        dispatcher.submit(busy.dir)  # the pm cluster, busy with a long run
        assert wait_for(lambda: busy.state is State.RUNNING)
        with pytest.raises(DispatchError, match=r"max_clusters 1"):
            dispatcher.submit(other.dir)  # concept would need a second cluster
        assert [c.id for c in dispatcher.clusters()] == ["capped.pm"]
        busy.cancel()
        assert wait_for(lambda: busy.state is State.CANCELLED)
        # once the pm cluster is idle it is closed to make room
        assert wait_for(lambda: dispatcher.pending() == 0)
        dispatcher.submit(other.dir)
        assert [c.id for c in dispatcher.clusters()] == ["capped.concept"]


def test_warm_starts_the_local_cluster_the_run_then_uses_and_never_a_batch_job(
    tmp_path,
):
    from simlab.settings import cluster_profile

    local = cluster_profile("local")
    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    with Dispatcher() as dispatcher:
        dispatcher.warm("local", local, "pm", tmp_path)
        (warmed,) = dispatcher.clusters()
        assert warmed.id == "local.pm" and warmed.tasks == 0
        dispatcher.warm("slurm", {"kind": "slurm", "queue": "q"}, "pm", tmp_path)
        dispatcher.warm("kube", {"kind": "dask_kubernetes.KubeCluster"}, "pm", tmp_path)
        assert dispatcher.clusters() == [warmed]  # batch and cloud kinds: nothing
        assert dispatcher.submit(run.dir).result(timeout=60) == "completed"
        assert dispatcher.clusters() == [warmed]
        assert run.status["worker"] in warmed.client.scheduler_info()["workers"]
