"""Shared test helpers: the real-code test data, and skip-or-fail on system parts."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

#: Real Gadget4 and CONCEPT outputs, part of the repository (tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"

# The data holds real outputs, not tests: parameter files and scripts in it must not
# be imported by --doctest-modules.
collect_ignore = ["data"]


def data_path(relpath: str) -> Path:
    """Path of a file or folder under ``tests/data``; fails (never skips) if missing.

    The data is part of the repository, so a missing file is a broken checkout or a
    renamed path, not a machine without it (``tests/test_data_manifest.py`` checks
    every file against ``tests/data/MANIFEST.sha256``).
    """
    path = DATA / relpath
    if not path.exists():
        pytest.fail(f"test data {relpath} not found under {DATA} (see MANIFEST.sha256)")
    return path


@pytest.fixture(autouse=True)
def _private_run_root(tmp_path_factory):
    """Keep every test's runs out of the real ~/simlab/runs, and stop the run
    roots' dispatcher processes the test started (they would outlive it)."""
    import dask.config

    with dask.config.set({"simlab.run-root": str(tmp_path_factory.mktemp("runroot"))}):
        yield
    stop_dispatchers(tmp_path_factory.getbasetemp())


def stop_dispatchers(under: Path, timeout: float = 30.0) -> None:
    """End every ``simlab.dispatch.owner`` process serving a root under ``under``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "simlab.dispatch.owner" in cmd and Path(cmd[-1]).is_relative_to(under):
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def _needs(reason: str | None, what: str, install: str) -> None:
    """Skip for a missing system part on a laptop; fail under ``CI=true``.

    The message is one line: what is missing and why, the command that installs it
    (``install``, as ``.ci/run`` does), and that ``.ci/run`` as root does it all.
    """
    if reason is None:
        return
    message = (
        f"{what} unavailable ({' '.join(reason.split())}); to enable: `{install}`; "
        "`.ci/run` as root installs every system part"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm():
    """A real Slurm controller and node for the session, torn down at the end."""
    from tests import slurm_cluster

    _needs(slurm_cluster.available(), "Slurm", slurm_cluster.INSTALL)
    state = slurm_cluster.state_dir()
    slurm_cluster.start(state)
    yield state
    slurm_cluster.stop(state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def two_node_slurm():
    """A real two-node Slurm (network namespaces) for one module, gone at its end.

    Module scope: it is torn down before the session's one-node ``slurm``, whose
    teardown ends every ``slurmd`` left running.
    """
    from tests import slurm_cluster, two_node_slurm

    _needs(two_node_slurm.available(), "two-node Slurm", two_node_slurm.INSTALL)
    state = slurm_cluster.state_dir()
    try:
        two_node_slurm.start(state)
        yield state
    finally:
        two_node_slurm.stop(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def slurm_profile(slurm, request):
    """A ``testslurm`` cluster profile; dumps Slurm's view if the test failed."""
    import dask.config

    from tests.slurm_cluster import PROFILE

    with dask.config.set({"simlab.clusters.testslurm": PROFILE}):
        yield "testslurm"
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        from tests import slurm_cluster

        print(slurm_cluster.diagnostics(slurm))


#: Test modules of the machine-wide Slurm (one /etc/slurm/slurm.conf, one munge)
#: and of the hub's system users: under pytest-xdist they run one after another in
#: one worker (:func:`pytest_xdist_make_scheduler`).
SYSTEM_MODULES = frozenset(
    {
        "tests/dispatch/test_slurm.py",
        "tests/dispatch/test_multinode.py",
        "tests/hub/test_multiuser.py",
    }
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Each module's tests in one worker, so its module fixtures (a Lab, a built
    wheel, a hub) start once, and the SYSTEM_MODULES together in one.

    Scheduling by scope, not by ``xdist_group`` marks: pytest-xdist 3.8 marks a
    group by rewriting ``item._nodeid``, which pytest 9.2 no longer reads.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "system" if module in SYSTEM_MODULES else module

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Refuse a test of Slurm or the hub outside SYSTEM_MODULES: it would run in
    parallel with them, on the same machine-wide daemons."""
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        fixtures = set(getattr(item, "fixturenames", ()))
        module = item.nodeid.split("::", 1)[0]
        uses = marks & {"slurm", "hub"} or {"slurm", "two_node_slurm"} & fixtures
        if uses and module not in SYSTEM_MODULES:
            raise pytest.UsageError(
                f"{item.nodeid} uses {sorted(uses)}: add {module} to "
                "tests/conftest.py's SYSTEM_MODULES"
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so fixtures can see a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
