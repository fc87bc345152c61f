"""A real ``jupyter lab`` with simlab installed, and headless Chromium to drive it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import _needs

#: Debian's Chromium; Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
#: What installs it (as in ``.ci/run``), for the skip message.
INSTALL = "apt-get install chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots kept for people (and the README) to look at.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

#: Screenshots the docs show.
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
#: WCAG AA for normal text.
MIN_CONTRAST = 4.5

#: For each selector, the lowest contrast ratio (WCAG 2) of the text of its
#: visible elements (the first five) against what is painted behind them: their
#: own and their ancestors' background colours, alpha-blended. One synchronous
#: pass, so the sidebar's refresh cannot swap the elements while they are measured.
CONTRAST_JS = """
(selectors) => {
 const measure = (el) => {
  const parse = c => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const layers = [];
  const path = [];
  for (let node = el; node; node = node.parentElement) {
    const bg = parse(getComputedStyle(node).backgroundColor);
    path.push(`${node.tagName}.${node.className}`);
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] >= 1) break;
  }
  let base = [255, 255, 255];
  for (const [r, g, b, a] of layers.reverse()) {
    base = [r, g, b].map((v, i) => v * a + base[i] * (1 - a));
  }
  const fg = parse(getComputedStyle(el).color);
  const text = fg.slice(0, 3).map((v, i) => v * fg[3] + base[i] * (1 - fg[3]));
  const lum = rgb => {
    const [r, g, b] = rgb.map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [lum(text), lum(base)].sort((x, y) => y - x);
  return {ratio: (hi + 0.05) / (lo + 0.05), fg: text, bg: base, path};
 };
 const lowest = {};
 for (const selector of selectors) {
   const seen = [...document.querySelectorAll(selector)]
     .filter(e => e.offsetParent !== null && e.textContent.trim()).slice(0, 5);
   for (const m of seen.map(measure)) {
     if (!(selector in lowest) || m.ratio < lowest[selector].ratio) {
       lowest[selector] = m;
     }
   }
 }
 return lowest;
}
"""


def set_theme(page, name: str) -> None:
    """Switch the Lab's theme from the Settings menu and wait for it."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=name).first.click()
    light = name == "JupyterLab Light"
    page.wait_for_function(
        f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'",
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # let the theme's CSS variables settle


def _extension_path(home: Path) -> Path:
    """A Jupyter data dir whose ``labextensions/simlab-labextension`` links to the
    build next to the simlab package under test (``simlab/labextension``), so the
    Lab serves that build, not one installed elsewhere in the environment."""
    import simlab

    build = Path(simlab.__file__).parent / "labextension"
    if not (build / "package.json").is_file():
        pytest.fail(f"{build} holds no built extension: cd extension && jlpm build")
    data = home / "jupyter-data"
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "simlab-labextension").symlink_to(build)
    return data


def _source_root() -> Path:
    """The folder holding the simlab package under test."""
    import simlab

    return Path(simlab.__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running ``jupyter lab`` process and how to talk to its REST API."""

    def __init__(self, url: str, token: str, root_dir: Path, proc) -> None:
        self.url = url
        self.token = token
        self.root_dir = root_dir
        self.run_root = root_dir / "runs"
        self.group_root = root_dir / "group"
        self.proc = proc

    def api(self, method: str, path: str, body=None, timeout: float = 120):
        """Call ``/simlab/api/<path>`` with the token; the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}simlab/api/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            exc.msg = f"{exc.msg}: {exc.read().decode(errors='replace')}"
            raise


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``jupyter lab`` on a free port with a private run root, stopped at the end."""
    home = tmp_path_factory.mktemp("labhome")
    run_root = home / "runs"
    token = secrets.token_hex(16)
    port = _free_port()
    group = home / "group"  # a group space as an admin makes it (setgid, sticky)
    group.mkdir()
    group.chmod(0o3770)
    env = {
        **os.environ,
        "DASK_SIMLAB__RUN_ROOT": str(run_root),
        "DASK_SIMLAB__GROUP_ROOT": str(group),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        # the kernels' own matplotlib font cache: one the machine's ~/.cache holds
        # may lack matplotlib's bundled fonts, and every log axis then warns
        # "findfont: Font family ['STIXGeneral'] not found" on stderr
        "MPLCONFIGDIR": str(home / "matplotlib"),
        # the kernels import the simlab under test too (not an editable install
        # of another checkout, which their working directory would give them)
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(_source_root()), os.environ.get("PYTHONPATH")) if p
        ),
        "JUPYTER_PATH": os.pathsep.join(
            p for p in (str(_extension_path(home)), os.environ.get("JUPYTER_PATH")) if p
        ),
    }
    # no "get notified about Jupyter news?" toast over the screenshots
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = open(home / "lab.log", "w")  # noqa: SIM115  (closed at teardown)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={home}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    lab = Lab(f"http://127.0.0.1:{port}/", token, home, proc)
    deadline = time.monotonic() + 90
    while True:
        try:
            lab.api("GET", "health", timeout=5)
            break
        except (urllib.error.URLError, ConnectionError) as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail(
                    f"jupyter lab did not serve /simlab/api/health: {exc}\n"
                    + (home / "lab.log").read_text()[-4000:]
                )
            time.sleep(0.5)
    yield lab
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium under Playwright (skip on a laptop without it)."""
    reason = None
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        reason = f"{CHROMIUM} not installed"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = reason or "playwright not installed: pip install -e '.[test]'"
    _needs(reason, "Chromium with Playwright", INSTALL)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else None,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, lab, request):
    """A Lab page, fully started, with the Simulations sidebar open."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{lab.url}lab?reset&token={lab.token}")  # a fresh layout
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    page.wait_for_selector(".jp-LabShell", timeout=90_000)
    tab = page.locator('.jp-SideBar [data-id="simlab-sidebar"]')
    tab.wait_for(timeout=60_000)
    tab.click()
    page.wait_for_selector("#simlab-sidebar .simlab-filters", timeout=30_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
    assert not errors, errors
