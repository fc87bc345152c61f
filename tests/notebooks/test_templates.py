"""Every notebook template runs under papermill, so the docs stay true.

The quickstart runs at its defaults, as ``make demo`` does, and its two figures
replace the README's (docs/images), so the README shows what the code draws.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import nbformat
import pytest

from simlab.templates import _SEARCH, execute_notebook, template_path
from tests.conftest import data_path

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SMALL = {
    "run_simulation": {"particles_per_side": 16, "box_size": 64.0, "steps": 4},
    "analyze_snapshot": {"mesh": 32},
}
#: A real Gadget4 snapshot (two files) for analyze_snapshot.
GADGET4_SNAPSHOT = "gadget4-small/ngenic32/output/snapdir_003/snapshot_003.0.hdf5"


def _small_sweep(root):
    """A real two-point sweep of run_simulation for sweep_summary to read."""
    import simlab

    config = simlab.RunConfig(
        box={"size": 200.0, "particles_per_side": 16},
        ics={"z_start": 19.0},
        outputs={"redshifts": [0.0]},
        gravity={"steps": 4},
    )
    grid = {"sigma8": [0.7, 0.9]}
    handle = simlab.sweep(
        "run_simulation",
        grid=grid,
        base=config,
        parameters={"figures": False},
        root=root,
        progress=False,
    )
    assert handle.states() == ["completed", "completed"]
    return handle.path


TEMPLATES = sorted(p.stem for folder in _SEARCH for p in folder.glob("*.ipynb"))


def test_every_template_has_a_parameters_cell():
    assert "quickstart" in TEMPLATES
    for name in TEMPLATES:
        nb = nbformat.read(template_path(name), as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert sum("parameters" in t for t in tags) == 1, name


def assert_valid_with_cell_ids(path: Path) -> None:
    """nbformat 4.5 with a unique id on every cell, valid without any warning
    (nbformat's MissingIDFieldWarning included)."""
    data = json.loads(path.read_text())
    assert (data["nbformat"], data["nbformat_minor"]) >= (4, 5), path.name
    ids = [cell.get("id") for cell in data["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), (path.name, ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbformat.validate(nbformat.read(path, as_version=4))


def test_every_template_is_nbformat_4_5_with_cell_ids():
    for name in TEMPLATES:
        assert_valid_with_cell_ids(template_path(name))


def test_unknown_template_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"available: .*quickstart"):
        template_path("nope")


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_executes(name, tmp_path):
    params = {"output_dir": str(tmp_path), **SMALL.get(name, {})}
    if name == "analyze_snapshot":
        params["snapshot"] = str(data_path(GADGET4_SNAPSHOT))
    if name == "sweep_summary":
        params["sweep_dir"] = str(_small_sweep(tmp_path / "runs"))
    executed = execute_notebook(name, tmp_path / f"{name}.ipynb", params)
    assert_valid_with_cell_ids(executed)  # papermill's injected cell too
    nb = json.loads(executed.read_text())
    errors = [
        o
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []
    if name == "quickstart":
        for figure in ("projection.png", "power_spectrum.png"):
            assert (tmp_path / figure).stat().st_size > 10_000
            shutil.copyfile(tmp_path / figure, DOCS_IMAGES / figure)
        # P(k) drawn to the particle Nyquist k of 64³ in 128 Mpc/h, no further
        printed = "".join(
            "".join(o.get("text", ""))
            for c in nb["cells"]
            for o in c.get("outputs", [])
        )
        assert f"drawn up to k_Nyq = {math.pi * 64 / 128:.3f} h/Mpc" in printed
        assert len(list((tmp_path / "runs").glob("*/status.json"))) == 1
        # the launcher cell built the form for this run and printed its estimate
        launcher = next(
            c for c in nb["cells"] if "launcher(config)" in "".join(c["source"])
        )
        printed = "".join(
            "".join(o.get("text", ""))
            for o in launcher["outputs"]
            if o["output_type"] == "stream"
        )
        assert "Estimate:" in printed and " s" in printed
    if name == "run_simulation":
        for figure in ("projection.png", "power_spectrum.png"):
            assert (tmp_path / figure).stat().st_size > 10_000
        (run,) = (tmp_path / "runs").glob("*/status.json")
        assert json.loads(run.read_text())["state"] == "completed"
    if name == "analyze_snapshot":
        for figure in ("snapshot_power.png", "snapshot_projection.png"):
            assert (tmp_path / figure).stat().st_size > 10_000
    if name == "sweep_summary":
        assert (tmp_path / "sweep_summary.png").stat().st_size > 10_000
        assert (Path(params["sweep_dir"]) / "results.nc").stat().st_size > 1000


def test_a_deep_runtime_folder_still_runs_kernels(tmp_path, monkeypatch):
    # Unix socket paths stop at ~104 bytes; a deep JUPYTER_RUNTIME_DIR must not
    # make every notebook fail with "File name too long"
    from simlab.templates import SOCKET_PATH_MAX, socket_base

    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5, "runtime")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(deep))
    assert len(str(deep)) > SOCKET_PATH_MAX
    assert len(socket_base()) + len("-65535") <= SOCKET_PATH_MAX
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    source = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, source)
    executed = nbformat.read(
        execute_notebook(str(source), tmp_path / "out.ipynb"), as_version=4
    )
    assert executed.cells[0].outputs[0]["text"] == "42\n"
