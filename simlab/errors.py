"""simlab's exceptions and warnings, under one root so callers can catch them all."""

from __future__ import annotations


class SimlabError(Exception):
    """Root of every error simlab raises on purpose."""


class ConfigError(SimlabError, ValueError):
    """A run configuration that cannot be used, with one entry per bad field.

    ``errors`` holds dicts with ``loc`` (dotted field path), ``value`` and ``msg``
    so REST handlers and widgets can show each message next to its field.
    """

    def __init__(self, errors: list[dict[str, object]]) -> None:
        self.errors = errors
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{len(self.errors)} invalid field(s) in the run configuration:"]
        lines += [f"  {e['loc']} = {e['value']!r}: {e['msg']}" for e in self.errors]
        return "\n".join(lines)


class SnapshotError(SimlabError, ValueError):
    """A snapshot file that cannot be read: names the file and what was found."""


class StorageError(SimlabError, ValueError):
    """An object-storage URL that cannot be used: names it and what is allowed."""


class RunRootError(SimlabError, ValueError):
    """A run root that cannot be made or written: names it and how to choose one."""


class EngineError(SimlabError, RuntimeError):
    """A simulation code that failed or cannot run the requested configuration."""

    def __init__(
        self, message: str, *, engine: str = "", rundir: str = "", log_tail: str = ""
    ) -> None:
        self.message = message
        self.engine = engine
        self.rundir = rundir
        self.log_tail = log_tail
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"[{self.engine}] {self.message}" if self.engine else self.message
        if self.rundir:
            text += f"\n  run directory: {self.rundir}"
        if self.log_tail:
            text += "\n  last log lines:\n    " + self.log_tail.replace("\n", "\n    ")
        return text


class RunError(SimlabError, RuntimeError):
    """A run that ended in a state other than ``completed`` when one was expected."""


class SimlabWarning(UserWarning):
    """Warnings simlab issues; the test suite turns them into errors."""


class DispatchError(SimlabError, RuntimeError):
    """A run that cannot be handed to a cluster (the reason names the profile)."""
