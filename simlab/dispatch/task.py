"""Execute one run on whatever machine the task lands on.

The task starts the engine's command in its own process group, copies every line
of its output to ``log``, turns progress lines into ``status.json`` updates, and
honours cancel and stop requests left in the run directory. It only ever writes
inside the run directory; the outcome is the run's final state, not a return value
anyone has to keep.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from simlab.engines import registry, spares
from simlab.engines.base import Launch, Progress
from simlab.engines.diagnosis import diagnose
from simlab.errors import EngineError
from simlab.state.rundir import RunDir, host_info
from simlab.state.states import State

if TYPE_CHECKING:
    from simlab.config import RunConfig

logger = logging.getLogger(__name__)

#: Seconds between status writes while progress lines stream in.
STATUS_INTERVAL = 0.5
#: Seconds a process group gets after SIGTERM before SIGKILL.
KILL_GRACE = 5.0
#: Log lines kept in status.json as the failed run's ``log_tail``.
TAIL_LINES = 20
#: Log lines read for the failure's diagnosis (an MPI error box can be 20 long).
DIAGNOSIS_LINES = 200
#: Seconds between heartbeats written to status.json while the code runs.
HEARTBEAT_INTERVAL = 5.0


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _terminate(proc: subprocess.Popen[str]) -> None:
    """End the whole process group: SIGTERM, then SIGKILL after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def execute(
    path: str | Path, *, resume: bool = False, time_limit: float | None = None
) -> str:
    """Run the engine for the run at ``path`` to its end; return the final state.

    Whatever goes wrong, the run does not stay ``running``: an unexpected error marks
    it ``failed`` with the error as its reason, then propagates. A full disk is
    named as such, and the reason reaches both status.json and the log.
    """
    forget_worker_only_variables()
    rundir = RunDir(path)
    try:
        return _execute(rundir, resume, time_limit)
    except BaseException as exc:
        logger.exception("run %s: task failed", rundir.id)
        reason = failure_reason(exc)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            rundir.release_reserve()
        with contextlib.suppress(OSError), open(rundir.log_path, "a") as log:
            log.write(f"simlab: run failed: {reason}\n")
        if not rundir.state.is_final:
            diagnosis = diagnose([reason]).to_dict()
            rundir.transition(State.FAILED, reason=reason, diagnosis=diagnosis)
        raise


def failure_reason(exc: BaseException) -> str:
    """An error as a run's failure reason, with a full disk said in words.

    Examples
    --------
    >>> failure_reason(OSError(28, "No space left on device", "/runs/x/log"))
    'disk full (ENOSPC) writing /runs/x/log: free space in the run root, then resume'
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"disk full (ENOSPC){where}: free space in the run root, then resume"
    return f"{type(exc).__name__}: {exc}"


def exit_reason(argv0: str, returncode: int) -> str:
    """How a code's process ended badly, from its exit status.

    Examples
    --------
    >>> exit_reason("python", -9)
    'python was killed by signal 9 (SIGKILL)'
    >>> exit_reason("Gadget4", 1)
    'Gadget4 exited with status 1'
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"{argv0} was killed by signal {-returncode} ({name})"
    return f"{argv0} exited with status {returncode}"


def _time_left(time_limit: float | None) -> float | None:
    """The engine's time limit, shortened to fit the worker's remaining lifetime.

    A batch worker lives a fixed time from its own start, and may run a second run
    segment after the first: the limit must count from the worker's start, not the
    task's, or the worker retires mid-segment and the scheduler reruns the task.
    """
    if not time_limit:
        return None
    worker = _dask_worker()
    lifetime = worker.lifetime if worker is not None else None
    if not lifetime:
        return time_limit
    import psutil

    age = time.time() - psutil.Process().create_time()
    return max(1.0, min(time_limit, 0.8 * (lifetime - age)))


def _core_free(config: RunConfig) -> bool:
    """Whether the run leaves a core of this machine free: the worker's next spare
    loads there while the run steps; else it loads once the run has ended (loading
    beside a run on every core slowed its steps by more than the spare saves)."""
    return config.resources.cores < len(os.sched_getaffinity(0))


def _dask_worker() -> Any:
    """The dask worker this task runs in, or None in a process that executes
    one run in the foreground."""
    if "distributed" not in sys.modules:  # never import dask only to learn so
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _job_info() -> dict[str, str]:
    """The batch job this task runs in, from the scheduler's environment."""
    names = {"SLURM_JOB_ID": "job_id", "PBS_JOBID": "job_id", "JOB_ID": "job_id"}
    info = {field: os.environ[var] for var, field in names.items() if var in os.environ}
    worker = _dask_worker()
    if worker is not None:
        info["worker"] = worker.address
    return info


def code_environment(engine: Any, config: RunConfig) -> dict[str, str]:
    """This process's environment with the engine's choices for its code applied
    (``engine.environment(config)``: a value sets, None unsets)."""
    env = dict(os.environ)
    choose = getattr(engine, "environment", None)
    for key, value in (choose(config) if choose is not None else {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def forget_worker_only_variables() -> None:
    """Take out of this dask worker's environment what its nanny set for the
    worker's own memory, so no code or kernel the worker starts inherits it:
    ``MALLOC_TRIM_THRESHOLD_`` (distributed's ``nanny.pre-spawn-environ``) when it
    has the nanny's value. Set, it turns off glibc's moving mmap threshold, so
    every large temporary of a step is mapped and zeroed anew: the PM engine's
    64³ run stepped 1.5x slower with it. The worker's own allocator read it at its
    start and keeps it."""
    if _dask_worker() is None:
        return
    import dask.config

    nanny = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    key = "MALLOC_TRIM_THRESHOLD_"
    if key in nanny and os.environ.get(key) == str(nanny[key]):
        os.environ.pop(key, None)


def _spare_command(engine: Any, config: RunConfig) -> list[str] | None:
    """The argv prefix of the engine's command that a process started ahead can
    run (``engine.spare_command``), or None (the engine has none, or spares are
    off in the settings)."""
    offer = getattr(engine, "spare_command", None)
    if offer is None or not spares.enabled():
        return None
    return offer(config)


def start_spare_for(config: RunConfig) -> bool:
    """Start in this process a spare for a run of ``config``; whether one was
    started. A sweep's kernel started ahead does this with its previous point's
    config, so the next point's run, executed in the kernel, finds its engine's
    process loaded (a kernel is no dask worker, and lives one point)."""
    engine = registry.get(config.code.engine)
    spare = _spare_command(engine, config)
    if spare is None:
        return False
    spares.start(spare, code_environment(engine, config))
    return True


def _prepare_to_start(
    engine: Any, config: RunConfig, rundir: RunDir, launch: Launch
) -> str | None:
    """Let the engine finish what only running its code could tell, here where the
    code runs and never while the run was made (``engine.prepare_to_start``, e.g.
    Gadget4 reading its build's compile options); the reason when the code cannot
    run this configuration, else None."""
    ready = getattr(engine, "prepare_to_start", None)
    if ready is None:
        return None
    try:
        ready(config, rundir.path, launch)
    except EngineError as exc:
        return str(exc)
    return None


def _execute(rundir: RunDir, resume: bool, time_limit: float | None) -> str:
    config = rundir.config()
    engine = registry.get(config.code.engine)
    launch = Launch.from_dict(rundir.read_json("launch.json"))
    argv = (
        engine.restart(config, rundir.path, launch)
        if resume
        else engine.command(config, rundir.path, launch)
    )
    if argv is None:
        reason = "asked to resume but the run has no checkpoint (not restarting afresh)"
        rundir.transition(State.FAILED, reason=reason)
        return State.FAILED.value
    if rundir.requested("cancel"):
        rundir.transition(State.CANCELLED, reason="cancelled before start")
        return State.CANCELLED.value
    if rundir.state == State.RUNNING:
        # the scheduler reran a task whose worker was lost mid-run: never restart
        # a simulation from scratch behind the user's back
        reason = "its task was lost with its worker while running; not rerun"
        rundir.transition(State.FAILED, reason=reason)
        return State.FAILED.value
    if rundir.state != State.QUEUED:
        logger.warning("run %s is %s: task not started", rundir.id, rundir.state.value)
        return rundir.state.value
    refused = _prepare_to_start(engine, config, rundir, launch)
    if refused is not None:
        with open(rundir.log_path, "a") as log:
            log.write(f"simlab: not started: {refused}\n")
        diagnosis = diagnose(refused.splitlines())
        rundir.transition(State.FAILED, reason=refused, diagnosis=diagnosis.to_dict())
        return State.FAILED.value
    a_start, a_end = config.ics.start, config.outputs.times[-1]
    tail: deque[str] = deque(maxlen=DIAGNOSIS_LINES)
    spare = _spare_command(engine, config)
    # a local cluster's worker keeps one for its next run; a batch job's worker
    # (it has a walltime) does not: the spare would load in the run's own CPUs
    # and memory, for a job that rarely runs a second segment
    keeps_spares = time_limit is None and _dask_worker() is not None
    with open(rundir.log_path, "a", buffering=1) as log:
        env = code_environment(engine, config)
        limit = _time_left(time_limit)
        if limit:
            env["SIMLAB_TIME_LIMIT"] = f"{limit:.1f}"
        try:
            proc, ahead = spares.popen(argv, env, rundir.path, spare)
        except OSError as exc:
            log.write(f"simlab: running {' '.join(argv)}\n")
            started = f"cannot start {argv[0]!r}: {exc.strerror} (exit code none)"
            diagnosis = diagnose([started])
            reason = diagnosis.reason(started) if diagnosis.known else started
            log.write(f"simlab: {reason}\n")
            rundir.transition(
                State.FAILED,
                reason=reason,
                command=argv,
                diagnosis=diagnosis.to_dict(),
            )
            return State.FAILED.value
        started_ahead = " (in a process started ahead)" if ahead else ""
        log.write(f"simlab: running {' '.join(argv)}{started_ahead}\n")
        rundir.transition(
            State.RUNNING,
            command=argv,
            **host_info(),
            **_job_info(),
            job_pid=proc.pid,
            heartbeat=time.time(),
        )
        try:
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(
                target=_pump, args=(proc.stdout, lines), daemon=True
            ).start()
            last_write = 0.0
            latest = None
            first_report = True
            cancelled, stop_requested = "", False
            while True:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if line:
                    log.write(line)
                    tail.append(line.rstrip("\n"))
                    progress = engine.parse_progress(line)
                    if progress is not None:
                        latest = progress
                now = time.monotonic()
                if latest is not None and now - last_write > STATUS_INTERVAL:
                    fields = _progress_fields(latest, a_start, a_end)
                    if first_report:  # where this segment's measured rate starts
                        fields["progress_start"] = fields["progress"]
                        first_report = False
                        if spare is not None and keeps_spares and _core_free(config):
                            # the code is past its start: load the worker's next
                            # run's process now, not while this one loads
                            spares.start(spare, env)
                    rundir.update(**fields, heartbeat=time.time())
                    latest, last_write = None, now
                elif now - last_write > HEARTBEAT_INTERVAL:
                    rundir.update(heartbeat=time.time())
                    last_write = now
                if rundir.requested("stop"):
                    stop_requested = True
                    log.write("simlab: stop requested, asking the code to checkpoint\n")
                    engine.request_stop(rundir.path)
                    (rundir.path / ".request-stop").unlink(missing_ok=True)
                if rundir.requested("cancel") and not cancelled:
                    cancelled = rundir.request_reason("cancel") or "cancelled"
                    log.write("simlab: cancel requested, ending the process group\n")
                    _terminate(proc)
        except BaseException:
            # the task itself failed (a full disk, an interrupt): never leave the
            # code running without anyone reading its output
            _terminate(proc)
            raise
        returncode = proc.wait()
        log.write(f"simlab: process exited with status {returncode}\n")
        if spare is not None and keeps_spares:
            spares.start(spare, env)  # unless one started while the code ran
    if latest is not None:
        rundir.update(**_progress_fields(latest, a_start, a_end))
    if cancelled:
        rundir.clear_requests()
        rundir.transition(
            State.CANCELLED,
            returncode=returncode,
            reason=f"{cancelled} (while running)",
        )
        return State.CANCELLED.value
    outcome = engine.outcome(config, rundir.path, returncode)
    if outcome.details:
        rundir.update(**outcome.details)
    if outcome.state == State.FAILED.value:
        diagnosis = diagnose(tail, returncode)
        ended = exit_reason(argv[0], returncode)
        if diagnosis.known:
            reason = diagnosis.reason(ended)
        else:
            reason = outcome.reason or diagnosis.reason(ended)
        rundir.transition(
            State.FAILED,
            returncode=returncode,
            reason=reason,
            diagnosis=diagnosis.to_dict(),
            log_tail=list(tail)[-TAIL_LINES:],
        )
    elif outcome.state == State.CHECKPOINTED.value:
        # a checkpoint the user asked for ends the chain; one forced by the time
        # limit is continued by the dispatcher
        rundir.transition(
            State.CHECKPOINTED, returncode=returncode, stop_requested=stop_requested
        )
    else:
        rundir.transition(State(outcome.state), returncode=returncode)
    return outcome.state


def _progress_fields(progress: Progress, a_start: float, a_end: float) -> dict:
    """The status fields of one progress report, stamped with the wall time."""
    return {
        "progress": {
            **progress.to_dict(),
            "fraction": progress.fraction(a_start, a_end),
            "time": time.time(),
        }
    }
