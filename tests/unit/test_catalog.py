"""The SQLite run catalogue: filters, order, pages, counts, and reindex equality."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from simlab.config import RunConfig
from simlab.state.catalog import CATALOG_FILE, Catalog
from simlab.state.rundir import RunDir, write_json_atomic

STATES = ["created", "queued", "running", "completed", "failed", "cancelled"]


def fake_run(root, index: int, *, engine="pm", tags=(), project=None) -> RunDir:
    """A run directory with config and status but no inputs (fast to make)."""
    config = RunConfig(
        metadata={"name": f"run{index:04d}", "tags": list(tags), "project": project}
    )
    data = config.model_dump(mode="json")
    data["code"]["engine"] = engine
    clock = f"{index // 3600:02d}{index // 60 % 60:02d}{index % 60:02d}"
    run_id = f"run{index:04d}-20260101T{clock}-{index:06x}"
    path = root / run_id
    path.mkdir()
    write_json_atomic(path / "config.json", data)
    state = STATES[index % len(STATES)]
    stamp = f"2026-01-01T00:00:00.{index:03d}+00:00"
    write_json_atomic(
        path / "status.json",
        {
            "id": run_id,
            "state": state,
            "times": {"created": f"2026-01-01T{index:08d}"},
            "updated": stamp,
        },
    )
    (path / "events.jsonl").write_text("")
    return RunDir(path)


@pytest.fixture
def populated(tmp_path):
    for i in range(500):
        fake_run(
            tmp_path,
            i,
            engine=("pm", "gadget4", "concept")[i % 3],
            tags=["even"] if i % 2 == 0 else ["odd", "x_y"],
            project="alpha" if i < 100 else None,
        )
    catalog = Catalog(tmp_path)
    assert catalog.reindex() == 500
    return catalog


def test_filters_and_totals(populated):
    rows, total = populated.query(state="completed", per_page=1000)
    assert total == len(rows) == sum(1 for i in range(500) if i % 6 == 3)
    assert {r["state"] for r in rows} == {"completed"}
    _, total = populated.query(code="gadget4", tag="even")
    assert total == sum(1 for i in range(500) if i % 3 == 1 and i % 2 == 0)
    _, total = populated.query(project="alpha")
    assert total == 100
    rows, total = populated.query(text="run004")
    assert total == 10 and all("run004" in r["name"] for r in rows)
    # LIKE wildcards in the text are literal
    assert populated.query(text="%")[1] == 0
    assert populated.query(tag="x_y")[1] == 250


def test_order_and_pages_cover_everything_once(populated):
    seen = []
    for page in range(1, 12):
        rows, total = populated.query(order="-created", page=page, per_page=50)
        seen += [r["id"] for r in rows]
    assert total == 500
    assert len(seen) == len(set(seen)) == 500
    first, _ = populated.query(order="-created", per_page=3)
    assert [r["name"] for r in first] == ["run0499", "run0498", "run0497"]
    oldest, _ = populated.query(order="created", per_page=1)
    assert oldest[0]["name"] == "run0000"


def test_counts_by_state_and_engine(populated):
    counts = populated.counts()
    assert sum(counts["state"].values()) == 500
    assert counts["engine"] == {"pm": 167, "gadget4": 167, "concept": 166}


def test_bad_query_arguments_are_named(populated):
    with pytest.raises(ValueError, match="order 'size'"):
        populated.query(order="size")
    with pytest.raises(ValueError, match="'sleeping' is not a valid State"):
        populated.query(state="sleeping")
    with pytest.raises(ValueError, match="per_page"):
        populated.query(per_page=0)
    # an injection attempt is just text that matches nothing
    assert populated.query(text="'; DROP TABLE runs; --")[1] == 0
    assert populated.query()[1] == 500


def test_sync_picks_up_changed_runs(tmp_path):
    runs = [fake_run(tmp_path, i) for i in range(5)]
    catalog = Catalog(tmp_path)
    catalog.reindex()
    runs[0].transition("queued")
    assert catalog.sync() == 1
    assert catalog.get(runs[0].id)["state"] == "queued"
    assert catalog.sync() == 0
    assert catalog.get("nope") is None


def _writer(root: str, worker: int, count: int) -> None:
    catalog = Catalog(root)
    (path,) = Path(root).glob(f"run{worker:04d}-*")
    run = RunDir(path)
    for i in range(count):
        run.update(progress={"fraction": i / count})
        catalog.add(run)


@pytest.mark.slow
def test_concurrent_writers_lose_nothing_and_equal_reindex(tmp_path):
    """8 processes × 1000 status updates, each followed by a catalogue write."""
    for i in range(8):
        fake_run(tmp_path, i)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_writer, args=(str(tmp_path), w, 1000)) for w in range(8)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    catalog = Catalog(tmp_path)
    live = sorted(catalog.query(per_page=100)[0], key=lambda r: r["id"])
    assert [r["fraction"] for r in live] == [0.999] * 8
    catalog.reindex()
    rebuilt = sorted(catalog.query(per_page=100)[0], key=lambda r: r["id"])
    assert live == rebuilt
    with sqlite3.connect(catalog.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_truncated_status_marks_that_run_corrupt_and_nothing_else(tmp_path):
    runs = [fake_run(tmp_path, i) for i in range(4)]
    catalog = Catalog(tmp_path)
    catalog.reindex()
    text = runs[1].status_path.read_text()
    runs[1].status_path.write_text(text[: len(text) // 2])
    assert catalog.sync() == 1
    broken = catalog.get(runs[1].id)
    assert broken["state"] == "corrupt"
    assert "status.json: cannot be read" in broken["reason"]
    assert catalog.query(state="corrupt")[1] == 1
    assert {catalog.get(r.id)["state"] for r in (runs[0], runs[2], runs[3])} == {
        r.state.value for r in (runs[0], runs[2], runs[3])
    }
    assert catalog.reindex() == 4  # a rebuild goes through as well
    assert catalog.get(runs[1].id)["state"] == "corrupt"
    runs[1].status_path.write_text(text)  # repaired by hand: listed again
    catalog.sync()
    assert catalog.get(runs[1].id)["state"] == runs[1].state.value


def test_a_corrupt_catalogue_file_is_rebuilt_from_the_run_directories(tmp_path):
    runs = [fake_run(tmp_path, i) for i in range(6)]
    catalog = Catalog(tmp_path)
    catalog.reindex()
    catalog.path.write_bytes(b"this is not a SQLite database" * 200)
    for suffix in ("-wal", "-shm"):
        Path(f"{catalog.path}{suffix}").unlink(missing_ok=True)
    # the next use of the same object, and a new one, both work
    rows, total = catalog.query(per_page=100)
    assert total == 6 and {r["id"] for r in rows} == {r.id for r in runs}
    assert Catalog(tmp_path).query()[1] == 6
    kept = list(tmp_path.glob(".simlab-catalog.sqlite.broken-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not")
    assert Catalog(tmp_path).reindex() == 6


def test_an_outdated_catalogue_layout_is_rebuilt(tmp_path):
    runs = [fake_run(tmp_path, i) for i in range(3)]
    with sqlite3.connect(tmp_path / CATALOG_FILE) as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO runs VALUES ('stale', 'stale')")
    catalog = Catalog(tmp_path)
    assert {r["id"] for r in catalog.query()[0]} == {r.id for r in runs}


def test_rows_of_deleted_run_directories_go_at_the_next_sync(tmp_path):
    import shutil

    runs = [fake_run(tmp_path, i) for i in range(3)]
    catalog = Catalog(tmp_path)
    catalog.reindex()
    shutil.rmtree(runs[0].path)
    assert catalog.sync() == 1
    assert catalog.get(runs[0].id) is None
    assert catalog.query()[1] == 2
