"""The ``simlab`` command line: validate, run and inspect simulations."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from simlab.config import RunConfig, apply_overrides, load_config, parse_value
from simlab.errors import SimlabError


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs, values typed by :func:`simlab.config.parse_value`."""
    overrides = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        overrides[key.strip()] = parse_value(raw)
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
    """Check a run configuration as a submission would (fields, engine options,
    cluster profile, executable) and print it with every default."""
    from simlab.service.validation import validate_run

    plan = validate_run(_config(config, sets))
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(plan.config.to_yaml(), nl=False)


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
    """Create a run from CONFIG (or the defaults) and run it to the end.

    With no dispatcher up, a run on the local profile runs in this command's own
    process (as `simlab submit` would, but without starting a dispatcher and its
    cluster first); else it goes to the dispatcher. Ctrl-C cancels the run, as for
    any command in the foreground.
    """
    from simlab.service.submission import run as run_config

    try:
        finished = run_config(
            _config(config, sets), root=root, progress=not quiet, here=True
        )
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
        click.echo("interrupted: the run was cancelled", err=True)
        sys.exit(128 + getattr(exc, "signum", 2))
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
    sweep_dir = _demo_sweep(out)
    figures = sorted(out.glob("*.png"))
    click.echo(f"executed notebook: {executed}")
    for figure in figures:
        click.echo(f"figure:            {figure}")
    for rundir in sorted(p.parent for p in (out / "runs").glob("*/status.json")):
        click.echo(f"run directory:     {rundir}")
    click.echo(f"sweep directory:   {sweep_dir}")


_root_option = click.option(
    "--root", type=click.Path(file_okay=False), help="run root folder"
)


def _publish_url_option(help: str) -> Callable[[Any], Any]:
    """``--to URL`` as publish and ls take it; ``--to`` alone means the
    ``simlab.publish-url`` setting."""
    return click.option(
        "--to",
        "to",
        is_flag=False,
        flag_value="",
        default=None,
        metavar="URL",
        help=f"{help}; --to alone uses simlab.publish-url",
    )


def _catalog(root: str | None) -> Any:
    """The catalogue of the run root, after settling runs no process owns."""
    from simlab.service.submission import settle
    from simlab.settings import run_root
    from simlab.state.catalog import Catalog

    folder = Path(root) if root else run_root()
    settle(folder)
    return Catalog(folder)


def _percent(status: dict[str, Any]) -> str:
    fraction = (status.get("progress") or {}).get("fraction")
    return "" if fraction is None else f"{100 * fraction:5.1f}%"


@main.command(name="ls")
@_root_option
@click.option("--state", help="only runs in this state")
@click.option("--code", help="only runs of this engine")
@click.option("--tag", help="only runs with this tag")
@click.option("--project", help="only runs of this project")
@click.option("--sweep", help="only runs of this sweep")
@click.option("--text", help="only runs whose name contains this")
@click.option("--order", default="-created", show_default=True, help="sort column")
@click.option("--limit", default=50, show_default=True, help="rows to show")
@click.option("--group", is_flag=True, help="runs published in the group space")
@_publish_url_option(
    "runs published on object storage at URL (as by `simlab publish --to`)"
)
@click.option(
    "--json", "as_json", is_flag=True, help="the rows as JSON (id, state, reason ...)"
)
def list_runs(
    root: str | None,
    limit: int,
    group: bool,
    to: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """List runs with their state and progress, newest first."""
    if group or to is not None:
        _list_published(to)
        return
    catalog = _catalog(root)
    try:
        rows, total = catalog.query(per_page=limit, **filters)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        fields = ("id", "name", "state", "engine", "fraction", "reason", "path")
        listed = [{k: row[k] for k in fields} for row in rows]
        click.echo(json.dumps({"runs": listed, "total": total}, indent=1))
        return
    click.echo(f"{'RUN':48} {'STATE':12} {'ENGINE':8} PROGRESS")
    for row in rows:
        done = "" if row["fraction"] is None else f"{100 * row['fraction']:5.1f}%"
        engine = row["engine"] or ""
        click.echo(f"{row['id']:48} {row['state']:12} {engine:8} {done}")
        if row["state"] in ("corrupt", "failed") and row["reason"]:
            click.echo(f"    {row['reason']}")
    if total > len(rows):
        click.echo(f"... {total - len(rows)} more (use --limit)")


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_set_option
@_root_option
@click.option("--cluster", help="cluster profile (simlab.clusters.NAME)")
@click.option("--wait", is_flag=True, help="stay until the run ends")
def submit(
    config: str | None,
    sets: tuple[str, ...],
    root: str | None,
    cluster: str | None,
    wait: bool,
) -> None:
    """Create a run from CONFIG and queue it; return at once unless --wait.

    The run belongs to the run root's dispatcher process, which carries on after
    this command exits (see `simlab dispatcher`).
    """
    from simlab.service.submission import submit as submit_config

    handle = submit_config(_config(config, sets), cluster=cluster, root=root)
    click.echo(handle.id)
    if wait:
        handle.wait()
        click.echo(f"run {handle.id} {handle.state.value}")


@main.command()
@click.argument("run_id")
@_root_option
@click.option("--json", "as_json", is_flag=True, help="the whole status.json")
def status(run_id: str, root: str | None, as_json: bool) -> None:
    """Show a run's state, progress, ETA, where it runs and why it ended."""
    from simlab.service.eta import remaining
    from simlab.service.run import find_run
    from simlab.state.liveness import reap

    handle = find_run(run_id, root)
    reap(handle.dir)
    record = handle.status
    if as_json:
        click.echo(json.dumps(record, indent=1))
        return
    progress = record.get("progress") or {}
    click.echo(f"run:      {handle.id}")
    click.echo(f"state:    {record['state']}")
    click.echo(f"engine:   {record['engine']}")
    if record.get("segment", 1) > 1:
        click.echo(f"segment:  {record['segment']}")
    if progress:
        click.echo(
            f"progress: {_percent(record).strip()} step {progress.get('step')} "
            f"a={progress['a']:.4f} z={progress['z']:.3f}"
        )
    eta = remaining(record, lambda: handle.config, handle.path.parent)
    if eta is not None:
        how = "measured" if eta.source == "progress" else "cost model"
        click.echo(f"eta:      {eta.seconds:.0f} s left ({how})")
    for field in ("host", "job_id", "worker", "cluster", "returncode", "reason"):
        if record.get(field) is not None:
            click.echo(f"{field + ':':9} {record[field]}")
    if record.get("foreground") and record.get("pid"):
        click.echo(f"runs in:  the simlab run command, pid {record['pid']}")
    for line in (record.get("diagnosis") or {}).get("lines", []):
        click.echo(f"  | {line}")
    click.echo(f"dir:      {handle.path}")


@main.command()
@click.argument("run_ids", nargs=-1, required=True)
@_root_option
def cancel(run_ids: tuple[str, ...], root: str | None) -> None:
    """Cancel runs: queued ones never start, running ones are ended."""
    from simlab.service.run import find_run

    for run_id in run_ids:
        handle = find_run(run_id, root)
        handle.cancel()
        click.echo(f"{run_id}: {handle.state.value}")


@main.command()
@click.argument("run_id")
@_root_option
def stop(run_id: str, root: str | None) -> None:
    """Ask a running run to write a checkpoint and stop (state checkpointed)."""
    from simlab.service.run import find_run

    find_run(run_id, root).stop()
    click.echo(f"stop requested: {run_id}")


@main.command()
@click.argument("run_id")
@_root_option
def resume(run_id: str, root: str | None) -> None:
    """Continue a checkpointed, cancelled or failed run from its checkpoint or its
    last snapshot, as a new segment of the same run."""
    from simlab.service.submission import resume as resume_run

    handle = resume_run(run_id, root=root)
    click.echo(f"{run_id}: {handle.state.value} (segment {handle.status['segment']})")


@main.command()
@click.argument("run_id")
@_root_option
@click.option("-f", "--follow", is_flag=True, help="keep printing until the run ends")
@click.option("-n", "--tail", type=int, help="only the last N lines")
def logs(run_id: str, root: str | None, follow: bool, tail: int | None) -> None:
    """Print a run's log."""
    from simlab.service.run import find_run

    handle = find_run(run_id, root)
    if follow:
        for line in handle.logs(tail, follow=True):
            click.echo(line)
    else:
        click.echo(handle.logs(tail))


@main.command()
@_root_option
def reindex(root: str | None) -> None:
    """Rebuild the run catalogue from the run directories."""
    from simlab.settings import run_root
    from simlab.state.catalog import Catalog

    catalog = Catalog(Path(root) if root else run_root())
    click.echo(f"indexed {catalog.reindex()} runs in {catalog.path}")


@main.command()
@_root_option
def clusters(root: str | None) -> None:
    """List the cluster profiles, then the clusters the run root's dispatchers run."""
    from simlab import settings
    from simlab.settings import run_root
    from simlab.state import owners

    profiles = settings.profiles()
    header = ("PROFILE", "KIND", "CORES", "MEMORY", "WALLTIME")
    click.echo("{:16} {:9} {:>5} {:8} {:10} QUEUE".format(*header))
    for name, profile in sorted(profiles.items()):
        cores = profile.get("cores", profile.get("n_workers", ""))
        click.echo(
            f"{name:16} {profile.get('kind', 'local'):9} {cores!s:>5} "
            f"{profile.get('memory', '')!s:8} {profile.get('walltime', '')!s:10} "
            f"{profile.get('queue', '')}"
        )
    running = [
        (record["host"], cluster)
        for record in owners.records(Path(root) if root else run_root())
        for cluster in record.get("clusters", [])
    ]
    click.echo("")
    if not running:
        click.echo("no cluster running")
        return
    click.echo(f"{'CLUSTER':32} {'HOST':16} {'WORKERS':>7} {'TASKS':>5} DASHBOARD")
    for host, cluster in running:
        click.echo(
            f"{cluster['id']:32} {host:16} {len(cluster['workers']):>7} "
            f"{cluster['tasks']:>5} {cluster.get('dashboard') or ''}"
        )


@main.command()
@click.argument("cluster_id")
@click.argument("workers", type=click.IntRange(0, 1000))
@_root_option
def scale(cluster_id: str, workers: int, root: str | None) -> None:
    """Ask a running cluster (see `simlab clusters`) for WORKERS workers."""
    from simlab.settings import run_root
    from simlab.state import owners

    folder = Path(root) if root else run_root()
    request = {"op": "scale", "cluster": cluster_id, "workers": workers}
    if not owners.holds_lock(folder):
        raise click.UsageError(f"no dispatcher runs for {folder} on this host")
    answer = owners.await_reply(folder, owners.post(folder, request), timeout=30)
    if answer is None or not answer.get("ok"):
        why = "no answer" if answer is None else answer.get("error")
        raise click.UsageError(f"cluster {cluster_id}: {why}")
    click.echo(f"{cluster_id}: scaling to {workers} worker(s)")


@main.group()
def dispatcher() -> None:
    """The run root's dispatcher process on this host (it owns the runs)."""


@dispatcher.command(name="status")
@_root_option
def dispatcher_status(root: str | None) -> None:
    """Show whether the dispatcher runs, since when, and what it holds."""
    import time

    from simlab.settings import run_root
    from simlab.state import owners

    folder = Path(root) if root else run_root()
    record = owners.read_record(folder)
    if not owners.holds_lock(folder) or record is None:
        click.echo(f"no dispatcher runs for {folder} on this host")
        return
    uptime = time.time() - float(record["started"])
    click.echo(f"dispatcher pid {record['pid']} on {record['host']}, up {uptime:.0f} s")
    click.echo(f"runs held: {len(record.get('runs', []))}")
    for cluster in record.get("clusters", []):
        click.echo(f"cluster:   {cluster['id']} ({len(cluster['workers'])} workers)")


@dispatcher.command(name="stop")
@_root_option
def dispatcher_stop(root: str | None) -> None:
    """Stop the dispatcher: runs it holds are cancelled, its clusters closed."""
    from simlab.dispatch.owner import stop as stop_owner
    from simlab.settings import run_root

    folder = Path(root) if root else run_root()
    if not stop_owner(folder):
        raise click.ClickException(f"the dispatcher of {folder} did not stop")
    click.echo(f"no dispatcher runs for {folder} now")


@main.command()
@click.option("--cluster", help="check the executables of this profile only")
def doctor(cluster: str | None) -> None:
    """Report what is installed: engines, MPI launchers, batch schedulers."""
    from simlab.service.doctor import checks
    from simlab.settings import profiles

    if cluster is not None and cluster not in profiles():
        raise click.BadParameter(
            f"{cluster!r} is not a cluster profile; known profiles: "
            f"{', '.join(sorted(profiles()))}",
            param_hint="--cluster",
        )

    failed = 0
    for section, name, ok, detail in checks(cluster):
        failed += ok is False
        mark = {True: "ok", False: "MISSING", None: "-"}[ok]
        click.echo(f"{section:10} {name:16} {mark:8} {detail}")
    if failed:
        click.echo(f"{failed} required part(s) missing", err=True)
        sys.exit(1)


# --- sweeps (issue 7) ---------------------------------------------------------


class _SweepGroup(click.Group):
    """``simlab sweep TEMPLATE ...`` runs a sweep; ``status``, ``collect`` read one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _parse_grid(tokens: tuple[str, ...]) -> dict[str, list[Any]]:
    """``-p NAME V1 V2 ... -p NAME2 ...`` into a grid; values parsed as YAML."""
    grid: dict[str, list[Any]] = {}
    name, after_p = None, False
    for token in tokens:
        if token in ("-p", "--parameter"):
            after_p = True
        elif after_p:
            if token in grid or not token.isidentifier():
                raise click.BadParameter(
                    f"{token!r}: expected a new parameter name after -p",
                    param_hint="-p NAME VALUE...",
                )
            name, after_p = token, False
            grid[name] = []
        elif name is None:
            raise click.BadParameter(
                f"{token!r}: values must follow -p NAME", param_hint="-p NAME VALUE..."
            )
        else:
            grid[name].append(parse_value(token))
    empty = [key for key, values in grid.items() if not values]
    if not grid or empty:
        raise click.BadParameter(
            f"give each parameter its values, e.g. -p sigma8 0.7 0.8 (no values: "
            f"{', '.join(empty) or 'no parameter named'})",
            param_hint="-p NAME VALUE...",
        )
    return grid


def _sweep_handle(directory: str) -> Any:
    from simlab.service.sweeps import Sweep

    try:
        return Sweep(directory)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc


def _echo_sweep(handle: Any) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(handle.counts().items()))
    click.echo(f"sweep {handle.id}: {len(handle.points)} points ({counts})")
    click.echo(f"  template:  {handle.template}")
    click.echo(f"  directory: {handle.path}")
    for index, (point, run, state) in enumerate(
        zip(handle.points, handle.runs(), handle.states(), strict=True)
    ):
        values = " ".join(f"{k}={v}" for k, v in point.items())
        click.echo(f"  {index:4d}  {values:32} {run.id:48} {state}")


def _demo_sweep(out: Path) -> Path:
    """The demo's sweep: sigma8 = 0.7, 0.8, 0.9 at 16³, then its summary figure."""
    from simlab.service.sweeps import sweep as run_sweep
    from simlab.templates import execute_notebook

    base = RunConfig(
        box={"size": 200.0, "particles_per_side": 16},
        ics={"z_start": 19.0},
        outputs={"redshifts": [0.0]},
        gravity={"steps": 8},
    )
    handle = run_sweep(
        "run_simulation",
        grid={"sigma8": [0.7, 0.8, 0.9]},
        base=base,
        parameters={"figures": False},
        root=out / "sweep",
        name="demo",
    )
    summary = {"sweep_dir": str(handle.path), "output_dir": str(out)}
    execute_notebook("sweep_summary", out / "sweep_summary.ipynb", summary)
    return handle.path


@main.group(cls=_SweepGroup)
def sweep() -> None:
    """Parameter sweeps: simlab sweep TEMPLATE -p NAME V1 V2 ... | status | collect."""


@sweep.command(name="run", context_settings={"ignore_unknown_options": True})
@click.argument("template")
@click.argument("tokens", nargs=-1, type=click.UNPROCESSED, metavar="-p NAME VALUE...")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="base run configuration (YAML/JSON)",
)
@_set_option
@click.option("--cluster", help="cluster profile (simlab.clusters.NAME)")
@click.option("--root", type=click.Path(file_okay=False), help="run root folder")
@click.option("--name", default="sweep", show_default=True, help="sweep name")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sweep_run(
    template: str,
    tokens: tuple[str, ...],
    config_path: str | None,
    sets: tuple[str, ...],
    cluster: str | None,
    root: str | None,
    name: str,
    quiet: bool,
) -> None:
    """Run TEMPLATE for every combination of the -p values; collect the results."""
    from simlab.service.sweeps import RESULTS_FILE
    from simlab.service.sweeps import sweep as run_sweep

    grid = _parse_grid(tokens)
    handle = run_sweep(
        template,
        grid=grid,
        base=_config(config_path, sets),
        cluster=cluster,
        root=root,
        name=name,
        progress=not quiet,
    )
    handle.collect()
    _echo_sweep(handle)
    click.echo(f"  results:   {handle.path / RESULTS_FILE}")
    if any(state != "completed" for state in handle.states()):
        sys.exit(1)


@sweep.command(name="status")
@click.argument("directory", type=click.Path(file_okay=False))
def sweep_status(directory: str) -> None:
    """Show each point of the sweep in DIRECTORY with its run and state."""
    _echo_sweep(_sweep_handle(directory))


@sweep.command(name="collect")
@click.argument("directory", type=click.Path(file_okay=False))
def sweep_collect(directory: str) -> None:
    """Gather the sweep's results into DIRECTORY/results.nc and print them."""
    from simlab.service.sweeps import RESULTS_FILE

    handle = _sweep_handle(directory)
    click.echo(handle.collect())
    click.echo(f"saved: {handle.path / RESULTS_FILE}")


# --- group space (issue 10) -----------------------------------------------------


def _list_published(to: str | None = None) -> None:
    """Print the runs published in the group space, or with ``to`` on object
    storage at that URL ("" for simlab.publish-url), newest first."""
    from simlab.service.publish import published

    records = published(url=to) if to is not None else published()
    click.echo(f"{'RUN':48} {'OWNER':12} {'STATE':10} {'ENGINE':8} PUBLISHED")
    for record in records:
        click.echo(
            f"{record['id']:48} {record['owner']:12} {record['state']:10} "
            f"{record.get('engine') or '':8} {record['published'][:19]}"
        )


@main.command(name="publish")
@click.argument("run_id")
@_root_option
@click.option("--remove", is_flag=True, help="withdraw your published run instead")
@_publish_url_option(
    "copy to object storage at URL (s3://bucket/prefix, gs://…, file://…) "
    "instead of the group space"
)
def publish_run(run_id: str, root: str | None, remove: bool, to: str | None) -> None:
    """Publish a finished run read-only in the group space (simlab.group-root),
    or with --to on object storage (credentials from the environment)."""
    from simlab.service.publish import publish, unpublish

    if to is not None:
        from simlab.service.publish_remote import publish_to, unpublish_from

        if remove:
            unpublish_from(run_id, to or None)
            click.echo(f"unpublished: {run_id}")
            return
        click.echo(f"published: {publish_to(run_id, to or None, root=root)}")
        return
    if remove:
        unpublish(run_id)
        click.echo(f"unpublished: {run_id}")
        return
    click.echo(f"published: {publish(run_id, root=root)}")


@main.group()
def gadget4() -> None:
    """Gadget4 helpers: the build a run needs."""


@gadget4.command(name="config")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_set_option
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="write Config.sh here"
)
def gadget4_config(
    config: str | None, sets: tuple[str, ...], output: str | None
) -> None:
    """Print (or write) the Config.sh of a Gadget4 build that can run CONFIG."""
    from simlab.engines.gadget4_build import config_sh, write_config_sh

    # the engine first, so that gadget4's own options are checked as gadget4's
    run_config = _config(config, ("code.engine=gadget4", *sets))
    if output:
        click.echo(f"wrote {write_config_sh(run_config, output)}")
    else:
        click.echo(config_sh(run_config))


if __name__ == "__main__":
    main()
