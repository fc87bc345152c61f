"""environment.yml and environment-dev.yml list what pyproject.toml lists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: PyPI name -> conda-forge name, where they differ (extras have no conda form:
#: dask[array] is dask-core plus numpy, pytest-jupyter[server] gets jupyter_server
#: from jupyterlab).
CONDA_NAMES = {
    "build": "python-build",
    "dask": "dask-core",
    "matplotlib": "matplotlib-base",
}
CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\s*(?P<spec>.*)$")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _wanted(requirements: list[str]) -> dict[str, str]:
    """``{conda-forge name: version specifier}`` of pyproject requirements."""
    wanted = {}
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        wanted[CONDA_NAMES.get(name, name)] = str(req.specifier)
    return wanted


def _listed(filename: str) -> dict[str, str]:
    """``{name: specifier}`` of an environment file, its pip section included."""
    env = yaml.safe_load((ROOT / filename).read_text())
    assert env["channels"] == ["conda-forge"], f"{filename}: channels"
    listed = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the pip section: PyPI requirements
            for text in entry["pip"]:
                req = Requirement(text)
                listed[canonicalize_name(req.name)] = str(req.specifier)
            continue
        match = CONDA_SPEC.match(entry)
        listed[match["name"].lower()] = match["spec"].replace(" ", "")
    return listed


@pytest.mark.parametrize(
    ("filename", "extras"),
    [("environment.yml", []), ("environment-dev.yml", ["test"])],
)
def test_environment_lists_the_pyproject_dependencies(filename, extras):
    project = _pyproject()
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    wanted = _wanted(requirements)
    wanted["python"] = project["requires-python"]
    wanted["pip"] = ""  # to install simlab itself
    listed = _listed(filename)
    missing = sorted(set(wanted) - set(listed))
    extra = sorted(set(listed) - set(wanted))
    assert not missing and not extra, f"{filename}: missing {missing}, extra {extra}"
    differ = {n: (listed[n], wanted[n]) for n in wanted if listed[n] != wanted[n]}
    assert not differ, f"{filename}: versions (listed, pyproject) differ: {differ}"
