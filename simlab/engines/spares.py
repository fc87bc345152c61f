"""Code processes started ahead of their run, with the engine's modules loaded.

Starting the embedded engine costs more than a short run's first steps: a fresh
interpreter imports numpy, scipy and the compiled kernels and loads them from
numba's cache. An engine that offers ``spare_command(config)`` (an argv prefix
P of its ``command``) lets the task that runs a run keep one process per
environment started as ``P + ["--spare"]``: it loads what a run needs, then
waits for one line on its stdin, a JSON request ``{"argv": rest, "cwd": ...,
"env": {...}}``, and becomes the process of the run whose command is ``P +
rest`` (:func:`serve`). The process is in a session of its own, writes to the
pipe the task reads and ends like any run's process, so cancel, logs and exit
statuses are unchanged. A spare that is never used reads end-of-file when the
process that started it exits, and exits too.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

#: The flag that makes an engine's command a spare.
FLAG = "--spare"
#: Variables a spare takes from its request instead of its start: they are read
#: only once the run runs, never while the spare loads.
PER_RUN = frozenset({"SIMLAB_TIME_LIMIT"})
#: Spares kept at once, one per command and environment (e.g. per core count).
KEEP = 2

_waiting: OrderedDict[tuple, subprocess.Popen[str]] = OrderedDict()
_lock = threading.Lock()


def enabled() -> bool:
    """Whether spares are kept (setting ``simlab.dispatcher.spare-process``)."""
    from simlab import settings

    return bool(settings.get("dispatcher.spare-process"))


def _key(command: list[str], env: Mapping[str, str]) -> tuple:
    settled = sorted((k, v) for k, v in env.items() if k not in PER_RUN)
    return (tuple(command), tuple(settled))


def _popen(
    argv: list[str], env: Mapping[str, str], cwd: str | os.PathLike
) -> subprocess.Popen[str]:
    """A code's process as the task reads it: own session, output on one pipe."""
    return subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE if argv[-1] == FLAG else subprocess.DEVNULL,
        text=True,
        bufsize=1,
        start_new_session=True,
    )


def start(command: list[str], env: Mapping[str, str]) -> None:
    """Start a spare for ``command`` and ``env`` unless one is waiting."""
    key = _key(command, env)
    with _lock:
        if key in _waiting and _waiting[key].poll() is None:
            return
        clean = {k: v for k, v in env.items() if k not in PER_RUN}
        try:
            _waiting[key] = _popen([*command, FLAG], clean, os.getcwd())
        except OSError as exc:  # a spare is an optimisation: never fail a run
            logger.warning("could not start a spare %s: %s", command, exc)
            return
        _waiting.move_to_end(key)
        while len(_waiting) > KEEP:
            _, oldest = _waiting.popitem(last=False)
            _retire(oldest)


def _retire(proc: subprocess.Popen[str]) -> None:
    """End a spare nobody will take: close its stdin (it exits) and reap it."""
    with contextlib.suppress(OSError):
        proc.stdin.close()  # type: ignore[union-attr]
    threading.Thread(target=proc.wait, daemon=True).start()


@atexit.register
def _retire_all() -> None:
    """At exit, end the waiting spares (a killed process's spares read end of file
    all the same): a spare still loading gets two seconds."""
    with _lock:
        waiting = list(_waiting.values())
        _waiting.clear()
    for proc in waiting:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
    for proc in waiting:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2.0)


def popen(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str | os.PathLike,
    command: list[str] | None,
) -> tuple[subprocess.Popen[str], bool]:
    """The process of a run: a waiting spare of ``command`` given the run, else a
    new one; and whether it was a spare."""
    if command is not None and argv[: len(command)] == command:
        with _lock:
            spare = _waiting.pop(_key(command, env), None)
        if spare is not None and spare.poll() is None:
            request = {
                "argv": argv[len(command) :],
                "cwd": str(cwd),
                "env": {k: env[k] for k in PER_RUN if k in env},
            }
            try:
                spare.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
                spare.stdin.close()  # type: ignore[union-attr]
                return spare, True
            except OSError:  # it died since: start the run as usual
                _retire(spare)
    return _popen(argv, env, cwd), False


def serve(run: Callable[[list[str]], int], load: Callable[[], None]) -> int:
    """The spare's side: ``load()``, wait for the request, then ``run(argv)`` in
    the request's folder and environment; 0 without a request (end of file).

    Loading is only a head start: if it fails (a full /tmp, say), the run still
    runs, as it would in a fresh process, and its log says why it was not loaded.
    """
    try:
        load()
    except Exception as exc:  # never the run's failure: it has not started yet
        print(f"simlab: loading ahead failed ({exc!r}); running as usual", flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    request = json.loads(line)
    os.chdir(request["cwd"])
    os.environ.update(request["env"])
    return run(request["argv"])
