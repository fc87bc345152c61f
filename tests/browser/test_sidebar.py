"""The Simulations sidebar in a real JupyterLab, driven by headless Chromium."""

from __future__ import annotations

import json
import math
import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.server.configs import QUICK, SLOW

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _run(page, run_id: str):
    return page.locator(f'#simlab-sidebar .simlab-run[data-run-id="{run_id}"]')


def test_sidebar_lists_a_run_submitted_through_the_api(lab, page):
    # Given a run started through the REST API and finished
    run = lab.api("POST", "runs?wait=true&timeout=120", QUICK)
    assert run["state"] == "completed"
    # Then the sidebar shows it with its state and a full progress bar
    row = _run(page, run["id"])
    row.wait_for(timeout=30_000)
    expect(row.locator(".simlab-badge")).to_have_text("completed", timeout=15_000)
    bar = row.locator(".simlab-progress")
    assert bar.get_attribute("aria-valuenow") == "100"
    assert row.locator(".simlab-progress-text").inner_text() == "100%"
    assert "a=1.000" in bar.get_attribute("title")
    # the full name and id on hover, created and elapsed as columns
    assert row.locator(".simlab-run-name").get_attribute("title").split("\n")[:2] == [
        run["name"],
        run["id"],
    ]
    assert re.fullmatch(r"\d+s", row.locator(".simlab-run-elapsed").inner_text())
    assert row.locator(".simlab-run-created").inner_text() != ""
    # and the filter box hides it when its name does not match
    page.fill("#simlab-sidebar .simlab-filter", "no-such-name")
    row.wait_for(state="detached", timeout=15_000)
    page.fill("#simlab-sidebar .simlab-filter", "quick")
    row.wait_for(timeout=15_000)
    page.fill("#simlab-sidebar .simlab-filter", "")


def test_sweep_grouping_and_cluster_scaling(lab, page):
    for i in range(2):
        config = {**QUICK, "metadata": {"name": f"pt{i}", "sweep": "grid"}}
        assert lab.api("POST", "runs?wait=true", config)["state"] == "completed"
    header = page.locator("#simlab-sidebar .simlab-sweep-header", has_text="grid")
    expect(header).to_contain_text("2/2 completed", timeout=15_000)
    group = page.locator('#simlab-sidebar .simlab-sweep[data-sweep="grid"]')
    assert group.locator(".simlab-run").count() == 2
    header.click()  # collapses the group
    expect(group.locator(".simlab-run")).to_have_count(0, timeout=15_000)

    cluster = page.locator("#simlab-sidebar .simlab-cluster").first
    expect(cluster).to_contain_text("1 worker ", timeout=15_000)
    cluster.locator(".simlab-scale-up").click()
    expect(cluster).to_contain_text("2 workers", timeout=60_000)
    workers = lab.api("GET", "clusters")["clusters"][0]["workers"]
    assert len(workers) == 2


def test_progress_moves_log_follows_and_cancel_from_the_ui(lab, page):
    run = lab.api("POST", "runs", SLOW)
    row = _run(page, run["id"])
    row.wait_for(timeout=30_000)
    badge = row.locator(".simlab-badge")
    deadline = time.monotonic() + 120
    while badge.inner_text() != "running" or _percent(row) < 1:
        assert time.monotonic() < deadline, badge.inner_text()
        page.wait_for_timeout(300)
    # the progress bar moves while it runs
    first = _percent(row)
    deadline = time.monotonic() + 60
    while _percent(row) <= first:
        assert time.monotonic() < deadline, "progress did not move"
        page.wait_for_timeout(300)
    # measured from the run's progress by now: no cost-model "≈"
    shown = row.locator(".simlab-run-eta").inner_text()
    assert re.fullmatch(r"\d+h \d\dm|(\d+m )?\d+s", shown), shown

    # the log viewer shows new lines as they come
    row.hover()
    row.locator(".simlab-log-button").click()
    log = page.locator(".simlab-LogViewer .simlab-log")
    log.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('.simlab-LogViewer .simlab-log')"
        ".textContent.includes('pm: step')",
        timeout=30_000,
    )
    before = len(log.inner_text())
    page.wait_for_function(
        f"() => document.querySelector('.simlab-LogViewer .simlab-log')"
        f".textContent.length > {before}",
        timeout=30_000,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sidebar-running.png"))

    # When the run is selected, Cancel clicked and confirmed
    row.locator(".simlab-select").check()
    page.locator("#simlab-sidebar .simlab-bulk-cancel").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10_000)
    assert run["id"] in dialog.inner_text()
    dialog.locator("button.jp-mod-warn").click()
    # Then the run ends cancelled, in the sidebar and in the run directory
    deadline = time.monotonic() + 60
    while badge.inner_text() != "cancelled":
        assert time.monotonic() < deadline, badge.inner_text()
        page.wait_for_timeout(300)
    assert lab.api("GET", f"runs/{run['id']}")["state"] == "cancelled"
    # and a cancelled run cannot be cancelled again, only resumed or put away
    row.locator(".simlab-select").check()
    expect(page.locator("#simlab-sidebar .simlab-bulk-cancel")).to_be_disabled()
    expect(page.locator("#simlab-sidebar .simlab-bulk-resume")).to_be_enabled()
    assert row.locator(".simlab-run-eta").inner_text() == ""


def _duration(seconds: float) -> str:
    """Seconds as the sidebar writes them (``formatDuration`` in format.ts)."""
    hours, rest = divmod(math.floor(seconds + 0.5), 3600)  # JavaScript's Math.round
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _percent(row) -> int:
    return int(row.locator(".simlab-progress").get_attribute("aria-valuenow"))


def test_open_in_notebook_and_the_launcher_card(lab, page):
    config = {**QUICK, "metadata": {"name": "nb"}}
    run = lab.api("POST", "runs?wait=true&timeout=120", config)
    row = _run(page, run["id"])
    expect(row.locator(".simlab-badge")).to_have_text("completed", timeout=15_000)
    # "Open in notebook" writes a notebook that loads the run, and opens it
    row.hover()
    row.locator(".simlab-notebook-button").click()
    name = f"simlab-{run['id']}.ipynb"
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=name)
    tab.wait_for(timeout=30_000)
    notebook = json.loads((lab.root_dir / name).read_text())
    source = "".join(notebook["cells"][1]["source"])
    assert run["path"] in source
    ids = [cell.get("id") for cell in notebook["cells"]]
    assert None not in ids and len(set(ids)) == len(ids)  # nbformat 4.5 cell ids
    # and it runs: the status cell shows the run completed
    select = page.locator(".jp-Dialog button.jp-mod-accept", has_text="Select")
    try:
        select.wait_for(timeout=10_000)
        select.click()
    except PlaywrightTimeout:
        pass  # the kernel started without asking
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    output = panel.locator(".jp-OutputArea-output")
    expect(output.first).to_contain_text("'state': 'completed'", timeout=60_000)
    last_prompt = panel.locator(".jp-InputArea-prompt").last
    expect(last_prompt).to_have_text(re.compile(r"\[\d+\]"), timeout=60_000)
    errors = panel.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, errors.all_inner_texts()
    page.screenshot(path=str(ARTIFACTS / "open-in-notebook.png"))

    # the launcher's "New simulation" card writes the new-simulation notebook
    page.keyboard.press("Control+Shift+L")
    card = page.locator(".jp-LauncherCard:visible", has_text="New Simulation").first
    card.wait_for(timeout=30_000)
    card.click()
    new_tab = page.locator(".lm-TabBar-tab", has_text="new-simulation")
    new_tab.wait_for(timeout=30_000)
    created = json.loads((lab.root_dir / "new-simulation.ipynb").read_text())
    assert all(cell.get("id") for cell in created["cells"])
    assert "simlab.submit(form.config)" in "".join(created["cells"][-1]["source"])


def test_a_run_not_yet_running_shows_the_cost_models_estimate(lab, page):
    # Given a run made from a terminal's config and not started yet
    from simlab.service.submission import create

    made = create({**SLOW, "metadata": {"name": "not-yet"}}, root=lab.run_root)
    model = lab.api("GET", f"runs/{made.id}")
    assert (model["state"], model["eta_source"]) == ("created", "model")
    # Then its ETA is the cost model's, marked ≈ as simlab status and the
    # monitor widget mark it, in the seconds the server gave
    eta = _run(page, made.id).locator(".simlab-run-eta")
    expect(eta).to_have_text(f"≈ {_duration(model['eta'])}", timeout=30_000)
    assert lab.api("DELETE", f"runs/{made.id}")["state"] == "cancelled"
    expect(eta).to_have_text("", timeout=15_000)  # an ended run has no ETA
