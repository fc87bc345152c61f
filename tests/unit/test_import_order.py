"""The public API means the same whatever was imported first, and stays lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Imports a user or a notebook may do before calling the public functions.
BEFORE = [
    "",
    "import simlab.service.run",
    "import simlab.service.submission",
    "import simlab.service.sweeps",
    "import simlab.service.compare",
    "from simlab.state import catalog",
    "import simlab.cli",
    "simlab.submit; simlab.Run",
]


@pytest.mark.parametrize("first", BEFORE)
def test_public_functions_survive_every_import_order(first, tmp_path):
    code = f"""
import simlab
{first}
import dask.config
with dask.config.set({{"simlab.run-root": {str(tmp_path)!r}}}):
    assert simlab.runs() == [], simlab.runs
    assert callable(simlab.sweep) and callable(simlab.compare)
    assert simlab.Sweep.__name__ == "Sweep" and simlab.Run.__name__ == "Run"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_import_simlab_loads_nothing_heavy():
    code = (
        "import sys, simlab; heavy = {'dask', 'xarray', 'numpy', 'scipy', "
        "'ipywidgets', 'simlab.service', 'simlab.state'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
