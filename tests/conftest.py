"""Shared test helpers: where the real-code fixtures are, and skip-or-fail on them."""

from __future__ import annotations

import os
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
    """Keep every test's runs out of the real ~/simlab/runs."""
    import dask.config

    with dask.config.set({"simlab.run-root": str(tmp_path_factory.mktemp("runroot"))}):
        yield
