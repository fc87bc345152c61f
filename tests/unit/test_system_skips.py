"""A missing system part skips with one line saying how to enable it (fails in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import conftest, slurm_cluster
from tests.browser import conftest as browser_conftest
from tests.hub import hubsetup


@pytest.mark.parametrize(
    ("what", "install"),
    [
        ("Slurm", slurm_cluster.INSTALL),
        ("Chromium with Playwright", browser_conftest.INSTALL),
        ("JupyterHub with system users", hubsetup.INSTALL),
    ],
)
def test_skip_message_is_one_line_with_the_install_command(monkeypatch, what, install):
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception) as info:
        conftest._needs("not installed:\n  x", what, install)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{what} unavailable (not installed: x)")
    assert f"`{install}`" in message and "`.ci/run` as root" in message


def test_install_commands_are_what_ci_run_installs():
    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    packages = script.split('packages="', 1)[1].split('"', 1)[0].split()
    for command in (slurm_cluster.INSTALL, browser_conftest.INSTALL):
        assert command.startswith("apt-get install ")
        assert set(command.split()[2:]) <= set(packages), command
    # the npm line, without its options (--silent)
    commands = [
        " ".join(w for w in line.split() if not w.startswith("--"))
        for line in script.splitlines()
    ]
    assert hubsetup.INSTALL in commands


def test_missing_system_part_fails_under_ci(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="Slurm unavailable"):
        conftest._needs("needs root", "Slurm", slurm_cluster.INSTALL)
    conftest._needs(None, "Slurm", slurm_cluster.INSTALL)  # available: nothing
