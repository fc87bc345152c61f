"""The sdist and the wheel built from it, installed into a fresh virtual
environment, are all a user needs: the CLI, the notebooks, the server extension
and the prebuilt Lab extension (whose sidebar Chromium opens in the venv's own
``jupyter lab``), with no node on PATH.

The sdist is built with node (its build hook builds the Lab extension and ships it
prebuilt); the wheel is then built from the unpacked sdist with a PATH that has no
node, npm or yarn, as a user's ``pip install simlab-*.tar.gz`` would.

Measured on the 2-core development machine: sdist and wheel from it 35 s alone
(``python -m build``, node packages from a warm cache; the wheel alone took 33 s
before), fresh venv and install 2 min 9 s (dependencies from the package index,
warm pip cache), ``simlab demo`` at 16³ 1 min 23 s: about 4 min 10 s in all. With
other suites sharing the two cores the module took 13 min 34 s (builds 74 s,
install 8 min 24 s, demo 2 min 29 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from simlab.__about__ import __version__
from tests.conftest import _needs
from tests.test_docs import _blocks, _compare, _steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
#: What a checkout may hold that a fresh clone does not (see .gitignore).
LOCAL_ONLY = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".import_linter_cache",
    "build",
    "dist",
    "demo-output",
    "test-artifacts",
    "node_modules",
    ".yarn",
    "extension/lib",
    "extension/tsconfig.tsbuildinfo",
    "simlab/labextension",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _ignore(folder: str, names: list[str]) -> set[str]:
    here = Path(folder).relative_to(ROOT)
    return {n for n in names if n in LOCAL_ONLY or str(here / n) in LOCAL_ONLY}


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; its combined output, colours stripped; fail with it."""
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ANSI.sub("", done.stdout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{output[-4000:]}"
    return output


#: What a checkout gathers that the sdist must leave out, planted in the copy.
PLANTED = (".venv/bin/python", "test-artifacts/log.txt", "simlab/__pycache__/x.pyc")
#: Programs that run JavaScript: none is on the PATH of the installed package's checks.
NODE_TOOLS = ("node", "nodejs", "npm", "npx", "yarn", "yarnpkg", "corepack")


def _path_without_node(tools: Path) -> str:
    """A folder of links to every program of /usr/bin and /bin except node's."""
    tools.mkdir()
    for folder in ("/usr/bin", "/bin"):
        for exe in sorted(Path(folder).iterdir()):
            link = tools / exe.name
            if exe.name in NODE_TOOLS or exe.name == "jlpm" or link.exists():
                continue
            if exe.resolve().name in NODE_TOOLS:  # node under another name
                continue
            link.symlink_to(exe)
    return str(tools)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, str]:
    """The sdist of a copy of this checkout, the wheel built from that sdist
    without node, and the node-less PATH it was built with."""
    tmp = tmp_path_factory.mktemp("dists")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_ignore)
    for planted in PLANTED:
        (source / planted).parent.mkdir(parents=True, exist_ok=True)
        (source / planted).write_text("local only")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # the sdist builds the Lab extension (node, jlpm) and ships it prebuilt
    _run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", tmp / "dist"],
        source,
        env,
    )
    (sdist,) = (tmp / "dist").glob("simlab-*.tar.gz")
    unpacked = tmp / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    (tree,) = unpacked.iterdir()
    # ... so that its wheel builds where there is no node at all
    path = _path_without_node(tmp / "tools")
    assert shutil.which("node", path=path) is None
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "dist"],
        tree,
        {**env, "PATH": path},
    )
    (wheel,) = (tmp / "dist").glob("simlab-*.whl")
    return sdist, wheel, path


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the wheel built from the sdist installed."""
    _, wheel, path = built
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp, env)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], tmp, env)
    home = tmp / "home"
    home.mkdir()
    # the venv's own commands first, then system programs without node's, and
    # nothing of the checkout's: no source tree on the import path
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{path}",
        HOME=str(home),
        DASK_SIMLAB__RUN_ROOT=str(home / "runs"),
        JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
    )
    for tool in NODE_TOOLS:
        assert shutil.which(tool, path=env["PATH"]) is None, tool
    # jupyterlab installs its own jlpm launcher; without node it can run nothing
    jlpm = shutil.which("jlpm", path=env["PATH"])
    assert jlpm is None or Path(jlpm).parent == venv / "bin", jlpm
    return venv, env


def test_the_sdist_holds_the_sources_and_nothing_local(built):
    sdist, _, _ = built
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "pyproject.toml",
        "README.md",
        "simlab/__init__.py",
        "simlab/cli.py",
        "extension/package.json",
        "extension/yarn.lock",
        "extension/tsconfig.json",
        "extension/install.json",
        "extension/src/index.ts",
        "extension/style/index.css",
        "jupyter-config/jupyter_server_config.d/simlab.json",
        "notebooks/quickstart.ipynb",
        "tests/test_wheel.py",
        "docs/architecture.md",
        # prebuilt, so that a wheel builds from the sdist without node
        "simlab/labextension/package.json",
        "simlab/labextension/static/style.js",
    ):
        assert needed in names, needed
    for local in sorted(LOCAL_ONLY - {"simlab/labextension"}):
        if "/" in local:
            found = [n for n in names if n == local or n.startswith(f"{local}/")]
        else:
            found = [n for n in names if local in n.split("/")]
        assert found == [], local
    assert [n for n in names if n.endswith(".pyc")] == []


def test_the_wheel_built_from_the_sdist_has_the_lab_extension(built):
    _, wheel, _ = built
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    data = f"simlab-{__version__}.data/data"
    share = f"{data}/share/jupyter/labextensions/simlab-labextension"
    for needed in (
        "simlab/labextension/package.json",
        "simlab/labextension/static/style.js",
        f"{share}/package.json",
        f"{share}/static/style.js",
        f"{share}/install.json",
        f"{data}/etc/jupyter/jupyter_server_config.d/simlab.json",
        "simlab/_notebooks/quickstart.ipynb",
    ):
        assert needed in names, needed


def test_simlab_comes_from_the_venv_with_its_notebooks(installed, tmp_path):
    venv, env = installed
    code = (
        "import simlab, simlab.templates as t; print(simlab.__file__); "
        "print(t.template_path('quickstart'))"
    )
    out = _run([venv / "bin" / "python", "-c", code], tmp_path, env).splitlines()
    package = Path(out[0]).parent
    assert package.is_relative_to(venv)
    assert Path(out[1]) == package / "_notebooks" / "quickstart.ipynb"


def test_extensions_are_enabled(installed, tmp_path):
    venv, env = installed
    lab = _run([venv / "bin" / "jupyter", "labextension", "list"], tmp_path, env)
    assert re.search(r"simlab-labextension v\S+ enabled OK \(python, simlab\)", lab)
    server = _run(
        [venv / "bin" / "jupyter", "server", "extension", "list"], tmp_path, env
    )
    assert re.search(r"simlab\.server enabled", server), server
    assert re.search(r"simlab\.server\s+OK", server), server


def _readme_demo_lines() -> list[str]:
    """The lines README's `make demo` transcript shows `simlab demo` printing."""
    (shown,) = [
        shown
        for _, lang, code in _blocks(ROOT / "README.md", skipped=True)
        for command, shown in (_steps(code) if code.startswith("$ ") else [])
        if command == "make demo"
    ]
    return shown[shown.index(".venv/bin/simlab demo") + 1 :]


def _readme_growth_lines() -> list[str]:
    """README's lines of the quickstart notebook's growth check."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```text\n(a = 0\.250: .*?)```", text, re.S)
    assert block, "README shows no growth check"
    return block[1].splitlines()


def test_readme_shows_what_simlab_demo_prints():
    shown = _readme_demo_lines()
    assert [line.split(":")[0] for line in shown] == [
        "executed notebook",
        "figure",
        "figure",
        "figure",
        "run directory",
        "sweep directory",
    ]
    assert len(_readme_growth_lines()) == 3


def test_demo_runs_from_the_installed_package(installed, tmp_path):
    venv, env = installed
    out = _run(
        [venv / "bin" / "simlab", "demo", "-p", "particles=16", "-p", "steps=8"],
        tmp_path,
        env,
    )
    demo = tmp_path / "demo-output"
    assert f"executed notebook: {demo / 'quickstart.ipynb'}" in out
    # what README shows `make demo` print, and the growth check of its notebook
    shown = _readme_demo_lines()
    assert _compare(shown, out)[0] == [], out
    notebook = nbformat.read(demo / "quickstart.ipynb", as_version=4)
    printed = "".join(
        o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])
    )
    assert _compare(_readme_growth_lines(), printed)[0] == [], printed
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells and all(c.execution_count for c in code_cells)
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    for name in ("power_spectrum.png", "projection.png", "sweep_summary.png"):
        assert (demo / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    (status,) = (demo / "runs").glob("quickstart-*/status.json")
    run = json.loads(status.read_text())
    assert (run["state"], run["engine"]) == ("completed", "pm")
    assert sorted(p.name for p in (status.parent / "output").glob("snapshot_*.hdf5"))
    points = sorted((demo / "sweep").glob("demo-*/status.json"))
    states = [json.loads(p.read_text())["state"] for p in points]
    assert states == ["completed"] * 3, states
    sigma8 = [
        json.loads((p.parent / "config.json").read_text())["cosmology"]["sigma8"]
        for p in points
    ]
    assert sorted(sigma8) == [0.7, 0.8, 0.9]


def test_the_sidebar_opens_from_the_installed_package(installed, tmp_path):
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, INSTALL, _free_port

    if not Path(CHROMIUM).exists():
        _needs(f"{CHROMIUM} not installed", "Chromium", INSTALL)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    venv, env = installed
    token, port = "wheel-test-token", _free_port()
    env = {**env, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        lab = subprocess.Popen(
            [
                venv / "bin" / "jupyter", "lab", "--no-browser", "--allow-root",
                "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
            ],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for _ in range(180):  # the server starts within a minute or so
                try:
                    page.goto(f"{url}lab?reset&token={token}")
                    break
                except PlaywrightError:  # connection refused until it listens
                    time.sleep(0.5)
            tab = page.locator('.jp-SideBar [data-id="simlab-sidebar"]')
            tab.wait_for(timeout=120_000)
            tab.click()
            page.wait_for_selector("#simlab-sidebar", state="visible", timeout=60_000)
            health = page.evaluate(
                "async ([u, t]) => (await fetch(u + 'simlab/api/health', "
                "{headers: {Authorization: 'token ' + t}})).status",
                [url, token],
            )
            browser.close()
    finally:
        lab.terminate()
        lab.wait(30)
    # the prebuilt extension from the wheel drew the sidebar, and its server
    # extension answered
    assert health == 200, log.read_text()[-3000:]
