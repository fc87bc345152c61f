"""``Run``: the user's handle on one run directory (status, logs, snapshots, P(k)).

A Run reads its directory every time it is asked, so every handle on the same run,
in any process, sees the same thing. Its controls (cancel, stop, resume) act the
same way for every engine: ``stop`` is refused for a code that cannot write a
checkpoint on request (CONCEPT), and ``resume`` continues any run its engine can
restart from a checkpoint or its last snapshot.

In a notebook a Run shows a static HTML summary (:meth:`Run._repr_html_`); where
widgets render, ``import simlab`` registers the live monitor for it instead.
"""

from __future__ import annotations

import html
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.engines import registry
from simlab.engines.base import Launch
from simlab.errors import RunError
from simlab.state.catalog import Catalog
from simlab.state.liveness import orphan_reason, reap
from simlab.state.rundir import RunDir, TransitionError
from simlab.state.states import State

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig
    from simlab.engines.base import Engine

#: What a run id may look like: a directory name, never a path.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
#: Seconds ``cancel`` waits for a live dispatcher to withdraw a queued run.
WITHDRAW_WAIT = 5.0
#: Colours of the state badges: the Lab theme's own, so both themes read well.
BADGE_COLOURS = {
    "created": "var(--jp-layout-color4)",
    "queued": "var(--jp-warn-color1)",
    "running": "var(--jp-brand-color1)",
    "checkpointed": "var(--jp-accent-color1)",
    "completed": "var(--jp-success-color1)",
    "failed": "var(--jp-error-color1)",
    "cancelled": "var(--jp-layout-color4)",
    "corrupt": "var(--jp-error-color1)",
}


def find_run(run_id: str, root: str | Path | None = None) -> Run:
    """The run ``run_id`` under the run root; refuses ids that are not plain names."""
    from simlab.settings import run_root

    if not RUN_ID.match(run_id) or ".." in run_id:
        raise RunError(
            f"run id {run_id!r} is not valid: letters, digits, '.', '_' and '-' only"
        )
    folder = Path(root) if root is not None else run_root()
    try:
        return Run(folder / run_id)
    except FileNotFoundError:
        raise RunError(f"no run {run_id!r} under {folder}") from None


def state_badge(state: str) -> str:
    """An HTML badge for a run state, coloured by the Lab theme's variables: the
    body text inside a border of the state's colour, as the sidebar's pills, so
    the text keeps its contrast in every theme (white on the light theme's green
    is 4.1:1)."""
    colour = BADGE_COLOURS.get(state, BADGE_COLOURS["created"])
    return (
        f"<span style='border:2px solid {colour};"
        "color:var(--jp-content-font-color1);padding:0 6px;border-radius:8px;"
        f"font-weight:bold'>{html.escape(state)}</span>"
    )


class RunReader(ABC):
    """What can be read of a run wherever its files are: configuration, status,
    snapshots and P(k). Subclasses say where the files are: a local run directory
    (:class:`Run`) or a published copy at a URL
    (:class:`simlab.service.publish_remote.RemoteRun`)."""

    id: str
    config: RunConfig
    status: dict[str, Any]
    snapshots: list[Path] | list[str]

    @property
    def engine(self) -> Engine:
        """The engine that ran this run's code."""
        return registry.get(self.config.code.engine)

    @property
    def state(self) -> State:
        """The current state."""
        return State(self.status["state"])

    @property
    def progress(self) -> dict[str, Any] | None:
        """The last progress report (step, a, z, fraction, elapsed)."""
        return self.status.get("progress")

    @property
    def _backend(self) -> str:
        """The xarray backend that reads this run's snapshots."""
        return getattr(self.engine, "snapshot_backend", "gadget4")

    def _reading(self, storage_options: dict[str, Any] | None) -> dict[str, Any]:
        """Keywords the backend needs to read this run's files (none locally)."""
        return {}

    def open_snapshot(
        self,
        index: int = -1,
        group: str | None = None,
        chunks: Any = None,
        storage_options: dict[str, Any] | None = None,
    ) -> xr.Dataset:
        """One snapshot as a lazy xarray Dataset (``index`` counts like a list).

        ``group`` is a particle type (Gadget4 layout, default ``PartType1``) or a
        component (CONCEPT, default its first); ``chunks`` as for
        ``xr.open_dataset``; ``storage_options`` go to a remote run's filesystem.
        """
        import xarray as xr

        from simlab.io.backends import backend

        name = self._backend
        if group is None and name == "gadget4":
            group = "PartType1"
        return xr.open_dataset(
            self.snapshots[index],
            engine=backend(name),
            group=group,
            chunks=chunks,
            **self._reading(storage_options),
        )

    def open_datatree(self, index: int = -1) -> xr.DataTree:
        """One snapshot as a DataTree with a node per particle type or component."""
        import xarray as xr

        from simlab.io.backends import backend

        return xr.open_datatree(
            self.snapshots[index],
            engine=backend(self._backend),
            **self._reading(None),
        )

    def open_series(self, group: str = "PartType1") -> xr.Dataset:
        """Every snapshot along a ``snapshot`` dimension, particles in ID order
        (:func:`simlab.io.snapshots.stack_snapshots`; Gadget4 layout)."""
        from simlab.io.snapshots import stack_snapshots

        return stack_snapshots(self.snapshots, group, **self._reading(None))

    @abstractmethod
    def power_spectra(self) -> list[Path] | list[str]:
        """The P(k) files the code wrote, in time order."""

    def _read_power_spectrum(self, path: Any) -> xr.DataArray:
        """One of :meth:`power_spectra` as simlab's P(k) DataArray."""
        return self.engine.read_power_spectrum(path, self.config)

    def power_spectrum(self, index: int = -1) -> xr.DataArray:
        """P(k) at output ``index``: the code's own file if it wrote one, else
        measured from the snapshot with simlab's estimator."""
        files = self.power_spectra()
        if files:
            return self._read_power_spectrum(files[index])
        from simlab.analysis.power import power_spectrum

        return power_spectrum(self.open_snapshot(index), None, self.config.mesh)


class Run(RunReader):
    """A run, read from its directory every time it is asked (never cached state)."""

    def __init__(self, path: str | Path) -> None:
        self.dir = RunDir(path)
        if not self.dir.status_path.exists():
            raise FileNotFoundError(
                f"{self.dir.path}: not a run directory (no status.json)"
            )

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.state.value}>"

    def _repr_html_(self) -> str:
        """A static summary: id, state, progress, engine, snapshots, path, reason."""
        status = self.status
        progress = status.get("progress") or {}
        done = (
            1.0 if status["state"] == "completed" else progress.get("fraction") or 0.0
        )
        where = f"a = {progress['a']:.4f}, z = {progress['z']:.2f}" if progress else ""
        rows = [
            ("state", state_badge(status["state"])),
            (
                "progress",
                f"<progress value='{done:.3f}' max='1'></progress> "
                f"{100 * done:.0f}% {where}",
            ),
            ("engine", html.escape(str(status.get("engine", "")))),
            (
                "snapshots",
                ", ".join(html.escape(p.name) for p in self.snapshots) or "none yet",
            ),
            ("directory", f"<code>{html.escape(str(self.path))}</code>"),
        ]
        if status.get("reason"):
            rows.append(("reason", html.escape(status["reason"])))
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th>"
            f"<td style='text-align:left'>{v}</td></tr>"
            for k, v in rows
        )
        return f"<b>Run {html.escape(self.id)}</b><table>{body}</table>"

    @property
    def id(self) -> str:
        """The run id."""
        return self.dir.id

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.dir.path

    @cached_property
    def config(self) -> RunConfig:
        """The validated configuration the run was created with."""
        return self.dir.config()

    @property
    def launch(self) -> Launch:
        """How the run's code is started (executable, launcher, walltime)."""
        return Launch.from_dict(self.dir.read_json("launch.json"))

    @property
    def status(self) -> dict[str, Any]:
        """The full status record (state, progress, times, host, error)."""
        return self.dir.status()

    @property
    def snapshots(self) -> list[Path]:
        """Snapshot files written so far, in time order."""
        return self.engine.outputs(self.path)

    def power_spectra(self) -> list[Path]:
        """The P(k) files the code wrote so far, in time order."""
        return getattr(self.engine, "power_spectra", lambda path: [])(self.path)

    def halos(
        self,
        index: int = -1,
        *,
        source: str = "auto",
        linking_length: float = 0.2,
        min_members: int = 32,
    ) -> xr.Dataset:
        """Halos at output ``index`` as a Gadget4 ``Group`` table, for any engine.

        ``source`` "auto" takes the group catalogue the code wrote with that
        snapshot (Gadget4 with ``fof``), else finds friends-of-friends halos in
        the snapshot (:func:`simlab.analysis.fof.find_halos`, ``linking_length``
        in mean spacings, ``min_members``); "code" insists on the code's
        catalogue, "simlab" on simlab's FOF. The table feeds
        :func:`simlab.analysis.halos.mass_function` either way.
        """
        if source not in ("auto", "code", "simlab"):
            raise ValueError(
                f"source={source!r}: allowed are 'auto', 'code' and 'simlab'"
            )
        snapshot = self.snapshots[index]
        catalogue = self._catalogue_of(snapshot) if source != "simlab" else None
        if catalogue is not None:
            from simlab.io.groups import open_groups

            return open_groups(catalogue)
        if source == "code":
            raise RunError(
                f"{self.config.code.engine} wrote no group catalogue with "
                f"{snapshot.name} (Gadget4 writes one with code.options.fof); "
                "use source='simlab' for friends-of-friends halos"
            )
        from simlab.analysis.fof import find_halos

        with self.open_snapshot(index) as ds:
            return find_halos(ds, linking_length, min_members)

    def _catalogue_of(self, snapshot: Path) -> Path | None:
        """The code's group catalogue written with ``snapshot``, if any."""
        catalogues = getattr(self.engine, "group_catalogues", None)
        number = re.search(r"_(\d{3,})(\.0)?\.hdf5$", snapshot.name)
        if catalogues is None or number is None:
            return None
        for path in catalogues(self.path):
            if re.search(rf"_{number[1]}(\.0)?\.hdf5$", path.name):
                return path
        return None

    def logs(
        self, tail: int | None = None, *, follow: bool = False, poll: float = 0.2
    ) -> Any:
        """The run's log (or its last ``tail`` lines) as text.

        With ``follow=True``, an iterator over log lines instead: the existing ones
        (or the last ``tail``), then new ones as they are written, until the run
        has ended and the log is drained, like ``tail -f``.
        """
        if follow:
            return self._follow(tail, poll)
        text = self.dir.log_path.read_text(errors="replace")
        if tail is None:
            return text
        return "\n".join(text.splitlines()[-tail:])

    def _follow(self, tail: int | None, poll: float) -> Iterator[str]:
        with open(self.dir.log_path, errors="replace") as log:
            lines = log.readlines()
            yield from (line.rstrip("\n") for line in lines[-(tail or len(lines)) :])
            partial = ""
            while True:
                ended = self.settled or reap(self.dir)
                chunk = log.read()
                if chunk:
                    *complete, partial = (partial + chunk).split("\n")
                    yield from complete
                elif ended:
                    if partial:
                        yield partial
                    return
                else:
                    time.sleep(poll)

    @property
    def settled(self) -> bool:
        """Ended, or checkpointed on request: nothing will move it unless resumed."""
        status = self.status
        state = State(status["state"])
        return state.is_final or (
            state == State.CHECKPOINTED and bool(status.get("stop_requested"))
        )

    @property
    def estimated_duration(self) -> float:
        """Seconds the whole run should take: at its measured rate once it is under
        way (:mod:`simlab.service.eta`), from the cost model before that."""
        from simlab.service.cost import estimate
        from simlab.service.eta import rate

        measured = rate(self.status)
        if measured is not None:
            return 1.0 / measured
        return estimate(self.config, Catalog(self.path.parent)).seconds

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> Run:
        """Block until the run ends; RunError if it ends other than ``completed``.

        A run checkpointed by its time limit is waited through its restart chain.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.settled and not reap(self.dir):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {self.id} still {self.state.value} after {timeout}s"
                )
            time.sleep(poll)
        if self.state != State.COMPLETED:
            status = self.status
            raise RunError(
                f"run {self.id} ended {status['state']}: {status.get('reason', '')}\n"
                f"  log: {self.dir.log_path}"
            )
        return self

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """End the run ``cancelled``: at once unless its code is running, in which
        case its process group is ended within seconds.

        A queued run is withdrawn by its dispatcher; if that dispatcher is gone the
        run is cancelled here. Cancelling an ended run does nothing.
        """
        if reap(self.dir):
            return  # it was lost already: failed, with the reason
        status = self.status
        state = State(status["state"])
        if state.is_final:
            return
        self.dir.request("cancel", reason)
        if state == State.QUEUED and _withdrawn_here(self.dir):
            return  # a dispatcher in this process held it
        owned = orphan_reason(status, str(self.path.parent)) is None
        if state == State.QUEUED and owned:
            deadline = time.monotonic() + WITHDRAW_WAIT
            while self.state == State.QUEUED and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.state != State.QUEUED:
                return
        if state in (State.CREATED, State.QUEUED, State.CHECKPOINTED):
            try:
                self.dir.transition(State.CANCELLED, reason=reason)
            except TransitionError:
                return  # it moved on meanwhile: the task sees the request
            self.dir.clear_requests()

    def stop(self) -> None:
        """Ask the running code to write a checkpoint and stop (``checkpointed``).

        RunError for a run that is not running, or whose code cannot checkpoint on
        request (cancel it and :meth:`resume` it from its last snapshot instead).
        """
        if self.state != State.RUNNING:
            raise RunError(
                f"run {self.id} is {self.state.value}: only a running run can stop"
            )
        if not self.engine.can_checkpoint:
            raise RunError(
                f"run {self.id}: {self.config.code.engine} cannot write a checkpoint "
                "on request. Cancel it instead (`simlab cancel`); `simlab resume` "
                "then continues it from its last snapshot"
            )
        self.dir.request("stop")

    def restart_command(self) -> list[str] | None:
        """The command that would continue this run, or None if nothing can."""
        return self.engine.restart(self.config, self.path, self.launch)

    def resume(self) -> Run:
        """Continue this run from its checkpoint or last snapshot (a new segment)."""
        from simlab.service.submission import resume

        return resume(self)


def _withdrawn_here(rundir: RunDir) -> bool:
    """Whether a dispatcher of this process held the queued run and withdrew it.

    None can unless the dispatcher module is loaded, and importing it (dask,
    distributed: 0.5 s, ten times that on a loaded machine) only to learn so kept a
    Ctrl-C'd ``simlab run`` from exiting.
    """
    dispatcher = sys.modules.get("simlab.dispatch.dispatcher")
    return dispatcher is not None and dispatcher.withdraw(rundir)
