"""The run catalogue: a SQLite index of the run directories under one run root.

The run directories are the truth; the catalogue only makes listing, filtering and
counting fast. It can be rebuilt from them at any time (:meth:`Catalog.reindex`),
and only processes on the user's side write it; workers never touch it. WAL mode
and a busy timeout let several user-side processes write at once.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simlab.config import physics_hash
from simlab.runs.rundir import RunDir, private_root
from simlab.runs.states import State

CATALOG_FILE = ".simlab-catalog.sqlite"
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
    *TIME_COLUMNS,
    "status_mtime",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, engine TEXT, state TEXT, project TEXT,
    user TEXT, sweep TEXT, tags TEXT, path TEXT, fraction REAL, config_hash TEXT,
    {", ".join(f"{c} TEXT" for c in TIME_COLUMNS)}, status_mtime REAL
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
    no longer installed still gets listed.
    """
    status = rundir.status()
    config = json.loads(rundir.config_path.read_text())
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
        **{c: times.get(c) for c in TIME_COLUMNS if c != "updated"},
        "updated": status.get("updated"),
        "status_mtime": rundir.status_path.stat().st_mtime,
    }


class Catalog:
    """SQLite index of the runs under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = private_root(root)
        self.path = self.root / CATALOG_FILE
        with self._connect() as db:
            db.executescript(_SCHEMA)

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

    def refresh(self, rundirs: list[RunDir]) -> None:
        """Re-read these runs' directories into their rows, in one transaction."""
        if rundirs:
            self._write([_record(rundir) for rundir in rundirs])

    def _run_dirs(self) -> list[RunDir]:
        return [RunDir(p.parent) for p in self.root.glob("*/status.json")]

    def reindex(self) -> int:
        """Rebuild the whole catalogue from the run directories; return the count."""
        records = [_record(rundir) for rundir in self._run_dirs()]
        self._write(records, replace_all=True)
        return len(records)

    def sync(self) -> int:
        """Refresh rows whose status.json changed since indexed; return how many."""
        with self._connect() as db:
            known = dict(db.execute("SELECT id, status_mtime FROM runs").fetchall())
        changed = [
            _record(rundir)
            for rundir in self._run_dirs()
            if known.get(rundir.id) != rundir.status_path.stat().st_mtime
        ]
        if changed:
            self._write(changed)
        return len(changed)

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The row of one run, or None."""
        with self._connect() as db:
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
        if page < 1 or not 1 <= per_page <= 1000:
            raise ValueError(
                f"page={page}, per_page={per_page}: page must be ≥ 1 and "
                "per_page in [1, 1000]"
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
        with self._connect() as db:
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
        with self._connect() as db:
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
