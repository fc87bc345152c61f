"""The Engine protocol: what simlab needs from each simulation code.

An engine turns a validated :class:`~simlab.config.RunConfig` into input files and a
command line, and reads progress and outputs back. It holds no state between calls,
so the same object serves every run; the run directory carries the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from simlab.config import RunConfig

#: One problem found by ``Engine.validate``: (field path, value, message).
Problem = tuple[tuple[str | int, ...], Any, str]


@dataclass(frozen=True)
class Progress:
    """One progress report parsed from a code's output."""

    step: int
    a: float
    steps: int | None = None
    elapsed: float | None = None

    @property
    def z(self) -> float:
        """Redshift 1/a - 1."""
        return 1.0 / self.a - 1.0

    def fraction(self, a_start: float, a_end: float) -> float:
        """Fraction of the run done, linear in ln a (how codes spend their steps)."""
        import math

        if self.a <= a_start:
            return 0.0
        done = math.log(self.a / a_start) / math.log(a_end / a_start)
        return min(1.0, done)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the redshift added."""
        return {**asdict(self), "z": self.z}


@dataclass(frozen=True)
class Health:
    """Whether an engine can run here, and what it found."""

    ok: bool
    version: str
    message: str


@runtime_checkable
class Engine(Protocol):
    """A simulation code simlab can prepare, launch and read."""

    name: str

    def health(self, config: RunConfig | None = None) -> Health:
        """Probe the code (executable, version); never raises."""
        ...

    def options_schema(self) -> dict[str, dict[str, Any]]:
        """The ``code.options`` it accepts: JSON-schema nodes by option name."""
        ...

    def validate(self, config: RunConfig) -> list[Problem]:
        """What this code cannot do with ``config``; empty when it can."""
        ...

    def prepare(self, config: RunConfig, rundir: Path) -> None:
        """Write everything the code reads into ``rundir/inputs``."""
        ...

    def command(self, config: RunConfig, rundir: Path) -> list[str]:
        """The argv that runs the code from ``rundir`` (no shell involved)."""
        ...

    def parse_progress(self, line: str) -> Progress | None:
        """Progress in one line of the code's stdout, or None."""
        ...

    def outputs(self, rundir: Path) -> list[Path]:
        """Snapshot paths written so far, in time order."""
        ...

    def restart(self, config: RunConfig, rundir: Path) -> list[str] | None:
        """The argv that continues from the run's checkpoint, or None if none."""
        ...

    def request_stop(self, rundir: Path) -> None:
        """Ask the running code to write a checkpoint and exit (e.g. a stop file)."""
        ...

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> str:
        """``completed``, ``checkpointed`` or ``failed`` for a process that ended.

        Codes differ: Gadget4 exits 0 after a time-limit stop, so the engine, not the
        exit status alone, decides.
        """
        ...
