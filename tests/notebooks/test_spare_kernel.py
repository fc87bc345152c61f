"""Notebooks of one process after its first run on a kernel started ahead of them,
in their own folder, with simlab imported, and leave no trace of it."""

from __future__ import annotations

import json
import os
import signal

import nbformat
import pytest

from simlab import spare_kernel
from simlab.templates import execute_notebook
from tests.helpers import alive, wait_for

PROBE = [
    "import os, sys\nprint(os.getcwd())",
    "print(os.getpid())",
    "print(sorted(k for k in globals() if k.startswith('_simlab')))",
    "print('xarray' in sys.modules)",
]


def _probe(tmp_path) -> str:
    """A notebook that prints its folder, kernel pid, simlab names and imports."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in PROBE]
    path = tmp_path / "probe.ipynb"
    nbformat.write(notebook, path)
    return str(path)


def _run(template: str, folder) -> tuple[list[str], list[int]]:
    """Execute the probe in ``folder``: its printed lines and execution counts."""
    folder.mkdir()
    output = execute_notebook(
        template, folder / "out.ipynb", cwd=folder, spare_kernel=True
    )
    cells = json.loads(output.read_text())["cells"]
    lines = ["".join(c["outputs"][0]["text"]).strip() for c in cells]
    return lines, [c["execution_count"] for c in cells]


@pytest.fixture
def spare():
    """The process's spare kernel, shut down after the test."""
    yield spare_kernel
    spare_kernel.close()


def test_later_notebooks_run_on_the_spare_kernel_in_their_own_folder(tmp_path, spare):
    template = _probe(tmp_path)
    first, counts = _run(template, tmp_path / "a")
    assert first[0] == str(tmp_path / "a") and counts == [1, 2, 3, 4]
    # the next kernel started while the first notebook ran
    assert wait_for(lambda: spare._next is not None and spare._next.done(), 60)
    second, counts = _run(template, tmp_path / "b")
    # the spare: simlab's imports done ahead, then moved to the notebook's folder,
    # with nothing left in the namespace and no execution counted
    assert second[0] == str(tmp_path / "b")
    assert second[2] == "[]" and second[3] == "True"
    assert counts == [1, 2, 3, 4]
    # a fresh kernel per notebook, each shut down after it
    pids = [int(first[1]), int(second[1])]
    assert pids[0] != pids[1] and pids[1] != os.getpid()
    assert wait_for(lambda: not any(alive(p) for p in pids), 30)


def test_the_next_points_run_takes_an_engine_process_its_kernel_started(
    tmp_path, spare
):
    """The kernel started ahead also starts the engine's process for a run like
    the point that started it; the next point's run, executed in that kernel,
    takes it (a kernel is no dask worker, so it would start a fresh one)."""
    from simlab.service.submission import create

    small = {"box": {"size": 32.0, "particles_per_side": 8}, "gravity": {"steps": 3}}
    runs = [create(small, root=tmp_path / "runs") for _ in range(2)]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import os\nfrom simlab.dispatch.task import execute\n"
            "print(execute(os.getcwd()))"
        )
    ]
    template = tmp_path / "point.ipynb"
    nbformat.write(notebook, template)
    for index, run in enumerate(runs):
        run.dir.transition("queued")
        if index:
            assert wait_for(lambda: spare._next is not None and spare._next.done(), 60)
        output = execute_notebook(
            str(template), run.path / "out.ipynb", cwd=run.path, spare_kernel=True
        )
        printed = json.loads(output.read_text())["cells"][0]["outputs"][0]["text"]
        assert "".join(printed).strip() == "completed"
    first, second = (run.logs().splitlines()[0] for run in runs)
    assert "(in a process started ahead)" not in first
    assert second.endswith("(in a process started ahead)")



@pytest.mark.parametrize("fault", ["killed", "stopped"])
def test_a_spare_kernel_that_died_or_hangs_is_not_used(
    tmp_path, spare, monkeypatch, fault
):
    """The notebook after a spare's death (or while it hangs) runs on a kernel of
    its own, in its folder, instead of waiting for an answer that never comes;
    the hung spare is ended."""
    monkeypatch.setattr(spare, "CONNECT_TIMEOUT", 2.0)
    template = _probe(tmp_path)
    first, _ = _run(template, tmp_path / "a")
    assert wait_for(lambda: spare._next is not None and spare._next.done(), 60)
    waiting = spare._next.result().provisioner.process.pid
    os.kill(waiting, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
    second, counts = _run(template, tmp_path / "b")
    assert second[0] == str(tmp_path / "b") and counts == [1, 2, 3, 4]
    assert int(second[1]) not in (waiting, int(first[1]))
    assert wait_for(lambda: not alive(waiting), 30)
