"""Small waits and process checks shared by the tests that drive real runs."""

from __future__ import annotations

import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: The ``simlab`` command as the tests start it, in a process of its own.
SIMLAB = [sys.executable, "-m", "simlab.cli"]
#: ``--set`` arguments of a run done in about a second, and of one that runs until
#: it is cancelled or killed.
SMALL_RUN = [
    "--set", "box.particles_per_side=16", "--set", "box.size=64",
    "--set", "gravity.steps=8",
]  # fmt: skip
LONG_RUN = [
    "--set", "box.particles_per_side=32", "--set", "box.size=128",
    "--set", "gravity.steps=2000",
]  # fmt: skip


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


def assert_runs_agree(root: Path, rest: list[dict] | None = None) -> None:
    """After a fault: every run under ``root`` is final, with a reason unless it
    completed, its log is kept, and ``simlab ls`` (its table and ``--json``), the
    catalogue and the REST view of the runs say what the run directories say
    (state and reason).

    ``rest`` is the ``runs`` of a real server's ``GET runs``; without a server, the
    rows come from ``SimlabManager.list_runs``, the call the runs handler answers
    with, on this root.
    """
    import json

    from click.testing import CliRunner

    from simlab.cli import main
    from simlab.server.manager import SimlabManager
    from simlab.service.run import Run
    from simlab.state.catalog import Catalog

    cli = CliRunner()
    table = cli.invoke(main, ["ls", "--root", str(root), "--limit", "500"])
    assert table.exit_code == 0, table.output
    listing = cli.invoke(main, ["ls", "--root", str(root), "--limit", "500", "--json"])
    assert listing.exit_code == 0, listing.output
    catalog = Catalog(root)
    catalog.sync()
    views = {
        "simlab ls --json": json.loads(listing.output)["runs"],
        "catalogue": catalog.query(per_page=1000)[0],
        "REST": SimlabManager(root).list_runs(per_page=1000)["runs"]
        if rest is None
        else rest,
    }
    folders = {p.parent.name: Run(p.parent) for p in root.glob("*/status.json")}
    assert folders, f"no runs under {root}"
    truth = {}
    for run_id, run in folders.items():
        status = run.status
        state, reason = status["state"], status.get("reason")
        assert run.state.is_final, (run_id, status)
        assert reason or state == "completed", (run_id, status)
        assert run.dir.log_path.exists(), run_id
        truth[run_id] = (state, reason)
        line = next(ln for ln in table.output.splitlines() if ln.startswith(run_id))
        assert line.split()[1] == state, line
    for name, rows in views.items():
        seen = {row["id"]: (row["state"], row.get("reason")) for row in rows}
        assert seen == truth, f"{name} disagrees with the run directories"
