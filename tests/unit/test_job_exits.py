"""The exit trap of batch jobs and reading back why a job ended."""

from __future__ import annotations

import subprocess

import pytest

from simlab.dispatch.job_exits import (
    ended_dir,
    ended_jobs,
    exit_trap,
    forget,
    job_exit,
    job_logs,
)


@pytest.mark.parametrize(
    ("variable", "value", "job_id"),
    [("SLURM_JOB_ID", "41", "41"), ("PBS_JOBID", "42.pbs-server", "42")],
)
def test_the_trap_writes_the_exit_status_under_the_job_id(
    tmp_path, variable, value, job_id
):
    jobs = tmp_path / "jobs with space"  # quoted in the trap
    jobs.mkdir()
    ended = ended_dir(jobs)
    script = "\n".join([*exit_trap(ended), "/no/such/python -m distributed.cli"])
    done = subprocess.run(
        ["bash", "-c", script], env={variable: value}, capture_output=True, text=True
    )
    assert done.returncode == 127
    assert ended_jobs(ended) == {job_id: 127}
    forget(ended, job_id)
    assert ended_jobs(ended) == {}


def test_a_clean_exit_is_recorded_as_zero(tmp_path):
    ended = ended_dir(tmp_path)
    script = "\n".join([*exit_trap(ended), "true"])
    subprocess.run(["bash", "-c", script], env={"LSB_JOBID": "7"}, check=True)
    assert ended_jobs(ended) == {"7": 0}


def test_forget_leaves_jobs_whose_id_only_starts_the_same(tmp_path):
    ended = ended_dir(tmp_path)
    (ended / "3").write_text("1\n")
    (ended / "31").write_text("0\n")
    forget(ended, "3")
    assert ended_jobs(ended) == {"31": 0}


def test_logs_of_a_job_stderr_first_and_only_its_own(tmp_path):
    for name in ("simlab-pm-3.out", "simlab-pm-3.err", "simlab-pm-13.err", "w.e33"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "w.o3").write_text("x\n")
    names = [path.name for path in job_logs(tmp_path, "3")]
    assert names == ["simlab-pm-3.err", "simlab-pm-3.out", "w.o3"]


def test_the_reason_names_the_job_the_evidence_the_log_and_the_fix(tmp_path):
    log = tmp_path / "simlab-pm-5.err"
    log.write_text(
        "\n/var/spool/slurm_script: line 14: /opt/venv/bin/python: "
        "No such file or directory\n\n"
    )
    found = job_exit("5", 127, tmp_path)
    reason = found.reason()
    assert reason.startswith(
        "its batch job 5 ended with exit status 127 before its dask worker started: "
        "/var/spool/slurm_script: line 14: /opt/venv/bin/python: No such file"
    )
    assert f"(job log: {log})" in reason
    assert "set `python` in the cluster profile" in reason
    assert found.diagnosis().cause == "job-start"
    other = job_exit("6", 1, tmp_path)  # no log: the exit status alone
    assert other.log is None and other.lines == ()
    assert "read the job's log" in other.reason()
