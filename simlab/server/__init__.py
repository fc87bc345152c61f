"""simlab's jupyter_server extension: the REST API under ``/simlab/api/``.

Only the extension points live here. The manager (run root and catalogue) is
created once per server and kept in ``web_app.settings``. Runs belong to the run
root's dispatcher process, not to the server, so they survive kernel and server
restarts alike; at start the server settles what a dead process left behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

#: Key of the manager in the tornado application settings.
MANAGER_KEY = "simlab_manager"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt Lab extension is, for ``jupyter labextension develop``."""
    return [{"src": "labextension", "dest": "simlab-labextension"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The server extension this package provides."""
    return [{"module": "simlab.server"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    """Create the manager and add the routes."""
    import atexit

    from simlab.server.manager import SimlabManager
    from simlab.server.routes import setup_route_handlers

    web_app = server_app.web_app
    manager = SimlabManager()
    web_app.settings[MANAGER_KEY] = manager
    setup_route_handlers(web_app)
    manager.start_background_sync()
    atexit.register(manager.close)
    server_app.log.info("simlab: REST API at /simlab/api/, run root %s", manager.root)
