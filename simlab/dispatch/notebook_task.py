"""The task of a sweep point: execute its notebook with papermill, next to its run.

A sweep point is a run whose directory holds ``notebook_task.json`` (the template
and the parameters to inject). The dispatcher submits this task instead of
:func:`simlab.dispatch.task.execute`; the notebook runs the simulation in place
(through ``execute``) and records its results. Whatever happens, the run does not
stay queued or running.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from simlab.__about__ import __version__
from simlab.state.rundir import RunDir, now
from simlab.state.states import State

logger = logging.getLogger(__name__)

#: The run directory file that makes a run a notebook point.
NOTEBOOK_TASK_FILE = "notebook_task.json"
#: ``status.json["notebook"]["state"]`` of a notebook that raised.
NOTEBOOK_FAILED = "failed"


#: Modules a kernel started ahead imports before it is handed a point's notebook:
#: what the templates' cells use (linear theory needs scipy's integrate and
#: interpolate, P(k) files and results need xarray).
WARM_IMPORTS = (
    "simlab",
    "simlab.cosmology",
    "simlab.dispatch.task",
    "scipy.integrate",
    "scipy.interpolate",
    "xarray",
)


def load_ahead(like: str) -> None:
    """Run in a kernel started ahead (:mod:`simlab.spare_kernel`): what a point's
    notebook would otherwise pay for on first use. First the engine's process for
    a run like the one in ``like`` (:func:`simlab.dispatch.task.start_spare_for`),
    which the point's run takes, so that it loads while the rest does;
    :data:`WARM_IMPORTS`; the linear theory of its cosmology (growth tables are
    kept per Ω's, so points that vary σ8 or n_s share them); and a netCDF group
    written and read back with h5netcdf, as ``simlab.record`` and ``collect`` do,
    in a scratch folder."""
    import importlib
    import tempfile

    from simlab.dispatch.task import start_spare_for

    rundir = RunDir(like)
    config = rundir.config() if rundir.config_path.exists() else None
    if config is not None:  # else a folder that holds no run
        start_spare_for(config)
    for name in WARM_IMPORTS:
        importlib.import_module(name)
    import numpy as np
    import xarray as xr

    from simlab import cosmology

    if config is not None:
        cosmology.linear_power(np.array([0.1]), config.cosmology, a=0.5)
    with tempfile.TemporaryDirectory(prefix="simlab-kernel-") as scratch:
        path = Path(scratch) / "loaded.nc"
        group = xr.Dataset({"p": ("k", np.ones(2))})
        xr.DataTree.from_dict({"p": group}).to_netcdf(path, engine="h5netcdf")
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            loaded = tree["p"].to_dataset().load()["p"]
        float((loaded / np.ones(2)).isel(k=slice(0, 1)).mean())  # xarray arithmetic


def _provenance(rundir: RunDir) -> dict[str, Any]:
    from simlab.engines import registry
    from simlab.engines.base import Launch

    config = rundir.config()
    try:
        launch = Launch.from_dict(rundir.read_json("launch.json"))
        engine = registry.get(config.code.engine)
        code_version = engine.health(launch).version
    except Exception as exc:
        code_version = f"unknown ({type(exc).__name__})"
    return {
        "simlab_version": __version__,
        "code": config.code.engine,
        "code_version": code_version,
        "config_hash": config.config_hash(),
    }


def execute_notebook_run(path: str, template: str, parameters: dict[str, Any]) -> str:
    """Execute one point's notebook into ``RUN/notebooks/``; return the run's state.

    Runs on a dask worker. A notebook error marks the run ``failed`` (the executed
    notebook, kept, shows the error), and ``status.json["notebook"]`` says how the
    notebook ended.
    """
    from papermill.exceptions import PapermillExecutionError

    from simlab.dispatch.task import forget_worker_only_variables
    from simlab.templates import execute_notebook

    forget_worker_only_variables()  # before the point's kernel starts
    rundir = RunDir(path)
    output = rundir.path / "notebooks" / Path(template).name
    started = now()
    notebook: dict[str, Any] = {"path": str(output), "template": template}
    try:
        execute_notebook(
            template, output, parameters, cwd=rundir.path, spare_kernel=True
        )
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        notebook.update(state=NOTEBOOK_FAILED, error=error)
    except Exception as exc:  # task boundary: kernel died, template unreadable ...
        logger.exception("sweep point %s: notebook did not run", rundir.id)
        notebook.update(state=NOTEBOOK_FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        notebook["state"] = State.COMPLETED.value
    notebook.update(started=started, finished=now())
    # how the notebook ended is written with the run's last state in one status
    # write: a reader (the sweep) that sees the one sees the other
    ended = {"notebook": notebook, "provenance": _provenance(rundir)}
    state = rundir.state
    if notebook["state"] == NOTEBOOK_FAILED and not state.is_final:
        reason = f"notebook {output.name} failed: {notebook['error']}"
        rundir.transition(State.FAILED, reason=reason, **ended)
    elif state == State.QUEUED:
        # a notebook that analyses without running the engine completes its point
        rundir.transition(State.RUNNING)
        reason = "notebook ran without the engine"
        rundir.transition(State.COMPLETED, reason=reason, **ended)
    else:
        rundir.update(**ended)
    return rundir.state.value
