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
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from simlab.errors import StorageError
from simlab.io.gadget4_names import SNAPSHOT
from simlab.io.remote import EXAMPLES, filesystem, is_url
from simlab.service.publish import (
    RECORD,
    PublishError,
    check_run_id,
    finished_run,
    newest_first,
)
from simlab.service.run import Run, RunReader
from simlab.state.export import copy_run
from simlab.state.rundir import (
    CorruptRunError,
    checked_config,
    checked_status,
)

if TYPE_CHECKING:
    import xarray as xr

    from simlab.config import RunConfig


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
    try:
        return copy_run(handle.dir, publish_url(url), storage_options)
    except StorageError as exc:
        raise PublishError(str(exc)) from exc


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
    check_run_id(run_id)
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


class RemoteRun(RunReader):
    """A run published at a URL, read in place: configuration, status, snapshots
    (lazily, through the gadget4 backend) and P(k); never changed.

    Its files are known from the ``published.json`` record, so nothing is listed.
    ``storage_options`` stay in memory and go to every file this reads.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self._options = storage_options
        self.fs, root = filesystem(url, storage_options)
        self._root = root.rstrip("/")
        self.url = self.fs.unstrip_protocol(self._root)
        #: Who published the run, when, from where, and every file with its size.
        self.record = self._read_record()

    def __repr__(self) -> str:
        return f"<RemoteRun {self.id} {self.state.value} at {self.url}>"

    def _read_record(self) -> dict[str, Any]:
        """The run's published.json; PublishError naming the URL if there is none."""
        try:
            return dict(json.loads(self.fs.cat_file(f"{self._root}/{RECORD}")))
        except FileNotFoundError:
            raise PublishError(
                f"no run is published at {self.url}: it has no {RECORD} (a wrong "
                "URL, or a copy that did not finish)"
            ) from None
        except (OSError, ValueError) as exc:
            raise PublishError(f"cannot read {self.url}/{RECORD}: {exc}") from exc

    def _json(self, name: str) -> Any:
        """A JSON file of the published run; CorruptRunError names its URL."""
        try:
            return json.loads(self.fs.cat_file(f"{self._root}/{name}"))
        except (OSError, ValueError) as exc:
            raise CorruptRunError(f"{self.url}/{name}: cannot be read ({exc})") from exc

    @property
    def id(self) -> str:
        """The run id."""
        return str(self.record["id"])

    @property
    def owner(self) -> str:
        """The user who published the run."""
        return str(self.record["owner"])

    @cached_property
    def config(self) -> RunConfig:
        """The validated configuration the run was created with."""
        return checked_config(self._json("config.json"), f"{self.url}/config.json")

    @property
    def status(self) -> dict[str, Any]:
        """The status record as published (state, progress, times, error)."""
        return checked_status(self._json("status.json"), f"{self.url}/status.json")

    def _urls(self, names: Iterable[str]) -> list[str]:
        """URLs of files given relative to the run."""
        return [f"{self.url}/{name}" for name in names]

    @property
    def snapshots(self) -> list[str]:
        """URLs of the published snapshots, in time order (single files, or the
        first piece of a multi-file one)."""
        if self._backend != "gadget4":
            raise StorageError(
                f"{self.url}: {self.config.code.engine} snapshots are read from "
                "local run directories only (the gadget4 layout reads from URLs)"
            )
        files = self.record["files"]
        output = [n.removeprefix("output/") for n in files if n.startswith("output/")]
        return self._urls(f"output/{n}" for n in SNAPSHOT.among(output).values())

    def power_spectra(self) -> list[str]:
        """URLs of the P(k) files the code wrote, in time order (engines that
        name theirs by a pattern: the embedded PM engine's netCDF files)."""
        pattern = getattr(self.engine, "power_spectrum_glob", None)
        if pattern is None:
            return []
        return self._urls(
            sorted(n for n in self.record["files"] if PurePosixPath(n).match(pattern))
        )

    def _read_power_spectrum(self, path: Any) -> xr.DataArray:
        """One of :meth:`power_spectra`, read through an fsspec file object."""
        with self.fs.open(path, "rb") as handle:
            return super()._read_power_spectrum(handle)

    def _reading(self, storage_options: dict[str, Any] | None) -> dict[str, Any]:
        """The run's storage_options, updated by those of one call."""
        options = {**(self._options or {}), **(storage_options or {})}
        return {"storage_options": options or None}


def open_remote(url: str, storage_options: dict[str, Any] | None = None) -> RemoteRun:
    """The run published at ``url`` (``<publish url>/<run id>``), read in place;
    PublishError naming the URL if no run is published there."""
    return RemoteRun(url, storage_options)


def published_at(
    url: str | None = None, *, storage_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every run published at ``url`` (else simlab.publish-url): its record plus
    ``path``, its URL; newest first. Prefixes without a record (copies that did
    not finish) are skipped."""
    base = publish_url(url)
    fs, prefix = filesystem(base, storage_options)
    prefix = prefix.rstrip("/")
    try:
        entries = fs.ls(prefix, detail=True)
    except FileNotFoundError:
        raise PublishError(
            f"nothing is published at {fs.unstrip_protocol(prefix)}: no such "
            "bucket or prefix"
        ) from None
    except OSError as exc:
        raise PublishError(f"cannot list {base!r}: {exc}") from exc
    records = []
    for entry in entries:
        if entry["type"] != "directory":
            continue
        try:
            record = json.loads(fs.cat_file(f"{entry['name']}/{RECORD}"))
        except (OSError, ValueError):
            continue  # no record (an unfinished copy) or not a published run
        records.append({**record, "path": fs.unstrip_protocol(entry["name"])})
    return newest_first(records)
