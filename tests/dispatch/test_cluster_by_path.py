"""A profile may name any dask cluster class by import path (e.g. dask-kubernetes'
KubeCluster): simlab starts it with the profile's options exactly as written."""

from __future__ import annotations

import dask.config
import pytest
from click.testing import CliRunner

import simlab
from simlab.cli import main
from simlab.dispatch.dispatcher import Dispatcher
from simlab.dispatch.profiles import check_kind, cluster_options, is_batch
from simlab.errors import ConfigError
from simlab.service.submission import create
from simlab.state.states import State
from tests.stand_ins.recording_cluster import RecordingCluster

PATH = "tests.stand_ins.recording_cluster:RecordingCluster"
OPTIONS = {
    "n_workers": 1,
    "threads_per_worker": 1,
    "resources": {"run": 1},
    "dashboard_address": None,
}


def test_a_class_by_import_path_gets_the_options_exactly_as_written():
    profile = {"kind": PATH, "launcher": "mpiexec -n {cores}", **OPTIONS}
    # simlab's own keys are taken out; nothing is added (no run resource, no TLS)
    assert cluster_options(profile) == OPTIONS
    assert not is_batch(PATH) and is_batch("slurm") and not is_batch("local")
    check_kind("distributed.LocalCluster")  # the dotted form imports too


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("no_such_module.Cluster", "cannot import cluster class 'no_such_module"),
        ("distributed:NoSuchCluster", "cannot import cluster class"),
        ("tests.stand_ins.recording_cluster:NotACluster", "is not a dask cluster"),
        ("kubernetes", "allowed: local, slurm, pbs, sge, lsf, htcondor, existing"),
    ],
)
def test_a_profile_whose_class_cannot_be_used_is_a_field_error(tmp_path, kind, message):
    with dask.config.set({"simlab.clusters.odd": {"kind": kind}}):
        with pytest.raises(ConfigError, match=message) as caught:
            simlab.submit({"resources": {"cluster": "odd"}}, root=tmp_path)
        result = CliRunner().invoke(
            main, ["validate", "--set", "resources.cluster=odd"]
        )
    assert caught.value.errors[0]["loc"] == "resources.cluster"
    assert result.exit_code == 2 and "resources.cluster" in result.output
    assert not list(tmp_path.iterdir())  # nothing half-made


@pytest.mark.slow
def test_a_run_on_a_cluster_class_named_by_path(tmp_path):
    profile = {"kind": PATH, **OPTIONS}
    with dask.config.set({"simlab.clusters.custom": profile}):
        run = create(
            {"box": {"particles_per_side": 8}, "resources": {"cluster": "custom"}},
            root=tmp_path,
        )
        with Dispatcher() as dispatcher:
            dispatcher.submit(run.dir).result(timeout=120)
            (record,) = dispatcher.clusters()
            assert record.kind == PATH
            assert isinstance(record.cluster, RecordingCluster)
            assert record.tasks == 1
    assert RecordingCluster.received == OPTIONS
    assert run.state is State.COMPLETED
