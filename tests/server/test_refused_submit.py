"""What a POST can refuse, it refuses with a 4xx naming the field, never a 500; and
no POST runs the executable it names (only the run does, when it starts).

A refused executable (missing, not executable) or a Config.sh build that cannot run
the configuration is known without running anything: 422 at once, nothing left
behind. Whether a named file is Gadget4, and what it was built with, only running it
tells: that is checked when the run starts, and a wrong build fails the run with
the diagnosis as its reason.
"""

from __future__ import annotations

import json
import os

import pytest

from simlab.config import echo
from simlab.service import submission
from tests.conftest import data_path

#: A stand-in that records who ran it, then answers as a program that is not Gadget4.
NOT_GADGET4 = """#!/bin/sh
echo "$PPID" >> {marker}
echo 'Error: parameter file cannot be read' >&2
exit 3
"""


def _config(executable, **options):
    return {
        "code": {
            "engine": "gadget4",
            "executable": str(executable),
            "options": options,
        },
        "box": {"particles_per_side": 8},
        "resources": {"cores": 1},
    }


def _not_gadget4(tmp_path):
    marker = tmp_path / "ran"
    fake = tmp_path / "not-gadget4"
    fake.write_text(NOT_GADGET4.format(marker=marker))
    fake.chmod(0o755)
    return fake, marker


def _nothing_made(root):
    return not [p for p in root.iterdir() if not p.name.startswith(".simlab")]


async def _post(jp_fetch, config, **params):
    return await jp_fetch(
        "simlab/api/runs", method="POST", body=json.dumps(config), params=params,
        raise_error=False, request_timeout=180,
    )  # fmt: skip


async def test_a_file_that_is_not_executable_is_a_422(jp_fetch, manager, tmp_path):
    # Given an "executable" that cannot be executed
    fake, _ = _not_gadget4(tmp_path)
    fake.chmod(0o644)
    # When it is submitted
    response = await _post(jp_fetch, _config(fake))
    # Then the answer is a 422 naming the field and what is wrong with it
    assert response.code == 422
    [error] = json.loads(response.body)["errors"]
    # (a long tmp path, as under pytest-xdist, is echoed cut short)
    assert error["loc"] == "code.executable" and error["value"] == echo(str(fake))
    assert "does not exist or is not executable" in error["msg"]
    assert _nothing_made(manager.root)


async def test_a_config_sh_build_that_cannot_run_it_is_a_422(jp_fetch, manager):
    # Given a Config.sh build without N-GenIC, for a run that asks N-GenIC for ICs
    plain = data_path("gadget4-small/icfile16/Config.sh")
    config = _config("/bin/true", config_sh=str(plain), ics="ngenic")
    # When it is submitted
    response = await _post(jp_fetch, config)
    # Then the build is refused at once (reading a file runs nothing), naming the
    # Config.sh lines to add, and no run directory is left behind
    assert response.code == 422
    [error] = json.loads(response.body)["errors"]
    assert error["loc"] == "code" and error["value"] == "gadget4"
    assert "add NGENIC=" in error["msg"] and "add CREATE_GRID" in error["msg"]
    assert _nothing_made(manager.root)


async def test_a_post_never_runs_the_named_executable(
    jp_fetch, manager, tmp_path, monkeypatch
):
    # Given an executable that leaves a marker whenever it is run, and a
    # dispatcher that only records what it is handed (so nothing else could run it)
    fake, marker = _not_gadget4(tmp_path)
    handed = []
    monkeypatch.setattr(submission, "warm_up", lambda plan, root: None)
    monkeypatch.setattr(submission, "hand_over", lambda run, **kw: handed.append(run))
    # When it is submitted
    response = await _post(jp_fetch, _config(fake))
    # Then the run is made and handed over, and the file was never run
    assert response.code == 201, response.body
    assert [run.id for run in handed] == [json.loads(response.body)["id"]]
    assert not marker.exists()
    assert not (handed[0].path / "inputs" / "param.txt").exists()  # written at start


@pytest.mark.slow
async def test_a_wrong_build_fails_the_run_with_the_diagnosis(
    jp_fetch, manager, tmp_path
):
    # Given an "executable" that prints an error instead of Gadget4's options
    fake, marker = _not_gadget4(tmp_path)
    # When it is submitted, and waited for
    response = await _post(jp_fetch, _config(fake), wait="true", timeout="120")
    # Then the POST was accepted and the run failed when it started, its reason
    # carrying the code's own words
    assert response.code == 201, response.body
    run = json.loads(response.body)
    assert run["state"] == "failed", run
    reason = run["reason"]
    assert "printed no compile options; is it Gadget4?" in reason
    assert "exit status 3" in reason and "parameter file cannot be read" in reason
    log = (manager.root / run["id"] / "log").read_text()
    assert "simlab: not started: " in log
    # it was run by the run's task, never by the server answering the POST
    runners = marker.read_text().split()
    assert runners and str(os.getpid()) not in runners
