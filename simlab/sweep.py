"""Parameter sweeps: one executed papermill notebook per point, results as xarray.

A sweep is a template notebook (with a cell tagged ``parameters``) and a set of
points, each a mapping of notebook parameters to values: the product of a ``grid``
or a list of scattered ``points``. Before anything runs, every point is checked
against the notebook's ``parameters`` cell (unknown name, wrong type) and, for the
parameters named after a :class:`~simlab.RunConfig` field, against the RunConfig
schema; all problems are raised together in one :class:`SweepValidationError`.

Each point then gets its own run directory (``metadata.sweep`` holds the sweep id,
so the catalogue can filter on it) and one dask task, on the cluster of the chosen
profile, that executes the notebook with papermill into ``RUN/notebooks/`` with the
run directory as working directory. The notebook runs the simulation in place and
records its results with :func:`simlab.record`. A failing point ends ``failed``
with its executed notebook showing the error; the others carry on.

The sweep directory (``ROOT/sweeps/ID``) holds ``sweep.json`` (template, base
config, points and the runs of each point) and, after :meth:`Sweep.collect`,
``results.nc``.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import itertools
import json
import logging
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from simlab.__about__ import __version__
from simlab.config import RunConfig, apply_overrides, validate_config
from simlab.errors import ConfigError, SimlabError
from simlab.runs.rundir import (
    RunDir,
    TransitionError,
    new_run_id,
    now,
    write_json_atomic,
)
from simlab.runs.states import State
from simlab.settings import run_root
from simlab.templates import template_path

if TYPE_CHECKING:
    import xarray as xr
    from distributed import Future

    from simlab.runs.run import Run

logger = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.nc"
#: Notebook parameter through which a sweep tells the notebook its run directory.
RUN_DIR_PARAMETER = "run_dir"
#: Point states, besides the run states they mirror.
NOTEBOOK_FAILED = "failed"
_SCALARS = (bool, int, float, str, type(None))


class SweepValidationError(ExceptionGroup, SimlabError, ValueError):
    """Every bad point of a sweep, one sub-exception (and one line) each."""

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"  {line}" for e in self.exceptions for line in str(e).splitlines()]
        return "\n".join(lines)


class SweepError(SimlabError, RuntimeError):
    """A sweep that cannot be started, resumed or read."""


# --------------------------------------------------------------------------
# parameters: the notebook's cell and the RunConfig fields behind them


def config_fields() -> dict[str, str]:
    """Notebook parameter names that stand for RunConfig fields → dotted paths.

    A field is reachable by ``section_field`` (``box_size``, ``ics_seed``) and,
    when no other section has a field of that name, by its bare name (``sigma8``,
    ``steps``, ``particles_per_side``).

    Examples
    --------
    >>> fields = config_fields()
    >>> fields["sigma8"], fields["box_size"], fields["steps"]
    ('cosmology.sigma8', 'box.size', 'gravity.steps')
    """
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for section, info in RunConfig.model_fields.items():
        model = info.annotation
        for leaf in getattr(model, "model_fields", {}):
            names[f"{section}_{leaf}"] = f"{section}.{leaf}"
            counts[leaf] = counts.get(leaf, 0) + 1
    for section, info in RunConfig.model_fields.items():
        for leaf in getattr(info.annotation, "model_fields", {}):
            if counts[leaf] == 1:
                names.setdefault(leaf, f"{section}.{leaf}")
    return names


def notebook_parameters(template: Path) -> dict[str, dict[str, Any]]:
    """The ``parameters`` cell of ``template`` as papermill infers it.

    A template without a cell tagged ``parameters`` is an error, not a warning:
    a sweep could not set anything in it.
    """
    import nbformat
    import papermill

    nb = nbformat.read(template, as_version=4)
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise SweepError(
            f"template {template} has no cell tagged 'parameters'; a sweep sets its "
            "values there (tag one code cell 'parameters')"
        )
    return papermill.inspect_notebook(str(template))


def declared_type(parameter: dict[str, Any]) -> str:
    """Type name of a notebook parameter: its annotation, else its default's type.

    Examples
    --------
    >>> declared_type({"inferred_type_name": "None", "default": "0.81"})
    'float'
    >>> declared_type({"inferred_type_name": "int", "default": "3"})
    'int'
    """
    if parameter["inferred_type_name"] != "None":
        return parameter["inferred_type_name"]
    try:
        value = ast.literal_eval(parameter["default"])
    except (ValueError, SyntaxError):
        return "None"  # an expression: anything goes
    return "None" if value is None else type(value).__name__


def _type_problem(value: Any, declared: str) -> str | None:
    """Why ``value`` does not fit a parameter whose default is of type ``declared``."""
    if isinstance(value, list | tuple):
        if not all(isinstance(v, _SCALARS) for v in value):
            return "a list may hold only numbers, booleans, text or None"
        return None if declared in ("list", "tuple", "None") else f"expected {declared}"
    if not isinstance(value, _SCALARS):
        return (
            f"a {type(value).__name__} cannot be a notebook parameter; "
            "allowed: number, bool, str, None or a list of them"
        )
    fits = {
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }
    if declared in fits and not fits[declared]:
        return f"expected {declared} (the type of the notebook's default)"
    return None


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last name varying fastest.

    Examples
    --------
    >>> grid_points({"sigma8": [0.7, 0.8], "Omega0": [0.3]})
    [{'sigma8': 0.7, 'Omega0': 0.3}, {'sigma8': 0.8, 'Omega0': 0.3}]
    """
    names = list(grid)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*grid.values())
    ]


def validate_points(
    template: Path, points: list[dict[str, Any]], base: RunConfig
) -> list[RunConfig]:
    """Check every point before anything runs; return each point's RunConfig.

    Raises :class:`SweepValidationError` listing every unknown or ill-typed
    parameter and every RunConfig field a point makes invalid, point by point.
    """
    declared = notebook_parameters(template)
    fields = config_fields()
    problems: list[Exception] = []
    configs: list[RunConfig] = []
    for index, point in enumerate(points):
        bad = False
        for name, value in point.items():
            if name not in declared:
                bad = True
                problems.append(
                    ValueError(
                        f"point {index}: unknown parameter {name!r} = {value!r}; "
                        f"{template.name} has: {', '.join(sorted(declared))}"
                    )
                )
                continue
            why = _type_problem(value, declared_type(declared[name]))
            if why:
                bad = True
                problems.append(
                    TypeError(f"point {index}: parameter {name} = {value!r}: {why}")
                )
        if bad:
            continue
        overrides = {fields[n]: v for n, v in point.items() if n in fields}
        try:
            configs.append(apply_overrides(base, overrides) if overrides else base)
        except ConfigError as exc:
            problems += [
                ValueError(f"point {index}: {e['loc']} = {e['value']!r}: {e['msg']}")
                for e in exc.errors
            ]
    if problems:
        raise SweepValidationError(
            f"{len(problems)} problem(s) in the sweep over {template.name}; "
            "nothing was started:",
            problems,
        )
    return configs


def _injected(
    point: dict[str, Any], config: RunConfig, declared: dict[str, Any], rundir: Path
) -> dict[str, Any]:
    """The values papermill injects: the point, the config fields the notebook
    declares (from the validated config) and the run directory."""
    data = config.model_dump(mode="json")
    params: dict[str, Any] = {}
    for name, dotted in config_fields().items():
        if name in declared:
            section, leaf = dotted.split(".")
            params[name] = data[section][leaf]
    params.update(point)
    if RUN_DIR_PARAMETER in declared:
        params[RUN_DIR_PARAMETER] = str(rundir)
    return params


# --------------------------------------------------------------------------
# the task that runs on a dask worker


def _provenance(rundir: RunDir) -> dict[str, Any]:
    from simlab.engines import registry

    config = rundir.config()
    try:
        code_version = registry.get(config.code.engine).health(config).version
    except Exception as exc:  # a probe must never sink the point
        code_version = f"unknown ({type(exc).__name__})"
    return {
        "simlab_version": __version__,
        "code": config.code.engine,
        "code_version": code_version,
        "config_hash": config.config_hash(),
    }


def execute_point(path: str, template: str, parameters: dict[str, Any]) -> str:
    """Execute one point's notebook into ``RUN/notebooks/``; return the point state.

    Runs on a dask worker. Whatever happens, the run does not stay queued or
    running: a notebook error marks it ``failed`` (the executed notebook, kept,
    shows the error), and ``status.json["notebook"]`` says how the notebook ended.
    """
    from papermill.exceptions import PapermillExecutionError

    from simlab.templates import execute_notebook

    rundir = RunDir(path)
    output = rundir.path / "notebooks" / Path(template).name
    started = now()
    notebook: dict[str, Any] = {"path": str(output), "template": template}
    try:
        execute_notebook(template, output, parameters, cwd=rundir.path)
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        notebook.update(state=NOTEBOOK_FAILED, error=error)
    except Exception as exc:  # task boundary: kernel died, template unreadable ...
        logger.exception("sweep point %s: notebook did not run", rundir.id)
        notebook.update(state=NOTEBOOK_FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        notebook["state"] = State.COMPLETED.value
    notebook.update(started=started, finished=now())
    rundir.update(notebook=notebook, provenance=_provenance(rundir))
    state = rundir.state
    if notebook["state"] == NOTEBOOK_FAILED and not state.is_final:
        reason = f"notebook {output.name} failed: {notebook['error']}"
        rundir.transition(State.FAILED, reason=reason)
    elif state == State.QUEUED:
        # a notebook that analyses without running the engine completes its point
        rundir.transition(State.RUNNING)
        rundir.transition(State.COMPLETED, reason="notebook ran without the engine")
    return point_state(rundir.status())


def point_state(status: dict[str, Any]) -> str:
    """A point's state: ``failed`` if its notebook failed, ``running`` while its
    notebook still runs after the run ended, else its run's state."""
    notebook = status.get("notebook") or {}
    if notebook.get("state") == NOTEBOOK_FAILED:
        return NOTEBOOK_FAILED
    if status["state"] == State.COMPLETED.value and not notebook:
        return State.RUNNING.value
    return status["state"]


# --------------------------------------------------------------------------
# the sweep


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
        self._futures: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._driver: IO[str] | None = None

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
        from simlab.runs.run import Run

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

    def _acquire_driver(self) -> None:
        """Hold ``.driver.lock`` while this process runs points; one driver at a time.

        The lock dies with the process, so a resume knows that queued or running
        points it does not follow itself were abandoned.
        """
        if self._driver is not None:
            return
        fh = open(self.path / ".driver.lock", "a")  # noqa: SIM115 (held across calls)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise SweepError(
                f"sweep {self.id} is being run by another process; wait for it or "
                f"end it before resuming ({self.path / '.driver.lock'})"
            ) from None
        self._driver = fh

    def _release_driver(self) -> None:
        with self._lock:
            if self._futures or self._driver is None:
                return
            fh, self._driver = self._driver, None
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()

    def _submit(self, index: int, declared: dict[str, Any]) -> None:
        from simlab.api import dispatcher

        rundir = RunDir(self.root / self._data["points"][index]["runs"][-1])
        config = rundir.config()
        point = {**self._data.get("parameters", {}), **self.points[index]}
        params = _injected(point, config, declared, rundir.path)
        client = dispatcher().client(config, self.root)
        rundir.transition(State.QUEUED, cluster=config.resources.cluster)
        future = client.submit(
            execute_point,
            str(rundir.path),
            str(self.template),
            params,
            key=f"simlab-sweep-{rundir.id}-{time.monotonic_ns()}",
            resources={"run": 1},
            pure=False,
            retries=0,
        )
        with self._lock:
            self._futures[index] = future
        future.add_done_callback(lambda done: self._settle(index, rundir, done))

    def _settle(self, index: int, rundir: RunDir, future: Future) -> None:
        """A point's task ended: record a lost task, release the driver lock."""
        if future.status == "error":
            exc = future.exception()
            reason = f"task lost: {type(exc).__name__}: {exc}"
            if not rundir.state.is_final:
                with contextlib.suppress(TransitionError):  # it ended meanwhile
                    rundir.transition(State.FAILED, reason=reason)
            if not rundir.status().get("notebook"):
                rundir.update(notebook={"state": NOTEBOOK_FAILED, "error": reason})
        with self._lock:
            if self._futures.get(index) is future:
                del self._futures[index]
        self._release_driver()

    def _new_run(self, index: int) -> None:
        """Give point ``index`` a fresh run directory with its config (for resume)."""
        from simlab.runs.catalog import Catalog

        point = self._data["points"][index]
        previous = RunDir(self.root / point["runs"][-1])
        rundir = RunDir.create(self.root, previous.config())
        Catalog(self.root).add(rundir)
        point["runs"].append(rundir.id)
        self._save()

    def start(self, indices: list[int] | None = None) -> Sweep:
        """Submit the points ``indices`` (default: all) and return at once."""
        self._acquire_driver()
        indices = list(range(len(self.points))) if indices is None else indices
        try:
            declared = notebook_parameters(self.template)
            for index in indices:
                self._submit(index, declared)
        finally:
            self._release_driver()
        return self

    def resume(self, *, wait: bool = True, progress: bool = True) -> Sweep:
        """Run again only the points not completed, each in a new run directory.

        Failed and cancelled runs stay as they were (their notebooks too); points
        never submitted are submitted; queued or running points that no live
        process follows any more are marked failed as abandoned and run again.
        """
        self._acquire_driver()
        todo = []
        try:
            for index, run in enumerate(self.runs()):
                with self._lock:
                    followed = index in self._futures
                state = point_state(run.status)
                if state == State.COMPLETED.value or followed:
                    continue
                if state != State.CREATED.value and not run.state.is_final:
                    run.dir.transition(
                        State.FAILED,
                        reason="abandoned: the process running its sweep ended",
                    )
                if state != State.CREATED.value:
                    self._new_run(index)
                todo.append(index)
            self.start(todo)
        finally:
            self._release_driver()
        return self.wait(progress=progress) if wait else self

    def wait(self, *, progress: bool = True, timeout: float | None = None) -> Sweep:
        """Block until no point is queued or running, with a tqdm bar of points."""
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        with tqdm(
            total=len(self.points), desc=self.id, unit="pt", disable=not progress
        ) as bar:
            while True:
                counts = self.counts()
                done = sum(v for k, v in counts.items() if State(k).is_final)
                bar.set_postfix(counts, refresh=False)
                bar.update(done - bar.n)
                with self._lock:
                    pending = bool(self._futures)
                if done == len(self.points) or not pending:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sweep {self.id}: {counts} after {timeout}s")
                time.sleep(0.2)
        self._release_driver()
        return self

    # -- results -------------------------------------------------------------

    def collect(self, *, save: bool = True) -> xr.Dataset:
        """All points' recorded results as one Dataset (NaN where a point failed).

        One dimension per swept parameter (``point`` for scattered points) plus
        each recorded variable's own dimensions; per-point provenance (run id,
        state, config hash, simlab and code versions, notebook, time) as
        coordinates. Saved to ``results.nc`` in the sweep directory.
        """
        dataset = _collect(self)
        if save:
            _save_dataset(dataset, self.path / RESULTS_FILE)
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
    configs = validate_points(template, [{**fixed, **p} for p in point_list], base)
    root = Path(root or run_root()).resolve()
    sweep_id = new_run_id(name)
    configs = [
        apply_overrides(
            config,
            {"metadata.sweep": sweep_id, "metadata.name": f"{name}-p{index:03d}"},
        )
        for index, config in enumerate(configs)
    ]
    handle = _create(
        template, root, sweep_id, dims, grid, point_list, fixed, base, configs
    )
    handle.start()
    return handle.wait(progress=progress) if wait else handle


def _create(
    template: Path,
    root: Path,
    sweep_id: str,
    dims: list[str],
    grid: dict[str, list[Any]] | None,
    point_list: list[dict[str, Any]],
    fixed: dict[str, Any],
    base: RunConfig,
    configs: list[RunConfig],
) -> Sweep:
    """Make the sweep directory and one run directory per point, all or nothing."""
    import shutil

    from simlab.runs.catalog import Catalog

    path = root / "sweeps" / sweep_id
    path.mkdir(parents=True, mode=0o700)
    created: list[RunDir] = []
    try:
        for config in configs:
            # one at a time, so a failure knows what to remove
            created.append(RunDir.create(root, config))  # noqa: PERF401
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
            "points": [
                {"parameters": point, "runs": [rundir.id]}
                for point, rundir in zip(point_list, created, strict=True)
            ],
        }
        write_json_atomic(path / SWEEP_FILE, data)
    except BaseException:
        for rundir in created:
            shutil.rmtree(rundir.path, ignore_errors=True)
        shutil.rmtree(path, ignore_errors=True)
        raise
    catalog = Catalog(root)
    for rundir in created:
        catalog.add(rundir)
    return Sweep(path)


# --------------------------------------------------------------------------
# collecting results into xarray

#: Per-point provenance kept as coordinates of the collected Dataset.
PROVENANCE = (
    "run_id",
    "state",
    "config_hash",
    "simlab_version",
    "code_version",
    "notebook",
    "time",
)


def _point_provenance(run: Run) -> dict[str, str]:
    status = run.status
    notebook = status.get("notebook") or {}
    provenance = status.get("provenance") or {}
    return {
        "run_id": run.id,
        "state": point_state(status),
        "config_hash": provenance.get("config_hash") or run.config.config_hash(),
        "simlab_version": provenance.get("simlab_version", ""),
        "code_version": provenance.get("code_version", ""),
        "notebook": notebook.get("path", ""),
        "time": notebook.get("finished", status.get("updated", "")),
    }


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Recorded Datasets become one variable per data variable, ``name_var``."""
    import xarray as xr

    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, xr.Dataset):
            for var in value.data_vars:
                flat[name if var == name else f"{name}_{var}"] = value[var]
        else:
            flat[name] = value
    return flat


def _stack(name: str, values: list[Any]) -> xr.DataArray:
    """One variable over ``point``: missing (failed) points are NaN or ''."""
    import numpy as np
    import xarray as xr

    present = [v for v in values if v is not None]
    first = present[0]
    if isinstance(first, xr.DataArray):
        blank = xr.full_like(first, np.nan, dtype=float)
        arrays = [blank if v is None else v for v in values]
        return xr.concat(
            arrays, dim="point", join="outer", combine_attrs="drop_conflicts"
        )
    if all(isinstance(v, str) for v in present):
        data = np.array(["" if v is None else v for v in values], dtype=object)
    else:
        data = np.array([np.nan if v is None else v for v in values], dtype=float)
    return xr.DataArray(data, dims="point", name=name)


def _collect(handle: Sweep) -> xr.Dataset:
    import numpy as np
    import xarray as xr

    from simlab.results import load_results

    runs = handle.runs()
    provenance = [_point_provenance(run) for run in runs]
    results = [
        _flatten(load_results(run)) if p["state"] == State.COMPLETED.value else {}
        for run, p in zip(runs, provenance, strict=True)
    ]
    names: list[str] = []
    for values in results:
        names += [n for n in values if n not in names]
    dataset = xr.Dataset(
        {name: _stack(name, [values.get(name) for values in results]) for name in names}
    )
    coords: dict[str, Any] = {
        key: ("point", np.array([p[key] for p in provenance], dtype=object))
        for key in PROVENANCE
    }
    if handle.dims == ["point"]:
        coords["point"] = np.arange(len(runs))
        for key in handle.points[0]:
            coords[key] = ("point", [point[key] for point in handle.points])
        dataset = dataset.assign_coords(coords)
    else:
        for key in handle.dims:
            coords[key] = ("point", [point[key] for point in handle.points])
        dataset = dataset.assign_coords(coords)
        if len(handle.dims) == 1:
            dataset = dataset.swap_dims(point=handle.dims[0])
        else:
            dataset = dataset.set_index(point=handle.dims).unstack("point")
        grid = handle._data["grid"]
        dataset = dataset.reindex({key: grid[key] for key in handle.dims})
        dataset = dataset.transpose(*handle.dims, ...)
    dataset.attrs.update(
        sweep_id=handle.id,
        template=str(handle.template),
        sweep_created=handle._data["created"],
        collected=now(),
        simlab_version=__version__,
        points=len(runs),
        points_completed=sum(p["state"] == State.COMPLETED.value for p in provenance),
    )
    return dataset


def _save_dataset(dataset: xr.Dataset, path: Path) -> None:
    """Write ``dataset`` to netCDF (h5netcdf) atomically."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        dataset.to_netcdf(tmp, engine="h5netcdf", mode="w")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
