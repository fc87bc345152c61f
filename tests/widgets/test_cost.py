"""The cost model against what the PM engine allocates and writes, and calibration."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from simlab.config import RunConfig
from simlab.service.cost import estimate, format_bytes, format_seconds
from simlab.service.submission import create
from simlab.state.catalog import Catalog

#: The memory estimate is within this factor of the measured peak (stated in docs).
MEMORY_FACTOR = 1.5
#: The engine's own entry point, traced from its first array on, in a fresh process.
_TRACE = """
import sys, tracemalloc
from simlab.engines.pm_main import main
tracemalloc.start()
status = main([sys.argv[1]])
print("peak", tracemalloc.get_traced_memory()[1], status)
"""


def _engine_peak(rundir) -> int:
    """Peak bytes the PM engine allocates running ``rundir``, as its process does."""
    done = subprocess.run(
        [sys.executable, "-c", _TRACE, str(rundir)],
        capture_output=True,
        text=True,
        check=True,
    )
    last = done.stdout.strip().splitlines()[-1].split()
    assert last[0] == "peak" and last[2] == "0", done.stdout
    return int(last[1])


@pytest.mark.parametrize(("n", "mesh"), [(32, 64), (64, 64)])
def test_memory_and_disk_match_a_real_pm_run(tmp_path, n, mesh):
    config = {
        "box": {"size": 64.0, "particles_per_side": n},
        "gravity": {"steps": 2, "mesh": mesh},
        "code": {"options": {"allow_coarse_mesh": mesh < 2 * n}},
    }
    run = create(config, root=tmp_path)
    peak = _engine_peak(run.path)
    est = estimate(run.config, catalog=False)
    assert 1 / MEMORY_FACTOR < est.memory_bytes / peak < MEMORY_FACTOR, (
        format_bytes(est.memory_bytes),
        format_bytes(peak),
    )
    written = sum(p.stat().st_size for p in run.dir.output.iterdir())
    assert est.disk_per_snapshot_bytes == pytest.approx(written, rel=0.1)


def test_memory_grows_with_particles_and_mesh():
    tiny, small, large = (
        estimate(RunConfig(box={"particles_per_side": n}), catalog=False)
        for n in (64, 128, 256)
    )
    # arrays scale with N (mesh = 2 N^(1/3)) above a fixed overhead: doubling the
    # side adds 8x what the previous doubling added
    added = large.memory_bytes - small.memory_bytes
    assert added / (small.memory_bytes - tiny.memory_bytes) == pytest.approx(8, 1e-6)
    assert large.seconds > small.seconds


def _completed_run(root, config, seconds: float, state: str = "completed"):
    run = create(config, root=root)
    run.dir.transition("queued")
    run.dir.transition("running")
    run.dir.transition(state)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = {**run.status["times"], "running": start.isoformat()}
    times[state] = (start + timedelta(seconds=seconds)).isoformat()
    run.dir.update(times=times)
    return run


CONFIG = {"box": {"particles_per_side": 16}, "gravity": {"steps": 10000}}


def test_calibration_moves_the_estimate_toward_measured_durations(tmp_path):
    config = RunConfig(**CONFIG)
    prior = estimate(config, catalog=False)
    assert prior.basis.startswith("prior")
    measured = 10 * prior.seconds
    catalog = Catalog(tmp_path)
    _completed_run(tmp_path, CONFIG, 1000 * measured, state="failed")  # ignored
    assert estimate(config, catalog).seconds == pytest.approx(prior.seconds)
    distances = []
    made = 0
    for count in (1, 3, 6):
        for _ in range(count - made):
            _completed_run(tmp_path, CONFIG, measured)
        made = count
        calibrated = estimate(config, catalog)
        assert calibrated.basis == f"calibrated on {count} completed pm run(s)"
        distances.append(abs(math.log(calibrated.seconds / measured)))
    assert distances[0] < abs(math.log(prior.seconds / measured))
    assert distances[0] > distances[1] > distances[2]
    assert calibrated.seconds > 0.6 * measured


def test_fast_past_runs_lower_the_estimate(tmp_path):
    config = RunConfig(**CONFIG)
    prior = estimate(config, catalog=False)
    for _ in range(3):
        _completed_run(tmp_path, CONFIG, prior.seconds / 5)
    assert estimate(config, Catalog(tmp_path)).seconds < 0.5 * prior.seconds


def test_human_formats():
    assert format_bytes(512) == "512 B"
    assert format_bytes(7_360_000) == "7.36 MB"
    assert format_seconds(45) == "45 s"
    assert format_seconds(600) == "10 min"
    assert format_seconds(7200) == "2.0 h"
