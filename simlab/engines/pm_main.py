"""Command-line entry of the embedded PM engine: ``python -m simlab.engines.pm_main``.

A module of its own because ``simlab.engines.pm`` is imported by the engine
registry before runpy would run it as ``__main__``, which makes Python warn
("'simlab.engines.pm' found in sys.modules ...") at the top of every run's log.
With ``--spare`` it loads the engine and waits for its run on stdin
(:mod:`simlab.engines.spares`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the simulation of RUNDIR: ``RUNDIR [--resume | --from-snapshot N]``."""
    from simlab.config import RunConfig
    from simlab.engines.pm import simulate
    from simlab.errors import EngineError

    parser = argparse.ArgumentParser(
        prog="python -m simlab.engines.pm_main",
        description="Run the embedded PM engine on a prepared run directory.",
    )
    parser.add_argument("rundir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--from-snapshot", type=int, default=None)
    args = parser.parse_args(argv)
    config = RunConfig.model_validate(
        json.loads((args.rundir / "config.json").read_text())
    )
    try:
        return simulate(
            config, args.rundir, resume=args.resume, from_snapshot=args.from_snapshot
        )
    except EngineError as exc:  # the run's inputs: say what, not a traceback
        print(exc, file=sys.stderr, flush=True)
        return 1


def entry(argv: list[str]) -> int:
    """``main``, or with ``--spare`` the same after loading ahead of the run."""
    if argv == ["--spare"]:
        from simlab.engines.pm import load_ahead
        from simlab.engines.spares import serve

        return serve(main, load_ahead)
    return main(argv)


if __name__ == "__main__":
    status = entry(sys.argv[1:])
    # every file of the run is closed: flush the output and skip the interpreter's
    # teardown of numpy, scipy and numba's threads (a third of a second)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
