"""A dispatcher process of its own, for runs submitted by a command that exits.

``simlab submit`` returns at once, but the dask scheduler that feeds the run's
workers must outlive it. The command therefore starts ``python -m
simlab.dispatch.standalone RUNDIR`` in a new session: it submits the run, follows its
restart chain, and exits when the run has settled. Inside JupyterLab the server
extension plays this role for every run instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from simlab.runs.run import Run

#: The dispatcher's own messages, kept beside the run's log.
DISPATCHER_LOG = "dispatcher.log"


def spawn(run: Run) -> int:
    """Start the detached dispatcher of ``run``; return its process id."""
    with open(run.path / DISPATCHER_LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simlab.dispatch.standalone", str(run.path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return proc.pid


def serve(path: Path, poll: float = 0.5) -> str:
    """Submit the run at ``path`` and keep its cluster up until the run settles."""
    from simlab.api import dispatch
    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.runs.liveness import reap

    run = Run(path)
    with Dispatcher() as dispatcher:
        dispatch(run, dispatcher)
        while not run.settled and not reap(run.dir):
            time.sleep(poll)
    return run.state.value


if __name__ == "__main__":
    print(f"run {sys.argv[1]}: {serve(Path(sys.argv[1]))}", flush=True)
