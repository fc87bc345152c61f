"""Fixtures of the multi-user tests: two system users behind a real JupyterHub."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests import slurm_cluster
from tests.conftest import _needs
from tests.hub import hubsetup


@dataclass
class HubWorld:
    """The hub, its two users (``a`` and ``b``), their group and group space."""

    hub: hubsetup.Hub
    a: hubsetup.HubUser
    b: hubsetup.HubUser
    gid: int
    space: Path
    venv: Path


def _system_config(venv: Path, space: Path) -> None:
    """What an admin ships in /etc/dask/simlab.yaml, here in the venv's etc/dask."""
    folder = venv / "etc" / "dask"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "simlab": {
            "group-root": str(space),
            "clusters": {
                "local": {"kind": "local", "n_workers": 1},
                # the one-node Slurm of tests/slurm_cluster.py, when it runs
                "testslurm": {**slurm_cluster.PROFILE, "max_jobs": 1},
            },
        }
    }
    (folder / "simlab.yaml").write_text(yaml.safe_dump(config))
    os.chmod(folder / "simlab.yaml", 0o644)


@pytest.fixture(scope="module")
def world():
    """A running hub with two logged-out users and a group space; all torn down."""
    _needs(hubsetup.unavailable(), "JupyterHub with system users", hubsetup.INSTALL)
    venv = hubsetup.users_environment()
    base = Path(tempfile.mkdtemp(prefix="simlab-hub-"))
    os.chmod(base, 0o755)
    state = base / "hub"
    state.mkdir(mode=0o700)
    tag = secrets.token_hex(3)
    group = f"slg{tag}"
    users: list[hubsetup.HubUser] = []
    hub = None
    try:
        gid = hubsetup.create_group(group)
        users = [hubsetup.create_user(f"sl{tag}{x}", group) for x in "ab"]
        space = base / "group"
        space.mkdir()
        os.chown(space, 0, gid)
        os.chmod(space, 0o3770)
        _system_config(venv, space)
        hub = hubsetup.start_hub(state, users, venv)
        yield HubWorld(hub, users[0], users[1], gid, space, venv)
    finally:
        if hub is not None:
            hubsetup.stop_hub(hub)
        for user in users:
            hubsetup.remove_user(user)
        with contextlib.suppress(FileNotFoundError):
            subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
