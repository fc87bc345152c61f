"""Widgets use only JupyterLab's ``--jp-*`` colours, so they follow every theme."""

from __future__ import annotations

import re
from pathlib import Path

import ipywidgets as widgets
import pytest

import simlab.widgets
from simlab.dispatch.task import execute
from simlab.service.submission import create
from simlab.widgets import (
    InteractiveViewer,
    RunForm,
    RunMonitor,
    RunTable,
    SnapshotViewer,
    SweepBuilder,
)
from simlab.widgets import launcher as make_launcher

#: A hex colour in CSS (not an HTML character reference such as &#9888;).
HEX = re.compile(r"(?<![&\w])#[0-9a-fA-F]{3,8}\b")
FUNCTION = re.compile(r"\b(?:rgba?|hsla?)\(")
#: A CSS colour property and its value.
PROPERTY = re.compile(
    r"(?<![\w-])(color|background(?:-color)?|border(?:-[a-z]+)?-color|border"
    r"|outline|fill|stroke)\s*:\s*([^;'\"}]+)"
)
NEUTRAL = {"inherit", "transparent", "none", "currentcolor", "initial", "unset"}


def hard_coded_colours(text: str) -> list[str]:
    """Every colour in ``text`` that is not a ``--jp-*`` variable."""
    found = HEX.findall(text) + FUNCTION.findall(text)
    for prop, value in PROPERTY.findall(text):
        value = value.strip()
        if "var(--jp-" not in value and value.lower() not in NEUTRAL:
            found.append(f"{prop}: {value}")
    return found


def test_the_scanner_finds_what_it_must():
    assert hard_coded_colours("<pre style='background:#f7f7f7'>") == [
        "#f7f7f7",
        "background: #f7f7f7",
    ]
    assert hard_coded_colours("<span style='color:red'>") == ["color: red"]
    assert hard_coded_colours("a rgb(1, 2, 3) b") == ["rgb("]
    ok = (
        "<i style='color:var(--jp-error-color1);"
        "border:1px solid var(--jp-border-color1)'>"
    )
    assert hard_coded_colours(ok + "&#9888; item #3") == []


def test_widget_sources_hold_no_colour_literals():
    for path in Path(simlab.widgets.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert not HEX.findall(text) and not FUNCTION.findall(text), path.name


def _descendants(widget: widgets.Widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)


def _rendered(widget: widgets.Widget) -> list[str]:
    """Every HTML text and style colour a widget tree sends to the browser."""
    texts = []
    for w in _descendants(widget):
        if isinstance(w, widgets.HTML | widgets.HTMLMath | widgets.Label):
            texts.append(w.value)
        style = getattr(w, "style", None)
        for name in style.keys if style is not None else ():
            value = getattr(style, name)
            if ("color" in name or "background" in name) and value:
                texts.append(f"{name.replace('_', '-')}: {value}")
    return texts


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A completed and a failed real PM run (its ICs were overwritten with garbage)."""
    root = tmp_path_factory.mktemp("runs")
    small = {"box": {"size": 64.0, "particles_per_side": 8}, "gravity": {"steps": 3}}
    done = create({**small, "metadata": {"name": "done"}}, root=root)
    done.dir.transition("queued")
    assert execute(done.path) == "completed", done.logs()
    failed = create({**small, "metadata": {"name": "broken"}}, root=root)
    (failed.dir.inputs / "ics.hdf5").write_bytes(b"garbage")
    failed.dir.transition("queued")
    assert execute(failed.path) == "failed"
    return root, done, failed


def test_every_widget_renders_only_theme_colours(runs):
    root, done, failed = runs
    failed_monitor = RunMonitor(failed, autostart=False)
    assert failed_monitor.reason.value and "ics.hdf5" in failed_monitor.log_view.value
    form = RunForm({"cosmology": {"Omega0": 5.0}})  # shows its errors
    assert form.submit_button.disabled
    shown = [
        form,
        RunTable(root=root),
        SweepBuilder(),
        make_launcher(),
        RunMonitor(done, autostart=False),
        failed_monitor,
        SnapshotViewer(done),
        InteractiveViewer(done),
    ]
    for widget in shown:
        for text in _rendered(widget):
            assert not hard_coded_colours(text), (type(widget).__name__, text)
    for run in (done, failed):
        assert not hard_coded_colours(run._repr_html_())


def test_the_log_uses_the_themes_editor_colours(runs):
    _, _, failed = runs
    log = RunMonitor(failed, autostart=False).log_view.value
    assert "background:var(--jp-cell-editor-background)" in log
    assert "color:var(--jp-content-font-color1)" in log
