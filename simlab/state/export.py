"""A run's shareable parts and their copy to object storage.

``simlab publish --to URL`` copies one finished run this way, and a cluster
profile's ``artifacts`` URL copies every run that ends on it. The parts, the
``published.json`` record and the copy live here, below the service and dispatch
layers, so that both use the same ones. The record is written last: a prefix
without it is a copy that did not finish.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

from simlab.errors import StorageError
from simlab.state.rundir import RunDir, now

#: Parts of a run directory that are shared; inputs/ (ICs) stays private.
PUBLISHED_PARTS = (
    "config.json",
    "status.json",
    "events.jsonl",
    "log",
    "results.json",
    "output",
    "notebooks",
)
#: The record of a published run, beside its parts.
RECORD = "published.json"


def publication_record(rundir: RunDir) -> dict[str, Any]:
    """Who publishes the run, when, from where, and what it is."""
    status = rundir.status()
    user = pwd.getpwuid(os.geteuid())
    return {
        "id": rundir.id,
        "owner": user.pw_name,
        "uid": user.pw_uid,
        "published": now(),
        "source": str(rundir.path),
        "state": status["state"],
        "engine": status.get("engine"),
        "name": status.get("name"),
    }


def shared_files(run_dir: Path) -> list[tuple[Path, str]]:
    """The run's files that are shared, with their path relative to the run
    (regular files of PUBLISHED_PARTS; symlinks and private inputs stay behind)."""
    found = []
    for part in PUBLISHED_PARTS:
        source = run_dir / part
        if source.is_symlink():
            continue
        if source.is_file():
            found.append((source, part))
        elif source.is_dir():
            for folder, dirs, files in os.walk(source, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not Path(folder, d).is_symlink())
                for name in sorted(files):
                    path = Path(folder, name)
                    if path.is_file() and not path.is_symlink():
                        found.append((path, path.relative_to(run_dir).as_posix()))
    return found


def copy_run(
    rundir: RunDir,
    url: str,
    storage_options: dict[str, Any] | None = None,
    *,
    replace: bool = False,
) -> str:
    """Copy the run's shared parts to ``<url>/<run_id>/``, its record last; return
    that URL. StorageError if the copy fails, or if a run of this id is already
    there (its record exists) unless ``replace``: then its record goes first, so a
    copy cut short is never taken for a whole one. A copy left without the record
    is overwritten next time."""
    from simlab.io.remote import filesystem

    fs, prefix = filesystem(url, storage_options)
    target = f"{prefix.rstrip('/')}/{rundir.id}"
    where = fs.unstrip_protocol(target)
    if fs.exists(f"{target}/{RECORD}"):
        if not replace:
            raise StorageError(f"run {rundir.id} is already published at {where}")
        fs.rm_file(f"{target}/{RECORD}")
    files = shared_files(rundir.path)
    record = {
        **publication_record(rundir),
        "files": {relative: path.stat().st_size for path, relative in files},
    }
    try:
        for source, relative in files:
            _put(fs, source, f"{target}/{relative}")
        fs.pipe_file(f"{target}/{RECORD}", json.dumps(record).encode())
    except (OSError, ValueError) as exc:
        raise StorageError(
            f"cannot copy run {rundir.id} to {where}: {exc}; the bucket or folder "
            f"of {url!r} must exist and be writable with the credentials of the "
            "environment"
        ) from exc
    return str(where)


def _put(fs: Any, source: Path, target: str) -> None:
    """Upload one file; a local folder (file://) gets its parents first."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        fs.makedirs(fs._parent(target), exist_ok=True)
    fs.put_file(str(source), target)
