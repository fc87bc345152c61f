#!/usr/bin/env python3
"""TEST DOUBLE for a container runtime (apptainer exec / podman run): NOT a runtime,
isolates nothing. It appends its argv as one JSON line to the file named by
``SIMLAB_STAND_IN_RUNTIME_LOG``, then runs the command that follows the image (the
first argument ending in ``.sif``) on the host, in the directory given by ``--pwd``
or ``--workdir``, so tests can check simlab's command lines and run a code "inside".
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    with open(os.environ["SIMLAB_STAND_IN_RUNTIME_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    image = next(i for i, arg in enumerate(argv) if arg.endswith(".sif"))
    for flag in ("--pwd", "--workdir"):
        if flag in argv[:image]:
            os.chdir(argv[argv.index(flag) + 1])
    command = argv[image + 1 :]
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
