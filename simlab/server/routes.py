"""The URL table of simlab's REST API, all under ``{base_url}/simlab/api/``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jupyter_server.utils import url_path_join

from simlab.server import handlers

if TYPE_CHECKING:
    from tornado.web import Application

NAMESPACE = "simlab/api"
_RUN = r"runs/(?P<run_id>[^/]+)"
_CLUSTER = r"clusters/(?P<cluster_id>[^/]+)"

ROUTES: list[tuple[str, type]] = [
    (r"runs", handlers.RunsHandler),
    (_RUN, handlers.RunHandler),
    (_RUN + r"/stop", handlers.StopHandler),
    (_RUN + r"/resume", handlers.ResumeHandler),
    (_RUN + r"/archive", handlers.ArchiveHandler),
    (_RUN + r"/delete", handlers.DeleteHandler),
    (_RUN + r"/publish", handlers.PublishHandler),
    (r"published", handlers.PublishedHandler),
    (_RUN + r"/log", handlers.LogHandler),
    (_RUN + r"/events", handlers.EventsHandler),
    (_RUN + r"/artifacts", handlers.ArtifactsHandler),
    (_RUN + r"/snapshots", handlers.SnapshotsHandler),
    (_RUN + r"/results", handlers.ResultsHandler),
    (r"codes", handlers.CodesHandler),
    (r"clusters", handlers.ClustersHandler),
    (_CLUSTER + r"/scale", handlers.ScaleHandler),
    (r"stats", handlers.StatsHandler),
    (r"health", handlers.HealthHandler),
    (r"ready", handlers.ReadyHandler),
]


def setup_route_handlers(web_app: Application) -> None:
    """Add every simlab route to the server's tornado application."""
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base_url, NAMESPACE, pattern) + "$", handler)
            for pattern, handler in ROUTES
        ],
    )
