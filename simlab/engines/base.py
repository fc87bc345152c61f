"""The Engine protocol: what simlab needs from each simulation code.

An engine turns a validated :class:`~simlab.config.RunConfig` into input files and a
command line, and reads progress and outputs back. It holds no state between calls,
so the same object serves every run; the run directory carries the rest.

Engines are handed what they need and look nothing up themselves: the service
resolves the executable (one rule for every code), the MPI launcher and the job's
walltime from the cluster profile once, at submission, and passes them as a
:class:`Launch`. Each engine declares its ``code.options`` as a pydantic model
(:class:`EngineOptions`), which both validates them and gives forms their schema.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from simlab.config import RunConfig

#: One problem found by ``Engine.validate``: (field path, value, message).
Problem = tuple[tuple[str | int, ...], Any, str]


class EngineOptions(BaseModel):
    """Base of every engine's ``code.options`` model.

    Unknown option names and non-finite numbers are errors, as in RunConfig.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


def options_schema(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """An options model as JSON-schema nodes by option name (``$ref`` resolved).

    Examples
    --------
    >>> from pydantic import Field
    >>> class Opts(EngineOptions):
    ...     steps: int = Field(3, ge=0, description="how many")
    >>> options_schema(Opts)["steps"]["minimum"]
    0
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            return {**resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    return {name: resolve(node) for name, node in schema["properties"].items()}


#: Thread-count variables of OpenMP, OpenBLAS and MKL; dask's nanny sets them to
#: 1 in every worker, so a code launched from a task inherits that unless its
#: engine's ``environment(config)`` says otherwise.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def thread_environment(threads: int | None) -> dict[str, str | None]:
    """Every thread variable set to ``threads``, or unset where ``threads`` is None.

    Examples
    --------
    >>> thread_environment(4)["MKL_NUM_THREADS"], set(thread_environment(None).values())
    ('4', {None})
    """
    value = None if threads is None else str(int(threads))
    return dict.fromkeys(THREAD_VARIABLES, value)


@dataclass(frozen=True)
class Launch:
    """How to start a run's code: resolved by the service once, at submission.

    ``executable`` is the absolute path of the code (None for the embedded engine;
    inside the image when the profile names a container) and ``source`` says which
    setting named it; ``launcher`` is the MPI argv prefix from the cluster profile;
    ``container`` the container runtime's argv prefix, with ``{rundir}`` where the
    run directory goes; ``walltime`` the batch job's length in seconds (None on a
    machine without one).
    """

    executable: str | None = None
    source: str = ""
    launcher: tuple[str, ...] = ()
    walltime: float | None = None
    container: tuple[str, ...] = ()

    def prefix(self, rundir: str | Path) -> list[str]:
        """What goes before the executable: the MPI launcher, outside the
        container as HPC sites require, then the container runtime.

        Examples
        --------
        >>> Launch(launcher=("srun",), container=("apptainer", "exec", "--bind",
        ...     "{rundir}", "g4.sif")).prefix("/runs/a")
        ['srun', 'apptainer', 'exec', '--bind', '/runs/a', 'g4.sif']
        """
        return [*self.launcher, *self.container_argv(rundir)]

    def container_argv(self, rundir: str | Path) -> list[str]:
        """The container runtime's argv prefix for a run in ``rundir`` (or [])."""
        return [arg.replace("{rundir}", str(rundir)) for arg in self.container]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as kept in the run directory's ``launch.json``."""
        return {
            **asdict(self),
            "launcher": list(self.launcher),
            "container": list(self.container),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Launch:
        """Read back :meth:`to_dict` (other keys of ``launch.json`` are skipped)."""
        return cls(
            executable=data.get("executable"),
            source=data.get("source", ""),
            launcher=tuple(data.get("launcher", ())),
            walltime=data.get("walltime"),
            container=tuple(data.get("container", ())),
        )


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
        """Fraction of the run done: steps done of ``steps`` when the code says how
        many (each PM step costs the same, and its default steps are even in a at
        late times, so ln a said 45% at step 25 of 150 and the ETA was 3x short),
        else linear in ln a (how Gadget4 and CONCEPT spend their steps)."""
        if self.steps:
            return min(1.0, self.step / self.steps)
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


@dataclass(frozen=True)
class Outcome:
    """How a code's process ended, as its engine reads it.

    ``state`` is ``completed``, ``checkpointed`` or ``failed``; ``reason`` says why
    it failed in words a user can act on (None to let the task describe the exit
    status); ``details`` are extra status fields the engine wants recorded.
    """

    state: str
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A simulation code simlab can prepare, launch and read.

    ``prepare`` never runs the code's executable (runs are made inside REST
    requests and for every point of a sweep). An engine that must run it to finish
    preparing (Gadget4 reads its build's compile options) also has
    ``prepare_to_start(config, rundir, launch)``, which the run's task calls where
    the code runs, before starting it; an EngineError there fails the run with the
    error as its reason. ``environment(config)`` may set the code's environment.
    """

    name: str
    #: the model of the ``code.options`` this engine accepts
    options_model: ClassVar[type[EngineOptions]]
    #: the executable's default name on PATH (None: nothing to find, e.g. pm)
    executable_name: ClassVar[str | None]
    #: environment variable that may name the executable
    executable_env: ClassVar[str | None]
    #: whether a running code can be asked to write a checkpoint and stop
    can_checkpoint: ClassVar[bool]

    def health(self, launch: Launch | None = None) -> Health:
        """Probe the code (executable, version); never raises."""
        ...

    def validate(self, config: RunConfig) -> list[Problem]:
        """What this code cannot do with ``config`` (its options already valid)."""
        ...

    def prepare(self, config: RunConfig, rundir: Path, launch: Launch) -> None:
        """Write everything the code reads into ``rundir/inputs`` (running nothing)."""
        ...

    def command(self, config: RunConfig, rundir: Path, launch: Launch) -> list[str]:
        """The argv that runs the code from ``rundir`` (no shell involved)."""
        ...

    def parse_progress(self, line: str) -> Progress | None:
        """Progress in one line of the code's stdout, or None."""
        ...

    def outputs(self, rundir: Path) -> list[Path]:
        """Snapshot paths written so far, in time order."""
        ...

    def restart(
        self, config: RunConfig, rundir: Path, launch: Launch
    ) -> list[str] | None:
        """The argv that continues from the run's checkpoint or last snapshot, or
        None if there is nothing to continue from."""
        ...

    def request_stop(self, rundir: Path) -> None:
        """Ask the running code to write a checkpoint and exit (e.g. a stop file)."""
        ...

    def outcome(self, config: RunConfig, rundir: Path, returncode: int) -> Outcome:
        """How a process that ended did: completed, checkpointed or failed.

        Codes differ: Gadget4 exits 0 after a time-limit stop, so the engine, not the
        exit status alone, decides.
        """
        ...
