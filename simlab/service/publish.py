"""The group space: finished runs published read-only for a research group.

A hub admin makes one shared folder, ``simlab.group-root`` in dask config, owned by
the group's POSIX group with mode ``3770`` (group-writable, setgid so entries keep
the group, sticky so nobody removes or renames another member's entries). A user
publishes a finished run into it; the copy belongs to the user, is read-only for
the group and records who published it::

    GROUP_ROOT/RUN_ID/
      published.json   owner, uid, time, source path, state, engine, name
      config.json  status.json  events.jsonl  log  results.json
      output/          snapshots and spectra (hard links when on the same filesystem)
      notebooks/       executed papermill notebooks

Folders are ``2750`` and files ``0440``: group members read, only the owner could
ever change them. A run is published complete or not at all (staged under a hidden
name, then renamed into place), and the private run root stays private.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.errors import SimlabError
from simlab.service.run import Run, find_run
from simlab.state.export import PUBLISHED_PARTS, RECORD, publication_record
from simlab.state.rundir import RUN_ID_RE, write_json_atomic

if TYPE_CHECKING:
    from simlab.service.publish_remote import RemoteRun

#: Parts whose files are hard-linked instead of copied (large, never rewritten).
LINKED_PARTS = ("output",)
#: Modes of published folders and files: group may read, nobody may write.
DIR_MODE = 0o2750
FILE_MODE = 0o440
#: The mode an admin gives the group root, for error messages.
ROOT_MODE = 0o3770


class PublishError(SimlabError, PermissionError):
    """Publishing is refused: no group space, a run not finished, or not yours."""


def group_root(path: str | Path | None = None) -> Path:
    """The configured group space (``simlab.group-root``); PublishError if unset."""
    from simlab import settings

    value = path if path is not None else settings.get("group-root")
    if not value:
        raise PublishError(
            "no group space configured: set simlab.group-root in dask config "
            "(the hub admin ships it in /etc/dask/simlab.yaml)"
        )
    return Path(value).expanduser()


def check_group_root(root: Path) -> grp.struct_group:
    """The group of ``root`` after checking it is a usable, safe group space.

    It must be a folder of a group the caller belongs to, group-writable, setgid
    and sticky; otherwise the message says what was found and the command to fix it.
    """
    try:
        info = root.stat()
    except FileNotFoundError:
        raise PublishError(
            f"group space {root} does not exist; an admin creates it with "
            f"`install -d -m {ROOT_MODE:o} -g GROUP {root}`"
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise PublishError(f"group space {root} is not a folder")
    group = grp.getgrgid(info.st_gid)
    if info.st_gid not in os.getgroups() and info.st_gid != os.getegid():
        user = pwd.getpwuid(os.geteuid()).pw_name
        raise PublishError(
            f"group space {root} belongs to group {group.gr_name!r}, "
            f"and user {user!r} is not a member of it"
        )
    needed = stat.S_IRWXG | stat.S_ISGID | stat.S_ISVTX
    if info.st_mode & needed != needed:
        raise PublishError(
            f"group space {root} has mode {stat.S_IMODE(info.st_mode):o}; it must be "
            f"group-writable, setgid and sticky: `chmod {ROOT_MODE:o} {root}`"
        )
    return group


def publish(
    run: str | Run,
    *,
    root: str | Path | None = None,
    group_space: str | Path | None = None,
) -> Path:
    """Publish a finished run (id or Run) into the group space; return its folder.

    Refuses a run that has not ended (naming its state) and a run id already
    published. Snapshot files are hard-linked when the group space is on the same
    filesystem as the run root, copied otherwise.
    """
    handle = finished_run(run, root)
    space = group_space_checked(group_space)
    target = space / handle.id
    if target.exists():
        owner = _owner(target)
        raise PublishError(f"run {handle.id} is already published by {owner}: {target}")
    group = grp.getgrgid(space.stat().st_gid)
    staged = Path(tempfile.mkdtemp(dir=space, prefix=f".{handle.id}."))
    try:
        for part in PUBLISHED_PARTS:
            source = handle.path / part
            if source.is_dir() and not source.is_symlink():
                _copy_tree(source, staged / part, link=part in LINKED_PARTS)
            elif source.is_file() and not source.is_symlink():
                shutil.copyfile(source, staged / part)
        write_json_atomic(
            staged / RECORD,
            {**publication_record(handle.dir), "group": group.gr_name},
        )
        _seal(staged, group.gr_gid)
        os.rename(staged, target)
    except BaseException:
        _unseal(staged)
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target


def finished_run(run: str | Run, root: str | Path | None = None) -> Run:
    """The run (id or Run) if it has ended; PublishError naming its state if not."""
    handle = run if isinstance(run, Run) else find_run(run, root)
    state = handle.state
    if not state.is_final:
        raise PublishError(
            f"run {handle.id} is {state.value}; only a finished run (completed, "
            "failed or cancelled) can be published"
        )
    return handle


def group_space_checked(path: str | Path | None = None) -> Path:
    """The configured group space, checked by :func:`check_group_root`."""
    space = group_root(path)
    check_group_root(space)
    return space


def _copy_tree(source: Path, target: Path, *, link: bool) -> None:
    """Copy a folder's regular files (hard links when ``link``); skip symlinks."""
    for folder, dirs, files in os.walk(source, followlinks=False):
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
        for name in files:
            src = Path(folder) / name
            if src.is_symlink() or not src.is_file():
                continue
            if link:
                try:
                    os.link(src, here / name)
                    continue
                except OSError:
                    pass  # another filesystem, or links not allowed: copy instead
            shutil.copyfile(src, here / name)


def _seal(folder: Path, gid: int) -> None:
    """Give the group read access and take write access from everybody."""
    for path in sorted(folder.rglob("*"), reverse=True):
        os.chown(path, -1, gid, follow_symlinks=False)
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
    os.chown(folder, -1, gid)
    os.chmod(folder, DIR_MODE)


def _unseal(folder: Path) -> None:
    """Make a folder the caller owns writable again, so it can be removed."""
    with contextlib.suppress(FileNotFoundError):
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o700)


def unpublish(run_id: str, *, group_space: str | Path | None = None) -> None:
    """Remove one of the caller's own published runs from the group space."""
    target = _published_path(run_id, group_space)
    if target.stat().st_uid != os.geteuid():
        raise PublishError(
            f"run {run_id} was published by {_owner(target)}; only they can remove it"
        )
    hidden = target.with_name(f".{run_id}.removing")
    os.rename(target, hidden)
    _unseal(hidden)
    shutil.rmtree(hidden)


def published(
    group_space: str | Path | None = None,
    *,
    url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every run in the group space, or with ``url`` on object storage there ("" for
    simlab.publish-url): its record plus ``path``, newest first."""
    if url is not None:
        from simlab.service.publish_remote import published_at

        return published_at(url or None, storage_options=storage_options)
    space = group_root(group_space)
    if not space.is_dir():
        raise PublishError(f"group space {space} does not exist")
    records = []
    for entry in sorted(space.iterdir()):
        record_path = entry / RECORD
        if entry.name.startswith(".") or not record_path.is_file():
            continue
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue  # unreadable or foreign entry: not a published run
        record["path"] = str(entry)
        records.append(record)
    return newest_first(records)


def newest_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Published-run records sorted by publication time, newest first."""
    return sorted(records, key=lambda r: r.get("published", ""), reverse=True)


class PublishedRun(Run):
    """A run in the group space: read it, open its snapshots; never change it."""

    @property
    def record(self) -> dict[str, Any]:
        """Who published the run, when, and from where."""
        return json.loads((self.path / RECORD).read_text())

    @property
    def owner(self) -> str:
        """The user who published the run."""
        return str(self.record["owner"])

    def _refuse(self, what: str) -> None:
        raise PublishError(
            f"run {self.id} is published by {self.owner} and read-only; "
            f"it cannot be {what} from the group space"
        )

    def cancel(self) -> None:
        """Refused: a published run has ended and belongs to its owner."""
        self._refuse("cancelled")

    def stop(self) -> None:
        """Refused: a published run has ended and belongs to its owner."""
        self._refuse("stopped")


def open_published(
    run_id: str,
    *,
    group_space: str | Path | None = None,
    url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> PublishedRun | RemoteRun:
    """A published run, to read and open its snapshots read-only: from the group
    space, or with ``url`` from object storage (``<url>/<run_id>``, as
    :func:`simlab.service.publish_remote.publish_to` put it there; "" for
    simlab.publish-url)."""
    if url is None:
        return PublishedRun(_published_path(run_id, group_space))
    from simlab.service.publish_remote import open_remote, publish_url

    check_run_id(run_id)
    base = publish_url(url or None).rstrip("/")
    return open_remote(f"{base}/{run_id}", storage_options)


def check_run_id(run_id: str) -> None:
    """PublishError unless ``run_id`` looks like a run id (never a path)."""
    if not RUN_ID_RE.match(run_id):
        raise PublishError(
            f"run id {run_id!r} is not valid: expected NAME-YYYYMMDDTHHMMSS-xxxxxx"
        )


def _published_path(run_id: str, group_space: str | Path | None) -> Path:
    check_run_id(run_id)
    space = group_root(group_space)
    target = space / run_id
    if not (target / RECORD).is_file():
        raise PublishError(f"run {run_id} is not published in {space}")
    return target


def _owner(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
