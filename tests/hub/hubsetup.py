"""A real JupyterHub with real system users, for the multi-user tests.

Everything here runs as root: it creates a POSIX group and two users, an
environment those users can execute, a group space, and a JupyterHub (dummy
authenticator with a test password, local process spawner) in front of them.

The users' environment cannot be the test's own venv: a CI clone may live under
``/root`` (mode 0700), and a venv made from a Python under root's home fails to
spawn. So a venv is built from Debian's ``/usr/bin/python3`` in ``/opt`` with an
editable install of a copy of this checkout; it is rebuilt only when
``pyproject.toml`` changes, and the copy is refreshed every session.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
#: Where the users' environment is built (must be traversable by everybody).
BASE = Path(os.environ.get("SIMLAB_HUB_ENV", "/opt/simlab-hub-test"))
VENV = BASE / "venv"
SRC = BASE / "src"
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: What is not copied from the checkout into the users' environment.
IGNORED = (".venv", "node_modules", ".git", "__pycache__", ".pytest_cache", "*.pyc")
TOOLS = ("useradd", "userdel", "groupadd", "groupdel", "configurable-http-proxy")
#: What installs JupyterHub's proxy (as in ``.ci/run``), for the skip message.
INSTALL = "npm install -g configurable-http-proxy"


def unavailable() -> str | None:
    """Why the hub tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create system users"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not on PATH"
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} not found: apt-get install python3-venv"
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install -e '.[test]')"
    return None


def _run(*argv: str | Path, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, raising with its output when it fails."""
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def users_environment() -> Path:
    """The venv every hub user runs, made from Debian's python3; source refreshed.

    It is rebuilt only when pyproject.toml or the test environment's packages
    change. When the test environment is a venv of the same Python minor version
    its packages are hard-linked (copied across filesystems) into the new venv,
    which takes seconds, instead of downloading them all again (minutes).
    """
    BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(BASE, 0o755)
    fresh = BASE / ".src-new"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(REPO, fresh, ignore=shutil.ignore_patterns(*IGNORED))
    shutil.rmtree(SRC, ignore_errors=True)
    fresh.rename(SRC)
    stamp = _environment_stamp()
    stamp_file = VENV / ".simlab-stamp"
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        shutil.rmtree(VENV, ignore_errors=True)
        if _clonable():
            _clone_test_environment()
        else:
            _install_environment()
        stamp_file.write_text(stamp)
    _run("chmod", "-R", "a+rX", BASE)
    return VENV


def _site(prefix: Path) -> Path:
    return (
        prefix
        / "lib"
        / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        / ("site-packages")
    )


def _environment_stamp() -> str:
    """What the users' venv is made from: pyproject and the installed packages."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    for entry in sorted(_site(Path(sys.prefix)).glob("*.dist-info")):
        digest.update(entry.name.encode())
    # simlab's own install record changes with every rebuild (Lab extension too)
    for record in _site(Path(sys.prefix)).glob("simlab-*.dist-info/RECORD"):
        digest.update(record.read_bytes())
    return digest.hexdigest()


def _clonable() -> bool:
    """Whether the test environment is a venv of /usr/bin/python3's version."""
    if sys.prefix == sys.base_prefix:
        return False
    probe = _run(SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])")
    return probe.stdout.strip() == str(sys.version_info[:2])


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _rewrite(path: Path, old: str, new: str) -> None:
    """Replace text in a file that may be a hard link: write a new file instead."""
    text = path.read_text()
    path.unlink()
    path.write_text(text.replace(old, new))


def _clone_test_environment() -> None:
    """A venv of /usr/bin/python3 holding the test environment's packages."""
    prefix = Path(sys.prefix)
    _run(SYSTEM_PYTHON, "-m", "venv", "--without-pip", VENV)
    for part, target in [
        (_site(prefix), _site(VENV)),
        *[(prefix / name, VENV / name) for name in ("etc", "share")],
    ]:
        if part.is_dir():
            shutil.copytree(
                part,
                target,
                symlinks=True,
                dirs_exist_ok=True,
                copy_function=_link_or_copy,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
    python = str(VENV / "bin" / "python")
    # console scripts start the test environment's python: give them the new one
    for script in (prefix / "bin").iterdir():
        target = VENV / "bin" / script.name
        if target.exists() or script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        old = f"{prefix}/bin/python".encode()
        if data.startswith(b"#!") and old in data[:512]:
            head = data[:512].replace(old, python.encode())
            target.write_bytes(head + data[512:])
            target.chmod(0o755)
    for spec in (VENV / "share" / "jupyter" / "kernels").glob("*/kernel.json"):
        _rewrite(spec, f'"{prefix}/bin/python', f'"{python}')
    # the editable install of simlab points at the checkout: point it at the copy
    for pth in _site(VENV).glob("*.pth"):
        if pth.read_text().strip() == str(REPO):
            _rewrite(pth, str(REPO), str(SRC))


def _install_environment() -> None:
    """A venv of /usr/bin/python3 with simlab (editable copy) and jupyterhub."""
    import jupyterhub

    _run(SYSTEM_PYTHON, "-m", "venv", VENV)
    _run(
        VENV / "bin" / "pip",
        "install",
        "--quiet",
        "-e",
        SRC,
        f"jupyterhub=={jupyterhub.__version__}",
    )


@dataclass
class HubUser:
    """A system user of the test hub, with what the hub gave them."""

    name: str
    uid: int
    gid: int
    home: Path
    token: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def env(self) -> dict[str, str]:
        """A login-like environment for commands run as this user."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }

    def run(self, *argv: str | Path, group: int) -> subprocess.CompletedProcess:
        """Run a command as this user (with the group space's group); never raises."""
        return subprocess.run(
            [str(a) for a in argv],
            user=self.uid,
            group=self.gid,
            extra_groups=[group],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
        )


def create_group(name: str) -> int:
    """A new POSIX group; its gid."""
    import grp

    _run("groupadd", name)
    return grp.getgrnam(name).gr_gid


def create_user(name: str, group: str) -> HubUser:
    """A new system user with a home folder (0755, as useradd -m makes it)."""
    import pwd

    _run("useradd", "--create-home", "--shell", "/bin/sh", "-G", group, name)
    entry = pwd.getpwnam(name)
    return HubUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def processes_of(uid: int) -> list[int]:
    """Pids of the processes running as ``uid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                continue
    return pids


def remove_user(user: HubUser) -> None:
    """Stop what the hub left running as the user, then delete user and home."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_of(user.uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while processes_of(user.uid) and time.monotonic() < deadline:
            time.sleep(0.1)
    subprocess.run(["userdel", "--remove", user.name], capture_output=True)


def _listening(uid: int) -> dict[str, int]:
    """Socket (``socket:[INODE]``) → port of each TCP listener of ``uid``."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[7]) == uid:  # 0A: LISTEN
                port = int(fields[1].rsplit(":", 1)[1], 16)
                sockets[f"socket:[{fields[9]}]"] = port
    return sockets


def listening_ports(uid: int) -> set[int]:
    """TCP ports on which processes of ``uid`` listen (from /proc/net/tcp{,6})."""
    return set(_listening(uid).values())


def port_owners(uid: int) -> dict[int, str]:
    """Listening port → command line of the process of ``uid`` holding it."""
    sockets = _listening(uid)
    owners = {}
    for pid in processes_of(uid):
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        for link in links & sockets.keys():
            owners[sockets[link]] = cmdline.decode(errors="replace")[:200]
    return owners


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{password}"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["{venv}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
"""


@dataclass
class Hub:
    """A running JupyterHub: its URL, state folder and process."""

    url: str
    state: Path
    process: subprocess.Popen
    password: str

    def log(self) -> str:
        """The hub's (and the servers') log so far."""
        return (self.state / "hub.log").read_text(errors="replace")


def start_hub(state: Path, users: list[HubUser], venv: Path) -> Hub:
    """Start JupyterHub as root with the dummy authenticator and local spawner."""
    port = free_port()
    password = secrets.token_urlsafe(12)
    config = state / "jupyterhub_config.py"
    config.write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_port=free_port(),
            state=state,
            password=password,
            users={u.name for u in users},
            venv=venv,
        )
    )
    log = open(state / "hub.log", "w")  # noqa: SIM115 (the hub writes it until stopped)
    process = subprocess.Popen(
        [str(venv / "bin" / "jupyterhub"), "-f", str(config)],
        cwd=state,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"},
    )
    hub = Hub(f"http://127.0.0.1:{port}", state, process, password)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterHub exited {process.returncode}:\n{hub.log()}")
        try:
            if requests.get(f"{hub.url}/hub/api/", timeout=2).ok:
                return hub
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    stop_hub(hub)
    raise RuntimeError(f"JupyterHub did not answer within 60 s:\n{hub.log()}")


def stop_hub(hub: Hub) -> None:
    """Stop the hub; it stops the proxy and the users' servers (cleanup_servers)."""
    hub.process.terminate()
    try:
        hub.process.wait(30)
    except subprocess.TimeoutExpired:
        hub.process.kill()
        hub.process.wait(10)


def login(hub: Hub, user: HubUser, password: str) -> requests.Response:
    """Log in through the hub's login form (as a browser does); the final response."""
    session = user.session
    session.get(f"{hub.url}/hub/login", timeout=10)
    return session.post(
        f"{hub.url}/hub/login",
        data={
            "username": user.name,
            "password": password,
            "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
        },
        timeout=30,
    )


def request_token(hub: Hub, user: HubUser) -> str:
    """A new API token for a logged-in user, asked for through the hub's REST API."""
    session = user.session
    response = session.post(
        f"{hub.url}/hub/api/users/{user.name}/tokens",
        json={"note": "simlab hub test", "expires_in": 3600},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/")},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["token"]


def api(hub: Hub, token: str, method: str, path: str, **kwargs) -> requests.Response:
    """A request to ``hub.url + path`` authenticated with ``token``."""
    return requests.request(
        method,
        f"{hub.url}{path}",
        headers={"Authorization": f"token {token}"},
        timeout=kwargs.pop("timeout", 180),
        **kwargs,
    )


def start_server(hub: Hub, user: HubUser, timeout: float = 90) -> dict:
    """Start the user's single-user server with their own token; wait until ready."""
    response = api(hub, user.token, "POST", f"/hub/api/users/{user.name}/server")
    if response.status_code not in (201, 202):
        raise RuntimeError(
            f"starting {user.name}'s server: {response.status_code} {response.text}"
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = api(hub, user.token, "GET", f"/hub/api/users/{user.name}").json()
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return model
        time.sleep(0.5)
    raise RuntimeError(f"{user.name}'s server not ready after {timeout}s:\n{hub.log()}")


def python(user: HubUser, code: str, group: int) -> subprocess.CompletedProcess:
    """Run Python ``code`` as ``user`` in the users' environment."""
    return user.run(VENV / "bin" / "python", "-c", code, group=group)
