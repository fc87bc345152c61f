"""The Python entry points: create, submit, run and list runs."""

from __future__ import annotations

import atexit
import time
from pathlib import Path
from typing import Any

import dask.config

from simlab.config import RunConfig, validate_config
from simlab.dispatch.dispatcher import Dispatcher
from simlab.errors import SimlabError
from simlab.runs.catalog import Catalog
from simlab.runs.liveness import reap
from simlab.runs.run import Run
from simlab.runs.rundir import RunDir
from simlab.runs.states import State
from simlab.settings import run_root

_dispatcher: Dispatcher | None = None


def dispatcher() -> Dispatcher:
    """This process's Dispatcher, started on first use and closed at exit."""
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = Dispatcher()
        atexit.register(_dispatcher.close)
    return _dispatcher


def create(config: RunConfig | dict[str, Any], root: str | Path | None = None) -> Run:
    """Validate ``config`` and make its run directory (state ``created``)."""
    config = validate_config(config)
    root = Path(root or run_root())
    rundir = RunDir.create(root, config)
    Catalog(root).add(rundir)
    return Run(rundir.path)


def submit(
    config: RunConfig | dict[str, Any],
    *,
    cluster: str | None = None,
    root: str | Path | None = None,
    detach: bool = False,
) -> Run:
    """Create a run and hand it to its cluster profile; return without waiting.

    ``cluster`` overrides ``config.resources.cluster``. The run's dispatcher lives in
    this process, or with ``detach=True`` in a process of its own that outlives
    this one (what ``simlab submit`` uses). In a kernel started by a Jupyter server
    with the simlab extension, the server's Dispatcher runs it.
    """
    from simlab.server import client

    if root is None and not detach and client.enabled():
        return client.submit(config, cluster=cluster)
    config = validate_config(config)
    if cluster is not None:
        config = config.model_copy(
            update={
                "resources": config.resources.model_copy(update={"cluster": cluster})
            }
        )
        config = validate_config(config.model_dump(mode="json"))
    check_active_limit(Path(root or run_root()))
    handle = create(config, root)
    if detach:
        from simlab.dispatch.standalone import spawn

        spawn(handle)
    else:
        dispatch(handle, dispatcher())
    return handle


def dispatch(run: Run, through: Dispatcher) -> None:
    """Hand a created run to ``through``; a run that cannot be dispatched fails."""
    try:
        through.submit(run.dir)
    except Exception as exc:
        # the run must not stay created/queued when it could not be dispatched
        run.dir.transition(
            State.FAILED, reason=f"could not dispatch: {type(exc).__name__}: {exc}"
        )
        raise
    finally:
        Catalog(run.path.parent).add(run.dir)


def check_active_limit(root: Path) -> None:
    """Refuse a new run when the user already has the configured number active."""
    limit = int(dask.config.get("simlab.max-active-runs"))
    catalog = Catalog(root)
    # every process adds its runs to the catalogue when it creates them, so only
    # rows not yet final can be active now: re-read those, not the whole root
    listed = [
        RunDir(row["path"])
        for state in State
        if not state.is_final
        for row in catalog.query(state=state.value, per_page=1000)[0]
    ]
    for rundir in listed:
        reap(rundir)
    catalog.refresh(listed)
    active = sum(rundir.state.is_active for rundir in listed)
    if active >= limit:
        raise SimlabError(
            f"{active} runs are already queued or running under {root}; "
            f"simlab.max-active-runs allows {limit}. Wait for some to finish, "
            "cancel some, or raise the limit in your dask config."
        )


def reap_lost(catalog: Catalog) -> int:
    """Mark the catalogue's lost ``running`` runs failed and re-index; the count."""
    catalog.sync()
    rows, _ = catalog.query(state=State.RUNNING.value, per_page=1000)
    lost = sum(reap(RunDir(row["path"])) for row in rows)
    if lost:
        catalog.sync()
    return lost


def _follow(run: Run, show_progress: bool) -> None:
    """Wait for the run to end, drawing a tqdm bar from its status as it moves."""
    from tqdm.auto import tqdm

    with tqdm(total=100, desc=run.id, unit="%", disable=not show_progress) as bar:
        while True:
            status = run.status
            progress = status.get("progress") or {}
            bar.update(round(100 * progress.get("fraction", 0.0)) - bar.n)
            if progress:
                bar.set_postfix(a=f"{progress['a']:.3f}", z=f"{progress['z']:.2f}")
            if run.settled or reap(run.dir):
                break
            time.sleep(0.2)


def run(
    config: RunConfig | dict[str, Any],
    *,
    cluster: str | None = None,
    root: str | Path | None = None,
    progress: bool = True,
) -> Run:
    """Create a run, execute it on its cluster profile and wait for it to finish.

    A run stopped by its time limit is continued from its checkpoint until it
    completes. Returns the finished run; RunError if it ends other than
    ``completed``.
    """
    handle = submit(config, cluster=cluster, root=root)
    _follow(handle, progress)
    Catalog(handle.path.parent).add(handle.dir)
    return handle.wait(timeout=0)


def runs(
    *,
    root: str | Path | None = None,
    status: str | None = None,
    code: str | None = None,
    tag: str | None = None,
    project: str | None = None,
    text: str | None = None,
    order: str = "-created",
    limit: int = 100,
) -> list[Run]:
    """The user's runs matching every filter given, newest first by default."""
    catalog = Catalog(root or run_root())
    reap_lost(catalog)
    rows, _ = catalog.query(
        state=status,
        code=code,
        tag=tag,
        project=project,
        text=text,
        order=order,
        per_page=limit,
    )
    return [Run(row["path"]) for row in rows]
