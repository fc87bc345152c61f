"""Command-line entry of the embedded PM engine: ``python -m simlab.engines.pm_main``.

A module of its own because ``simlab.engines.pm`` is imported by the engine
registry before runpy would run it as ``__main__``, which makes Python warn
("'simlab.engines.pm' found in sys.modules ...") at the top of every run's log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the simulation of RUNDIR: ``RUNDIR [--resume | --from-snapshot N]``."""
    from simlab.config import RunConfig
    from simlab.engines.pm import simulate

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
    return simulate(
        config, args.rundir, resume=args.resume, from_snapshot=args.from_snapshot
    )


if __name__ == "__main__":
    sys.exit(main())
