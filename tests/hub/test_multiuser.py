"""Two users on one real JupyterHub: each sees and controls only their own runs.

As root: two system users, the dummy authenticator with a test password, the local
process spawner and the users' environment built from Debian's python3. User A
submits a run through the REST API of A's single-user server; B must not see it,
read it, cancel it or reach A's dask scheduler, and sees it only once A publishes
it to the group space, read-only.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import ARTIFACTS, browser  # noqa: F401  (fixture)
from tests.hub import hubsetup

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

#: A PM run of 8³ particles that ends in a few seconds.
QUICK = {
    "box": {"size": 64.0, "particles_per_side": 8},
    "gravity": {"steps": 4},
    "outputs": {"redshifts": [1.0, 0.0]},
    "resources": {"cores": 1},
    "metadata": {"name": "hubquick"},
}


@pytest.fixture(scope="module")
def logged_in(world):
    """Both users logged in with their password, with a token and a server each."""
    for user in (world.a, world.b):
        response = hubsetup.login(world.hub, user, world.hub.password)
        assert response.ok, (response.status_code, world.hub.log()[-3000:])
        user.token = hubsetup.request_token(world.hub, user)
        hubsetup.start_server(world.hub, user)
    return world


@pytest.fixture(scope="module")
def a_run(logged_in):
    """A run that A submitted through A's server and that has completed."""
    world = logged_in
    response = hubsetup.api(
        world.hub,
        world.a.token,
        "POST",
        f"/user/{world.a.name}/simlab/api/runs?wait=true&timeout=120",
        json=QUICK,
    )
    assert response.status_code == 201, (response.text, world.hub.log()[-3000:])
    model = response.json()
    assert model["state"] == "completed", model
    return model


def test_a_wrong_password_is_refused(world):
    user = hubsetup.HubUser(world.a.name, world.a.uid, world.a.gid, world.a.home)
    response = hubsetup.login(world.hub, user, "not-" + world.hub.password)
    assert response.status_code == 403
    assert not any(c.name == "jupyterhub-hub-login" for c in user.session.cookies)


def test_each_server_runs_as_its_user_with_simlab(logged_in):
    world = logged_in
    # both servers run one environment: ask it once which extensions it enables
    listing = world.a.run(
        world.venv / "bin" / "jupyter", "server", "extension", "list", group=world.gid
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert "simlab.server enabled" in text, text
    assert "simlab.server OK" in " ".join(text.split()), text
    for user in (world.a, world.b):
        health = hubsetup.api(
            world.hub, user.token, "GET", f"/user/{user.name}/simlab/api/health"
        )
        assert health.status_code == 200, health.text
        # the server's files are the user's: its run root sits in their home
        ports = hubsetup.listening_ports(user.uid)
        assert ports, f"no process of {user.name} listens"


def test_a_sees_the_run_and_b_does_not(logged_in, a_run):
    world = logged_in
    mine = hubsetup.api(
        world.hub, world.a.token, "GET", f"/user/{world.a.name}/simlab/api/runs"
    )
    assert [run["id"] for run in mine.json()["runs"]] == [a_run["id"]]
    assert a_run["path"].startswith(str(world.a.home) + "/")

    theirs = hubsetup.api(
        world.hub, world.b.token, "GET", f"/user/{world.b.name}/simlab/api/runs"
    )
    assert theirs.status_code == 200
    assert theirs.json()["total"] == 0
    assert a_run["id"] not in theirs.text


@pytest.mark.parametrize(
    "method, suffix",
    [("GET", ""), ("DELETE", ""), ("POST", "/stop"), ("GET", "/log")],
)
def test_b_cannot_reach_a_runs_through_any_server(logged_in, a_run, method, suffix):
    world = logged_in
    path = f"simlab/api/runs/{a_run['id']}{suffix}"
    # through A's server: the hub refuses B's token
    response = hubsetup.api(
        world.hub,
        world.b.token,
        method,
        f"/user/{world.a.name}/{path}",
        allow_redirects=False,
    )
    assert response.status_code == 403, (response.status_code, response.text[:300])
    # through B's own server: the run does not exist there
    response = hubsetup.api(
        world.hub, world.b.token, method, f"/user/{world.b.name}/{path}"
    )
    assert response.status_code == 404, (response.status_code, response.text[:300])
    # and A's run is untouched
    model = hubsetup.api(
        world.hub,
        world.a.token,
        "GET",
        f"/user/{world.a.name}/simlab/api/runs/{a_run['id']}",
    ).json()
    assert model["state"] == "completed"


def test_b_cannot_read_a_run_directory(logged_in, a_run):
    world = logged_in
    probe = hubsetup.python(
        world.b,
        "import json, os\n"
        f"path = {a_run['path']!r}\n"
        "out = {}\n"
        "for what, call in [('list', lambda: os.listdir(path)),\n"
        "    ('status', lambda: open(path + '/status.json').read()),\n"
        "    ('root', lambda: os.listdir(os.path.dirname(path)))]:\n"
        "    try:\n"
        "        call(); out[what] = 'read'\n"
        "    except PermissionError:\n"
        "        out[what] = 'denied'\n"
        "print(json.dumps(out))\n",
        group=world.gid,
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == {
        "list": "denied",
        "status": "denied",
        "root": "denied",
    }
    # while A reads the same files
    own = world.a.run("cat", f"{a_run['path']}/status.json", group=world.gid)
    assert json.loads(own.stdout)["state"] == "completed"


def test_b_cannot_connect_to_a_dask_cluster(logged_in, a_run):
    world = logged_in
    clusters = hubsetup.api(
        world.hub, world.a.token, "GET", f"/user/{world.a.name}/simlab/api/clusters"
    ).json()["clusters"]
    workers = [w["address"] for c in clusters for w in c["workers"]]
    assert workers and all(addr.startswith("tls://") for addr in workers), clusters
    ports = hubsetup.listening_ports(world.a.uid)
    worker_ports = {int(addr.rsplit(":", 1)[1]) for addr in workers}
    assert worker_ports <= ports
    # scheduler, worker and nanny ports besides the Jupyter server's own
    assert len(ports) >= 3, ports
    probe = world.b.run(
        world.venv / "bin" / "python",
        hubsetup.SRC / "tests" / "hub" / "dask_probe.py",
        *map(str, sorted(ports)),
        group=world.gid,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    outcome = json.loads(probe.stdout.strip().splitlines()[-1])
    assert outcome.pop("control") == "answered"
    assert len(outcome) == 3 * len(ports)
    owners = hubsetup.port_owners(world.a.uid)
    assert "answered" not in outcome.values(), (outcome, owners)
    # no page of A's scheduler or workers is served to B (the Jupyter server
    # answers its own 404 or 403 for that path)
    assert "200" not in outcome.values(), (outcome, owners)


def test_a_published_run_is_read_only_for_b(logged_in, a_run):
    world = logged_in
    run_id = a_run["id"]
    published = world.a.run(
        world.venv / "bin" / "simlab", "publish", run_id, group=world.gid
    )
    assert published.returncode == 0, published.stderr
    target = world.space / run_id
    assert str(target) in published.stdout

    listing = world.b.run(
        world.venv / "bin" / "simlab", "ls", "--group", group=world.gid
    )
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if run_id in line)
    assert row.split()[1:3] == [world.a.name, "completed"]

    probe = hubsetup.python(
        world.b,
        "import json, os\n"
        "from simlab.service.publish import PublishError, open_published, unpublish\n"
        f"run = open_published({run_id!r})\n"
        "ds = run.open_snapshot(-1)\n"
        "out = {'owner': run.owner, 'particles': int(ds.sizes['particle']),\n"
        "       'a': float(ds.attrs['Time'])}\n"
        "def attempt(name, call):\n"
        "    try:\n"
        "        call(); out[name] = 'done'\n"
        "    except PermissionError as exc:\n"
        "        out[name] = type(exc).__name__\n"
        "attempt('append', lambda: open(str(run.dir.log_path), 'a'))\n"
        "attempt('add', lambda: open(str(run.path / 'output' / 'x'), 'w'))\n"
        "attempt('rename', lambda: os.rename(run.path, str(run.path) + '.x'))\n"
        "attempt('cancel', run.cancel)\n"
        f"attempt('unpublish', lambda: unpublish({run_id!r}))\n"
        "print(json.dumps(out))\n",
        group=world.gid,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    outcome = json.loads(probe.stdout.strip().splitlines()[-1])
    assert outcome == {
        "owner": world.a.name,
        "particles": 8**3,
        "a": pytest.approx(1.0),
        "append": "PermissionError",
        "add": "PermissionError",
        "rename": "PermissionError",
        "cancel": "PublishError",
        "unpublish": "PublishError",
    }
    assert target.stat().st_uid == world.a.uid


@pytest.mark.browser
def test_a_logs_in_with_a_browser_and_sees_own_run(logged_in, a_run, browser):  # noqa: F811
    """A logs into the hub in Chromium; A's Lab sidebar lists exactly A's runs."""
    from playwright.sync_api import expect

    world = logged_in
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{world.hub.url}/hub/login")
        page.fill("#username_input", world.a.name)
        page.fill("#password_input", world.hub.password)
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{world.a.name}/**", timeout=90_000)
        page.goto(f"{world.hub.url}/user/{world.a.name}/lab?reset")
        tab = page.locator('.jp-SideBar [data-id="simlab-sidebar"]')
        tab.wait_for(timeout=90_000)
        tab.click()
        row = page.locator(f'#simlab-sidebar .simlab-run[data-run-id="{a_run["id"]}"]')
        expect(row.locator(".simlab-badge")).to_have_text("completed", timeout=30_000)
        mine = hubsetup.api(
            world.hub, world.a.token, "GET", f"/user/{world.a.name}/simlab/api/runs"
        ).json()
        expect(page.locator("#simlab-sidebar .simlab-run")).to_have_count(mine["total"])
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub_sidebar_user_a.png"))
        context.close()


@pytest.mark.slurm
def test_slurm_jobs_run_as_their_users(logged_in, slurm):
    """Both users submit to Slurm through their servers: squeue shows each as owner."""
    import subprocess
    import time

    world = logged_in
    runs = {}
    for user in (world.a, world.b):
        response = hubsetup.api(
            world.hub,
            user.token,
            "POST",
            f"/user/{user.name}/simlab/api/runs?cluster=testslurm",
            json={**QUICK, "metadata": {"name": f"slurm{user.name}"}},
        )
        assert response.status_code == 201, response.text
        runs[user.name] = response.json()["id"]
    owners: set[int] = set()
    states: dict[str, str] = {}
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not (
        len(owners) == 2 and all(s in ("completed", "failed") for s in states.values())
    ):
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%U"], capture_output=True, text=True
        ).stdout
        owners |= {int(uid) for uid in queue.split()} & {world.a.uid, world.b.uid}
        for user in (world.a, world.b):
            model = hubsetup.api(
                world.hub,
                user.token,
                "GET",
                f"/user/{user.name}/simlab/api/runs/{runs[user.name]}",
            ).json()
            states[user.name] = model["state"]
        time.sleep(1)
    assert owners == {world.a.uid, world.b.uid}, (
        owners,
        subprocess.run(["squeue", "-t", "all"], capture_output=True, text=True).stdout,
    )
    assert states == {world.a.name: "completed", world.b.name: "completed"}, states
