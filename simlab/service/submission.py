"""The one way runs are made and started: create, submit, run, resume, list.

Every face calls these (the Python API as ``simlab.create/submit/run/runs``, the
CLI, sweeps, the widgets and the REST handlers). A submission is validated
completely first (:func:`~simlab.service.validation.validate_run`), then
:func:`submit_plans`, the only place that composes the rest, checks it against the
active-run limit, creates it on disk (all or nothing), and posts it to the run
root's dispatcher on this host (:mod:`simlab.dispatch.owner`), which is started if
none is up. Nothing here runs the simulation code's executable: what only running
it can tell (a Gadget4 build's compile options) is checked when the run starts.
Whoever asks next, in whatever process, finds runs whose owner is gone and hands
them to a live one (:func:`settle`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simlab import settings
from simlab.config import RunConfig
from simlab.dispatch import owner
from simlab.errors import (
    DispatchError,
    RunError,
    RunRootError,
    SimlabError,
    SimlabWarning,
)
from simlab.service import foreground
from simlab.service.progress import progress
from simlab.service.run import Run, find_run
from simlab.service.validation import Plan, validate_run
from simlab.settings import run_root
from simlab.state import owners
from simlab.state.catalog import Catalog
from simlab.state.liveness import orphan_reason, reap
from simlab.state.rundir import CorruptRunError, RunDir
from simlab.state.states import State

#: Seconds :func:`hand_over` waits for the dispatcher to queue a run.
QUEUE_WAIT = 120.0
#: Seconds between looks at a followed run's status (three small file reads): the
#: prompt comes back within this of the run's end.
FOLLOW_INTERVAL = 0.1


class LimitError(SimlabError):
    """More active runs than ``simlab.max-active-runs`` allows."""


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else run_root()


def writable_root(root: Path) -> Path:
    """``root``, made if missing; RunRootError naming it when it cannot be made or
    written, before anything of a run is."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"cannot be made ({exc.strerror or exc})"
    else:
        if os.access(root, os.W_OK | os.X_OK):
            return root
        problem = "is not writable"
    raise RunRootError(
        f"run root {root} {problem}: choose a folder you can write with --root "
        "(root= in Python) or the simlab.run-root setting"
    )


def create_from_plan(
    plan: Plan, root: Path, *, files: dict[str, Any] | None = None
) -> Run:
    """Make the run directory of a validated plan (state ``created``)."""
    rundir = RunDir.create(
        root,
        plan.config,
        prepare=lambda path: plan.engine.prepare(plan.config, path, plan.launch),
        files={"launch.json": plan.launch_record(), **(files or {})},
    )
    Catalog(root).add(rundir)
    return Run(rundir.path)


def create(
    config: RunConfig | dict[str, Any],
    root: str | Path | None = None,
    *,
    cluster: str | None = None,
) -> Run:
    """Validate ``config`` completely and make its run directory (state ``created``).

    Nothing is written when the configuration is refused.
    """
    return create_from_plan(validate_run(config, cluster=cluster), _root(root))


def warm_up(plan: Plan, root: Path) -> None:
    """Have the root's owner start, and its local cluster for the plan's code, while
    the caller writes the run directory (the ICs take a second or more); a batch
    profile's job is only asked for when the run is handed over."""
    owner.start(root)
    if plan.profile.get("kind", "local") == "local":
        warm = {"op": "warm", "cluster": plan.cluster, "profile": plan.profile}
        owners.post(root, {**warm, "code": plan.config.code.engine}, answer=False)


def hand_over(run: Run, *, resume: bool = False, wait: float = QUEUE_WAIT) -> Run:
    """Post ``run`` to its root's dispatcher (started if needed); wait until it has
    been queued. DispatchError with the reason when the dispatcher could not take
    it (the run is then ``failed`` with that reason)."""
    root = run.path.parent
    owner.ensure(root)
    request = {"op": "dispatch", "run": str(run.path), "resume": resume}
    answer = owners.await_reply(root, owners.post(root, request), wait)
    Catalog(root).add(run.dir)
    if answer is not None and not answer.get("ok"):
        raise DispatchError(f"run {run.id}: {answer.get('error')}")
    return run


def check_active_limit(root: Path, adding: int = 1) -> None:
    """Refuse ``adding`` new runs when they would take the user's active runs
    (queued or running) above ``simlab.max-active-runs``."""
    limit = int(settings.get("max-active-runs"))
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
    catalog.refresh([r for r in listed if r.status_path.exists()])
    active = 0
    for rundir in listed:
        try:
            active += rundir.state.is_active
        except (CorruptRunError, FileNotFoundError):
            continue
    if active + adding > limit:
        these = "" if adding == 1 else f" and this submission adds {adding}"
        raise LimitError(
            f"{active} runs are already queued or running under {root}{these}; "
            f"simlab.max-active-runs allows {limit}. Wait for some to finish, "
            "cancel some, or raise the limit in your dask config."
        )


def _remove(runs: Sequence[Run], root: Path) -> None:
    """Take back runs made by a submission that could not go on."""
    catalog = Catalog(root)
    for run in runs:
        shutil.rmtree(run.path, ignore_errors=True)
        catalog.remove(run.id)


def submit_plans(
    items: Sequence[Plan | Run],
    root: Path,
    *,
    created: Callable[[list[Run]], None] | None = None,
    here: bool = False,
) -> list[Run]:
    """The one submission path: every door (Python, CLI, sweeps, widgets, REST)
    starts its runs here, after validating them with
    :func:`~simlab.service.validation.validate_run` (a :class:`Plan`).

    In order: the active-run limit is checked for all of ``items`` together
    (LimitError, nothing made); the root's dispatcher is started (and a local
    cluster warmed) while a run directory is made for each plan (a :class:`Run`
    given instead, made earlier and still ``created``, is taken as it is); then
    ``created(runs)``, the caller's own step before anything is queued (a sweep
    records its points and writes their notebook tasks); then each run is handed to
    the dispatcher (DispatchError, the run ``failed``, when it cannot take one).
    Should anything fail before the first hand-over, the run directories made here
    are removed: all or nothing. Returns the runs in the order of ``items``.

    ``here``: the caller runs them itself (:mod:`simlab.service.foreground`), so no
    dispatcher is started (the engine's process is, in its place) and each run is
    queued naming this process its owner.
    """
    for item in items:
        if isinstance(item, Run) and item.state is not State.CREATED:
            raise RunError(
                f"run {item.id} is {item.state.value}; only a run never queued "
                "(created) can be submitted (resume it instead)"
            )
    writable_root(root)
    check_active_limit(root, adding=len(items))
    warmed: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, Plan) or (item.cluster, item.engine.name) in warmed:
            continue
        warmed.add((item.cluster, item.engine.name))
        if here:  # this process runs it: its engine's process loads meanwhile
            foreground.start_engine_ahead(item)
        else:
            warm_up(item, root)
    runs: list[Run] = []
    made: list[Run] = []
    try:
        for item in items:
            if isinstance(item, Plan):
                made.append(create_from_plan(item, root))
                runs.append(made[-1])
            else:
                runs.append(item)
        if created is not None:
            created(runs)
    except BaseException:
        _remove(made, root)
        raise
    for run in runs:
        if here:
            foreground.queue(run)
        else:
            hand_over(run)
    return runs


def submit(
    config: RunConfig | dict[str, Any],
    *,
    cluster: str | None = None,
    root: str | Path | None = None,
) -> Run:
    """Validate, create and queue a run; return without waiting for it to run.

    ``cluster`` overrides ``config.resources.cluster``. The run belongs to the run
    root's dispatcher process, so it carries on whatever happens to the caller.
    """
    [handle] = submit_plans([_plan(config, cluster)], _root(root))
    return handle


def _plan(config: RunConfig | dict[str, Any], cluster: str | None) -> Plan:
    """``config`` validated for ``cluster``; its engine's notes are warned at the
    caller of :func:`submit` or :func:`run`."""
    plan = validate_run(config, cluster=cluster)
    for note in plan.notes:
        warnings.warn(note, SimlabWarning, stacklevel=3)
    return plan


def _follow(run: Run, show_progress: bool) -> None:
    """Wait for the run to end, showing its progress as it moves
    (:func:`simlab.service.progress.progress`: a bar on a terminal, lines in logs)."""
    with progress(100, run.config.metadata.name, "%", enabled=show_progress) as shown:
        while True:
            status = run.status
            done = status.get("progress") or {}
            facts = {"a": f"{done['a']:.3f}", "z": f"{done['z']:.2f}"} if done else {}
            shown.report(round(100 * done.get("fraction", 0.0)), **facts)
            if run.settled or reap(run.dir):
                break
            time.sleep(FOLLOW_INTERVAL)


def _cancel(run: Run, executing: threading.Thread | None, reason: str) -> None:
    """Cancel ``run``; when this process runs it, wait until its engine has ended."""
    run.cancel(reason=reason)
    if executing is not None:
        executing.join()  # it ends the engine's process group and says so


def run(
    config: RunConfig | dict[str, Any],
    *,
    cluster: str | None = None,
    root: str | Path | None = None,
    progress: bool = True,
    here: bool = False,
) -> Run:
    """Create a run, execute it on its cluster profile and wait for it to finish.

    A run stopped by its time limit is continued from its checkpoint until it
    completes. Returns the finished run; RunError if it ends other than
    ``completed``. Interrupting the wait (Ctrl-C) cancels the run, as for any
    command run in the foreground. ``here`` (what ``simlab run`` asks): run it in
    this process when it needs no dispatcher and none is up
    (:mod:`simlab.service.foreground`), else hand it over as usual.
    """
    plan = _plan(config, cluster)
    folder = writable_root(_root(root))
    here = here and foreground.can_run_here(plan, folder)
    [handle] = submit_plans([plan], folder, here=here)
    executing = None
    ending = foreground.ended_by_signals() if here else contextlib.nullcontext()
    try:
        with ending:
            executing = foreground.execute_in_thread(handle) if here else None
            _follow(handle, progress)
    except KeyboardInterrupt as exc:  # Ctrl-C, or foreground.Ended
        how = str(exc) or "Ctrl-C"
        _cancel(handle, executing, f"interrupted by {how} in the foreground")
        raise
    except Exception as exc:
        if executing is not None:  # a run of this process is never left unwatched
            _cancel(handle, executing, f"its command stopped following it: {exc}")
        raise
    if executing is not None:
        executing.join()
    Catalog(folder).add(handle.dir)
    return handle.wait(timeout=0)


def resume(run_or_id: Run | str, *, root: str | Path | None = None) -> Run:
    """Continue a checkpointed, stopped, cancelled or failed run as a new segment.

    The engine continues from its checkpoint (PM, Gadget4 restart files) or its
    last snapshot (PM, Gadget4, CONCEPT); RunError when there is neither or the
    run completed.
    """
    handle = run_or_id if isinstance(run_or_id, Run) else find_run(run_or_id, root)
    state = handle.state
    if state not in (State.CHECKPOINTED, State.CANCELLED, State.FAILED):
        raise RunError(
            f"run {handle.id} is {state.value}; only a checkpointed, cancelled or "
            "failed run can be resumed"
        )
    if handle.restart_command() is None:
        raise RunError(
            f"run {handle.id} has no checkpoint or snapshot to continue from; "
            "submit its configuration again to start it afresh"
        )
    check_active_limit(handle.path.parent)
    handle.dir.clear_requests()
    return hand_over(handle, resume=True)


def settle(root: str | Path) -> int:
    """Settle what no live process owns: fail runs lost mid-run, and hand runs
    (and requests) left by a dead dispatcher to a live one; return how many runs."""
    root = _root(root)
    catalog = Catalog(root)
    catalog.sync()
    count = 0
    waiting = False
    for state in (State.RUNNING, State.QUEUED, State.CHECKPOINTED):
        rows, _ = catalog.query(state=state.value, per_page=1000)
        for row in rows:
            rundir = RunDir(row["path"])
            if state == State.RUNNING:
                count += reap(rundir)
                continue
            try:
                status = rundir.status()
            except (CorruptRunError, FileNotFoundError):
                continue
            if orphan_reason(status, str(root)):
                waiting = True
                count += 1
    # requests posted to a dispatcher that died before it read them are read by
    # the next one
    pending = owners.has_requests(root)
    if waiting or (pending and not owners.holds_lock(root)):
        owner.ensure(root)  # it adopts every orphan when it starts
    if count:
        catalog.sync()
    return count


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
    """The user's runs matching every filter given, newest first by default.

    Runs whose directory cannot be read are left out here (``simlab ls`` lists
    them as ``corrupt``).
    """
    root = _root(root)
    settle(root)
    rows, _ = Catalog(root).query(
        state=status,
        code=code,
        tag=tag,
        project=project,
        text=text,
        order=order,
        per_page=limit,
    )
    return [Run(row["path"]) for row in rows if row["state"] != State.CORRUPT.value]
