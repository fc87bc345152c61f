"""Runs on a real Slurm: the whole life cycle, cancel, lost jobs, restart chains."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import simlab
from simlab.state import owners
from simlab.state.states import State
from tests.helpers import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _config(name, steps=10, n=16, walltime="00:10:00"):
    return {
        "box": {"size": 64.0, "particles_per_side": n},
        "outputs": {"scale_factors": [0.5, 1.0]},
        "gravity": {"steps": steps},
        "resources": {"cores": 1, "walltime": walltime},
        "metadata": {"name": name},
    }


def _squeue() -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_run_completes_in_a_slurm_job(slurm_profile, tmp_path):
    submitted = time.monotonic()
    run = simlab.submit(_config("slurm-ok"), cluster=slurm_profile, root=tmp_path)
    assert wait_for(lambda: run.state is not State.QUEUED, 120)
    latency = time.monotonic() - submitted
    assert wait_for(lambda: run.state.is_final, 180), run.status
    status = run.status
    assert status["state"] == "completed", status
    assert status["job_id"].isdigit()
    assert status["cluster"] == slurm_profile
    assert [e["state"] for e in run.dir.events()] == [
        "created",
        "queued",
        "running",
        "completed",
    ]
    assert len(run.snapshots) == 2
    assert latency < 120


def test_cancel_on_slurm(slurm_profile, tmp_path):
    run = simlab.submit(
        _config("slurm-cancel", steps=5000, n=32), cluster=slurm_profile, root=tmp_path
    )
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 180), run.status
    pid = run.status["job_pid"]
    run.cancel()
    assert wait_for(lambda: run.state is State.CANCELLED, 30), run.status
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
    # adapt gives the idle job back
    assert wait_for(lambda: _squeue() == [], 120), _squeue()


def test_scancel_mid_run_fails_the_run_with_reason(slurm_profile, tmp_path):
    run = simlab.submit(
        _config("slurm-lost", steps=5000, n=32), cluster=slurm_profile, root=tmp_path
    )
    assert wait_for(lambda: (run.progress or {}).get("step", 0) >= 2, 180), run.status
    job = run.status["job_id"]
    subprocess.run(["scancel", job], check=True)
    assert wait_for(lambda: run.state is State.FAILED, 120), run.status
    assert "lost" in run.status["reason"]
    assert "pm: step" in run.logs()


def test_walltime_restart_chain_ends_bitwise_equal(slurm_profile, tmp_path):
    config = _config("slurm-chain", steps=5000, n=16, walltime="00:00:20")
    chained = simlab.submit(config, cluster=slurm_profile, root=tmp_path)
    straight = simlab.run(
        {**config, "metadata": {"name": "straight"}, "resources": {"cores": 1}},
        root=tmp_path,
        progress=False,
    )
    assert wait_for(lambda: chained.state.is_final, 400), chained.status
    assert chained.state is State.COMPLETED, chained.status
    states = [e["state"] for e in chained.dir.events()]
    assert states.count("checkpointed") >= 2, states
    for a, b in zip(straight.snapshots, chained.snapshots, strict=True):
        da, db = (xr.load_dataset(p, engine="gadget4") for p in (a, b))
        assert np.array_equal(da.Coordinates.values, db.Coordinates.values)
        assert np.array_equal(da.Velocities.values, db.Velocities.values)
    assert wait_for(lambda: owners.read_record(tmp_path)["runs"] == [], 30)


def _clusters(root, profile: str) -> list[dict]:
    """The clusters of ``profile`` the run root's dispatcher runs now."""
    record = owners.read_record(root) or {}
    return [c for c in record.get("clusters", []) if c["profile"] == profile]


def _job_name(job_id: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True
    ).stdout
    return out.split("JobName=", 1)[1].split()[0]


def test_two_codes_queues_fail_and_scale_apart(slurm_profile, tmp_path, monkeypatch):
    from tests.engines.test_concept import FIXTURE_RUN

    # the CONCEPT stand-in aborts like a CONCEPT that cannot read its ICs
    monkeypatch.setenv("SIMLAB_CONCEPT_TEST_DOUBLE_SCENARIO", "abort")
    broken = {
        **FIXTURE_RUN,
        "resources": {"cores": 1, "walltime": "00:10:00"},
        "metadata": {"name": "concept-broken"},
    }
    concept_runs = [
        simlab.submit(broken, cluster=slurm_profile, root=tmp_path) for _ in range(2)
    ]
    pm_runs = [
        simlab.submit(_config(f"pm-ok-{i}"), cluster=slurm_profile, root=tmp_path)
        for i in range(2)
    ]
    everything = concept_runs + pm_runs
    assert wait_for(lambda: all(r.state.is_final for r in everything), 240), [
        r.status for r in everything
    ]
    assert {r.state for r in concept_runs} == {State.FAILED}
    assert all("exited with status 1" in r.status["reason"] for r in concept_runs)
    assert {r.state for r in pm_runs} == {State.COMPLETED}
    # separate clusters, separate batch jobs, named after their code
    engines = {c["code"] for c in _clusters(tmp_path, slurm_profile)}
    assert {"pm", "concept"} <= engines
    concept_jobs = {r.status["job_id"] for r in concept_runs}
    pm_jobs = {r.status["job_id"] for r in pm_runs}
    assert not concept_jobs & pm_jobs
    assert {_job_name(j) for j in concept_jobs} == {"simlab-concept"}
    assert {_job_name(j) for j in pm_jobs} == {"simlab-pm"}
    # each cluster gives its idle jobs back on its own
    assert wait_for(
        lambda: all(not c["workers"] for c in _clusters(tmp_path, slurm_profile)), 120
    ), _clusters(tmp_path, slurm_profile)


def test_a_job_that_dies_before_its_worker_fails_the_run_with_its_log(
    slurm_profile, tmp_path
):
    import dask.config

    from tests.slurm_cluster import PROFILE

    # the compute node has no interpreter at this path: each job exits with 127
    broken = {**PROFILE, "python": str(tmp_path / "no-such-venv" / "bin" / "python")}
    with dask.config.set({"simlab.clusters.nopython": broken}):
        runs = [
            simlab.submit(_config(f"no-python-{i}"), cluster="nopython", root=tmp_path)
            for i in range(2)
        ]
        assert wait_for(lambda: all(r.state.is_final for r in runs), 120), [
            r.status for r in runs
        ]
    for run in runs:
        status = run.status
        assert status["state"] == "failed", status
        reason = status["reason"]
        assert "ended with exit status 127 before its dask worker started" in reason
        assert "no-such-venv/bin/python: No such file or directory" in reason
        assert "set `python` in the cluster profile" in reason
        assert status["diagnosis"]["cause"] == "job-start"
        log = reason.split("(job log: ", 1)[1].split(")", 1)[0]
        assert log.endswith(".err") and "No such file" in Path(log).read_text()
    # each run failed on a job of its own, and no job is left in the queue
    assert len({r.status["reason"].split(" ended")[0] for r in runs}) == 2
    assert wait_for(lambda: _squeue() == [], 60), _squeue()
