"""The example jupyterhub_config.py of docs/ sets only options JupyterHub knows."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub.app import JupyterHub
from jupyterhub.auth import PAMAuthenticator
from jupyterhub.spawner import LocalProcessSpawner
from traitlets.config.loader import PyFileConfigLoader

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples"
CLASSES = {
    "JupyterHub": JupyterHub,
    "Spawner": LocalProcessSpawner,
    "Authenticator": PAMAuthenticator,
    "PAMAuthenticator": PAMAuthenticator,
}


@pytest.mark.parametrize("on_cluster", [False, True])
def test_example_config_names_real_options(tmp_path, on_cluster):
    text = (EXAMPLE / "jupyterhub_config.py").read_text()
    if on_cluster:
        text = text.replace("SPAWN_ON_CLUSTER = False", "SPAWN_ON_CLUSTER = True")
    (tmp_path / "jupyterhub_config.py").write_text(text)
    config = PyFileConfigLoader(
        "jupyterhub_config.py", path=str(tmp_path)
    ).load_config()

    expected = "batchspawner.SlurmSpawner" if on_cluster else "localprocess"
    assert config.JupyterHub.spawner_class == expected
    assert config.Spawner.cmd == ["/opt/simlab/bin/jupyterhub-singleuser"]
    assert config.Spawner.default_url == "/lab"
    for section, cls in CLASSES.items():
        unknown = set(config[section]) - set(cls.class_traits())
        assert not unknown, f"{section}: {unknown}"
    # batchspawner is not installed here: its options follow its req_* naming
    slurm = set(config.SlurmSpawner) if on_cluster else set()
    assert all(name.startswith("req_") for name in slurm)
    assert {"req_partition", "req_runtime"} <= slurm or not on_cluster
