"""The sidebar as a queue manager, in a real JupyterLab with real runs (issue 16).

Every run here is real: PM runs on the run root's dispatcher, a Gadget4 run whose
executable fails, a run submitted from a terminal by ``simlab submit``. The
screenshots of both themes go to docs/images for the README and docs/widgets.md.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.conftest import CONTRAST_JS, DOCS_IMAGES, MIN_CONTRAST, set_theme
from tests.server.configs import QUICK, SLOW

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _row(page, run_id: str):
    return page.locator(f'#simlab-sidebar .simlab-run[data-run-id="{run_id}"]')


def _state(lab, run_id: str) -> str:
    return lab.api("GET", f"runs/{run_id}")["state"]


def _wait_state(lab, run_id: str, states: tuple[str, ...], timeout: float = 120):
    deadline = time.monotonic() + timeout
    while (state := _state(lab, run_id)) not in states:
        assert time.monotonic() < deadline, f"{run_id} still {state}"
        time.sleep(0.3)
    return state


def _failing_gadget4(lab) -> dict:
    """A Gadget4 run whose executable passes the compile-options probe (the
    repository's Gadget4 test double answers it) and then fails on the run."""
    stand_in = Path(__file__).parents[1] / "stand_ins" / "gadget4_test_double.py"
    code = lab.root_dir / "bin" / "gadget4-broken"
    code.parent.mkdir(exist_ok=True)
    code.write_text(
        "#!/bin/sh\n"
        f'[ $# -eq 0 ] && exec "{sys.executable}" "{stand_in}"\n'
        "echo 'Error: parameter file cannot be read' >&2\nexit 3\n"
    )
    code.chmod(0o755)
    config = {
        "code": {
            "engine": "gadget4",
            "executable": str(code),
            "options": {"ics": "ngenic"},
        },
        "box": {"size": 64.0, "particles_per_side": 8},
        "resources": {"cores": 1},
        "metadata": {"name": "broken-gadget"},
    }
    return lab.api("POST", "runs?wait=true&timeout=120", config)


def test_failing_run_shows_its_reason_in_the_row(lab, page):
    # Given a Gadget4 run whose executable fails
    run = _failing_gadget4(lab)
    assert run["state"] == "failed"
    assert run["reason"]
    # Then its row shows the reason as text, not only in a tooltip
    row = _row(page, run["id"])
    reason = row.locator(".simlab-run-reason")
    expect(reason).to_be_visible(timeout=30_000)
    assert reason.inner_text().strip() == run["reason"].strip()
    box = reason.bounding_box()
    assert box is not None and box["height"] >= 10 and box["width"] >= 150
    # and no ETA is claimed for an ended run
    assert row.locator(".simlab-run-eta").inner_text() == ""


def test_refused_submit_shows_the_field_messages(lab, page):
    page.locator("#simlab-sidebar .simlab-SubmitPanel > summary").click()
    form = page.locator("#simlab-sidebar .simlab-form")
    engine = form.locator('select[data-loc="code.engine"]')
    expect(engine.locator('option[value="gadget4"]')).to_have_count(1, timeout=30_000)
    # When a Gadget4 run without an executable is submitted
    engine.select_option("gadget4")
    form.locator('input[data-loc="metadata.name"]').fill("refused")
    form.locator(".simlab-submit").click()
    # Then the executable field shows the server's own message under it
    executable = form.locator('.simlab-field-error[data-loc="code.executable"]')
    expect(executable).to_be_visible(timeout=30_000)
    assert "no Gadget4 executable" in executable.inner_text()
    assert form.locator(".simlab-form-errors").inner_text().startswith("Refused: 1")
    # When the particle count is out of range as well
    form.locator('input[data-loc="box.particles_per_side"]').fill("-3")
    form.locator(".simlab-submit").click()
    # Then that field says what is allowed (the model's checks come first)
    particles = form.locator('.simlab-field-error[data-loc="box.particles_per_side"]')
    expect(particles).to_contain_text("greater than or equal to 2", timeout=30_000)
    assert "[2, 4096]" in particles.inner_text()
    assert "500" not in form.inner_text() and "Unhandled" not in form.inner_text()
    # and nothing was created
    assert lab.api("GET", "runs?text=refused")["total"] == 0
    # When the fields are fixed, the run is created and listed
    engine.select_option("pm")
    form.locator('input[data-loc="box.particles_per_side"]').fill("8")
    form.locator('input[data-loc="gravity.steps"]').fill("4")
    form.locator(".simlab-submit").click()
    status = form.locator(".simlab-form-status")
    expect(status).to_contain_text("submitted refused-", timeout=30_000)
    assert not executable.is_visible()
    run_id = status.inner_text().split()[1]
    _row(page, run_id).wait_for(timeout=30_000)
    _wait_state(lab, run_id, ("completed",))


def test_sorting_by_name_and_state(lab, page):
    for name in ("b-sort", "a-sort", "c-sort"):
        config = {**QUICK, "metadata": {"name": name}}
        assert lab.api("POST", "runs?wait=true", config)["state"] == "completed"
    page.fill("#simlab-sidebar .simlab-filter", "-sort")
    rows = page.locator("#simlab-sidebar .simlab-run")
    expect(rows).to_have_count(3, timeout=30_000)
    header = page.locator('#simlab-sidebar .simlab-sort[data-column="name"]')
    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    names = rows.locator(".simlab-run-name").all_inner_texts()
    assert names == ["a-sort", "b-sort", "c-sort"]
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    names = rows.locator(".simlab-run-name").all_inner_texts()
    assert names == ["c-sort", "b-sort", "a-sort"]
    # and the order survives the next refresh
    page.wait_for_timeout(2500)
    assert rows.locator(".simlab-run-name").all_inner_texts() == names
    page.fill("#simlab-sidebar .simlab-filter", "")


def test_multi_select_cancel(lab, page):
    runs = [lab.api("POST", "runs", {**SLOW, "metadata": {"name": f"multi{i}"}})
            for i in range(2)]  # fmt: skip
    for run in runs:
        row = _row(page, run["id"])
        row.wait_for(timeout=30_000)
        row.locator(".simlab-select").check()
    cancel = page.locator("#simlab-sidebar .simlab-bulk-cancel")
    expect(cancel).to_have_text("Cancel (2)")
    cancel.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10_000)
    assert all(run["id"] in dialog.inner_text() for run in runs)
    dialog.locator("button.jp-mod-warn").click()
    for run in runs:
        assert _wait_state(lab, run["id"], ("cancelled",), 60) == "cancelled"
        badge = _row(page, run["id"]).locator(".simlab-badge")
        expect(badge).to_have_text("cancelled", timeout=30_000)
    expect(cancel).to_be_disabled()


def test_resume_a_checkpointed_run(lab, page):
    # Given a running run stopped into a checkpoint
    run = lab.api("POST", "runs", {**SLOW, "metadata": {"name": "resumable"}})
    _wait_state(lab, run["id"], ("running",))
    deadline = time.monotonic() + 120
    while not (lab.api("GET", f"runs/{run['id']}")["progress"] or {}).get("step"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    lab.api("POST", f"runs/{run['id']}/stop")
    _wait_state(lab, run["id"], ("checkpointed",))
    row = _row(page, run["id"])
    expect(row.locator(".simlab-badge")).to_have_text("checkpointed", timeout=30_000)
    # When it is selected and Resume pressed
    row.locator(".simlab-select").check()
    resume = page.locator("#simlab-sidebar .simlab-bulk-resume")
    expect(resume).to_have_text("Resume (1)")
    resume.click()
    # Then it runs again as a second segment, and the row follows
    _wait_state(lab, run["id"], ("running", "completed"))
    assert lab.api("GET", f"runs/{run['id']}")["segment"] == 2
    expect(row.locator(".simlab-badge")).to_have_text(
        re.compile("queued|running|completed"), timeout=30_000
    )
    lab.api("DELETE", f"runs/{run['id']}")
    _wait_state(lab, run["id"], ("cancelled", "completed"))


def test_archive_and_delete_with_confirmation(lab, page):
    runs = [
        lab.api("POST", "runs?wait=true", {**QUICK, "metadata": {"name": f"tidy{i}"}})
        for i in range(2)
    ]
    archived, deleted = runs
    for run, action in ((archived, "archive"), (deleted, "delete")):
        row = _row(page, run["id"])
        row.wait_for(timeout=30_000)
        row.locator(".simlab-select").check()
        page.locator(f"#simlab-sidebar .simlab-bulk-{action}").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=10_000)
        assert run["id"] in dialog.inner_text()
        dialog.locator("button.jp-mod-warn").click()
        row.wait_for(state="detached", timeout=30_000)
    assert (lab.run_root / ".simlab" / "archive" / archived["id"] / "log").is_file()
    assert not (lab.run_root / deleted["id"]).exists()


def test_publish_shows_the_run_in_the_group_section(lab, page):
    config = {**QUICK, "metadata": {"name": "shared"}}
    run = lab.api("POST", "runs?wait=true", config)
    row = _row(page, run["id"])
    row.wait_for(timeout=30_000)
    row.locator(".simlab-select").check()
    page.locator("#simlab-sidebar .simlab-bulk-publish").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10_000)
    assert run["id"] in dialog.inner_text()
    dialog.locator("button.jp-mod-warn").click()
    # Then the group section lists it, with who published it
    group = page.locator("#simlab-sidebar .simlab-GroupPanel")
    entry = group.locator(f'.simlab-published[data-run-id="{run["id"]}"]')
    expect(entry).to_be_visible(timeout=30_000)
    assert entry.locator(".simlab-run-name").inner_text() == "shared"
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert f" · {me} · " in entry.locator(".simlab-published-details").inner_text()
    assert (lab.group_root / run["id"] / "config.json").is_file()


def test_terminal_submitted_run_and_its_cluster_show(lab, page, tmp_path):
    # Given a run submitted from a terminal with `simlab submit`
    config = tmp_path / "terminal.yaml"
    config.write_text(
        "box: {size: 64.0, particles_per_side: 8}\ngravity: {steps: 4}\n"
        "resources: {cores: 1}\nmetadata: {name: from-terminal}\n"
    )
    simlab = Path(sys.executable).with_name("simlab")
    env = {**os.environ, "DASK_SIMLAB__RUN_ROOT": str(lab.run_root)}
    done = subprocess.run(
        [str(simlab), "submit", str(config), "--wait"],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    run_id = done.stdout.split()[0]
    # Then the sidebar lists it and the cluster that ran it
    row = _row(page, run_id)
    expect(row.locator(".simlab-badge")).to_have_text("completed", timeout=30_000)
    profile = lab.api("GET", f"runs/{run_id}")["cluster"]
    [cluster] = [
        c for c in lab.api("GET", "clusters")["clusters"]
        if c["profile"] == profile and c["code"] == "pm"
    ]  # fmt: skip
    card = page.locator(
        f'#simlab-sidebar .simlab-cluster[data-cluster-id="{cluster["id"]}"]'
    )
    expect(card).to_be_visible(timeout=30_000)
    assert card.get_attribute("data-profile") == profile
    # and its dashboard opens in a Lab tab
    card.locator(".simlab-dashboard").click()
    frame = page.locator(".jp-MainAreaWidget iframe")
    expect(frame).to_have_count(1, timeout=30_000)
    assert frame.get_attribute("src") == cluster["dashboard"]


def test_1024_layout_keeps_titles_whole(lab, browser):
    lab.api("POST", "runs?wait=true", {**QUICK, "metadata": {"name": "layout"}})
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    page.locator('.jp-SideBar [data-id="simlab-sidebar"]').click(timeout=90_000)
    page.wait_for_selector("#simlab-sidebar .simlab-run", timeout=60_000)
    page.locator("#simlab-sidebar .simlab-SubmitPanel > summary").click()
    clipped = page.evaluate(
        """() => [...document.querySelectorAll(
            '#simlab-sidebar :is(.simlab-sort, .simlab-toolbar button, .simlab-badge,'
            + ' .simlab-field label, .simlab-section-title), .lm-TabBar-tabLabel')]
          .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
          .map(e => e.textContent)"""
    )
    assert clipped == []
    width = page.locator("#simlab-sidebar").bounding_box()["width"]
    assert width <= 400
    # rows stay compact: at most 40 px for a run without a failure reason
    heights = page.evaluate(
        """() => [...document.querySelectorAll('#simlab-sidebar .simlab-run')]
          .filter(r => !r.querySelector('.simlab-run-reason'))
          .map(r => r.getBoundingClientRect().height)"""
    )
    assert heights and max(heights) <= 40, heights
    context.close()


def _scroll_to(row, attempts: int = 3) -> None:
    """Scroll a run's row into view; a poll may redraw the row between finding it
    and scrolling ("not attached to the DOM"), and the row is then found again."""
    for attempt in range(attempts):
        try:
            row.scroll_into_view_if_needed(timeout=10_000)
            return
        except PlaywrightError:
            if attempt == attempts - 1:
                raise


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_both_themes_are_readable(lab, page, theme):
    failed = lab.api("GET", "runs?text=broken-gadget")["runs"]
    run = failed[0] if failed else _failing_gadget4(lab)
    set_theme(page, theme)
    row = _row(page, run["id"])
    row.wait_for(timeout=30_000)
    row.locator(".simlab-log-button").click()
    log = page.locator(".simlab-LogViewer .simlab-log")
    expect(log).not_to_be_empty(timeout=30_000)
    selectors = [
        ".simlab-LogViewer .simlab-log",
        ".simlab-LogViewer .simlab-log-status",
        "#simlab-sidebar .simlab-run-name",
        "#simlab-sidebar .simlab-cell",
        "#simlab-sidebar .simlab-run-reason",
        "#simlab-sidebar .simlab-summary",
        "#simlab-sidebar .simlab-sort",
        "#simlab-sidebar .simlab-badge",
        "#simlab-sidebar .simlab-progress-text",
        "#simlab-sidebar .simlab-cluster-details",
        "#simlab-sidebar .simlab-empty",
    ]
    measured = page.evaluate(CONTRAST_JS, selectors)
    # the log and the run rows are always there; clusters may have been closed
    assert set(measured) >= set(selectors[:9]), set(selectors[:9]) - set(measured)
    low = {k: m for k, m in measured.items() if m["ratio"] < MIN_CONTRAST}
    assert not low, low
    assert page.locator(".simlab-LogViewer .simlab-log").count() == 1
    _scroll_to(row)  # the failed run and its reason in the picture
    page.mouse.move(900, 500)  # no row hovered
    DOCS_IMAGES.mkdir(exist_ok=True)
    slug = "dark" if "Dark" in theme else "light"
    page.screenshot(path=str(DOCS_IMAGES / f"sidebar-{slug}.png"))
    if slug == "dark":
        set_theme(page, "JupyterLab Light")
