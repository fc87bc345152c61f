#!/usr/bin/env python3
"""TEST DOUBLE for the Gadget4 executable: NOT Gadget4, computes nothing.

It replays the stdout of a real Gadget4 run stored in tests/data, with the run's
wall time compressed, and copies that run's outputs (snapshots, group catalogues,
power spectra) into the OutputDir of the parameter file it is given, at the point of
the log where the real code wrote them. It honours the ``stop`` file (writes a fake
restart file and prints the real stop ending) and RestartFlag 1 (continues the
replay after the sync point it stopped at), so simlab's dispatch, progress parsing,
output discovery and restart chain can be tested end to end without the real code.

Usage, as Gadget4: ``gadget4_test_double.py PARAMFILE [RESTARTFLAG]``; bare, it prints
the banner and compile options and stops, as Gadget4 does.
Environment: ``SIMLAB_STAND_IN_FIXTURE`` (a real run folder; default the repository's
``tests/data/gadget4-small/ngenic32``, found from this script's place, so a copy of
the script elsewhere must set it), ``SIMLAB_STAND_IN_SPEEDUP``
(default 200: the 261 s run replays in about 1.3 s) and
``SIMLAB_STAND_IN_TIME_LIMIT_AT`` (a sync point where a fresh start stops as on
reaching TimeLimitCPU: restart files, ``cont`` file, the real ending) and
``SIMLAB_STAND_IN_RANKS`` (a folder where each rank writes ``rank-N.json``: its
host and the launcher's view of the job, nodes and ranks).

Started as several ranks (``srun``, ``mpirun``: the rank from ``SLURM_PROCID``,
``PMIX_RANK`` or ``OMPI_COMM_WORLD_RANK``), only rank 0 replays; the others record
themselves and exit, so the log and outputs are those of one run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

FIXTURE = Path(
    os.environ.get(
        "SIMLAB_STAND_IN_FIXTURE",
        Path(__file__).resolve().parents[1] / "data" / "gadget4-small" / "ngenic32",
    )
)
SPEEDUP = float(os.environ.get("SIMLAB_STAND_IN_SPEEDUP", "200"))
TIME_LIMIT_AT = int(os.environ.get("SIMLAB_STAND_IN_TIME_LIMIT_AT", "-1"))
SYNC = re.compile(r"^Sync-Point (\d+),")
SNAP = re.compile(r"^SNAPSHOT: writing snapshot file #(\d+) @")
MARKER = "written by gadget4_test_double (test double), sync point "


def _say(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def _param(path: Path, key: str) -> str:
    for raw in path.read_text().splitlines():
        parts = raw.split("%", 1)[0].split()
        if len(parts) == 2 and parts[0] == key:
            return parts[1]
    raise SystemExit(f"Error. I miss a value for tag '{key}' in parameter file")


def _copy_output(number: int, out: Path) -> None:
    src = FIXTURE / "output"
    for name in (f"snapdir_{number:03d}", f"groups_{number:03d}"):
        if (src / name).is_dir():
            shutil.copytree(src / name, out / name, dirs_exist_ok=True)
    for name in (f"snapshot_{number:03d}.hdf5", f"fof_subhalo_tab_{number:03d}.hdf5"):
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    spec = src / "powerspecs" / f"powerspec_{number:03d}.txt"
    if spec.is_file():
        (out / "powerspecs").mkdir(exist_ok=True)
        shutil.copy2(spec, out / "powerspecs" / spec.name)


def _stop(out: Path, step: int, time_limit: bool = False) -> int:
    """End as the real code does after a stop file or on its time limit."""
    restart = out / "restartfiles"
    restart.mkdir(exist_ok=True)
    (restart / "restart.0").write_text(f"{MARKER}{step}\n")
    if time_limit:
        (out / "cont").touch()
        ending = (FIXTURE.parent / "restart" / "stdout_restart.txt").read_text()
        _say(ending[ending.index("reaching time-limit") :])
    else:
        (out / "stop").unlink()
        ending = (FIXTURE.parent / "restart" / "stdout_stop.txt").read_text()
        _say(ending[ending.index("stop-file detected") :])
    return 0


#: Where launchers put a rank's number, in the order they are looked at.
RANK_VARIABLES = ("SLURM_PROCID", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
#: What a rank records of the launcher's view (Slurm's names for nodes and ranks).
VIEW = (
    "SLURM_JOB_ID",
    "SLURM_JOB_NODELIST",
    "SLURM_JOB_NUM_NODES",
    "SLURM_STEP_NODELIST",
    "SLURM_STEP_NUM_NODES",
    "SLURM_NTASKS",
    "SLURM_STEP_NUM_TASKS",
    "SLURMD_NODENAME",
)


def _rank() -> int:
    """This process's MPI rank as its launcher set it (0 when run alone)."""
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def _record_rank(rank: int) -> None:
    """Write ``rank-N.json`` to ``SIMLAB_STAND_IN_RANKS``, if that is set."""
    folder = os.environ.get("SIMLAB_STAND_IN_RANKS")
    if not folder:
        return
    view = {name: os.environ[name] for name in VIEW if name in os.environ}
    record = {"rank": rank, "host": socket.gethostname(), **view}
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"rank-{rank}.json").write_text(json.dumps(record) + "\n")


def main(argv: list[str]) -> int:
    rank = _rank()
    _record_rank(rank)
    if rank > 0:
        return 0
    lines = (FIXTURE / "stdout.txt").read_text().splitlines(keepends=True)
    header_end = next(i for i, s in enumerate(lines) if s.startswith("Running on"))
    if len(argv) < 2:
        _say("".join(lines[: header_end + 1]) + "\nParameters are missing.\n")
        return 0
    param = Path(argv[1])
    out = Path(_param(param, "OutputDir"))
    out.mkdir(parents=True, exist_ok=True)
    flag = int(argv[2]) if len(argv) > 2 else 0
    wall = float(
        re.search(r"wall_s=([0-9.]+)", (FIXTURE / "wall_time.txt").read_text())[1]
    )
    n_sync = sum(1 for s in lines if SYNC.match(s))
    pause = wall / max(n_sync, 1) / SPEEDUP
    resume_after = -1
    if flag == 1:
        text = (out / "restartfiles" / "restart.0").read_text()
        resume_after = int(text.rsplit(" ", 1)[1])
        _say("".join(lines[: header_end + 1]) + "RESTART: Loading restart files...\n")
    skipping = flag == 1
    for line in lines:
        match = SYNC.match(line)
        if match:
            step = int(match[1])
            if skipping and step <= resume_after:
                continue
            skipping = False
            if (out / "stop").exists():
                return _stop(out, step - 1)
            if flag == 0 and TIME_LIMIT_AT >= 0 and step == TIME_LIMIT_AT + 1:
                return _stop(out, step - 1, time_limit=True)
            time.sleep(pause)
        if skipping:
            continue
        _say(line)
        if snap := SNAP.match(line):
            _copy_output(int(snap[1]), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
