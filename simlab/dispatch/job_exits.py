"""Batch jobs that end before their dask worker connects, and why.

dask-jobqueue submits one job per worker and then waits for the worker to
connect. A job that dies first (no Python at that path on the compute node, a
failing ``job_script_prologue`` line, a node that rejects it) goes unnoticed, and
the runs waiting for a worker stay ``queued`` forever. So every job simlab submits
writes its exit status to ``ROOT/.simlab/jobs/ended/JOBID`` when its script ends
(a shell trap put first in its prologue), and the dispatcher reads those files on
each heartbeat: a job that ended without its worker ever connecting fails one
waiting run with the job's exit status and the last lines of its log.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from simlab.engines.diagnosis import Diagnosis, meaningful

#: Where each scheduler puts the job's id in its environment.
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")
#: Kinds whose job script runs the prologue as lines of a shell script
#: (HTCondor joins them into one quoted argument, so it gets no trap).
TRAPPED_KINDS = ("slurm", "pbs", "sge", "lsf")
#: Exit status of a shell that could not find a command.
COMMAND_NOT_FOUND = 127


def ended_dir(jobs: Path) -> Path:
    """``ROOT/.simlab/jobs/ended``: one file per job that ended, with its status."""
    path = jobs / "ended"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def exit_trap(ended: Path) -> list[str]:
    """Prologue lines that write the job's exit status to ``ended/JOBID`` on exit.

    Examples
    --------
    >>> exit_trap(Path("/r/.simlab/jobs/ended"))[0]
    'SIMLAB_JOB_END=/r/.simlab/jobs/ended'
    """
    job_id = "${SLURM_JOB_ID:-${PBS_JOBID:-${LSB_JOBID:-${JOB_ID:-unknown}}}}"
    return [
        f"SIMLAB_JOB_END={shlex.quote(str(ended))}",
        f"trap 'echo $? > \"$SIMLAB_JOB_END/{job_id}\"' EXIT",
    ]


def ended_jobs(ended: Path) -> dict[str, int]:
    """Job id → exit status of every job that wrote its file (``123.server`` of PBS
    is read as ``123``, as dask-jobqueue reads the id from the submit output)."""
    jobs = {}
    for path in ended.glob("*"):
        match = re.match(r"\d+", path.name)
        try:
            status = int(path.read_text().strip() or "-1")
        except (OSError, ValueError):
            continue
        if match:
            jobs[match[0]] = status
    return jobs


def forget(ended: Path, job_id: str) -> None:
    """Remove the exit file of a job once it has been acted on."""
    for path in ended.glob(f"{job_id}*"):
        if re.match(rf"{job_id}(\D|$)", path.name):
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class JobExit:
    """A batch job that ended before its worker connected."""

    job_id: str
    status: int
    log: Path | None
    lines: tuple[str, ...]

    def diagnosis(self) -> Diagnosis:
        """What happened and what to change in the cluster profile."""
        if self.status == COMMAND_NOT_FOUND:
            fix = (
                "the job's shell could not find a command: set `python` in the "
                "cluster profile to an interpreter with simlab installed at a path "
                "the compute nodes can run, and check its job_script_prologue"
            )
        else:
            fix = (
                "read the job's log, then check the cluster profile's python, "
                "job_script_prologue and job_extra_directives"
            )
        summary = (
            f"its batch job {self.job_id} ended with exit status {self.status} "
            "before its dask worker started"
        )
        return Diagnosis("job-start", summary, fix, self.lines)

    def reason(self) -> str:
        """The one-line failure reason: what ended, the evidence, the log, the fix."""
        diagnosis = self.diagnosis()
        evidence = f": {self.lines[-1]}" if self.lines else ""
        where = f" (job log: {self.log})" if self.log else ""
        return f"{diagnosis.summary}{evidence}{where}. Fix: {diagnosis.fix}"


def job_logs(logs: Path, job_id: str) -> list[Path]:
    """The logs of job ``job_id`` in ``logs``, stderr first: ``NAME-ID.err`` and
    ``.out`` (Slurm, LSF) or ``NAME.eID`` and ``.oID`` (PBS, SGE)."""
    pattern = re.compile(rf"(?:^|\D){job_id}\.(err|out)$|\.([eo]){job_id}$")
    found = []
    for path in logs.glob(f"*{job_id}*"):
        if match := pattern.search(path.name):
            stream = match[1] or match[2]  # err/out or e/o
            found.append((not stream.startswith("e"), path))
    return [path for _, path in sorted(found)]


def job_exit(job_id: str, status: int, logs: Path) -> JobExit:
    """The exit of job ``job_id`` with the last meaningful lines of its logs."""
    for log in job_logs(logs, job_id):
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if kept := meaningful(lines):
            return JobExit(job_id, status, log, kept)
    return JobExit(job_id, status, None, ())
