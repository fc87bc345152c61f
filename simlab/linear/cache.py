"""The folder where linear theory keeps what it computed, for later processes.

CAMB and CLASS transfer tables (:mod:`simlab.linear.boltzmann`) and the growth
tables (:mod:`simlab.linear.background`) are computed once per parameter set and
kept here, so sweep points, engine processes and other notebooks skip the work:
``$SIMLAB_LINEAR_CACHE`` if set (``off`` turns the files off), else
``$XDG_CACHE_HOME/simlab/linear`` or ``~/.cache/simlab/linear``. A folder that
cannot be written only costs the cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def cache_dir() -> Path | None:
    """Folder of the tables kept between processes, or None when off."""
    setting = os.environ.get("SIMLAB_LINEAR_CACHE")
    if setting is not None:
        if setting.strip().lower() in ("", "off", "0", "no"):
            return None
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simlab" / "linear"


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """``write`` the file's bytes to ``path`` whole or not at all (a temporary file
    renamed); a folder that cannot be written, or a full disk, only costs the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
