"""The launcher in a real JupyterLab notebook, driven by headless Chromium.

Steps as a user takes them: run the launcher cell, type an invalid Omega0 and see
its error, fix it, submit, watch the progress reach 100 % and the projection
image appear. A screenshot of each step goes to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request

import pytest

from tests.browser.conftest import ARTIFACTS, browser, lab  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = (
    "import simlab.widgets\n"
    "simlab.widgets.launcher({'box': {'size': 64.0, 'particles_per_side': 16},\n"
    "                         'gravity': {'steps': 8},\n"
    "                         'metadata': {'name': 'from-the-browser'}}, poll=0.5)"
)


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


def test_launcher_in_jupyterlab(lab, browser):  # noqa: F811
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    _notebook(lab, "launcher.ipynb")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
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
        omega = (
            page.locator(".widget-hbox")
            .filter(has=page.locator("b", has_text="Omega0"))
            .locator("input")
        )
        omega.wait_for(timeout=120_000)
        _shot(page, "1-form")

        # an invalid Omega0 shows its error under the field and disables Submit
        omega.fill("3")
        error = page.locator(".widget-html", has_text="⚠ Input should be less")
        error.first.wait_for(timeout=30_000)
        assert "allowed: a number in (0, 2]" in error.first.inner_text()
        # the widget's button, not the sidebar form's
        submit = page.locator("button.jupyter-button", has_text="Submit")
        assert submit.is_disabled()
        _shot(page, "2-invalid-omega0")

        # fixed, the error goes and Submit comes back
        omega.fill("0.31")
        error.first.wait_for(state="hidden", timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('button')]"
            ".some(b => b.textContent.includes('Submit') && !b.disabled)",
            timeout=30_000,
        )
        submit.click()

        # the monitor runs to 100 % and the interactive viewer shows the projection
        page.locator(".widget-html", has_text="100% · step").first.wait_for(
            timeout=180_000
        )
        page.locator("span", has_text="completed").first.wait_for(timeout=60_000)
        figure = page.locator(".jupyter-matplotlib-figure").first
        # Lab 4 skips laying out output that is out of view: scroll to it first
        figure.wait_for(state="attached", timeout=120_000)
        figure.scroll_into_view_if_needed()
        figure.wait_for(timeout=60_000)
        info = page.locator(".widget-html", has_text="pixels of").first
        info.wait_for(timeout=60_000)
        # the kernel has drawn the map and the P(k) figure (both canvases sized)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jupyter-matplotlib-figure')]"
            ".filter(f => f.getBoundingClientRect().height > 300).length >= 2",
            timeout=60_000,
        )
        figure.scroll_into_view_if_needed()
        _shot(page, "3-completed-and-viewer")
    finally:
        _shot(page, "last")
        outputs = page.locator(".jp-OutputArea").all_inner_texts()
        context.close()
    assert outputs, "the cell produced no output"
    assert not errors, errors
