"""The Python entry points: ``simlab.run`` creates a run and carries it to its end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from simlab.config import RunConfig, validate_config
from simlab.dispatch.dispatcher import Dispatcher
from simlab.runs.run import Run
from simlab.runs.rundir import RunDir
from simlab.settings import run_root


def create(config: RunConfig | dict[str, Any], root: str | Path | None = None) -> Run:
    """Validate ``config`` and make its run directory (state ``created``)."""
    config = validate_config(config)
    return Run(RunDir.create(root or run_root(), config).path)


def _follow(run: Run, future: Any, show_progress: bool) -> None:
    """Wait for the task, drawing a tqdm bar from the run's status as it moves."""
    from tqdm.auto import tqdm

    with tqdm(
        total=100, desc=run.id, unit="%", disable=not show_progress, leave=True
    ) as bar:
        while not future.done():
            progress = run.progress or {}
            done = round(100 * progress.get("fraction", 0.0))
            bar.update(done - bar.n)
            if progress:
                bar.set_postfix(a=f"{progress['a']:.3f}", z=f"{progress['z']:.2f}")
            time.sleep(0.2)
        bar.update(100 * (run.state.value == "completed") - bar.n)
    future.result()


def run(
    config: RunConfig | dict[str, Any],
    *,
    root: str | Path | None = None,
    progress: bool = True,
) -> Run:
    """Create a run, execute it on its cluster profile and wait for it to finish.

    Parameters
    ----------
    config
        a RunConfig or a mapping validated into one
    root
        run root folder (default: the ``simlab.run-root`` setting)
    progress
        show a tqdm progress bar

    Returns
    -------
    Run
        the finished run; RunError if it ended in any state but ``completed``
    """
    handle = create(config, root)
    with Dispatcher() as dispatcher:
        future = dispatcher.submit(handle.dir)
        _follow(handle, future, progress)
    return handle.wait(timeout=0)
