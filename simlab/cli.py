"""The ``simlab`` command line: validate, run and inspect simulations."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from simlab.config import RunConfig, apply_overrides, load_config
from simlab.errors import SimlabError


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs, values parsed as YAML (numbers, lists, booleans)."""
    overrides = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        overrides[key.strip()] = yaml.safe_load(raw)
    return overrides


def _config(path: str | None, sets: tuple[str, ...]) -> RunConfig:
    config = load_config(path) if path else RunConfig()
    return apply_overrides(config, _parse_set(sets)) if sets else config


class _Group(click.Group):
    """Turns simlab's own errors into a clean message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SimlabError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="simlab")
def main() -> None:
    """Configure, run and inspect cosmological N-body simulations."""


_set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="override a field, e.g. --set box.size=64 --set gravity.steps=20",
)


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_set_option
def validate(config: str | None, sets: tuple[str, ...]) -> None:
    """Check a YAML/JSON run configuration and print it with every default."""
    click.echo(_config(config, sets).to_yaml(), nl=False)


@main.command()
def schema() -> None:
    """Print the JSON schema of a run configuration."""
    click.echo(json.dumps(RunConfig.model_json_schema(), indent=1))


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_set_option
@click.option("--root", type=click.Path(file_okay=False), help="run root folder")
@click.option("--quiet", is_flag=True, help="no progress bar")
def run(
    config: str | None, sets: tuple[str, ...], root: str | None, quiet: bool
) -> None:
    """Create a run from CONFIG (or the defaults) and run it to the end."""
    from simlab.api import run as run_config

    finished = run_config(_config(config, sets), root=root, progress=not quiet)
    click.echo(f"run {finished.id} {finished.state.value}")
    click.echo(f"  directory: {finished.path}")
    for snapshot in finished.snapshots:
        click.echo(f"  snapshot:  {snapshot}")


@main.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="folder for the executed notebook, figures and runs",
)
@click.option(
    "-p",
    "--parameter",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="notebook parameter, e.g. -p particles=32",
)
def demo(output: str, params: tuple[str, ...]) -> None:
    """Run the quickstart notebook end to end on the embedded engine."""
    from simlab.templates import execute_notebook

    out = Path(output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"output_dir": str(out), **_parse_set(params)}
    executed = execute_notebook("quickstart", out / "quickstart.ipynb", parameters)
    figures = sorted(out.glob("*.png"))
    click.echo(f"executed notebook: {executed}")
    for figure in figures:
        click.echo(f"figure:            {figure}")
    for rundir in sorted((out / "runs").iterdir()):
        click.echo(f"run directory:     {rundir}")


@main.command(name="ls")
@click.option("--root", type=click.Path(file_okay=False), help="run root folder")
def list_runs(root: str | None) -> None:
    """List the runs under the run root with their state and progress."""
    from simlab.runs.run import Run
    from simlab.settings import run_root

    folder = Path(root) if root else run_root()
    paths = sorted(p for p in folder.glob("*/status.json")) if folder.exists() else []
    click.echo(f"{'RUN':48} {'STATE':12} {'ENGINE':8} PROGRESS")
    for status_file in paths:
        run = Run(status_file.parent)
        status = run.status
        fraction = (status.get("progress") or {}).get("fraction")
        done = "" if fraction is None else f"{100 * fraction:5.1f}%"
        click.echo(f"{run.id:48} {status['state']:12} {status['engine']:8} {done}")


if __name__ == "__main__":
    main()
