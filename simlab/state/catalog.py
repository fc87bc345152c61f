"""The run catalogue: a SQLite index of the run directories under one run root.

The run directories are the truth; the catalogue is a cache that makes listing,
filtering and counting fast, and is rebuilt from them whenever it cannot be used:
a run directory whose status.json cannot be read is listed as ``corrupt`` with the
reason (the others are unaffected), rows of deleted run directories go at the next
sync, and a catalogue file that SQLite cannot open (or one of an older layout) is
moved aside and rebuilt. Only processes on the user's side write it; workers never
touch it. WAL mode and a busy timeout let several user-side processes write at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simlab.config import physics_hash
from simlab.state.rundir import CorruptRunError, RunDir, private_root
from simlab.state.states import State

logger = logging.getLogger(__name__)

CATALOG_FILE = ".simlab-catalog.sqlite"
#: Largest page number a listing accepts.
MAX_PAGE = 1_000_000
#: Layout version of the catalogue (SQLite ``user_version``); another is rebuilt.
SCHEMA_VERSION = 2
#: Time columns a listing can be ordered by (prefix "-" for newest first).
TIME_COLUMNS = ("created", "queued", "running", "completed", "failed", "updated")
_COLUMNS = (
    "id",
    "name",
    "engine",
    "state",
    "project",
    "user",
    "sweep",
    "tags",
    "path",
    "fraction",
    "config_hash",
    "reason",
    *TIME_COLUMNS,
    "status_mtime",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, engine TEXT, state TEXT, project TEXT,
    user TEXT, sweep TEXT, tags TEXT, path TEXT, fraction REAL, config_hash TEXT,
    reason TEXT, {", ".join(f"{c} TEXT" for c in TIME_COLUMNS)}, status_mtime REAL
);
CREATE TABLE IF NOT EXISTS tags (run_id TEXT, tag TEXT, PRIMARY KEY (run_id, tag));
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE INDEX IF NOT EXISTS runs_engine ON runs (engine);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE INDEX IF NOT EXISTS tags_tag ON tags (tag);
"""


def _record(rundir: RunDir) -> dict[str, Any]:
    """The catalogue row of one run directory, read from its files.

    The config is read as plain JSON, not validated, so a run of an engine that is
    no longer installed still gets listed. A run whose files cannot be read gets a
    ``corrupt`` row that says why.
    """
    try:
        status = rundir.status()
        config = rundir.read_json("config.json")
        if not isinstance(config, dict):
            raise CorruptRunError(f"{rundir.config_path}: not a mapping")
    except CorruptRunError as exc:
        return _corrupt_record(rundir, str(exc))
    meta = config.get("metadata", {})
    times = status.get("times", {})
    return {
        "id": rundir.id,
        "name": meta.get("name"),
        "engine": config.get("code", {}).get("engine"),
        "state": status["state"],
        "project": meta.get("project"),
        "user": meta.get("user"),
        "sweep": meta.get("sweep"),
        "tags": json.dumps(meta.get("tags", [])),
        "path": str(rundir.path),
        "fraction": (status.get("progress") or {}).get("fraction"),
        "config_hash": physics_hash(config),
        "reason": status.get("reason"),
        **{c: times.get(c) for c in TIME_COLUMNS if c != "updated"},
        "updated": status.get("updated"),
        "status_mtime": _mtime(rundir),
    }


def _corrupt_record(rundir: RunDir, reason: str) -> dict[str, Any]:
    created = rundir.id.rsplit("-", 2)[-2] if rundir.id.count("-") >= 2 else None
    return {
        **dict.fromkeys(_COLUMNS),
        "id": rundir.id,
        "name": rundir.id,
        "state": State.CORRUPT.value,
        "tags": "[]",
        "path": str(rundir.path),
        "reason": reason,
        "created": created,
        "status_mtime": _mtime(rundir),
    }


def _mtime(rundir: RunDir) -> float | None:
    try:
        return rundir.status_path.stat().st_mtime
    except FileNotFoundError:
        return None


class Catalog:
    """SQLite index of the runs under ``root``, rebuilt when it cannot be used."""

    def __init__(self, root: str | Path) -> None:
        self.root = private_root(root)
        self.path = self.root / CATALOG_FILE
        self._open()

    def _open(self) -> None:
        """Create the tables; move a broken or outdated file aside and rebuild."""
        try:
            self._create_tables()
        except sqlite3.DatabaseError as exc:
            self._rebuild(exc)

    def _create_tables(self) -> None:
        """Make the tables in one transaction (concurrent openers see all or none);
        DatabaseError for a file of another layout."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                found = db.execute(
                    "SELECT name FROM sqlite_master WHERE name = 'runs'"
                ).fetchone()
                if found and version != SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"layout version {version}, expected {SCHEMA_VERSION}"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _rebuild(self, cause: Exception) -> None:
        """Move the catalogue file aside and index the run directories anew.

        One process at a time (a lock beside the file); one that waited finds the
        catalogue already rebuilt and leaves it as it is.
        """
        with open(self.root / f"{CATALOG_FILE}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    self._create_tables()
                    with self._connect() as db:
                        rows = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                except sqlite3.DatabaseError:
                    self._move_aside(cause)
                    self._create_tables()
                    rows = 0
                if rows == 0:  # new, or emptied: fill it from the run directories
                    records = [_record(r) for r in self._run_dirs()]
                    self._write(records, replace_all=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _move_aside(self, cause: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        logger.warning(
            "simlab: catalogue %s cannot be used (%s); rebuilding it from the run "
            "directories (the old file is kept as %s.broken-%s)",
            self.path,
            cause,
            self.path.name,
            stamp,
        )
        with contextlib.suppress(FileNotFoundError):
            os.replace(
                self.path, self.path.with_name(f"{self.path.name}.broken-{stamp}")
            )
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=60000")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """A connection; a catalogue found broken meanwhile is rebuilt first."""
        try:
            with self._connect() as db:
                db.execute("SELECT 1 FROM runs LIMIT 1")
        except sqlite3.DatabaseError as exc:
            self._rebuild(exc)
        with self._connect() as db:
            yield db

    def add(self, rundir: RunDir) -> None:
        """Insert or refresh the row of one run from its directory."""
        self._write([_record(rundir)])

    def _write(
        self, records: list[dict[str, Any]], *, replace_all: bool = False
    ) -> None:
        placeholders = ", ".join(f":{c}" for c in _COLUMNS)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if replace_all:
                    db.execute("DELETE FROM runs")
                    db.execute("DELETE FROM tags")
                db.executemany(
                    f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) "
                    f"VALUES ({placeholders})",
                    records,
                )
                for rec in records:
                    db.execute("DELETE FROM tags WHERE run_id = ?", (rec["id"],))
                    db.executemany(
                        "INSERT INTO tags VALUES (?, ?)",
                        [(rec["id"], t) for t in json.loads(rec["tags"])],
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def remove(self, run_id: str) -> None:
        """Drop the row of a run whose directory was moved away or deleted."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            db.execute("DELETE FROM tags WHERE run_id = ?", (run_id,))
            db.execute("COMMIT")

    def refresh(self, rundirs: list[RunDir]) -> None:
        """Re-read these runs' directories into their rows, in one transaction."""
        if rundirs:
            self._write([_record(rundir) for rundir in rundirs])

    def _run_dirs(self) -> list[RunDir]:
        return [RunDir(p.parent) for p in self.root.glob("*/status.json")]

    def reindex(self) -> int:
        """Rebuild the whole catalogue from the run directories; return the count."""
        try:
            records = [_record(rundir) for rundir in self._run_dirs()]
            self._write(records, replace_all=True)
        except sqlite3.DatabaseError as exc:
            self._rebuild(exc)
        return len(self._run_dirs())

    def sync(self) -> int:
        """Refresh rows whose status.json changed since indexed and drop rows whose
        run directory is gone; return how many rows changed."""
        with self._session() as db:
            known = dict(db.execute("SELECT id, status_mtime FROM runs").fetchall())
        present = self._run_dirs()
        changed = [
            _record(rundir)
            for rundir in present
            if known.get(rundir.id) != _mtime(rundir)
        ]
        gone = set(known) - {rundir.id for rundir in present}
        if changed:
            self._write(changed)
        if gone:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                for run_id in gone:
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    db.execute("DELETE FROM tags WHERE run_id = ?", (run_id,))
                db.execute("COMMIT")
        return len(changed) + len(gone)

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The row of one run, or None."""
        with self._session() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _row(row) if row else None

    def query(
        self,
        *,
        state: str | None = None,
        code: str | None = None,
        tag: str | None = None,
        project: str | None = None,
        sweep: str | None = None,
        text: str | None = None,
        order: str = "-created",
        page: int = 1,
        per_page: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of runs matching every filter given, and the total count.

        ``order`` is a time column (``created``, ``completed`` ...) or ``name``,
        prefixed with ``-`` for descending.
        """
        column = order.removeprefix("-")
        if column not in (*TIME_COLUMNS, "name", "state", "engine"):
            raise ValueError(
                f"order {order!r} is not allowed; use one of "
                f"{', '.join((*TIME_COLUMNS, 'name', 'state', 'engine'))} "
                "with an optional '-' prefix"
            )
        if state is not None:
            State(state)  # ValueError names the value
        if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= 1000:
            raise ValueError(
                f"page={page}, per_page={per_page}: page must be in [1, {MAX_PAGE}] "
                "and per_page in [1, 1000]"
            )
        where, args = [], []
        for col, value in (
            ("state", state),
            ("engine", code),
            ("project", project),
            ("sweep", sweep),
        ):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        if tag is not None:
            where.append("id IN (SELECT run_id FROM tags WHERE tag = ?)")
            args.append(tag)
        if text:
            where.append("name LIKE ? ESCAPE '\\'")
            args.append("%" + re.sub(r"([%_\\])", r"\\\1", text) + "%")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        direction = "DESC" if order.startswith("-") else "ASC"
        with self._session() as db:
            total = db.execute(f"SELECT COUNT(*) FROM runs {clause}", args).fetchone()[
                0
            ]
            rows = db.execute(
                f"SELECT * FROM runs {clause} ORDER BY {column} {direction}, id "
                f"LIMIT ? OFFSET ?",
                [*args, per_page, (page - 1) * per_page],
            ).fetchall()
        return [_row(r) for r in rows], total

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of runs per state and per engine."""
        with self._session() as db:
            by_state = dict(
                db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
            )
            by_engine = dict(
                db.execute(
                    "SELECT engine, COUNT(*) FROM runs GROUP BY engine"
                ).fetchall()
            )
        return {"state": by_state, "engine": by_engine}


def _row(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["tags"] = json.loads(record["tags"] or "[]")
    record.pop("status_mtime", None)
    return record
