"""Run one run in this process, without a dispatcher: ``simlab run`` in a terminal.

A run handed to the root's dispatcher waits for that process to start, then for
its local cluster's worker to start, then for the engine's own process: three
fresh interpreters one after the other, two of them importing dask's distributed,
which took 2.5-3.5 s before the engine's start on a 2-core machine. ``simlab run``
waits for its run anyway, so when no dispatcher is up and the run needs nothing
only a dispatcher gives (a batch job, a walltime's restart chain, a copy of its
artifacts), it runs the run itself: the engine's process is started ahead while
the run directory is made, and :func:`simlab.dispatch.task.execute` runs the run in
a thread of this process, as it would on a dask worker, so the run directory,
states, log, progress and cancel are those of any run.

The run names this process as its owner and its process (``status.json``'s
``owner`` and ``pid``, with ``foreground: true``): killed, its run is failed as
lost by the next look at it (:mod:`simlab.state.liveness`), as when a worker dies,
and the engine's process, left writing to nobody, ends at its next line of output.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from simlab.state import owners
from simlab.state.states import State

if TYPE_CHECKING:
    from collections.abc import Iterator

    from simlab.service.run import Run
    from simlab.service.validation import Plan

logger = logging.getLogger(__name__)


def can_run_here(plan: Plan, root: Path) -> bool:
    """Whether the run of ``plan`` may run in this process rather than go to the
    root's dispatcher."""
    profile = plan.profile
    return (
        profile.get("kind", "local") == "local"  # a batch profile submits jobs
        and not plan.launch.walltime  # a walltime makes a restart chain
        and not profile.get("artifacts")  # the dispatcher copies them at the end
        # a dispatcher that is up has the engine loaded in its worker, and its
        # queue keeps the local profile to one run at a time across processes
        and not owners.holds_lock(root)
    )


def start_engine_ahead(plan: Plan) -> None:
    """Start the engine's process for the run now (engines that offer one,
    :mod:`simlab.engines.spares`): it loads while the run directory is made, and
    the run takes it."""
    from simlab.dispatch.task import start_spare_for

    start_spare_for(plan.config)


def queue(run: Run) -> None:
    """Queue ``run`` (``created``, or checkpointed by its time limit) to be run by
    this process."""
    run.dir.transition(
        State.QUEUED,
        cluster=run.dir.read_json("launch.json").get("cluster"),
        owner=owners.process_ref(),
        foreground=True,
    )


def execute_in_thread(run: Run) -> threading.Thread:
    """Run ``run`` (queued by :func:`queue`) in a thread of this process, through
    each segment a time limit checkpoints; the thread is started and returned.

    The run's own files say how it ended (an error of the task itself marks it
    ``failed`` with the reason, as on a worker), so the thread raises nothing.
    """

    def execute_all() -> None:
        from simlab.dispatch import task

        # a worker logs the task's own errors with their traceback for the
        # dispatcher's log; here the run's status and log say it, in words
        quiet = logging.NullHandler()
        task.logger.addHandler(quiet)
        task.logger.propagate = False
        resume = False
        try:
            while True:
                state = task.execute(run.path, resume=resume)
                if state != State.CHECKPOINTED.value or run.settled:
                    return
                queue(run)  # checkpointed by its time limit: the next segment
                resume = True
        except BaseException as exc:  # recorded in the run by execute already
            logger.debug("run %s: %s", run.id, exc)
        finally:
            task.logger.removeHandler(quiet)
            task.logger.propagate = True

    thread = threading.Thread(target=execute_all, name=f"simlab-run-{run.id}")
    thread.start()
    return thread


class Ended(KeyboardInterrupt):
    """SIGTERM or SIGHUP (its terminal closed) came to a process running a run: it
    ends as Ctrl-C would end it, cancelling the run. ``str()`` names the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def ended_by_signals() -> Iterator[None]:
    """While the run runs here: SIGTERM and SIGHUP raise :class:`Ended` in the main
    thread, so the run is cancelled with the signal's name at once, not left to be
    found lost after this process has died."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def end(signum: int, frame: object) -> None:
        raise Ended(signum)

    kept = {sig: signal.signal(sig, end) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
