"""One ETA: ``simlab status``, the REST run model and the monitor widget agree.

Gadget4 and CONCEPT logs carry no elapsed time, so their ETA is measured from the
wall time the task stamps on each progress report. The stand-ins (tests/stand_ins)
replay real logs; the code is paused (SIGSTOP) once two reports exist, so the
status no longer moves, and the clock of ``service.eta`` is held, so the three
views are asked the same question at the same instant.
"""

from __future__ import annotations

import json
import os
import signal
import time
import types

import dask.config
import pytest
from click.testing import CliRunner

import simlab
from simlab.cli import main
from simlab.service import eta
from simlab.service.cost import format_seconds
from simlab.service.submission import create
from simlab.widgets.monitor import RunMonitor
from tests.conftest import data_path
from tests.helpers import install_gadget4_stand_in, wait_for

pytestmark = pytest.mark.slow


def _hold_clock(monkeypatch, at: float) -> None:
    """``service.eta`` reads the wall clock as ``at`` from now on."""
    clock = types.SimpleNamespace(time=lambda: at, monotonic=time.monotonic)
    monkeypatch.setattr(eta, "time", clock)


def _settled(run) -> dict:
    """The status once two reads 1 s apart (two status intervals) agree."""
    last = None
    while (status := run.status) != last:
        last = status
        time.sleep(1.0)
    return status


async def _three_views(jp_fetch, run) -> tuple[dict, str, str]:
    """The REST model (the same in the listing), the `simlab status` output and
    the widget's timing text."""
    model = json.loads((await jp_fetch("simlab/api/runs", run.id)).body)
    listed = json.loads((await jp_fetch("simlab/api/runs")).body)["runs"]
    row = next(r for r in listed if r["id"] == run.id)  # the sidebar's listing
    assert (row["eta"], row["eta_source"]) == (model["eta"], model["eta_source"])
    cli = CliRunner().invoke(main, ["status", run.id, "--root", str(run.path.parent)])
    assert cli.exit_code == 0, cli.output
    widget = RunMonitor(run, autostart=False).timing.value
    return model, cli.output, widget


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """Submit a Gadget4 or CONCEPT stand-in run slowed to last ~10 s."""
    from tests.engines.test_concept import FIXTURE_RUN
    from tests.engines.test_gadget4 import ngenic32_config, with_code

    def submit(engine: str, root):
        if engine == "gadget4":
            exe = install_gadget4_stand_in(tmp_path)
            fixture = data_path("gadget4-small/ngenic32")
            monkeypatch.setenv("SIMLAB_STAND_IN_FIXTURE", str(fixture))
            monkeypatch.setenv("SIMLAB_STAND_IN_SPEEDUP", "20")  # 261 s in 13 s
            profile = {
                "kind": "local",
                "launcher": "",
                "executables": {engine: str(exe)},
            }
            config = with_code(ngenic32_config(), ("config_sh",))
            with dask.config.set({"simlab.clusters.g4eta": profile}):
                return simlab.submit(config, cluster="g4eta", root=root)
        monkeypatch.setenv("SIMLAB_CONCEPT_TEST_DOUBLE_DELAY", "0.07")  # 143 steps
        return simlab.submit(FIXTURE_RUN, root=root)

    return submit


@pytest.mark.parametrize("engine", ["gadget4", "concept"])
async def test_a_measured_eta_is_the_same_in_cli_rest_and_widget(
    jp_fetch, manager, monkeypatch, stand_in, engine
):
    run = stand_in(engine, manager.root)
    measured = lambda: run.state.value == "running" and eta.rate(run.status)  # noqa: E731
    assert await _wait(measured, 120), run.status
    job = run.status["job_pid"]
    os.killpg(job, signal.SIGSTOP)
    try:
        status = await _settled_async(run)
        assert status["state"] == "running", status
        first, last = status["progress_start"], status["progress"]
        assert not last.get("elapsed")  # the log says nothing of elapsed time
        at = last["time"] + 0.5
        _hold_clock(monkeypatch, at)
        # from the wall time and the progress alone
        per_second = (last["fraction"] - first["fraction"]) / (
            last["time"] - first["time"]
        )
        expected = (1 - last["fraction"]) / per_second - 0.5
        model, cli, widget = await _three_views(jp_fetch, run)
    finally:
        os.killpg(job, signal.SIGCONT)
    assert model["eta_source"] == "progress"
    assert model["eta"] == pytest.approx(expected, rel=1e-9)
    assert model["eta"] == eta.remaining(status, None, now=at).seconds
    assert model["eta"] > 1.0
    assert f"eta:      {model['eta']:.0f} s left (measured)" in cli
    assert f"ETA {format_seconds(model['eta'])}" in widget
    assert "cost model" not in widget
    run.cancel()
    assert await _wait(lambda: run.state.is_final, 60), run.status


async def test_before_any_progress_all_three_fall_back_to_the_cost_model(
    jp_fetch, manager
):
    run = create(
        {"box": {"size": 64.0, "particles_per_side": 16}, "gravity": {"steps": 50}},
        root=manager.root,
    )
    model, cli, widget = await _three_views(jp_fetch, run)
    assert model["state"] == "created" and model["eta_source"] == "model"
    assert (
        model["eta"] == eta.remaining(run.status, run.config, run.path.parent).seconds
    )
    assert f"eta:      {model['eta']:.0f} s left (cost model)" in cli
    assert f"ETA ≈ {format_seconds(model['eta'])} (cost model)" in widget


async def _wait(predicate, timeout: float) -> bool:
    import asyncio

    return await asyncio.to_thread(wait_for, predicate, timeout)


async def _settled_async(run) -> dict:
    import asyncio

    return await asyncio.to_thread(_settled, run)
