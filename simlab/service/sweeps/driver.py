"""Running a sweep: a run per point, each executing its notebook on the dispatcher.

Each point gets its own run directory (``metadata.sweep`` holds the sweep id, so
the catalogue can filter on it) holding a notebook task; the run root's dispatcher
runs it like any other run, executing the notebook with papermill into
``RUN/notebooks/`` with the run directory as working directory. The notebook runs
the simulation in place and records its results with :func:`simlab.record`. A
failing point ends ``failed`` with its executed notebook showing the error; the
others carry on.

The sweep directory (``ROOT/sweeps/ID``) holds ``sweep.json`` (template, base
config, points and the runs of each point) and, after :meth:`Sweep.collect`,
``results.nc``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.__about__ import __version__
from simlab.config import RunConfig, apply_overrides, validate_config
from simlab.dispatch.notebook_task import NOTEBOOK_TASK_FILE
from simlab.service.submission import settle, submit_plans
from simlab.service.sweeps.collect import collect, point_state, save_dataset
from simlab.service.sweeps.validation import (
    SweepError,
    grid_points,
    injected_parameters,
    notebook_parameters,
    validate_points,
)
from simlab.service.validation import Plan, validate_run
from simlab.settings import run_root
from simlab.state.rundir import new_run_id, now, write_json_atomic
from simlab.state.states import State
from simlab.templates import template_path

if TYPE_CHECKING:
    import xarray as xr

    from simlab.service.run import Run

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.nc"


class Sweep:
    """A sweep directory: its points, their runs and their collected results."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        file = self.path / SWEEP_FILE
        if not file.is_file():
            raise FileNotFoundError(
                f"{self.path}: not a sweep directory (no {SWEEP_FILE})"
            )
        self._data = json.loads(file.read_text())

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return f"<Sweep {self.id} {len(self.points)} points: {counts}>"

    @property
    def id(self) -> str:
        """The sweep id, stored as ``metadata.sweep`` on every run of the sweep."""
        return self._data["id"]

    @property
    def template(self) -> Path:
        """The template notebook every point executes."""
        return Path(self._data["template"])

    @property
    def dims(self) -> list[str]:
        """Swept parameter names for a grid, ``["point"]`` for scattered points."""
        return self._data["dims"]

    @property
    def points(self) -> list[dict[str, Any]]:
        """Each point's parameters, in order."""
        return [p["parameters"] for p in self._data["points"]]

    @property
    def root(self) -> Path:
        """The run root holding the points' run directories."""
        return Path(self._data["root"])

    def runs(self) -> list[Run]:
        """The latest run of each point (resume adds runs; older ones are kept)."""
        from simlab.service.run import Run

        return [Run(self.root / p["runs"][-1]) for p in self._data["points"]]

    def states(self) -> list[str]:
        """Each point's state: its latest run's, or ``failed`` if its notebook was."""
        return [point_state(run.status) for run in self.runs()]

    def counts(self) -> dict[str, int]:
        """Number of points per state."""
        counts: dict[str, int] = {}
        for state in self.states():
            counts[state] = counts.get(state, 0) + 1
        return counts

    def _save(self) -> None:
        write_json_atomic(self.path / SWEEP_FILE, self._data)

    # -- running -------------------------------------------------------------

    @contextlib.contextmanager
    def _driving(self) -> Iterator[None]:
        """Hold ``.driver.lock`` while starting points: one starter at a time, so
        two processes never give the same point two new runs."""
        with open(self.path / ".driver.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SweepError(
                    f"sweep {self.id} is being started by another process; wait "
                    f"for it ({self.path / '.driver.lock'})"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_task(self, index: int, run: Run, declared: dict[str, Any]) -> None:
        """Give point ``index``'s run ``run`` its notebook task."""
        point = {**self._data.get("parameters", {}), **self.points[index]}
        params = injected_parameters(point, run.config, declared, run.path)
        task = {"template": str(self.template), "parameters": params}
        write_json_atomic(run.path / NOTEBOOK_TASK_FILE, task)

    def _submit(self, todo: list[tuple[int, Plan | Run]]) -> None:
        """Queue points through the one submission path: ``(index, Run)`` for a
        point whose run was never queued, ``(index, Plan)`` for a point that gets a
        new run. The active-run limit covers them all (LimitError, nothing made);
        each run gets its notebook task, and new runs are recorded in sweep.json,
        before any is queued."""
        if not todo:
            return
        declared = notebook_parameters(self.template)

        def created(runs: list[Run]) -> None:
            for (index, _), run in zip(todo, runs, strict=True):
                self._write_task(index, run, declared)
            data = json.loads(json.dumps(self._data))
            for (index, item), run in zip(todo, runs, strict=True):
                if isinstance(item, Plan):
                    data["points"][index]["runs"].append(run.id)
            write_json_atomic(self.path / SWEEP_FILE, data)
            self._data = data

        submit_plans([item for _, item in todo], self.root, created=created)

    def start(self, indices: list[int] | None = None) -> Sweep:
        """Queue the points ``indices`` (default: all), whose runs were never
        queued, and return at once."""
        indices = list(range(len(self.points))) if indices is None else indices
        with self._driving():
            runs = self.runs()
            self._submit([(index, runs[index]) for index in indices])
        return self

    def resume(self, *, wait: bool = True, progress: bool = True) -> Sweep:
        """Run again only the points not completed, each in a new run directory.

        Failed and cancelled runs stay as they were (their notebooks too); points
        never queued are queued; points still queued or running are left to their
        dispatcher (one that died has its runs taken over first).
        """
        settle(self.root)
        with self._driving():
            todo: list[tuple[int, Plan | Run]] = []
            for index, run in enumerate(self.runs()):
                state = State(point_state(run.status))
                if state == State.COMPLETED:
                    continue
                if state == State.CREATED:
                    todo.append((index, run))  # never queued
                elif state.is_final:
                    # failed or cancelled: a new run, the failed one kept
                    todo.append((index, validate_run(run.dir.config())))
                # queued, running or between segments: its dispatcher has it
            self._submit(todo)
        return self.wait(progress=progress) if wait else self

    def wait(self, *, progress: bool = True, timeout: float | None = None) -> Sweep:
        """Block until no point is queued or running, showing the points done
        (a bar on a terminal, lines in logs: :mod:`simlab.service.progress`)."""
        from simlab.service.progress import progress as shown_progress

        deadline = None if timeout is None else time.monotonic() + timeout
        with shown_progress(len(self.points), self.id, "pt", enabled=progress) as bar:
            while True:
                counts = self.counts()
                done = sum(v for k, v in counts.items() if State(k).is_final)
                bar.report(done, **counts)
                if done == len(self.points):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sweep {self.id}: {counts} after {timeout}s")
                time.sleep(0.2)
        return self

    # -- results -------------------------------------------------------------

    def collect(self, *, save: bool = True) -> xr.Dataset:
        """All points' recorded results as one Dataset (NaN where a point failed).

        One dimension per swept parameter (``point`` for scattered points) plus
        each recorded variable's own dimensions; per-point provenance (run id,
        state, config hash, simlab and code versions, notebook, time) as
        coordinates. Saved to ``results.nc`` in the sweep directory.
        """
        dataset = collect(self)
        if save:
            save_dataset(dataset, self.path / RESULTS_FILE)
        return dataset


def sweep(
    template: str | Path,
    *,
    grid: dict[str, list[Any]] | None = None,
    points: list[dict[str, Any]] | None = None,
    base: RunConfig | dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    cluster: str | None = None,
    root: str | Path | None = None,
    name: str = "sweep",
    wait: bool = True,
    progress: bool = True,
) -> Sweep:
    """Run ``template`` once per point of ``grid`` (or ``points``) on a dask cluster.

    Parameters
    ----------
    template
        a template name from ``notebooks/`` (``run_simulation``) or a path to a
        notebook with a cell tagged ``parameters``
    grid
        ``{parameter: [values]}``; every combination is a point
    points
        scattered points, ``[{parameter: value}, ...]``, all with the same names
    base
        the RunConfig the points start from (default: RunConfig())
    parameters
        notebook parameters set to the same value at every point (checked like
        the swept ones), e.g. ``{"figures": False}``
    cluster
        cluster profile (overrides ``base.resources.cluster``)
    root
        run root for the points' runs (default: the ``simlab.run-root`` setting);
        the sweep directory is ``ROOT/sweeps/ID``
    name
        sweep name, the start of its id and of its runs' names
    wait
        block with a progress bar until every point has ended

    Returns
    -------
    Sweep
        with ``states()``, ``wait()``, ``resume()`` and ``collect()``
    """
    if (grid is None) == (points is None):
        raise ValueError("give exactly one of grid={name: [values]} or points=[{...}]")
    template = template_path(str(template))
    if grid is not None:
        for key, values in grid.items():
            if not isinstance(values, list | tuple) or not values:
                raise ValueError(
                    f"grid[{key!r}] = {values!r}: must be a non-empty list of values"
                )
        point_list, dims = grid_points(grid), list(grid)
    else:
        point_list, dims = [dict(p) for p in points or []], ["point"]
        if not point_list:
            raise ValueError("points=[]: a sweep needs at least one point")
        for index, point in enumerate(point_list):
            if set(point) != set(point_list[0]):
                raise ValueError(
                    f"point {index} sets {sorted(point)} but point 0 sets "
                    f"{sorted(point_list[0])}: every point must set the same names"
                )
    base = validate_config(base if base is not None else RunConfig())
    if cluster is not None:
        base = apply_overrides(base, {"resources.cluster": cluster})
    fixed = dict(parameters or {})
    clash = sorted(set(fixed) & set(point_list[0]))
    if clash:
        raise ValueError(f"parameters {clash} are both swept and fixed; give them once")
    plans = validate_points(template, [{**fixed, **p} for p in point_list], base)
    root = Path(root or run_root()).resolve()
    sweep_id = new_run_id(name)
    plans = [
        validate_run(
            apply_overrides(
                plan.config, {"metadata.sweep": sweep_id, "metadata.name": point}
            )
        )
        for point, plan in zip(point_names(name, point_list), plans, strict=True)
    ]
    path = root / "sweeps" / sweep_id
    data = {
        "id": sweep_id,
        "template": str(template),
        "root": str(root),
        "created": now(),
        "simlab_version": __version__,
        "dims": dims,
        "grid": grid,
        "parameters": fixed,
        "base": base.model_dump(mode="json"),
    }
    made: list[Sweep] = []

    def created(runs: list[Run]) -> None:
        made.append(_create(path, data, point_list, runs))

    # the sweep and its runs are made, all or nothing, before any point is queued
    submit_plans(plans, root, created=created)
    handle = made[0]
    return handle.wait(progress=progress) if wait else handle


#: A run name: what ``metadata.name`` allows (simlab.config's name rule).
_NAME_LENGTH = 64
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _value_text(value: Any) -> str:
    """A point's value as it reads in a run name."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "_".join(_value_text(v) for v in value)
    return str(value)


def point_names(base: str, points: list[dict[str, Any]]) -> list[str]:
    """Run names of a sweep's points: the base name and each point's values,
    sanitised to the run-name rule; ``BASE-pNNN`` when they would not fit or
    would not tell the points apart.

    Examples
    --------
    >>> point_names("lcdm", [{"Omega0": 0.25}, {"Omega0": 0.3}])
    ['lcdm-omega0_0.25', 'lcdm-omega0_0.3']
    >>> point_names("lcdm", [{"transfer": "E&H 98"}])
    ['lcdm-transfer_E_H_98']
    """
    names = []
    for point in points:
        parts = [base, *(f"{k.lower()}_{_value_text(v)}" for k, v in point.items())]
        names.append(_NOT_IN_NAME.sub("_", "-".join(parts)).strip("_"))
    if len(set(names)) == len(names) and all(len(n) <= _NAME_LENGTH for n in names):
        return names
    head = base[: _NAME_LENGTH - 5]
    return [f"{head}-p{index:03d}" for index in range(len(points))]


def _create(
    path: Path, data: dict[str, Any], point_list: list[dict[str, Any]], runs: list[Run]
) -> Sweep:
    """Make the sweep directory for the points' runs, each given its notebook task;
    nothing is left when this fails (the submission removes the runs)."""
    import shutil

    path.mkdir(parents=True, mode=0o700)
    try:
        points = [
            {"parameters": point, "runs": [run.id]}
            for point, run in zip(point_list, runs, strict=True)
        ]
        write_json_atomic(path / SWEEP_FILE, {**data, "points": points})
        handle = Sweep(path)
        declared = notebook_parameters(handle.template)
        for index, run in enumerate(runs):
            handle._write_task(index, run, declared)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return handle
