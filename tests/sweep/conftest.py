"""Sweep test helpers: a two-worker local profile and small, fast run configs."""

from __future__ import annotations

from pathlib import Path

import pytest

import simlab

#: A tiny template that fails on purpose while a marker file exists.
FRAGILE = Path(__file__).with_name("notebooks") / "fragile.ipynb"


@pytest.fixture(scope="session", autouse=True)
def sweep_profile():
    """Profile ``sweeptest``: a local cluster with two workers (one per core)."""
    import dask.config

    profile = {"kind": "local", "n_workers": 2, "dashboard_address": ":0"}
    with dask.config.set({"simlab.clusters.sweeptest": profile}):
        yield "sweeptest"


def small_config(**metadata: str) -> simlab.RunConfig:
    """16³ particles in a 200 Mpc/h box from z = 19 in 6 steps: a few seconds."""
    return simlab.RunConfig(
        box={"size": 200.0, "particles_per_side": 16},
        ics={"z_start": 19.0, "seed": 7},
        outputs={"redshifts": [0.0]},
        gravity={"steps": 6},
        resources={"cluster": "sweeptest"},
        metadata=metadata,
    )
