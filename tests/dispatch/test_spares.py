"""Engine processes started ahead of their run (simlab.engines.spares).

The PM engine's spare is real: ``python -m simlab.engines.pm_main --spare`` loads
the engine, waits on stdin and becomes the run's process. Runs go through the
real local cluster of the run root's owner, whose worker keeps one for its next
run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import simlab
from simlab.engines import spares
from tests.helpers import alive, wait_for

COMMAND = [sys.executable, "-m", "simlab.engines.pm_main"]
SMALL = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "gravity": {"steps": 10},
    "resources": {"cores": 1},
}
AHEAD = "(in a process started ahead)"


def first_line(run) -> str:
    return run.logs().splitlines()[0]


@pytest.mark.slow
def test_runs_take_spares_and_get_the_result_of_a_fresh_process(tmp_path, monkeypatch):
    on = [simlab.run(SMALL, root=tmp_path / "on", progress=False) for _ in range(3)]
    # a worker starts its spare once a run's code reports progress: the first
    # run of a new cluster starts its own process, the next ones take spares
    ahead = [AHEAD in first_line(run) for run in on]
    assert ahead == [False, True, True], [first_line(r) for r in on]
    monkeypatch.setenv("DASK_SIMLAB__DISPATCHER__SPARE_PROCESS", "false")
    off = simlab.run(SMALL, root=tmp_path / "off", progress=False)
    assert AHEAD not in first_line(off)
    assert "-m simlab.engines.pm_main " in first_line(off)
    spectra = [run.power_spectrum(-1).values for run in [*on, off]]
    assert all(np.array_equal(spectra[0], other) for other in spectra[1:])
    assert all(run.state.value == "completed" for run in [*on, off])


def test_a_spare_goes_only_to_a_run_of_its_command_and_environment(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    spares.start(COMMAND, env)
    other_env = {**env, "OMP_NUM_THREADS": "2"}
    proc, ahead = spares.popen([*COMMAND, "--help"], other_env, tmp_path, COMMAND)
    assert not ahead and proc.wait(60) == 0
    proc, ahead = spares.popen([sys.executable, "-c", "pass"], env, tmp_path, COMMAND)
    assert not ahead and proc.wait(60) == 0  # not the engine's command
    # the per-run variables do not count: the waiting spare takes this one
    timed = {**env, "SIMLAB_TIME_LIMIT": "5.0"}
    proc, ahead = spares.popen([*COMMAND, "--help"], timed, tmp_path, COMMAND)
    assert os.getpgid(proc.pid) == proc.pid  # a session of its own, as any run's
    output = proc.stdout.read()
    assert ahead and proc.wait(60) == 0
    assert "usage: python -m simlab.engines.pm_main" in output


def test_an_unused_spare_exits_with_the_process_that_started_it():
    script = (
        "import os, sys; from simlab.engines import spares; "
        f"spares.start({COMMAND!r}, dict(os.environ)); "
        "print(next(iter(spares._waiting.values())).pid, flush=True); "
        "os._exit(0)"  # as if killed: no exit handler closes the spare's stdin
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    pid = int(done.stdout.split()[-1])
    # its stdin closed with its parent: it loads, reads end-of-file and exits
    assert wait_for(lambda: not alive(pid), timeout=60)


def test_a_spare_whose_loading_failed_still_runs_its_run(tmp_path):
    """Loading ahead is a head start only: its failure is said in the run's
    output and the run goes on."""
    script = (
        "import os, sys; from simlab.engines.spares import serve; "
        "sys.exit(serve(lambda argv: print('ran', argv, os.getcwd()) or 0, "
        "lambda: 1 / 0))"
    )
    request = json.dumps({"argv": ["x"], "cwd": str(tmp_path), "env": {}})
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=request + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("simlab: loading ahead failed (ZeroDivisionError")
    assert lines[1] == f"ran ['x'] {tmp_path}"
