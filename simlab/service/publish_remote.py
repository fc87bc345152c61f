"""Publishing a finished run to object storage (S3, GCS, any fsspec URL): the same
parts the group space gets, copied under ``<url>/<run_id>/``, and a
``published.json`` record written last, so a run without it was not copied whole.

The URL comes from ``simlab publish RUN_ID --to URL`` or the ``simlab.publish-url``
setting. Credentials come from the environment or fsspec's own configuration
(``AWS_ACCESS_KEY_ID``, ``~/.aws/credentials``) or ``storage_options`` given at call
time; none is ever written, neither in the run directory nor in the record.
Published snapshots are read back with
``xr.open_dataset("s3://…/RUN_ID/output/snapshot_003.hdf5", engine="gadget4")``.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

from simlab.io.remote import EXAMPLES, filesystem, is_url
from simlab.service.publish import (
    PUBLISHED_PARTS,
    RECORD,
    PublishError,
    finished_run,
)
from simlab.service.run import Run
from simlab.state.rundir import RUN_ID_RE, now


def publish_url(url: str | None = None) -> str:
    """``url``, else the ``simlab.publish-url`` setting; PublishError if neither is
    an fsspec URL."""
    from simlab import settings

    value = url or settings.get("publish-url")
    if not value:
        raise PublishError(
            "no object storage configured: pass --to URL (such as "
            f"{EXAMPLES}) or set simlab.publish-url in dask config"
        )
    if not is_url(value):
        raise PublishError(
            f"{value!r} is not an object-storage URL; expected one such as "
            f"{EXAMPLES} (the group space needs no --to)"
        )
    return str(value)


def published_files(run_dir: Path) -> list[tuple[Path, str]]:
    """The run's files that are published, with their path relative to the run
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


def publish_to(
    run: str | Run,
    url: str | None = None,
    *,
    root: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Copy a finished run's published parts to ``<url>/<run_id>/``; return that URL.

    Refuses a run that has not ended and one already published there (its
    ``published.json`` exists); a copy left without the record by a failure is
    overwritten by the next attempt.
    """
    handle = finished_run(run, root)
    base = publish_url(url)
    fs, prefix = filesystem(base, storage_options)
    target = f"{prefix.rstrip('/')}/{handle.id}"
    where = fs.unstrip_protocol(target)
    if fs.exists(f"{target}/{RECORD}"):
        raise PublishError(f"run {handle.id} is already published at {where}")
    files = published_files(handle.path)
    try:
        for source, relative in files:
            _put(fs, source, f"{target}/{relative}")
        fs.pipe_file(f"{target}/{RECORD}", json.dumps(_record(handle, files)).encode())
    except (OSError, ValueError) as exc:
        raise PublishError(
            f"cannot publish run {handle.id} to {where}: {exc}; the bucket or "
            f"folder of {base!r} must exist and be writable with the credentials "
            "of the environment"
        ) from exc
    return where


def _put(fs: Any, source: Path, target: str) -> None:
    """Upload one file; a local folder (file://) gets its parents first."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        fs.makedirs(fs._parent(target), exist_ok=True)
    fs.put_file(str(source), target)


def _record(handle: Run, files: list[tuple[Path, str]]) -> dict[str, Any]:
    """Who published the run, when, from where, and what was copied."""
    status = handle.status
    user = pwd.getpwuid(os.geteuid())
    return {
        "id": handle.id,
        "owner": user.pw_name,
        "uid": user.pw_uid,
        "published": now(),
        "source": str(handle.path),
        "state": status["state"],
        "engine": status.get("engine"),
        "name": status.get("name"),
        "files": {relative: path.stat().st_size for path, relative in files},
    }


def unpublish_from(
    run_id: str,
    url: str | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Remove a run the caller published at ``<url>/<run_id>/``: the record first,
    so a removal cut short leaves no prefix that looks published.

    Refuses a run the record names another owner of; what the store lets the
    caller delete is still up to its own permissions.
    """
    if not RUN_ID_RE.match(run_id):
        raise PublishError(
            f"run id {run_id!r} is not valid: expected NAME-YYYYMMDDTHHMMSS-xxxxxx"
        )
    base = publish_url(url)
    fs, prefix = filesystem(base, storage_options)
    target = f"{prefix.rstrip('/')}/{run_id}"
    where = fs.unstrip_protocol(target)
    try:
        record = json.loads(fs.cat_file(f"{target}/{RECORD}"))
    except FileNotFoundError:
        raise PublishError(f"run {run_id} is not published at {where}") from None
    user = pwd.getpwuid(os.geteuid()).pw_name
    if record.get("owner") != user:
        raise PublishError(
            f"run {run_id} at {where} was published by {record.get('owner')}; "
            "only they can remove it"
        )
    fs.rm_file(f"{target}/{RECORD}")
    fs.rm(target, recursive=True)
