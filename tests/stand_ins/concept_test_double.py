#!/usr/bin/env python3
"""TEST DOUBLE for the ``concept`` script: it replays a real run, it simulates nothing.

It takes CONCEPT's command line (``-n N -p params.py --local [-c "name = value"]``
or ``--version``), reads ``output_dirs`` from the parameter file, then replays the
stdout of a real CONCEPT run from ``tests/data/concept-small`` line by line
(ANSI escapes included) and copies that run's output files into the output
folders at the moment the log names them. Standard library only, so it runs under
any ``python3``.

Environment:
    SIMLAB_CONCEPT_TEST_DOUBLE_FIXTURE   the concept-small folder (default: the
                                         repository's tests/data/concept-small)
    SIMLAB_CONCEPT_TEST_DOUBLE_SCENARIO  success (concept32, exit 0), warning (a
                                         warning run: exit 0 and a log_err) or
                                         abort (unreadable ICs: exit 1)
    SIMLAB_CONCEPT_TEST_DOUBLE_DELAY     seconds to pause at each time step (0.005)

A ``-c "a_begin = A"`` override (simlab's restart from a snapshot) skips the time
steps before A and the outputs already written, as a real restart would.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import types
from pathlib import Path

FIXTURE = Path(
    os.environ.get(
        "SIMLAB_CONCEPT_TEST_DOUBLE_FIXTURE",
        Path(__file__).resolve().parents[1] / "data" / "concept-small",
    )
)
SCENARIOS = {
    # stdout replayed, folder whose files are copied, exit status, log_err text
    "success": ("concept32/stdout.log", "concept32/output", 0, None),
    "warning": (
        "errors/warning_a_mismatch_stdout.log",
        None,
        0,
        "errors/warning_a_mismatch_log_err.txt",
    ),
    "abort": (
        "errors/abort_unrecognised_snapshot_stdout.log",
        None,
        1,
        "errors/abort_unrecognised_snapshot_log_err.txt",
    ),
}
#: Where the fixture logs say CONCEPT was installed (README: paths rewritten).
FIXTURE_HOME = "/home/user/concept"


def parse_args(argv: list[str]) -> tuple[Path, list[str]]:
    """The parameter file and the ``-c`` overrides; exits 2 on anything else."""
    params, extra, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-p", "-c", "-n") and i + 1 < len(argv):
            if arg == "-p":
                params = Path(argv[i + 1])
            elif arg == "-c":
                extra.append(argv[i + 1])
            i += 2
        elif arg == "--local":
            i += 1
        else:
            sys.exit(f"concept test double: unexpected argument {arg!r}")
    if params is None:
        sys.exit("concept test double: no -p parameter file given")
    return params, extra


def output_dirs(params: Path, extra: list[str]) -> dict[str, Path]:
    """``output_dirs`` of the parameter file, evaluated as CONCEPT would."""
    km, s, gyr = 1 / 3.0856775814913673e19, 1 / 3.15576e16, 1.0
    namespace = {
        "param": types.SimpleNamespace(dir=str(params.resolve().parent)),
        "Mpc": 1.0,
        "kpc": 1e-3,
        "km": km,
        "s": s,
        "Gyr": gyr,
    }
    exec(params.read_text(encoding="utf-8"), namespace)
    for line in extra:
        exec(line, namespace)
    return {kind: Path(folder) for kind, folder in namespace["output_dirs"].items()}


def a_begin(extra: list[str]) -> float:
    """The ``a_begin`` of a ``-c`` override, or 0 when the run starts afresh."""
    for line in extra:
        name, _, value = line.partition("=")
        if name.strip() == "a_begin":
            return float(value)
    return 0.0


def resumed(lines: list[bytes], start: float) -> list[bytes]:
    """The header, then the time steps from scale factor ``start`` on."""
    steps = [i for i, line in enumerate(lines) if b"Time step" in line]
    if not start or not steps:
        return lines
    for i in steps:
        block = b"".join(lines[i : i + 4])
        if b"Scale factor:" in block:
            a = float(block.split(b"Scale factor:")[1].split()[0])
            if a >= start * (1 - 1e-6):
                return lines[: steps[0]] + lines[i:]
    return lines[: steps[0]]


def copy_into(source: Path, folder: Path) -> None:
    """Copy a fixture file so that it appears complete (copy, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{source.name}.tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, folder / source.name)


def main(argv: list[str]) -> int:
    """Replay the scenario's stdout, copy its outputs, exit with its status."""
    if argv == ["--version"]:
        print("concept-test-double (replays tests/data/concept-small)")
        return 0
    params, extra = parse_args(argv)
    scenario = os.environ.get("SIMLAB_CONCEPT_TEST_DOUBLE_SCENARIO", "success")
    log, outputs, status, log_err = SCENARIOS[scenario]
    delay = float(os.environ.get("SIMLAB_CONCEPT_TEST_DOUBLE_DELAY", "0.005"))
    dirs = output_dirs(params, extra)
    home = params.resolve().parent.parent / "concept_home"
    if log_err is not None:
        job = FIXTURE / log
        text = job.read_text(encoding="utf-8")
        job_id = text.split("Job ID:")[1].split()[0]
        job_dir = home / "job" / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURE / log_err, job_dir / "log_err")
    start = a_begin(extra)
    pending = {}
    if outputs is not None:
        for path in sorted((FIXTURE / outputs).iterdir()):
            kind = "snapshot" if path.name.startswith("snapshot") else "powerspec"
            a = float(re.search(r"a=([0-9]+\.[0-9]+)", path.name)[1])
            if kind in dirs and a > start * (1 + 1e-6):
                pending[path.name] = (path, dirs[kind])
    out = sys.stdout.buffer
    with open(FIXTURE / log, "rb") as replay:
        for raw in resumed(replay.readlines(), start):
            line = raw.replace(FIXTURE_HOME.encode(), str(home).encode())
            out.write(line)
            out.flush()
            text = line.decode("utf-8", errors="replace")
            for name in [n for n in pending if n in text]:
                copy_into(*pending.pop(name))
            if "Time step" in text:
                time.sleep(delay)
    for source, folder in pending.values():
        copy_into(source, folder)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
