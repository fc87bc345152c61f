"""Snapshots and published runs on object storage, against a real S3 server.

moto's server mode runs an S3-compatible HTTP server in this process (as s3fs's own
test suite does); s3fs talks to it over HTTP with fake credentials taken from the
environment, the way a user's AWS_* variables reach it.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import dask.config
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import simlab
from simlab.cli import main
from simlab.config import RunConfig
from simlab.errors import ConfigError, StorageError
from simlab.io.gadget4_files import write_snapshot
from simlab.io.groups import open_groups
from simlab.io.remote import filesystem, is_url
from simlab.particles import ParticleSet
from simlab.service.publish import (
    PUBLISHED_PARTS,
    RECORD,
    PublishError,
    open_published,
    published,
)
from simlab.service.publish_remote import RemoteRun, open_remote, publish_to
from simlab.settings import run_root
from simlab.state.rundir import RunDir
from simlab.state.states import State
from tests.conftest import _needs, data_path
from tests.helpers import wait_for

#: Fake credentials, distinctive enough to grep for in anything written.
KEY_ID = "SIMLABTESTKEYID4Q7Z"
SECRET = "simlab-test-secret-never-stored-8c1f"
BUCKET = "simlab-results"
FIELDS = ("Coordinates", "Velocities", "ParticleIDs")
MULTI = "gadget4-small/ngenic32/output/snapdir_003"
SINGLE = "gadget4-small/icfile16/output/snapshot_001.hdf5"
INSTALL = "pip install 's3fs' 'moto[server]'  (both in simlab[test])"


def _module(name: str):
    """Import ``name``; skip on a laptop without it, fail under CI=true."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _needs(str(exc), name, INSTALL)


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server for the module, with one bucket; yields its endpoint."""
    server_module = _module("moto.server")
    _module("s3fs")
    with pytest.MonkeyPatch.context() as patch:
        server = server_module.ThreadedMotoServer(
            ip_address="127.0.0.1", port=0, verbose=False
        )
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        fs = _fs(endpoint)
        fs.mkdir(BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()


def _fs(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)


def _upload(endpoint: str, local: Path, key: str) -> str:
    """Put a file or folder at ``s3://BUCKET/key``; return that URL."""
    fs = _fs(endpoint)
    fs.put(str(local), f"{BUCKET}/{key}", recursive=local.is_dir())
    return f"s3://{BUCKET}/{key}"


@pytest.fixture
def fetched(monkeypatch):
    """Bytes and requests of every ranged GET s3fs makes (the HTTP bodies)."""
    import s3fs.core

    seen = {"bytes": 0, "requests": 0}
    original = s3fs.core.S3File._fetch_range

    def counting(self, start, end):
        data = original(self, start, end)
        seen["bytes"] += len(data)
        seen["requests"] += 1
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    return seen


# --- reading ------------------------------------------------------------------


@pytest.mark.parametrize("relpath", [MULTI, SINGLE], ids=["multi-file", "single"])
def test_a_remote_snapshot_reads_as_the_local_one(s3, relpath, tmp_path):
    local = data_path(relpath)
    url = _upload(s3, local, f"round-trip/{local.name}")
    here = simlab.open_snapshot(local)
    there = xr.open_dataset(url, engine="gadget4", storage_options={"endpoint_url": s3})
    for name in FIELDS:
        assert np.array_equal(there[name].values, here[name].values), name
    assert there.attrs.keys() == here.attrs.keys()
    assert there.attrs["NumPart_Total"].tolist() == here.attrs["NumPart_Total"].tolist()
    # simlab.open_snapshot, lazily in dask chunks, and through a pickle (a worker)
    lazy = pickle.loads(pickle.dumps(simlab.open_snapshot(url, chunks={})))
    local_lazy = simlab.open_snapshot(local, chunks={})
    assert lazy.Coordinates.chunks == local_lazy.Coordinates.chunks
    assert np.array_equal(lazy.ParticleIDs.values, here.ParticleIDs.values)
    there.close()
    tree = xr.open_datatree(url, engine="gadget4", storage_options={"endpoint_url": s3})
    assert np.array_equal(tree["PartType1"].Velocities.values, here.Velocities.values)
    tree.close()


def test_a_remote_group_catalogue_reads_as_the_local_one(s3):
    local = data_path("gadget4-small/ngenic32/output/groups_003")
    url = _upload(s3, local, "catalogue/groups_003")
    for table in ("Group", "Subhalo"):
        here, there = open_groups(local, table), open_groups(url, table)
        assert set(there.data_vars) == set(here.data_vars)
        for name in here.data_vars:
            assert np.array_equal(there[name].values, here[name].values), name
        there.close()


@pytest.mark.slow
def test_dask_worker_processes_read_the_remote_snapshot(s3):
    local = data_path(MULTI)
    url = _upload(s3, local, "workers/snapdir_003")
    ds = simlab.open_snapshot(url, chunks={})  # one chunk per file
    # each process unpickles the task, reopens the file from the URL and env
    total = ds.Coordinates.astype("f8").sum("particle").compute(scheduler="processes")
    expected = simlab.open_snapshot(local).Coordinates.astype("f8").sum("particle")
    np.testing.assert_allclose(total.values, expected.values, rtol=1e-12)


@pytest.fixture(scope="module")
def big_snapshot(tmp_path_factory) -> Path:
    """A 64^3-particle single-file snapshot (7.3 MB)."""
    n = 64**3
    rng = np.random.default_rng(3)
    particles = ParticleSet(
        positions=rng.random((n, 3), dtype=np.float32) * 100,
        velocities=rng.standard_normal((n, 3)).astype(np.float32),
        ids=np.arange(1, n + 1, dtype=np.uint32),
        mass=1.0,
        box_size=100.0,
        a=1.0,
    )
    path = tmp_path_factory.mktemp("big") / "snapshot_005.hdf5"
    write_snapshot(path, particles)
    return path


def test_a_slab_read_transfers_a_small_part_of_the_file(s3, big_snapshot, fetched):
    url = _upload(s3, big_snapshot, "partial/snapshot_005.hdf5")
    size = big_snapshot.stat().st_size
    ds = xr.open_dataset(url, engine="gadget4")
    rows = ds.Coordinates[:100].values
    ratio = fetched["bytes"] / size
    print(f"slab of 100 rows: {fetched['bytes']} of {size} bytes ({ratio:.1%})")
    assert ratio < 0.15, f"{fetched['bytes']} bytes of {size} for 100 rows"
    assert np.array_equal(rows, simlab.open_snapshot(big_snapshot).Coordinates[:100])
    ds.close()


def test_a_whole_field_is_read_in_few_requests(s3, big_snapshot, fetched):
    url = _upload(s3, big_snapshot, "whole/snapshot_005.hdf5")
    ds = xr.open_dataset(url, engine="gadget4")
    ids = ds.ParticleIDs.values
    assert np.array_equal(ids, np.arange(1, 64**3 + 1))
    # the metadata blocks, then the field in one request, not block by block
    assert fetched["requests"] <= 4, fetched
    assert fetched["bytes"] < ids.nbytes + 4 * 2**18, fetched
    ds.close()


def test_a_missing_remote_snapshot_names_the_url(s3):
    for url in (f"s3://{BUCKET}/nothing/here.hdf5", "s3://no-such-bucket-4711/x.hdf5"):
        with pytest.raises(FileNotFoundError, match=re.escape(url)):
            simlab.open_snapshot(url)


# --- publishing -------------------------------------------------------------------


def finished_run(state: State = State.COMPLETED) -> simlab.Run:
    """A run walked to ``state``, with a real two-file snapshot and a private IC."""
    config = RunConfig.model_validate({"metadata": {"name": "s3pub"}})
    rundir = RunDir.create(run_root(), config)
    steps = [State.QUEUED, State.RUNNING, state]
    for step in steps[: steps.index(state) + 1]:
        rundir.transition(step)
    shutil.copytree(data_path(MULTI), rundir.path / "output" / "snapdir_003")
    inputs = rundir.path / "inputs"
    inputs.mkdir(exist_ok=True)
    shutil.copy(data_path("gadget4-small/icfile16/ics.hdf5"), inputs / "ics.hdf5")
    rundir.log_path.write_text("pm: done\n")
    return simlab.Run(rundir.path)


def _objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    fs = _fs(endpoint)
    return {
        path.removeprefix(f"{prefix}/"): fs.cat_file(path) for path in fs.find(prefix)
    }


def test_publish_copies_the_run_and_writes_no_credential(s3):
    run = finished_run()
    where = publish_to(run.id, f"s3://{BUCKET}/group")

    assert where == f"s3://{BUCKET}/group/{run.id}"
    objects = _objects(s3, f"{BUCKET}/group/{run.id}")
    local = {
        p.relative_to(run.path).as_posix(): p.read_bytes()
        for p in _files(run.path)
        if p.relative_to(run.path).parts[0] in PUBLISHED_PARTS
    }
    assert "output/snapdir_003/snapshot_003.1.hdf5" in local
    assert objects.keys() - {RECORD} == local.keys()
    assert all(objects[name] == data for name, data in local.items())
    # private inputs and the run's own bookkeeping stay behind
    assert not any(name.startswith(("inputs", ".")) for name in objects)
    record = json.loads(objects[RECORD])
    assert (record["id"], record["state"]) == (run.id, "completed")
    assert record["files"] == {name: len(data) for name, data in local.items()}
    # no credential anywhere: not uploaded, not in the run directory
    everything = [*objects.values(), *(p.read_bytes() for p in _files(run.path))]
    for secret in (SECRET, KEY_ID):
        assert not any(secret.encode() in data for data in everything), secret
    # read back by URL, as a reader of the group would
    snap = f"{where}/output/snapdir_003/snapshot_003.0.hdf5"
    there = xr.open_dataset(snap, engine="gadget4")
    here = simlab.open_snapshot(data_path(MULTI))
    assert np.array_equal(there.Coordinates.values, here.Coordinates.values)
    there.close()


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_failed_copy_leaves_no_record_and_a_retry_completes(s3, monkeypatch):
    run = finished_run()
    url = f"s3://{BUCKET}/retry"
    store, _ = filesystem(url)  # the instance publish_to gets (fsspec caches it)
    original = store.put_file
    calls = []

    def failing(lpath, rpath, **kwargs):
        calls.append(rpath)
        if len(calls) == 3:
            raise PermissionError("connection dropped")
        return original(lpath, rpath, **kwargs)

    monkeypatch.setattr(store, "put_file", failing)
    with pytest.raises(PublishError, match="connection dropped"):
        publish_to(run.id, url)
    fs = _fs(s3)
    assert fs.find(f"{BUCKET}/retry/{run.id}")  # some files arrived …
    assert not fs.exists(f"{BUCKET}/retry/{run.id}/{RECORD}")  # … but no record
    monkeypatch.setattr(store, "put_file", original)
    publish_to(run.id, url)
    assert _fs(s3).exists(f"{BUCKET}/retry/{run.id}/{RECORD}")
    with pytest.raises(PublishError, match="already published at s3://"):
        publish_to(run.id, url)


def test_publish_refuses_a_run_that_has_not_ended(s3):
    run = finished_run(State.RUNNING)
    with pytest.raises(PublishError, match="is running; only a finished run"):
        publish_to(run.id, f"s3://{BUCKET}/early")
    assert not _fs(s3).exists(f"{BUCKET}/early")


def test_the_cli_publishes_to_the_configured_url(s3):
    run = finished_run()
    with dask.config.set({"simlab.publish-url": f"s3://{BUCKET}/configured"}):
        result = CliRunner().invoke(main, ["publish", run.id, "--to"])
    assert result.exit_code == 0, result.output
    assert f"s3://{BUCKET}/configured/{run.id}" in result.output
    assert _fs(s3).exists(f"{BUCKET}/configured/{run.id}/{RECORD}")


def test_the_owner_removes_a_published_run_record_first(s3, monkeypatch):
    run = finished_run()
    url = f"s3://{BUCKET}/removal"
    publish_to(run.id, url)
    store, _ = filesystem(url)
    removed = []
    original = store.rm_file
    monkeypatch.setattr(store, "rm_file", lambda p: removed.append(p) or original(p))
    result = CliRunner().invoke(main, ["publish", run.id, "--remove", "--to", url])
    assert result.exit_code == 0, result.output
    assert removed[0].endswith(f"{run.id}/{RECORD}")
    assert not _fs(s3).exists(f"{BUCKET}/removal/{run.id}")
    result = CliRunner().invoke(main, ["publish", run.id, "--remove", "--to", url])
    assert result.exit_code == 2
    assert f"run {run.id} is not published at s3://" in result.output


def test_another_owners_run_is_not_removed(s3):
    run = finished_run()
    url = f"s3://{BUCKET}/others"
    publish_to(run.id, url)
    record = f"{BUCKET}/others/{run.id}/{RECORD}"
    fs = _fs(s3)
    fs.pipe_file(
        record, json.dumps({**json.loads(fs.cat_file(record)), "owner": "ann"})
    )
    result = CliRunner().invoke(main, ["publish", run.id, "--remove", "--to", url])
    assert result.exit_code == 2
    assert "was published by ann; only they can remove it" in result.output
    assert _fs(s3).exists(record)


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("nosuch://bucket/x", r"'nosuch://bucket/x' is not a usable URL.*s3://"),
        ("/srv/results", r"'/srv/results' is not an object-storage URL.*s3://"),
        ("s3://no-such-bucket-4711/x", r"cannot copy run .* must exist"),
        ("", r"no object storage configured: pass --to URL"),
    ],
    ids=["unknown-scheme", "plain-path", "missing-bucket", "unset"],
)
def test_bad_urls_exit_2_with_a_clear_message(s3, to, message):
    run = finished_run()
    result = CliRunner().invoke(main, ["publish", run.id, "--to", *([to] * bool(to))])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert re.search(message, result.output), result.output


# --- reading a published run in place ---------------------------------------------


@pytest.fixture(scope="module")
def pm_run(tmp_path_factory) -> simlab.Run:
    """A real embedded-PM run with two snapshots and their P(k) files."""
    config = RunConfig.model_validate(
        {
            "box": {"size": 64.0, "particles_per_side": 16},
            "gravity": {"steps": 4},
            "outputs": {"scale_factors": [0.5, 1.0]},
            "metadata": {"name": "s3read"},
        }
    )
    root = tmp_path_factory.mktemp("runs")
    return simlab.run(config, root=root, progress=False)


def test_a_run_published_on_s3_reads_as_the_local_run(s3, pm_run):
    url = f"s3://{BUCKET}/in-place"
    publish_to(pm_run, url)
    options = {"key": KEY_ID, "secret": SECRET, "endpoint_url": s3}
    remote = open_published(pm_run.id, url=url, storage_options=options)

    assert isinstance(remote, RemoteRun)
    assert remote.url == f"{url}/{pm_run.id}"
    assert (remote.id, remote.state, remote.owner) == (
        pm_run.id,
        State.COMPLETED,
        remote.record["owner"],
    )
    assert remote.config == pm_run.config
    assert remote.config.outputs.scale_factors == [0.5, 1.0]
    names = [PurePosixPath(u).name for u in remote.snapshots]
    assert names == [p.name for p in pm_run.snapshots]
    assert names == ["snapshot_000.hdf5", "snapshot_001.hdf5"]
    first, last = remote.open_snapshot(0), remote.open_snapshot(chunks={})
    assert last.Coordinates.chunks is not None  # lazily, in dask chunks
    assert np.array_equal(first.Coordinates, pm_run.open_snapshot(0).Coordinates)
    assert np.array_equal(last.Coordinates, pm_run.open_snapshot().Coordinates)
    assert not np.array_equal(first.Coordinates, last.Coordinates)
    # P(k): the run's own netCDF files, read through file objects
    assert [PurePosixPath(u).name for u in remote.power_spectra()] == [
        "powerspec_000.nc",
        "powerspec_001.nc",
    ]
    for index in (0, 1):
        xr.testing.assert_identical(
            remote.power_spectrum(index), pm_run.power_spectrum(index)
        )
    series = remote.open_series()
    assert series.sizes == {"snapshot": 2, "particle": 16**3, "xyz": 3}
    np.testing.assert_array_equal(series.a, pm_run.open_series().a)
    # the credentials given stay in memory: nothing written holds them
    everything = [p.read_bytes() for p in _files(pm_run.path)]
    everything += _objects(s3, f"{BUCKET}/in-place/{pm_run.id}").values()
    for secret in (SECRET, KEY_ID):
        assert not any(secret.encode() in data for data in everything), secret


def test_ls_to_lists_published_runs_and_skips_unfinished_copies(s3, pm_run):
    url = f"s3://{BUCKET}/listing"
    publish_to(pm_run, url)
    unfinished = "half-20261202T101500-1a2b3c"
    _fs(s3).pipe_file(f"{BUCKET}/listing/{unfinished}/config.json", b"{}")

    records = published(url=url)
    assert [(r["id"], r["path"]) for r in records] == [
        (pm_run.id, f"{url}/{pm_run.id}")
    ]
    for args in (["--to", url], ["--group", "--to", url]):
        result = CliRunner().invoke(main, ["ls", *args])
        assert result.exit_code == 0, result.output
        header, *rows = result.output.splitlines()
        assert header.split() == ["RUN", "OWNER", "STATE", "ENGINE", "PUBLISHED"]
        assert [row.split()[:4] for row in rows] == [
            [pm_run.id, records[0]["owner"], "completed", "pm"]
        ]
        assert unfinished not in result.output


def test_a_url_without_a_published_run_is_a_clear_error(s3):
    run_id = "none-20261202T101500-1a2b3c"
    where = f"s3://{BUCKET}/empty/{run_id}"
    with pytest.raises(PublishError, match=f"no run is published at {where}: "):
        open_published(run_id, url=f"s3://{BUCKET}/empty")
    with pytest.raises(simlab.errors.SimlabError, match=re.escape(where)):
        open_remote(where)
    for url in (f"s3://{BUCKET}/nothing-here", "s3://no-such-bucket-4711/x"):
        result = CliRunner().invoke(main, ["ls", "--to", url])
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"error: nothing is published at {url}: no such bucket or prefix\n"
        )


# --- without a server ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("s3://b/k.hdf5", True),
        ("memory://x", True),
        ("simplecache::s3://b/k", True),
        ("file:///tmp/x.hdf5", True),
        ("/tmp/x.hdf5", False),
        ("snapshot_003.hdf5", False),
        (Path("s3:/x"), False),
    ],
)
def test_which_paths_are_urls(path, url):
    assert is_url(path) is url


def test_an_unknown_scheme_names_the_value_and_what_is_allowed():
    with pytest.raises(StorageError, match=r"'nosuch://b/x.hdf5'.*s3://bucket/path"):
        xr.open_dataset("nosuch://b/x.hdf5", engine="gadget4")


def test_a_scheme_whose_package_is_missing_says_what_to_install():
    # ocifs (Oracle Cloud) is nothing simlab or its tests install
    with pytest.raises(StorageError, match=r"oci:// scheme needs .*ocifs"):
        simlab.open_snapshot("oci://bucket/snapshot_003.hdf5")


def test_memory_urls_read_a_multi_file_snapshot_by_folder_or_piece():
    fsspec = _module("fsspec")
    fs = fsspec.filesystem("memory")
    fs.put(str(data_path(MULTI)), "/simlab-test/snapdir_003", recursive=True)
    here = simlab.open_snapshot(data_path(MULTI))
    try:
        for url in (
            "memory://simlab-test/snapdir_003",
            "memory://simlab-test/snapdir_003/snapshot_003.1.hdf5",
        ):
            tree = xr.open_datatree(url, engine="gadget4")
            assert np.array_equal(
                tree["PartType1"].ParticleIDs.values, here.ParticleIDs.values
            )
            tree.close()
        fs.rm("/simlab-test/snapdir_003/snapshot_003.1.hdf5")
        with pytest.raises(simlab.errors.SnapshotError, match="is 2 but 1 files"):
            simlab.open_snapshot("memory://simlab-test/snapdir_003")
    finally:
        fs.rm("/simlab-test", recursive=True)


def test_a_fresh_process_imports_fsspec_for_urls_only_and_exits_cleanly():
    # xarray's file cache keeps files open until exit; h5py on a torn-down fsspec
    # file object crashed the interpreter there (SIGSEGV) before simlab closed them
    code = (
        "import sys, simlab\n"
        f"ds = simlab.open_snapshot({str(data_path(MULTI))!r}, chunks={{}})\n"
        "ds.Coordinates.values\n"
        "assert 'fsspec' not in sys.modules, 'fsspec imported for a local path'\n"
        "import fsspec\n"
        "fs = fsspec.filesystem('memory')\n"
        f"fs.put({str(data_path(SINGLE))!r}, '/exit-test/snapshot_001.hdf5')\n"
        "ds = simlab.open_snapshot('memory://exit-test/snapshot_001.hdf5')\n"
        "print(float(ds.Coordinates.sum()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, (done.returncode, done.stderr)


def _archived_run(tmp_path: Path, url: str) -> simlab.Run:
    """A small PM run on a local profile whose ``artifacts`` is ``url``, to its end."""
    from simlab.dispatch.dispatcher import Dispatcher
    from simlab.service.submission import create

    config = {
        "box": {"size": 64.0, "particles_per_side": 8},
        "gravity": {"steps": 3},
        "resources": {"cluster": "archived"},
        "metadata": {"name": "archived"},
    }
    profile = {"kind": "local", "artifacts": url}
    with dask.config.set({"simlab.clusters.archived": profile}):
        run = create(config, root=tmp_path)
        with Dispatcher() as dispatcher:
            assert dispatcher.submit(run.dir).result(timeout=120) == "completed"
            # the copy runs after the task, and counts as pending until it ends
            assert wait_for(lambda: dispatcher.pending() == 0, 120)
    return run


@pytest.mark.slow
def test_a_profile_with_artifacts_copies_each_run_that_ends_on_it(s3, tmp_path):
    url = f"s3://{BUCKET}/artifacts"
    run = _archived_run(tmp_path, url)
    copied = run.status["artifacts"]
    assert copied["url"] == f"{url}/{run.id}" and "error" not in copied
    remote = open_remote(copied["url"])
    assert remote.config == run.config and remote.state is State.COMPLETED
    with remote.open_snapshot() as there, run.open_snapshot() as here:
        assert np.array_equal(there.Coordinates.values, here.Coordinates.values)
    assert not any(
        KEY_ID.encode() in path.read_bytes() or SECRET.encode() in path.read_bytes()
        for path in _files(run.path)
    )


@pytest.mark.slow
def test_a_failed_copy_of_artifacts_leaves_the_run_completed(s3, tmp_path):
    run = _archived_run(tmp_path, "s3://no-such-bucket/artifacts")
    assert run.state is State.COMPLETED
    failed = run.status["artifacts"]
    assert failed["url"] == "s3://no-such-bucket/artifacts"
    assert "cannot copy run" in failed["error"] and "no-such-bucket" in failed["error"]


def test_artifacts_that_are_not_a_url_are_a_field_error(tmp_path):
    profile = {"kind": "local", "artifacts": "/scratch/results"}
    with (
        dask.config.set({"simlab.clusters.archived": profile}),
        pytest.raises(ConfigError) as caught,
    ):
        simlab.submit({"resources": {"cluster": "archived"}}, root=tmp_path)
    (error,) = caught.value.errors
    assert error["loc"] == "resources.cluster"
    assert "artifacts='/scratch/results' is not an object-storage URL" in error["msg"]
    assert not list(tmp_path.iterdir())


def test_a_replaced_copy_takes_the_runs_new_state(tmp_path):
    from simlab.state.export import copy_run

    run = finished_run(State.CANCELLED)
    url = "memory://replaced"
    where = copy_run(run.dir, url)
    with pytest.raises(StorageError, match="already published"):
        copy_run(run.dir, url)
    for state in (State.QUEUED, State.RUNNING, State.COMPLETED):  # resumed, ended
        run.dir.transition(state)
    assert copy_run(run.dir, url, replace=True) == where
    fs, path = filesystem(where)
    assert json.loads(fs.cat_file(f"{path}/{RECORD}"))["state"] == "completed"
