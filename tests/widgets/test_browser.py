"""The launcher in a real JupyterLab notebook, driven by headless Chromium.

One Lab, one notebook page and one run for the module: the launcher cell runs
once (``notebook``), and the run is submitted once (``completed``), by the first
test that needs it. Steps as a user takes them: a wrong value in the sweep
builder and in the form, each with its message, the form's tabs at 1024 px, a
submitted run to 100 % and its viewer, a zoom with the viewer's toolbar, and the
monitor and viewer in the light and dark themes. Screenshots of each step go to
``test-artifacts/browser/``; the ones the README and docs/widgets.md show go to
docs/images (``widgets-*.png``), as tests/browser/test_queue.py does for the
sidebar.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    CONTRAST_JS,
    DOCS_IMAGES,
    MIN_CONTRAST,
    browser,
    lab,
    set_theme,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = (
    "import simlab.widgets\n"
    "simlab.widgets.launcher({'box': {'size': 64.0, 'particles_per_side': 16},\n"
    "                         'gravity': {'steps': 8},\n"
    "                         'metadata': {'name': 'from-the-browser'}}, poll=0.5)"
)
BOX = 64.0
#: The form's tab titles, in order (RunForm's sections).
FORM_TABS = [
    "Cosmology",
    "Box",
    "Initial conditions",
    "Outputs",
    "Gravity",
    "Code",
    "Resources",
    "Metadata",
]

#: Whether every ipympl canvas under ``selector`` (at least ``count``) has been
#: painted by the kernel: a drawn figure has many colours, a blank canvas one.
PAINTED_JS = """
([selector, count]) => {
  const canvases = [...document.querySelectorAll(
    `${selector} .jupyter-matplotlib-canvas-div canvas:first-child`)];
  return canvases.length >= count && canvases.every(c => {
    if (c.width < 100 || c.height < 100) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4 * 37) {
      seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return seen.size > 20;
  });
}
"""
#: The relative luminance (0 black, 1 white) of the first ipympl canvas's top
#: left corner under ``selector``: the figure's background.
BACKGROUND_JS = """
(selector) => {
  const c = document.querySelector(
    `${selector} .jupyter-matplotlib-canvas-div canvas:first-child`);
  const [r, g, b] = c.getContext('2d').getImageData(2, 2, 1, 1).data;
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}
"""
#: The view the viewer's info line names: "view x 0–64, y 0–64 Mpc/h".
VIEW = re.compile(r"view x (\S+)–(\S+), y (\S+)–(\S+) Mpc/h")


def _notebook(lab, name: str) -> None:  # noqa: F811  (the fixture's value)
    """Write a one-cell notebook into the server's root through its contents API."""
    content = {
        "cells": [
            {
                "cell_type": "code",
                "source": CELL,
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    body = json.dumps({"type": "notebook", "content": content}).encode()
    request = urllib.request.Request(
        f"{lab.url}api/contents/{name}",
        data=body,
        method="PUT",
        headers={"Authorization": f"token {lab.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"widgets-{name}.png"))


def _docs_shot(locator, name: str) -> None:
    """A screenshot of one widget for the docs, cropped to it."""
    DOCS_IMAGES.mkdir(exist_ok=True)
    locator.scroll_into_view_if_needed()
    page = locator.page
    page.mouse.move(2, 2)  # no hover highlight, no toolbar fade-in
    page.wait_for_timeout(700)
    locator.screenshot(path=str(DOCS_IMAGES / f"{name}.png"), animations="disabled")


def _monitor_shot(page, name: str) -> None:
    """The monitor down to its viewer, for the docs."""
    page.evaluate(
        "() => document.querySelector('.simlab-monitor')"
        ".scrollIntoView({block: 'start'})"
    )
    page.mouse.move(2, 2)
    page.wait_for_timeout(700)
    top = page.locator(".simlab-monitor").bounding_box()
    end = page.locator(".simlab-monitor .simlab-viewer").bounding_box()
    height = (end["y"] if end else top["y"] + top["height"]) - top["y"]
    clip = {"x": top["x"], "y": top["y"], "width": top["width"], "height": height}
    page.screenshot(path=str(DOCS_IMAGES / f"{name}.png"), clip=clip)


def _tab(page, title: str) -> None:
    """Show the launcher's or the form's tab ``title``."""
    label = page.locator(".simlab-launcher .lm-TabBar-tabLabel").get_by_text(
        title, exact=True
    )
    label.click()


def _omega(page):
    return (
        page.locator(".simlab-launcher .simlab-form .widget-hbox")
        .filter(has=page.locator("b", has_text="Omega0"))
        .locator("input")
    )


def _field_error(page):
    return page.locator(
        ".simlab-launcher .simlab-form .widget-html", has_text="⚠ Input should be"
    )


#: The form's tabs: each title's text, its label's and tab's scroll and client
#: widths, whether the tab lies inside its bar, and the row it sits in.
TABS_JS = """
() => {
  const bar = document.querySelector('.simlab-launcher .simlab-form .lm-TabBar');
  const box = bar.getBoundingClientRect();
  return [...bar.querySelectorAll('.lm-TabBar-tab')].map(tab => {
    const label = tab.querySelector('.lm-TabBar-tabLabel');
    const r = tab.getBoundingClientRect();
    return {text: label.textContent,
            label: [label.scrollWidth, label.clientWidth],
            tab: [tab.scrollWidth, tab.clientWidth],
            inside: r.left >= box.left - 1 && r.right <= box.right + 1,
            row: Math.round(r.top - box.top)};
  });
}
"""


def _clipped(tabs: list[dict]) -> list[dict]:
    """The tabs whose title does not show whole."""
    return [
        t for t in tabs
        if t["label"][0] > t["label"][1] + 1 or t["tab"][0] > t["tab"][1] + 1
        or not t["inside"]
    ]  # fmt: skip


def _assert_whole_box(view: tuple[float, ...]) -> None:
    """``view`` is the whole box (its pixels may sit half a pixel off the origin)."""
    left, right, bottom, top = view
    assert right - left == pytest.approx(BOX) and top - bottom == pytest.approx(BOX)
    assert abs(left) <= 1.0 and abs(bottom) <= 1.0, view


def _view(page) -> tuple[float, ...]:
    text = page.locator(".simlab-viewer .widget-html", has_text="pixels of").first
    match = VIEW.search(text.inner_text())
    assert match, text.inner_text()
    return tuple(float(v) for v in match.groups())


@pytest.fixture(scope="module")
def notebook(lab, browser):  # noqa: F811
    """The launcher notebook open in one Lab page, its cell run once."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    _notebook(lab, "launcher.ipynb")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{lab.url}lab/tree/launcher.ipynb?reset&token={lab.token}")
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    dialog = page.locator(".jp-Dialog button.jp-mod-accept", has_text="Select")
    # Lab may ask which kernel to start for a notebook never opened
    with contextlib.suppress(PlaywrightTimeout):
        dialog.click(timeout=20_000)
    page.wait_for_selector(
        ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000
    )
    page.locator(".jp-Cell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    _omega(page).wait_for(timeout=120_000)
    _shot(page, "1-form")
    yield page
    _shot(page, "last")
    outputs = page.locator(".jp-OutputArea").all_inner_texts()
    context.close()
    assert outputs, "the cell produced no output"
    assert not errors, errors


@pytest.fixture(scope="module")
def completed(notebook):
    """Submit the form once (valid by now) and wait for the run and its viewer."""
    page = notebook
    _tab(page, "New run")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.simlab-launcher .simlab-form button')]"
        ".some(b => b.textContent.includes('Submit') && !b.disabled)",
        timeout=30_000,
    )
    page.locator(
        ".simlab-launcher .simlab-form button.jupyter-button", has_text="Submit"
    ).click()
    # the monitor runs to 100 % and the interactive viewer shows the projection
    page.locator(".simlab-monitor .widget-html", has_text="100% · step").first.wait_for(
        timeout=180_000
    )
    page.locator(".simlab-monitor span", has_text="completed").first.wait_for(
        timeout=60_000
    )
    figure = page.locator(".simlab-viewer .jupyter-matplotlib-figure").first
    # Lab 4 skips laying out output that is out of view: scroll to it first
    figure.wait_for(state="attached", timeout=120_000)
    figure.scroll_into_view_if_needed()
    figure.wait_for(timeout=60_000)
    page.locator(".simlab-viewer .widget-html", has_text="pixels of").first.wait_for(
        timeout=60_000
    )
    # the kernel has drawn the map and the P(k) figure
    page.wait_for_function(PAINTED_JS, arg=[".simlab-viewer", 2], timeout=60_000)
    return page


def test_sweep_builder_flags_a_wrong_value_before_launch(notebook):
    from simlab.widgets import RunForm

    page = notebook
    _tab(page, "Sweep")
    sweep = page.locator(".simlab-sweep")
    sweep.locator("button", has_text="Add parameter").click()
    name = sweep.locator("select").first
    expect(name.locator("option")).not_to_have_count(0, timeout=30_000)
    labels = name.locator("option").all_text_contents()
    assert any("Omega0" in t for t in labels), labels
    name.select_option(index=next(i for i, t in enumerate(labels) if "Omega0" in t))
    values = sweep.locator('input[placeholder="values, comma-separated"]')
    launch = sweep.locator("button", has_text="Launch sweep")
    # When an invalid value is typed among valid ones
    values.fill("0.3, 5")
    # Then its row says why, in the words the form uses for that value
    error = sweep.locator(".widget-html", has_text="Omega0 = 5:")
    expect(error).to_be_visible(timeout=30_000)
    message = RunForm({"cosmology": {"Omega0": 5}}).rows["cosmology.Omega0"]
    assert error.inner_text().strip() == f"Omega0 = 5: {message.error_message}"
    size = sweep.locator(".widget-html", has_text="problem(s)")
    assert size.inner_text().strip() == "1 problem(s): fix them to launch"
    # and Launch is disabled before anything is started
    expect(launch).to_be_disabled()
    _shot(page, "sweep-invalid")
    # the form shows the same words under its own field for that value
    _tab(page, "New run")
    omega = _omega(page)
    before = omega.input_value()
    omega.fill("5")
    expect(_field_error(page)).to_be_visible(timeout=30_000)
    shown = _field_error(page).inner_text().strip()
    assert shown == f"⚠ {message.error_message}"
    assert error.inner_text().strip() == f"Omega0 = 5: {shown[2:]}"
    omega.fill(before)
    expect(_field_error(page)).to_be_hidden(timeout=30_000)
    # When the value is fixed, the error goes and Launch is enabled
    _tab(page, "Sweep")
    values.fill("0.3, 0.25")
    expect(error).to_be_hidden(timeout=30_000)
    expect(launch).to_be_enabled(timeout=30_000)
    grid = sweep.locator(".widget-html", has_text="grid:")
    assert grid.inner_text().strip() == "grid: 2 = 2 run(s)"
    # nothing was launched: no sweep message, no run directory
    assert "launched sweep" not in sweep.inner_text()
    sweep.locator("button .fa-trash").click()  # leave the builder as it was
    expect(launch).to_be_disabled(timeout=30_000)
    _tab(page, "New run")


def test_form_tab_titles_are_whole_at_1024_px(notebook):
    page = notebook
    page.set_viewport_size({"width": 1024, "height": 768})
    try:
        # the left sidebar (the file browser) is open beside the notebook
        expect(page.locator("#filebrowser")).to_be_visible()
        assert page.locator("#filebrowser").bounding_box()["width"] > 150
        _tab(page, "New run")
        form = page.locator(".simlab-launcher .simlab-form")
        form.scroll_into_view_if_needed()
        page.wait_for_timeout(500)  # the tab bar has laid out at the new width
        tabs = page.evaluate(TABS_JS)
        assert [t["text"] for t in tabs] == FORM_TABS
        assert _clipped(tabs) == [], _clipped(tabs)
        # they fit by wrapping onto a second row, not by shrinking
        assert len({t["row"] for t in tabs}) >= 2, tabs
        # the measure would see it: without the form's tab CSS, titles are cut
        bare = page.evaluate(
            """(measure) => {
              const css = [...document.querySelectorAll('.simlab-launcher style')]
                .find(s => s.textContent.includes('.simlab-form .lm-TabBar'));
              css.disabled = true;
              try { return eval(measure)(); } finally { css.disabled = false; }
            }""",
            TABS_JS,
        )
        assert _clipped(bare), bare
        # the notebook is narrower than the tabs at their full width: they wrap
        width = form.bounding_box()["width"]
        assert width < 800, width
        _shot(page, "1024-form")
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_launcher_in_jupyterlab(notebook, request):
    page = notebook
    _tab(page, "New run")
    omega = _omega(page)
    # an invalid Omega0 shows its error under the field and disables Submit
    omega.fill("3")
    error = _field_error(page)
    error.first.wait_for(timeout=30_000)
    assert "allowed: a number in (0, 2]" in error.first.inner_text()
    # the widget's button, not the sidebar form's
    submit = page.locator(
        ".simlab-launcher .simlab-form button.jupyter-button", has_text="Submit"
    )
    assert submit.is_disabled()
    _shot(page, "2-invalid-omega0")
    _docs_shot(page.locator(".simlab-launcher"), "widgets-form")

    # fixed, the error goes and Submit comes back; submitted, the run completes
    omega.fill("0.31")
    error.first.wait_for(state="hidden", timeout=30_000)
    request.getfixturevalue("completed")
    viewer = page.locator(".simlab-viewer")
    viewer.scroll_into_view_if_needed()
    _shot(page, "3-completed-and-viewer")
    # the whole box is drawn first
    _assert_whole_box(_view(page))
    _docs_shot(viewer, "widgets-viewer")


def test_toolbar_zoom_redraws_the_dragged_range(completed):
    page = completed
    viewer = page.locator(".simlab-viewer")
    viewer.scroll_into_view_if_needed()
    info = viewer.locator(".widget-html", has_text="pixels of").first
    pixels = re.search(r"(\d+)×(\d+) pixels of", info.inner_text()).groups()
    before = _view(page)
    map_figure = viewer.locator(".jupyter-matplotlib-figure").first
    canvas = map_figure.locator(".jupyter-matplotlib-canvas-div")
    footer = map_figure.locator(".jupyter-matplotlib-footer")
    box = canvas.bounding_box()
    # two points inside the map (the axes take the left part of the figure)
    start = (box["x"] + 0.35 * box["width"], box["y"] + 0.35 * box["height"])
    end = (box["x"] + 0.55 * box["width"], box["y"] + 0.6 * box["height"])

    def data_at(x: float, y: float) -> tuple[float, float]:
        """The data coordinates the kernel reports under the mouse (footer)."""
        page.mouse.move(x, y)
        expect(footer).to_contain_text("(x, y) = (", timeout=10_000)
        page.wait_for_timeout(300)
        page.mouse.move(x, y)  # the last message is for this point
        page.wait_for_timeout(500)
        found = re.search(r"\(x, y\) = \((\S+), (\S+)\)", footer.inner_text())
        assert found, footer.inner_text()
        return float(found[1]), float(found[2])

    x0, y0 = data_at(*start)
    x1, y1 = data_at(*end)
    assert 0 < x0 < x1 < BOX and 0 < y1 < y0 < BOX, (x0, y0, x1, y1)
    # When a rectangle is dragged with the toolbar's zoom
    map_figure.locator('button[title^="Zoom"]').click()
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    # Then the map is recomputed over that range, at the same pixels
    expect(info).not_to_contain_text(
        f"view x {before[0]:.4g}–{before[1]:.4g}", timeout=30_000
    )
    left, right, bottom, top = _view(page)
    tolerance = 0.02 * BOX  # the mouse position is read to the kernel's rounding
    assert left == pytest.approx(x0, abs=tolerance), (left, x0)
    assert right == pytest.approx(x1, abs=tolerance), (right, x1)
    assert bottom == pytest.approx(y1, abs=tolerance), (bottom, y1)
    assert top == pytest.approx(y0, abs=tolerance), (top, y0)
    after = re.search(r"(\d+)×(\d+) pixels of (\S+) Mpc/h", info.inner_text())
    columns, rows = int(after[1]), int(after[2])
    # the chosen pixels along the longer side of the view, square pixels
    assert max(columns, rows) == max(map(int, pixels))
    assert (columns < rows) == (right - left < top - bottom)
    assert float(after[3]) == pytest.approx((right - left) / columns, rel=0.01)
    assert float(after[3]) == pytest.approx((top - bottom) / rows, rel=0.05)
    page.wait_for_function(PAINTED_JS, arg=[".simlab-viewer", 2], timeout=60_000)
    _shot(page, "4-zoomed")
    # the toolbar's Home shows the whole box again
    map_figure.locator('button[title^="Reset"]').click()
    expect(info).not_to_contain_text(f"view x {left:.4g}–{right:.4g}", timeout=30_000)
    _assert_whole_box(_view(page))


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_monitor_and_viewer_are_readable_in_both_themes(lab, completed, theme):  # noqa: F811
    page = completed
    dark = "Dark" in theme
    set_theme(page, theme)
    monitor = page.locator(".simlab-monitor")
    log = monitor.locator(".simlab-monitor-log pre")
    expect(log).not_to_be_empty(timeout=30_000)
    # the log area shows the end of the run's log file, as the file has it
    from simlab.service.run import Run
    from simlab.widgets.monitor import log_tail

    run_id = monitor.locator(".widget-html b").first.inner_text().strip()
    tail = log_tail(Run(lab.run_root / run_id).dir.log_path)
    assert "step 8/8" in tail
    assert log.inner_text().strip() == tail.strip()
    selectors = [
        ".simlab-monitor .simlab-monitor-log pre",
        ".simlab-monitor .widget-html b",
        ".simlab-monitor .widget-html span",
        ".simlab-viewer .widget-html span",
        ".simlab-launcher .lm-TabBar-tabLabel",
    ]
    log.scroll_into_view_if_needed()
    measured = page.evaluate(CONTRAST_JS, selectors)
    assert set(measured) == set(selectors), set(selectors) - set(measured)
    low = {k: m for k, m in measured.items() if m["ratio"] < MIN_CONTRAST}
    assert not low, low
    # the log's own background follows the theme
    log_bg = measured[selectors[0]]["bg"]
    assert (sum(log_bg) / 3 < 100) if dark else (sum(log_bg) / 3 > 200), log_bg
    slug = "-dark" if dark else ""
    _monitor_shot(page, f"widgets-monitor{slug}")
    # a viewer opened now draws its figures in the theme (the snapshot's view)
    # (the kernel reads the theme from the Lab's settings file, once it is saved)
    themes = (
        lab.root_dir / "settings" / "@jupyterlab" / "apputils-extension"
        / "themes.jupyterlab-settings"
    )  # fmt: skip
    default = "JupyterLab Light"
    deadline = time.monotonic() + 30
    # (no file yet: the default, light)
    while theme not in (themes.read_text() if themes.exists() else default):
        assert time.monotonic() < deadline, f"{themes} does not name {theme}"
        time.sleep(0.2)
    page.evaluate(
        "() => document.querySelectorAll('.simlab-viewer')"
        ".forEach(v => v.classList.add('simlab-old-viewer'))"
    )
    monitor.locator(".widget-button", has_text="view").last.click()
    page.locator(".simlab-old-viewer").first.wait_for(state="detached", timeout=60_000)
    page.locator(".simlab-viewer").first.wait_for(state="attached", timeout=60_000)
    viewer = page.locator(".simlab-viewer")
    viewer.scroll_into_view_if_needed()
    page.wait_for_function(PAINTED_JS, arg=[".simlab-viewer", 2], timeout=60_000)
    background = page.evaluate(BACKGROUND_JS, ".simlab-viewer")
    assert (background < 0.2) if dark else (background > 0.8), background
    if dark:
        _docs_shot(viewer, "widgets-viewer-dark")
        _tab(page, "New run")
        _docs_shot(
            page.locator(".simlab-launcher .widget-tab").first, "widgets-form-dark"
        )
        set_theme(page, "JupyterLab Light")
