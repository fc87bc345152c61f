"""Cold and warm: what a user feels first, in fresh processes, against the peers.

Cold is a fresh ``python`` process and a user's first call; warm is the second
call in the same process. Each cold case runs in ``REPEATS`` fresh processes
(subprocesses of this interpreter) and the time is taken inside the child with
``time.perf_counter()``, from before its first import to after the first call
(``import_s`` in the notes is the part spent importing, ``call_s`` the fastest
first call after its imports); the warm time is the same
call again in the same child. Min and median are over the processes.

- ``python start``: a bare ``python -c pass`` timed from outside, for reference
  (the in-child times above do not include it).
- First open of a 128³ Gadget4-layout snapshot (``benchmarks._data``):
  ``simlab.open_snapshot``, ``xr.open_dataset(..., engine="gadget4")``, raw h5py
  (floor: open the file and read the header), ``pynbody.load``, ``yt.load`` plus
  its particle index, Pylians ``readgadget.header``.
- First CIC + P(k) of 128³ (quick) or 256³ particles on a mesh of the same size,
  from positions already in memory (numpy is imported and the ``.npy`` loaded
  before the clock starts): simlab's ``power_spectrum`` with numba's on-disk
  cache filled (a priming process runs first) and with an empty
  ``NUMBA_CACHE_DIR`` (kernels compiled), against Pylians' ``MAS_library.MA``
  plus ``Pk_library.Pk`` (the floor of these groups, so × floor reads "× Pylians").
- The run path: ``simlab run`` of the README's 64³-particle, 128 Mpc/h, 30-step
  PM run in a temporary run root, split into phases from ``status.json`` times
  and the engine's log. The first run finds no dispatcher up and runs in the
  command's own process (cold), the second does the same (again); then a
  ``simlab submit``-ted run starts the root's dispatcher, its local cluster and
  the engine's process its worker keeps started ahead, and a third ``simlab
  run`` is handed to it (dispatcher up). × floor of a phase is its time over the
  engine's stepping time.

Before the timed children of a case, one untimed child runs it, so ``.pyc``
files are written and the inputs are in the page cache, as on a machine where
the package was installed and used before (numba's cache is the exception made
explicit by the "empty numba cache" rows).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks._data import BOX_SIZE, positions_file, snapshot
from benchmarks._harness import ROOT, installed, missing, record

REPEATS = 5
OPEN_COLD = "first open in a fresh process (imports + open)"
OPEN_WARM = "second open in the same process (warm)"
PK_COLD = "first CIC + P(k) in a fresh process (imports + call)"
PK_WARM = "second CIC + P(k) in the same process (warm)"
RUN_SIZE = "64^3 particles, 128 Mpc/h, 30 steps"
RUN_ARGS = (
    "run",
    "--set",
    "box.size=128",
    "--set",
    "box.particles_per_side=64",
    "--set",
    "gravity.steps=30",
    "--quiet",
)
TOTAL = "command → prompt (total)"
STEPS = "steps (engine stepping)"
STEP_LINE = re.compile(r"^pm: step (\d+)/(\d+) .* elapsed=(\S+)s$")
FINISHED_LINE = re.compile(r"^pm: finished in (\S+)s$")

#: Child program: ``setup`` untimed, then imports and the first call (cold), the
#: call again (warm); one JSON line with the times and the peak RSS.
CHILD = """\
import json, resource, sys, time
{setup}
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
{call}
t2 = time.perf_counter()
{call}
t3 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("COLD-RESULT " + json.dumps(
    {{"cold": t2 - t0, "import": t1 - t0, "call": t2 - t1, "warm": t3 - t2,
      "rss": rss}}))
"""

#: (label, module needed, imports, call) of each open; ``P`` is the path.
OPENERS = (
    (
        "h5py File + header (floor)",
        "h5py",
        "import h5py",
        "with h5py.File(P, 'r') as f:\n"
        "    a = f['Header'].attrs; _ = a['NumPart_ThisFile'], a['BoxSize']",
    ),
    (
        "simlab.open_snapshot",
        "simlab",
        "import simlab, xarray, h5py",
        "simlab.open_snapshot(P).close()",
    ),
    (
        "xr.open_dataset(engine='gadget4')",
        "xarray",
        "import xarray as xr",
        "xr.open_dataset(P, engine='gadget4').close()",
    ),
    ("pynbody.load", "pynbody", "import pynbody", "pynbody.load(P)"),
    (
        "yt.load + index",
        "yt",
        "import yt; yt.set_log_level(50)",
        "ds = yt.load(P); ds.index",
    ),
    (
        "Pylians readgadget.header",
        "readgadget",
        "import readgadget",
        "readgadget.header(P)",
    ),
)
PK_SIMLAB = (
    "from simlab.analysis.power import power_spectrum",
    "power_spectrum(pos, L, N)",
)
PK_PYLIANS = (
    "import MAS_library, Pk_library",
    "d = np.zeros((N, N, N), np.float32); "
    "MAS_library.MA(pos, d, L, 'CIC', verbose=False); "
    "d /= np.mean(d, dtype=np.float64); d -= 1.0; "
    "Pk_library.Pk(d, L, 0, 'CIC', 2, verbose=False)",
)


def _load() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def _child(setup: str, imports: str, call: str, env: dict[str, str]) -> dict:
    """Run one fresh child; its times, or ``{"error": ...}``."""
    code = CHILD.format(setup=setup, imports=imports, call=call)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=ROOT,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    for line in done.stdout.splitlines():
        if line.startswith("COLD-RESULT "):
            return json.loads(line.removeprefix("COLD-RESULT "))
    tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
    return {"error": f"exited {done.returncode}: {' | '.join(tail)}"}


def _cold_warm(
    tool: str,
    operations: tuple[str, str],
    size: str,
    code: tuple[str, str, str],
    *,
    repeats: int = REPEATS,
    env: dict[str, str] | None = None,
    **extra: Any,
) -> list[dict]:
    """A cold and a warm row from ``repeats`` fresh children running ``code``."""
    _child(*code, {})  # untimed: bytecode compiled, files in the page cache
    load = _load()
    runs = []
    for _ in range(repeats):
        # a fresh NUMBA_CACHE_DIR per child when one is asked for
        child_env = dict(env or {})
        with tempfile.TemporaryDirectory(prefix="simlab-numba-") as empty:
            if child_env.get("NUMBA_CACHE_DIR") == "fresh":
                child_env["NUMBA_CACHE_DIR"] = empty
            runs.append(_child(*code, child_env))
        if "error" in runs[-1]:
            return [missing(tool, op, size, runs[-1]["error"]) for op in operations]
    cold = [r["cold"] for r in runs]
    warm = [r["warm"] for r in runs]
    rss = round(max(r["rss"] for r in runs), 1)
    imports = round(statistics.median(r["import"] for r in runs), 4)
    call = round(min(r["call"] for r in runs), 4)
    common = {"repeat": repeats, "load": load, **extra}
    return [
        record(tool, operations[0], size, min(cold), statistics.median(cold), rss,
               import_s=imports, call_s=call, **common),
        record(tool, operations[1], size, min(warm), statistics.median(warm), rss,
               **common),
    ]  # fmt: skip


def python_start(repeats: int = REPEATS) -> dict:
    """Wall time of a bare ``python -c pass``, timed from this process."""
    load = _load()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return record(
        "python -c pass",
        "python start (reference, timed from outside)",
        "—",
        min(times),
        statistics.median(times),
        None,
        repeat=repeats,
        load=load,
    )


def first_open() -> list[dict]:
    """Cold and warm open of the 128³ snapshot for every tool."""
    path = str(snapshot(128, 1))
    records = []
    for tool, module, imports, call in OPENERS:
        if not installed(module):
            records += [
                missing(tool, op, "128^3", f"{module} not installed")
                for op in (OPEN_COLD, OPEN_WARM)
            ]
            continue
        records += _cold_warm(
            tool,
            (OPEN_COLD, OPEN_WARM),
            "128^3",
            (f"P = {path!r}", imports, call),
            floor=module == "h5py",
        )
    return records


def first_power(n_side: int) -> list[dict]:
    """Cold and warm CIC + P(k): simlab (numba cache filled, empty), Pylians."""
    size = f"{n_side}^3 particles, {n_side}^3 mesh"
    setup = (
        f"import numpy as np; pos = np.load({str(positions_file(n_side))!r}); "
        f"L = {BOX_SIZE!r}; N = {n_side}"
    )
    ops = (PK_COLD, PK_WARM)
    records = []
    if installed("MAS_library") and installed("Pk_library"):
        records += _cold_warm(
            "Pylians MAS_library + Pk_library", ops, size, (setup, *PK_PYLIANS),
            floor=True,
        )  # fmt: skip
    else:
        records += [
            missing(
                "Pylians MAS_library + Pk_library", op, size, "Pylians not installed"
            )
            for op in ops
        ]
    records += _cold_warm("simlab (numba cache filled)", ops, size, (setup, *PK_SIMLAB))
    records += _cold_warm(
        "simlab (empty numba cache: compiles)",
        ops,
        size,
        (setup, *PK_SIMLAB),
        repeats=3,
        env={"NUMBA_CACHE_DIR": "fresh"},
    )
    return records


def _iso(stamp: str) -> float:
    """Seconds since the epoch of an ISO time from ``status.json``."""
    return datetime.fromisoformat(stamp).timestamp()


def _engine_clock(log: str) -> tuple[float, float, float]:
    """From the engine's log, on its own clock (started once its modules are
    imported): when its first step began (one median step before step 1 ends),
    when its last step ended, and its total. RuntimeError without them."""
    elapsed, finished = [], None
    for line in log.splitlines():
        if match := STEP_LINE.match(line):
            elapsed.append(float(match[3]))
        elif match := FINISHED_LINE.match(line):
            finished = float(match[1])
    if len(elapsed) < 2 or finished is None:
        raise RuntimeError(f"engine log has no step times: {log[-200:]!r}")
    step = statistics.median(b - a for a, b in itertools.pairwise(elapsed))
    return elapsed[0] - step, elapsed[-1], finished


def phases(started: float, ended: float, rundir: Path) -> dict[str, float]:
    """Split one ``simlab run`` from command start to prompt into phases (seconds).

    The engine's process start is placed ``finished in`` seconds before
    ``completed`` (its log's own total); its first step begins one median step
    before step 1 ends.
    """
    status = json.loads((rundir / "status.json").read_text())
    times = {k: _iso(v) for k, v in status["times"].items()}
    before_steps, last_step, finished = _engine_clock((rundir / "log").read_text())
    engine_start = times["completed"] - finished
    return {
        "command → run directory (CLI, validation, ICs)": times["created"] - started,
        "run directory → queued (dispatcher, cluster)": times["queued"]
        - times["created"],
        "queued → running": times["running"] - times["queued"],
        "running → engine start (process, imports)": engine_start - times["running"],
        "engine start → first step (imports, compile, ICs)": before_steps,
        STEPS: last_step - before_steps,
        "last step → completed (outputs, exit)": times["completed"]
        - (engine_start + last_step),
        "completed → prompt": ended - times["completed"],
        TOTAL: ended - started,
    }


def simlab_run(root: Path) -> dict[str, float]:
    """One ``simlab run`` of the README's run in ``root``; its phases."""
    script = Path(sys.executable).with_name("simlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "simlab.cli"]
    env = {**os.environ, "DASK_SIMLAB__RUN_ROOT": str(root)}
    before = {p.name for p in root.iterdir()} if root.exists() else set()
    started = time.time()
    done = subprocess.run(
        command + list(RUN_ARGS),
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env=env,
        check=False,
    )
    ended = time.time()
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
        raise RuntimeError(f"simlab run exited {done.returncode}: {' | '.join(tail)}")
    new = [p for p in root.iterdir() if p.name not in before and p.is_dir()]
    rundir = next(p for p in new if (p / "status.json").exists())
    return phases(started, ended, rundir)


def _phase_rows(label: str, runs: list[dict[str, float]], load: list) -> list[dict]:
    """One row per phase over ``runs``; the stepping time is the floor.

    The total's row also has each run's total over its own stepping time.
    """
    operation = f"simlab run phases ({label})"
    ratios = [round(r[TOTAL] / r[STEPS], 3) for r in runs]
    return [
        record(
            phase,
            operation,
            RUN_SIZE,
            min(r[phase] for r in runs),
            statistics.median(r[phase] for r in runs),
            None,
            repeat=len(runs),
            load=load,
            floor=phase == STEPS,
            **({"total_over_steps": ratios} if phase == TOTAL else {}),
        )
        for phase in runs[0]
    ]


#: The run path's situations, in the order one run root meets them.
COLD, AGAIN, ENGINE_ALONE, DISPATCHER_UP = RUN_CASES = (
    "cold: no dispatcher, runs in the command",
    "again: no dispatcher, runs in the command",
    # the floor of any run path that starts the engine's process for the run
    "engine alone: python -m simlab.engines.pm_main, no CLI",
    "dispatcher up: its worker's engine started ahead",
)
FIRST_STEP = "process start → first step (imports, kernels, ICs)"
AFTER_STEPS = "last step → exit (outputs)"


def engine_alone(root: Path) -> dict[str, float]:
    """The README's run as the engine's process alone: a fresh ``python -m
    simlab.engines.pm_main RUNDIR`` on a run directory made (not run) by
    ``simlab.create``, timed from its start to its exit; its phases from its log.

    Nothing can start the engine for a first run sooner, so this process's total
    over its stepping is the floor of the ratio for a ``simlab run`` in a new
    terminal."""
    import simlab
    from simlab.config import RunConfig, apply_overrides, parse_value
    from simlab.engines.base import thread_environment

    sets = [arg.partition("=") for arg in RUN_ARGS if "=" in arg]
    config = apply_overrides(RunConfig(), {k: parse_value(v) for k, _, v in sets})
    made = simlab.create(config, root=root)
    threads = thread_environment(config.resources.cores)
    env = {**os.environ, **{k: v for k, v in threads.items() if v is not None}}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "simlab.engines.pm_main", str(made.path)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        check=True,
    )
    total = time.perf_counter() - started
    before_steps, last_step, finished = _engine_clock(done.stdout)
    # the engine's clock starts once its modules are imported: total - finished
    return {
        FIRST_STEP: total - finished + before_steps,
        STEPS: last_step - before_steps,
        AFTER_STEPS: finished - last_step,
        TOTAL: total,
    }


def _start_dispatcher(root: Path) -> None:
    """``simlab submit`` a short run and wait for it: the root's dispatcher, its
    local cluster and the engine's next process (started ahead) are then up."""
    from simlab.service.run import find_run

    env = {**os.environ, "DASK_SIMLAB__RUN_ROOT": str(root)}
    short = ("--set", "box.particles_per_side=16", "--set", "gravity.steps=4")
    done = subprocess.run(
        [sys.executable, "-m", "simlab.cli", "submit", *short],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    find_run(done.stdout.strip(), root).wait(timeout=300)
    time.sleep(3.0)  # the worker's next engine process loads


def run_path(rounds: int) -> list[dict]:
    """``rounds`` × the :data:`RUN_CASES` in a new run root each."""
    from simlab.dispatch import owner

    runs: dict[str, list] = {case: [] for case in RUN_CASES}
    load = _load()
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="simlab-bench-cold-") as folder:
            root = Path(folder) / "runs"
            root.mkdir()
            try:
                runs[COLD].append(simlab_run(root))
                runs[AGAIN].append(simlab_run(root))
                runs[ENGINE_ALONE].append(engine_alone(root))
                _start_dispatcher(root)
                runs[DISPATCHER_UP].append(simlab_run(root))
            except (
                RuntimeError,
                StopIteration,
                KeyError,
                OSError,
                subprocess.CalledProcessError,
            ) as exc:
                return [missing("simlab run", "simlab run phases", RUN_SIZE, str(exc))]
            finally:
                owner.stop(root)
    return [row for case in RUN_CASES for row in _phase_rows(case, runs[case], load)]


def run(quick: bool = False) -> list[dict]:
    """Python start, first open, first P(k) and the run path, cold and warm."""
    records = [python_start()]
    records += first_open()
    records += first_power(128 if quick else 256)
    records += run_path(1 if quick else 2)
    return records


def _find(records: list[dict], tool: str, operation: str) -> dict | None:
    """The timed record of ``tool`` doing ``operation``, if any."""
    return next(
        (
            r
            for r in records
            if r["tool"] == tool and r["operation"] == operation and r["min_s"]
        ),
        None,
    )


def _target(name: str, value: float, limit: float) -> dict:
    return {"target": name, "value": value, "limit": limit, "met": value <= limit}


def targets(records: list[dict]) -> list[dict]:
    """Issue 19's cold/warm goals that these records measure."""
    out = []
    # the first open call once its library is imported, as the issue measured it
    # (xr.open_dataset 290 ms; pynbody.load 13 ms after import pynbody)
    if opened := _find(records, "simlab.open_snapshot", OPEN_COLD):
        out.append(
            _target(
                "first open in a fresh process (the call, its imports done) ≤ 50 ms",
                opened["extra"]["call_s"] * 1e3,
                50,
            )
        )
    if opened := _find(records, "simlab.open_snapshot", OPEN_WARM):
        out.append(_target("warm open (cold bench) ≤ 5 ms", opened["min_s"] * 1e3, 5))
    for operation, limit in ((PK_COLD, 0.75), (PK_WARM, 0.4)):
        simlab = _find(records, "simlab (numba cache filled)", operation)
        pylians = _find(records, "Pylians MAS_library + Pk_library", operation)
        if simlab and pylians:
            word = "first" if operation == PK_COLD else "warm"
            out.append(
                _target(
                    f"{word} CIC + P(k) ({simlab['size']}) ≤ {limit} × Pylians' time",
                    simlab["min_s"] / pylians["min_s"],
                    limit,
                )
            )
    for label in RUN_CASES:
        operation = f"simlab run phases ({label})"
        total = _find(records, TOTAL, operation)
        if total:
            ratios = total["extra"]["total_over_steps"]
            what = (
                "the engine's process alone, the floor: start → exit"
                if label == ENGINE_ALONE
                else f"{label.split(':')[0]}: command → prompt"
            )
            out.append(
                _target(
                    f"simlab run 64^3/30 steps ({what}) ÷ stepping "
                    "(median of runs) ≤ 1.3",
                    statistics.median(ratios),
                    1.3,
                )
            )
    return out
