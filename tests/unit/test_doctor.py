"""``simlab doctor`` finds executables by the rule runs use and says where from."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import dask.config
import pytest
from click.testing import CliRunner

from simlab.cli import main
from tests.conftest import data_path

STAND_IN = Path(__file__).parents[1] / "stand_ins" / "gadget4_test_double.py"


def _fake_gadget4(folder: Path, name: str = "gadget4_test_double") -> Path:
    """A runnable copy of the Gadget4 test double (prints a real build's options)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    shutil.copy(STAND_IN, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No SIMLAB_GADGET4, a run root in tmp, the stand-in's fixture found."""
    monkeypatch.delenv("SIMLAB_GADGET4", raising=False)
    monkeypatch.setenv(
        "SIMLAB_STAND_IN_FIXTURE", str(data_path("gadget4-small/ngenic32"))
    )
    with dask.config.set({"simlab.run-root": str(tmp_path / "runs")}):
        yield


def _doctor(*args: str) -> tuple[int, dict[str, str]]:
    """Exit code and the engine lines of ``simlab doctor``, by ``engine@profile``."""
    result = CliRunner().invoke(main, ["doctor", *args])
    lines = {}
    for line in result.output.splitlines():
        section, _, rest = line.partition(" ")
        if section == "engine":
            name, _, detail = rest.strip().partition(" ")
            lines[name] = detail.strip()
    return result.exit_code, lines


def test_profile_executable_wins_and_is_named(tmp_path, monkeypatch, clean_env):
    in_profile = _fake_gadget4(tmp_path / "profile-bin")
    in_env = _fake_gadget4(tmp_path / "env-bin")
    monkeypatch.setenv("SIMLAB_GADGET4", str(in_env))
    hpc = {"kind": "local", "executables": {"gadget4": str(in_profile)}}
    with dask.config.set({"simlab.clusters.hpc": hpc}):
        code, lines = _doctor("--cluster", "hpc")
        assert code == 0, lines
        assert set(lines) == {"pm@hpc", "gadget4@hpc", "concept@hpc"}
        gadget4 = lines["gadget4@hpc"]
        assert gadget4.startswith("ok ")
        assert f"executable {in_profile};" in gadget4
        assert "PMGRID=64" in gadget4  # the compile options the executable printed
        assert gadget4.endswith("[from executables.gadget4 of the cluster profile]")
        # without --cluster every profile is checked: `local` has no setting, so
        # the environment variable decides there
        code, lines = _doctor()
    assert code == 0
    assert {"gadget4@hpc", "gadget4@local"} <= set(lines)
    assert f"executable {in_env};" in lines["gadget4@local"]
    assert lines["gadget4@local"].endswith("[from SIMLAB_GADGET4]")


def test_executable_on_path(tmp_path, monkeypatch, clean_env):
    on_path = _fake_gadget4(tmp_path / "path-bin", name="Gadget4")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    code, lines = _doctor("--cluster", "local")
    assert code == 0
    assert f"executable {on_path};" in lines["gadget4@local"]
    assert lines["gadget4@local"].endswith("[from PATH]")


def test_a_profile_naming_nothing_is_a_missing_part(tmp_path, clean_env):
    gone = tmp_path / "nowhere" / "Gadget4"
    broken = {"kind": "local", "executables": {"gadget4": str(gone)}}
    with dask.config.set({"simlab.clusters.broken": broken}):
        code, lines = _doctor("--cluster", "broken")
    assert code == 1
    assert lines["gadget4@broken"] == (
        f"MISSING  executables.gadget4 of the cluster profile names {str(gone)!r}, "
        "which does not exist or is not executable"
    )
    assert lines["pm@broken"].startswith("ok ")


def test_unknown_cluster_is_a_usage_error(clean_env):
    result = CliRunner().invoke(main, ["doctor", "--cluster", "nope"])
    out = result.output
    assert result.exit_code == 2
    known = re.search(r"'nope' is not a cluster profile; known profiles: (.*)", out)
    assert known and "local" in known[1].split(", ")
    assert "--cluster" in result.output and "engine" not in result.output
