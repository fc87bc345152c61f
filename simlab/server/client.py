"""Submit runs through the server's REST API from a kernel.

When the simlab server extension loads, it writes ``SIMLAB_API_URL`` and
``SIMLAB_API_TOKEN`` into the server's environment, which every kernel it starts
inherits. ``simlab.submit`` in such a kernel then hands the run to the server's
Dispatcher instead of starting a cluster inside the kernel, so the run survives a
kernel restart. The server process itself (``SIMLAB_API_SERVER_PID``) never calls
itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from simlab.errors import ConfigError, SimlabError

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

    from simlab.config import RunConfig
    from simlab.runs.run import Run

API_URL = "SIMLAB_API_URL"
API_TOKEN = "SIMLAB_API_TOKEN"
SERVER_PID = "SIMLAB_API_SERVER_PID"
#: Seconds a single API request may take.
TIMEOUT = 120


class APIError(SimlabError, RuntimeError):
    """The server answered with an error: status and its message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"simlab API error {status}: {message}")


def export_environment(server_app: ServerApp) -> None:
    """Put the API address and token in ``os.environ`` for kernels to inherit."""
    if server_app.sock:
        return
    ip = server_app.ip
    if ip in ("", "0.0.0.0", "::", "*", "localhost"):
        ip = "127.0.0.1"
    elif ":" in ip:
        ip = f"[{ip}]"
    scheme = "https" if server_app.certfile else "http"
    os.environ[API_URL] = f"{scheme}://{ip}:{server_app.port}{server_app.base_url}"
    os.environ[API_TOKEN] = server_app.identity_provider.token or ""
    os.environ[SERVER_PID] = str(os.getpid())


def enabled() -> bool:
    """Whether this process should submit through a server's API."""
    return bool(os.environ.get(API_URL)) and os.environ.get(SERVER_PID) != str(
        os.getpid()
    )


def request(
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """Call ``/simlab/api/<path>`` and return the decoded JSON answer.

    A 422 becomes a ConfigError with the server's per-field errors; any other
    error status an APIError carrying the server's message.
    """
    url = os.environ[API_URL].rstrip("/") + "/simlab/api/" + path
    query = {k: v for k, v in (params or {}).items() if v is not None}
    if query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(API_TOKEN)
    if token:
        headers["Authorization"] = f"token {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            answer = {}
        if exc.code == 422 and "errors" in answer:
            raise ConfigError(answer["errors"]) from None
        raise APIError(exc.code, answer.get("message", exc.reason)) from None


def submit(config: RunConfig | dict[str, Any], *, cluster: str | None = None) -> Run:
    """Submit ``config`` to the server's Dispatcher; return the run's handle."""
    from simlab.config import validate_config
    from simlab.runs.run import Run

    data = validate_config(config).model_dump(mode="json")
    model = request("POST", "runs", data, {"cluster": cluster})
    return Run(model["path"])
