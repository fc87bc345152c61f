"""Multi-node runs on a real two-node Slurm (tests/two_node_slurm.py): real MPI
ranks spread over both nodes, and a Gadget4 run dispatched as one two-node job."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest

import simlab
from simlab.state.states import State
from tests.conftest import _needs, data_path, stop_dispatchers
from tests.helpers import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MPI_SOURCE = Path(__file__).parents[1] / "mpi" / "mpi_hosts.c"
STAND_IN = Path(__file__).parents[1] / "stand_ins" / "gadget4_test_double.py"
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
RANK_LINE = re.compile(r"^rank (\d+) size (\d+) host (\S+) sum (\d+)$", re.M)


def _slurm_env(state: Path) -> dict[str, str]:
    from tests import two_node_slurm

    return two_node_slurm.env(state)


def _mpi_missing(state: Path) -> str | None:
    """None if mpicc and Slurm's PMIx plugin are here, else what is missing."""
    if shutil.which("mpicc") is None:
        return "not installed: mpicc"
    plugins = subprocess.run(
        ["srun", "--mpi=list"], capture_output=True, text=True, env=_slurm_env(state)
    )
    if "pmix" not in plugins.stdout + plugins.stderr:
        return "Slurm has no mpi/pmix plugin"
    return None


@pytest.fixture
def diagnose(two_node_slurm, request):
    """Print the two-node cluster's state and logs if the test failed."""
    yield two_node_slurm
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        from tests import two_node_slurm as cluster

        print(cluster.diagnostics(two_node_slurm))


#: How ranks are started in a job: Slurm's srun (simlab's launcher for Gadget4 on
#: Slurm) and OpenMPI's mpiexec, which reads the allocation from the job's
#: environment (what CONCEPT, given ``-n CORES --local``, starts).
LAUNCHERS = {
    "srun": "srun --mpi=pmix",
    "mpiexec": "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n 4",
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_mpi_ranks_span_both_nodes(diagnose, launcher):
    state = diagnose
    _needs(_mpi_missing(state), "OpenMPI", "apt-get install openmpi-bin libopenmpi-dev")
    exe, out = state / "mpi_hosts", state / f"mpi_hosts-{launcher}.out"
    subprocess.run(["mpicc", "-o", str(exe), str(MPI_SOURCE)], check=True)
    script = state / f"mpi_hosts-{launcher}.sh"
    script.write_text(f"#!/bin/sh\nexec env {LAUNCHERS[launcher]} {exe}\n")
    sbatch = ["sbatch", "--parsable", "--nodes=2", "--ntasks=4", "--time=2"]
    job_id = subprocess.run(
        [*sbatch, f"--output={out}", str(script)],
        env=_slurm_env(state),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # polled here: `sbatch --wait` sleeps 10 s between its own looks
    assert wait_for(lambda: _job(state, job_id)["JobState"] in DONE, 120)
    assert _job(state, job_id)["JobState"] == "COMPLETED", out.read_text()
    text = out.read_text()
    ranks = [tuple(m) for m in RANK_LINE.findall(text)]
    assert sorted(int(r[0]) for r in ranks) == [0, 1, 2, 3], text
    assert {r[1] for r in ranks} == {"4"}  # one world of 4 ranks
    assert {r[3] for r in ranks} == {"6"}  # 0+1+2+3: they talked over the bridge
    assert Counter(r[2] for r in ranks) == {"n1": 2, "n2": 2}


def _gadget4_config(nodes: int, cores: int) -> dict:
    from tests.engines.test_gadget4 import ngenic32_config, with_code

    config = with_code(ngenic32_config(), ("config_sh",))  # build probed from exe
    data = config.model_dump()
    data["resources"] = {"nodes": nodes, "cores": cores, "walltime": "00:10:00"}
    data["metadata"] = {**data["metadata"], "name": "two-nodes"}
    return data


def _job(state: Path, job_id: str) -> dict[str, str]:
    """``scontrol show job`` as key → value."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        env=_slurm_env(state),
        check=True,
    ).stdout
    return dict(part.split("=", 1) for part in out.split() if "=" in part)


def test_gadget4_run_spans_two_nodes(diagnose, monkeypatch):
    from tests.two_node_slurm import PROFILE

    state = diagnose
    # the nodes share /var/tmp with this machine but each has its own /tmp
    root = Path(tempfile.mkdtemp(prefix="runs-", dir=state))
    exe = root / "bin" / "gadget4_test_double"
    exe.parent.mkdir()
    shutil.copy(STAND_IN, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    ranks = root / "ranks"
    fixture = data_path("gadget4-small/ngenic32")
    monkeypatch.setenv("SIMLAB_STAND_IN_FIXTURE", str(fixture))
    monkeypatch.setenv("SIMLAB_STAND_IN_RANKS", str(ranks))
    # the dispatcher process (and sbatch in it) talk to this cluster
    monkeypatch.setenv("SLURM_CONF", str(state / "slurm.conf"))
    import dask.config

    profile = {**PROFILE, "executables": {"gadget4": str(exe)}}
    try:
        with dask.config.set({"simlab.clusters.twonode": profile}):
            run = simlab.submit(_gadget4_config(2, 4), cluster="twonode", root=root)
            assert wait_for(lambda: run.state.is_final, 240), run.status
        assert run.state is State.COMPLETED, (run.status, run.logs())
        assert len(run.snapshots) == 4
        assert run.dir.read_json("launch.json")["launcher"] == ["srun", "--ntasks=4"]
        job = _job(state, run.status["job_id"])
        assert (job["NodeList"], job["NumNodes"], job["NumTasks"]) == (
            "n[1-2]",
            "2",
            "4",
        )
        assert job["BatchHost"] == "n1"  # the dask worker, whose task ran srun
        records = [json.loads(p.read_text()) for p in sorted(ranks.glob("*.json"))]
        assert sorted(r["rank"] for r in records) == [0, 1, 2, 3]
        assert Counter(r["host"] for r in records) == {"n1": 2, "n2": 2}
        for record in records:
            assert record["SLURMD_NODENAME"] == record["host"]
            assert record["SLURM_JOB_NODELIST"] == "n[1-2]"
            assert record["SLURM_STEP_NUM_TASKS"] == "4"
            assert record["SLURM_STEP_NUM_NODES"] == "2"
            assert record["SLURM_JOB_ID"] == run.status["job_id"]
    finally:
        stop_dispatchers(root)
