"""Every notebook template runs under papermill, so the docs stay true."""

from __future__ import annotations

import json

import nbformat
import pytest

from simlab.templates import _SEARCH, execute_notebook, template_path

SMALL = {
    "quickstart": {"particles": 16, "box_size": 64.0, "steps": 8},
}
TEMPLATES = sorted(p.stem for folder in _SEARCH for p in folder.glob("*.ipynb"))


def test_every_template_has_a_parameters_cell():
    assert "quickstart" in TEMPLATES
    for name in TEMPLATES:
        nb = nbformat.read(template_path(name), as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert sum("parameters" in t for t in tags) == 1, name


def test_unknown_template_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"available: .*quickstart"):
        template_path("nope")


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_executes(name, tmp_path):
    params = {"output_dir": str(tmp_path), **SMALL.get(name, {})}
    executed = execute_notebook(name, tmp_path / f"{name}.ipynb", params)
    nb = json.loads(executed.read_text())
    errors = [
        o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []
    if name == "quickstart":
        for figure in ("projection.png", "power_spectrum.png"):
            assert (tmp_path / figure).stat().st_size > 10_000
        assert len(list((tmp_path / "runs").glob("*/status.json"))) == 1
