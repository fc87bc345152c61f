"""The ``simlab`` command: validate, schema, run, ls and clean errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from simlab.cli import main


@pytest.fixture
def cli():
    return CliRunner()


def test_validate_prints_defaults_and_overrides(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("box:\n  size: 64\n")
    result = cli.invoke(main, ["validate", str(config), "--set", "gravity.steps=12"])
    assert result.exit_code == 0, result.output
    assert "size: 64.0" in result.output
    assert "steps: 12" in result.output
    assert "Omega0: 0.3111" in result.output


def test_invalid_config_exits_2_naming_the_field(cli, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("cosmology:\n  Omega0: 5\nbox:\n  particles_per_side: 0\n")
    result = cli.invoke(main, ["validate", str(config)])
    assert result.exit_code == 2
    assert "cosmology.Omega0 = 5" in result.output
    assert "box.particles_per_side = 0" in result.output
    assert "Traceback" not in result.output


def test_schema_is_json(cli):
    result = cli.invoke(main, ["schema"])
    assert json.loads(result.output)["title"] == "RunConfig"


@pytest.mark.slow
def test_run_then_ls(cli, tmp_path):
    result = cli.invoke(
        main,
        [
            "run",
            "--root",
            str(tmp_path),
            "--quiet",
            "--set",
            "box.particles_per_side=16",
            "--set",
            "box.size=64",
            "--set",
            "gravity.steps=5",
            "--set",
            "metadata.name=clirun",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "completed" in result.output
    assert "snapshot_000.hdf5" in result.output
    listing = cli.invoke(main, ["ls", "--root", str(tmp_path)])
    assert listing.exit_code == 0
    row = [line for line in listing.output.splitlines() if line.startswith("clirun-")]
    assert len(row) == 1
    assert "completed" in row[0] and "100.0%" in row[0]


def test_gadget4_config_writes_the_build_a_run_needs(cli, tmp_path):
    target = tmp_path / "Config.sh"
    result = cli.invoke(
        main,
        ["gadget4", "config", "--set", "box.particles_per_side=32", "-o", str(target)],
    )
    assert result.exit_code == 0, result.output
    lines = target.read_text().splitlines()
    assert "PMGRID=64" in lines and "PERIODIC" in lines
    with_fof = cli.invoke(main, ["gadget4", "config", "--set", "code.options.fof=true"])
    assert with_fof.exit_code == 0, with_fof.output
    assert "FOF" in with_fof.output.splitlines()


def test_status_and_ls_show_a_failed_runs_reason_and_evidence(cli, tmp_path):
    from simlab.dispatch.task import execute
    from simlab.service.submission import create

    run = create({"box": {"particles_per_side": 8}}, root=tmp_path)
    (run.dir.inputs / "ics.hdf5").write_bytes(b"garbage")  # the engine cannot read it
    run.dir.transition("queued")
    assert execute(run.path) == "failed"
    reason = run.status["reason"]
    shown = cli.invoke(main, ["status", run.id, "--root", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert f"reason:   {reason}" in shown.output
    evidence = run.status["diagnosis"]["lines"]
    assert evidence and all(f"  | {line}" in shown.output for line in evidence)
    cli.invoke(main, ["reindex", "--root", str(tmp_path)])
    listing = cli.invoke(main, ["ls", "--root", str(tmp_path)])
    lines = listing.output.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(run.id))
    assert lines[row + 1] == f"    {reason}"
