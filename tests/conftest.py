"""Shared test helpers: where the real-code fixtures are, and skip-or-fail on them."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

#: Real Gadget4 and CONCEPT outputs, in ``shared/`` beside the repository.
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() == "true"


def requires_fixture(relpath: str) -> Path:
    """Path of a fixture; skip when missing on a laptop, fail under ``CI=true``."""
    path = FIXTURES / relpath
    if not path.exists():
        message = f"fixture {relpath} not found under {FIXTURES}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
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
        if "simlab.dispatch.owner" in cmd and cmd[-1].startswith(str(under)):
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def _needs(reason: str | None, what: str) -> None:
    """Skip for a missing system part on a laptop; fail under ``CI=true``."""
    if reason is None:
        return
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm():
    """A real Slurm controller and node for the session, torn down at the end."""
    from tests import slurm_cluster

    _needs(slurm_cluster.available(), "Slurm")
    state = slurm_cluster.state_dir()
    slurm_cluster.start(state)
    yield state
    slurm_cluster.stop(state)
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so fixtures can see a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
