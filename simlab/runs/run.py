"""``Run``: the user's handle on one run directory (status, logs, snapshots, P(k))."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.errors import RunError
from simlab.runs.rundir import RunDir
from simlab.runs.states import State

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig

#: What a run id may look like: a directory name, never a path.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


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


class Run:
    """A run, read from its directory every time it is asked (never cached state)."""

    def __init__(self, path: str | Path) -> None:
        self.dir = RunDir(path)
        if not self.dir.status_path.exists():
            raise FileNotFoundError(
                f"{self.dir.path}: not a run directory (no status.json)"
            )

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.state.value}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """Notebook display: a live RunMonitor where widgets render, else HTML."""
        from simlab.widgets.display import run_mimebundle

        return run_mimebundle(self)

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
    def status(self) -> dict[str, Any]:
        """The full status record (state, progress, times, host, error)."""
        return self.dir.status()

    @property
    def state(self) -> State:
        """The current state."""
        return self.dir.state

    @property
    def progress(self) -> dict[str, Any] | None:
        """The last progress report (step, a, z, fraction, elapsed)."""
        return self.status.get("progress")

    @property
    def snapshots(self) -> list[Path]:
        """Snapshot files written so far, in time order."""
        from simlab.engines import registry

        return registry.get(self.config.code.engine).outputs(self.path)

    @property
    def _backend(self) -> str:
        """The xarray backend that reads this run's snapshots."""
        from simlab.engines import registry

        engine = registry.get(self.config.code.engine)
        return getattr(engine, "snapshot_backend", "gadget4")

    def open_snapshot(self, index: int = -1, group: str | None = None) -> xr.Dataset:
        """One snapshot as a lazy xarray Dataset (``index`` counts like a list).

        ``group`` is a particle type (Gadget4 layout, default ``PartType1``) or a
        component (CONCEPT, default its first).
        """
        import xarray as xr

        backend = self._backend
        if group is None and backend == "gadget4":
            group = "PartType1"
        return xr.open_dataset(self.snapshots[index], engine=backend, group=group)

    def open_datatree(self, index: int = -1) -> xr.DataTree:
        """One snapshot as a DataTree with a node per particle type or component."""
        import xarray as xr

        return xr.open_datatree(self.snapshots[index], engine=self._backend)

    def power_spectrum(self, index: int = -1) -> xr.DataArray:
        """P(k) at output ``index``: the code's own file if it wrote one, else
        measured from the snapshot with simlab's estimator."""
        from simlab.engines import registry

        engine = registry.get(self.config.code.engine)
        files = getattr(engine, "power_spectra", lambda path: [])(self.path)
        if files:
            return engine.read_power_spectrum(files[index], self.config)
        from simlab.analysis.power import power_spectrum

        return power_spectrum(self.open_snapshot(index), None, self.config.mesh)

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
                ended = self.settled
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
        """Ended for good, or checkpointed on request (nothing will resume it)."""
        status = self.status
        state = State(status["state"])
        return state.is_final or (
            state == State.CHECKPOINTED and bool(status.get("stop_requested"))
        )

    @property
    def estimated_duration(self) -> float:
        """Seconds the run should take in all.

        From its own progress rate once it is under way; before that from the cost
        model (:func:`simlab.cost.estimate`), calibrated on the run root's past runs.
        """
        status = self.status
        progress = status.get("progress") or {}
        fraction, elapsed = progress.get("fraction"), progress.get("elapsed")
        if fraction and elapsed and fraction > 0.02:
            return elapsed / fraction
        from simlab.cost import estimate
        from simlab.runs.catalog import Catalog

        return estimate(self.config, Catalog(self.path.parent)).seconds

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> Run:
        """Block until the run ends; RunError if it ends other than ``completed``.

        A run checkpointed by its time limit is waited through its restart chain.
        """
        from simlab.runs.liveness import reap

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

    def cancel(self) -> None:
        """Ask the run to end ``cancelled``; one not yet started is cancelled now."""
        from simlab.dispatch.dispatcher import withdraw

        if self.state.is_final:
            return
        self.dir.request("cancel")
        if self.state == State.CREATED:
            self.dir.transition(State.CANCELLED, reason="cancelled before submission")
        elif self.state == State.QUEUED:
            withdraw(self.dir)  # if not withdrawn, its task sees the request
        elif self.state == State.CHECKPOINTED and not withdraw(self.dir):
            self.dir.transition(State.CANCELLED, reason="cancelled at checkpoint")

    def stop(self) -> None:
        """Ask the running code to write a checkpoint and stop (``checkpointed``)."""
        if self.state != State.RUNNING:
            raise RunError(
                f"run {self.id} is {self.state.value}: only a running run can stop"
            )
        self.dir.request("stop")
