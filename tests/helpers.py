"""Small waits and process checks shared by the tests that drive real runs."""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll ``predicate`` every 0.1 s until it is true; False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def alive(pid: int) -> bool:
    """Whether a process with this id exists (a zombie, dead but not yet reaped by
    its parent, does not count)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def install_gadget4_stand_in(folder: Path) -> Path:
    """Copy the Gadget4 stand-in (tests/stand_ins) to ``folder/bin`` as an
    executable and return its path; a copy must be told its fixture through
    ``SIMLAB_STAND_IN_FIXTURE``."""
    exe = folder / "bin" / "gadget4_test_double"
    exe.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).parent / "stand_ins" / "gadget4_test_double.py", exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe
