"""``Run``: the user's handle on one run directory (status, logs, snapshots, P(k))."""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.errors import RunError
from simlab.runs.rundir import RunDir
from simlab.runs.states import State

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig


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

    def open_snapshot(self, index: int = -1, group: str = "PartType1") -> xr.Dataset:
        """One snapshot as a lazy xarray Dataset (``index`` counts like a list)."""
        import xarray as xr

        return xr.open_dataset(self.snapshots[index], engine="gadget4", group=group)

    def open_datatree(self, index: int = -1) -> xr.DataTree:
        """One snapshot as a DataTree with a node per particle type."""
        import xarray as xr

        return xr.open_datatree(self.snapshots[index], engine="gadget4")

    def power_spectrum(self, index: int = -1) -> xr.DataArray:
        """P(k) at output ``index``: the engine's file if written, else measured."""
        import xarray as xr

        files = sorted(self.dir.output.glob("powerspec_[0-9][0-9][0-9].nc"))
        if files:
            return xr.load_dataarray(files[index], engine="h5netcdf")
        from simlab.analysis.power import power_spectrum

        return power_spectrum(self.open_snapshot(index), None, self.config.mesh)

    def logs(self, tail: int | None = None) -> str:
        """The run's log, or its last ``tail`` lines."""
        text = self.dir.log_path.read_text(errors="replace")
        if tail is None:
            return text
        return "\n".join(text.splitlines()[-tail:])

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> Run:
        """Block until the run ends; RunError if it ends other than ``completed``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.state.is_final and self.state != State.CHECKPOINTED:
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
        """Ask the run to end ``cancelled``; a run not yet queued is cancelled now."""
        if self.state.is_final:
            return
        self.dir.request("cancel")
        if self.state == State.CREATED:
            self.dir.transition(State.CANCELLED, reason="cancelled before submission")
