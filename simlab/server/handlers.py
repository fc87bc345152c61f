"""REST handlers: parse the request, call the manager, serialise the answer.

Every verb is ``@tornado.web.authenticated`` and ``@authorized`` on the ``simlab``
resource, and every handler subclasses jupyter_server's ``APIHandler``: tokens,
cookies, XSRF and the server's Authorizer (read-only sharing, custom policies)
hold as in the rest of Jupyter. Reading is ``read``; cancelling, stopping,
archiving, deleting and publishing are ``write``; submitting, resuming and scaling
start computations and are ``execute``.

Requests are parsed completely before anything happens: bodies are bounded in size
and depth, numbers in range, query parameters checked; errors echo at most a short
prefix of a bad value. Status codes are chosen on purpose: 400 for a malformed
parameter, 404 for an unknown run, 409 for a request the run's state forbids, 413
for a body too large, 422 with one entry per field for an invalid run
configuration; only real bugs give 500.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.iostream import StreamClosedError

from simlab.__about__ import __version__
from simlab.config import echo
from simlab.errors import ConfigError
from simlab.server.manager import BadRequest, Conflict, NotFound, Unavailable
from simlab.state.catalog import MAX_PAGE
from simlab.state.rundir import CorruptRunError
from simlab.state.states import State

if TYPE_CHECKING:
    from simlab.server.manager import SimlabManager

T = TypeVar("T")
#: Seconds between checks of the log and status in the live stream and ?wait=true.
FOLLOW_INTERVAL = 0.5
#: Bytes read at a time while streaming an artifacts zip.
ZIP_CHUNK = 1 << 20
#: Largest request body accepted, in bytes (a run configuration is a few kB).
MAX_BODY = 256 * 1024
#: Deepest nesting of JSON a request body may have.
MAX_DEPTH = 32
#: The resource every simlab route is authorized on (Jupyter's Authorizer).
AUTH_RESOURCE = "simlab"


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, counting no further than ``limit``."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


class SimlabHandler(APIHandler):
    """Common helpers: the manager, query parsing, error translation, JSON replies."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> SimlabManager:
        """The one manager of this server (``web_app.settings["simlab_manager"]``)."""
        return self.settings["simlab_manager"]

    def int_arg(
        self,
        name: str,
        default: int | None = None,
        *,
        low: int = 0,
        high: int = 2**62,
    ) -> int | None:
        """An integer query parameter in [low, high]; 400 naming it otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        allowed = f"an integer in [{low}, {high}]"
        if (
            len(raw) > 20
            or not raw.lstrip("-").isascii()
            or not raw.lstrip("-").isdigit()
        ):
            raise tornado.web.HTTPError(
                400, f"{name}={echo(raw)!r}: expected {allowed}"
            )
        value = int(raw)
        if not low <= value <= high:
            raise tornado.web.HTTPError(400, f"{name}={value}: expected {allowed}")
        return value

    def bool_arg(self, name: str, default: bool = False) -> bool:
        """A true/false query parameter; 400 naming it otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise tornado.web.HTTPError(
            400, f"{name}={echo(raw)!r}: expected true or false"
        )

    def text_arg(self, name: str, limit: int = 200) -> str | None:
        """A text query parameter of at most ``limit`` characters."""
        raw = self.get_query_argument(name, None)
        if raw is not None and len(raw) > limit:
            raise tornado.web.HTTPError(
                400, f"{name}={echo(raw)!r}: at most {limit} characters"
            )
        return raw

    def json_body(self) -> Any:
        """The request body as JSON: 413 when too large, 400 when it is not JSON,
        nested too deep or holds a number Python will not read."""
        body = self.request.body or b"{}"
        if len(body) > MAX_BODY:
            raise tornado.web.HTTPError(
                413, f"request body of {len(body)} bytes; at most {MAX_BODY} allowed"
            )
        try:
            data = json.loads(body)
        except RecursionError:
            data = None
        except (ValueError, UnicodeDecodeError) as exc:
            message = f"request body is not JSON: {echo(str(exc))}"
            raise tornado.web.HTTPError(400, message) from None
        if data is None or _depth(data, MAX_DEPTH) > MAX_DEPTH:
            raise tornado.web.HTTPError(
                400, f"request body nested deeper than {MAX_DEPTH} levels"
            )
        return data

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a manager method in a thread; turn simlab errors into HTTP replies."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ConfigError as exc:
            self.set_status(422)
            self.set_header("Content-Type", "application/json")
            body = {"message": str(exc), "errors": exc.errors}
            raise tornado.web.Finish(json.dumps(body, default=str)) from exc
        except BadRequest as exc:
            raise tornado.web.HTTPError(400, str(exc)) from exc
        except NotFound as exc:
            raise tornado.web.HTTPError(404, str(exc)) from exc
        except Conflict as exc:
            raise tornado.web.HTTPError(409, str(exc)) from exc
        except Unavailable as exc:
            raise tornado.web.HTTPError(503, str(exc)) from exc
        except CorruptRunError as exc:
            raise tornado.web.HTTPError(409, str(exc)) from exc

    def reply(self, data: Any, status: int = 200) -> None:
        """Finish with ``data`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))


class RunsHandler(SimlabHandler):
    """``GET runs`` lists with filters and pages; ``POST runs`` submits a RunConfig."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """A page of runs: state, code, tag, project, sweep, text, order, page."""
        filters = {
            key: self.text_arg(key)
            for key in ("state", "code", "tag", "project", "sweep", "text")
        }
        page = await self.call(
            self.manager.list_runs,
            order=self.text_arg("order") or "-created",
            page=self.int_arg("page", 1, low=1, high=MAX_PAGE),
            per_page=self.int_arg("per_page", 50, low=1, high=1000),
            **filters,
        )
        self.reply(page)

    @tornado.web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        """Create and dispatch a run (201); 422 lists every invalid field.

        ``?wait=true`` answers only when the run has ended (``timeout`` seconds at
        most, then 202 with the run as it is).
        """
        # everything is parsed before anything is created
        config = self.json_body()
        if not isinstance(config, dict):
            raise tornado.web.HTTPError(400, "request body must be a RunConfig object")
        cluster = self.text_arg("cluster", 64)
        wait = self.bool_arg("wait")
        timeout = self.int_arg("timeout", 24 * 3600, low=1, high=7 * 24 * 3600)
        model = await self.call(self.manager.submit, config, cluster)
        status = 201
        if wait:
            model = await self._wait(model["id"], timeout)
            status = 201 if State(model["state"]).is_final else 202
        location = url_path_join(self.base_url, "simlab/api/runs", model["id"])
        self.set_header("Location", location)
        self.reply(model, status)

    async def _wait(self, run_id: str, timeout: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            model = await self.call(self.manager.get, run_id)
            if State(model["state"]).is_final or loop.time() > deadline:
                return model
            await asyncio.sleep(FOLLOW_INTERVAL)


class RunHandler(SimlabHandler):
    """``GET runs/{id}`` reads one run; ``DELETE runs/{id}`` cancels it."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        """The run with its status, progress, ETA and configuration."""
        self.reply(await self.call(self.manager.get, run_id))

    @tornado.web.authenticated
    @authorized("write")
    async def delete(self, run_id: str) -> None:
        """Ask the run to end cancelled (202); 409 if it has already ended."""
        self.reply(await self.call(self.manager.cancel, run_id), 202)


class StopHandler(SimlabHandler):
    """``POST runs/{id}/stop``: checkpoint and stop a running run."""

    @tornado.web.authenticated
    @authorized("write")
    async def post(self, run_id: str) -> None:
        """202 with the run; 409 unless it is running."""
        self.reply(await self.call(self.manager.stop, run_id), 202)


class ResumeHandler(SimlabHandler):
    """``POST runs/{id}/resume``: continue a checkpointed, cancelled or failed run."""

    @tornado.web.authenticated
    @authorized("execute")
    async def post(self, run_id: str) -> None:
        """202 with the run; 409 when it cannot be resumed."""
        self.reply(await self.call(self.manager.resume, run_id), 202)


class ArchiveHandler(SimlabHandler):
    """``POST runs/{id}/archive``: move an ended run out of the listings, kept."""

    @tornado.web.authenticated
    @authorized("write")
    async def post(self, run_id: str) -> None:
        """200 with ``{id, path}`` (its place in the archive); 409 unless ended."""
        self.reply(await self.call(self.manager.archive, run_id))


class DeleteHandler(SimlabHandler):
    """``POST runs/{id}/delete``: remove an ended run's directory for good.

    A separate route, not ``DELETE runs/{id}`` (which cancels), so that no client
    removes data by retrying a cancel.
    """

    @tornado.web.authenticated
    @authorized("write")
    async def post(self, run_id: str) -> None:
        """200 with ``{id, deleted}``; 409 unless ended."""
        self.reply(await self.call(self.manager.delete, run_id))


class PublishHandler(SimlabHandler):
    """``POST runs/{id}/publish``: copy a finished run into the group space."""

    @tornado.web.authenticated
    @authorized("write")
    async def post(self, run_id: str) -> None:
        """201 with the published folder; 409 when the run or space refuses it."""
        self.reply(await self.call(self.manager.publish, run_id), 201)


class PublishedHandler(SimlabHandler):
    """``GET published``: the group's published runs, read-only."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """Every published run's record (owner, time, source) and path."""
        self.reply({"runs": await self.call(self.manager.published)})


class LogHandler(SimlabHandler):
    """``GET runs/{id}/log?offset=N`` or ``?tail=N``."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        """A slice of the log and the offset to continue from."""
        offset = self.int_arg("offset")
        tail = self.int_arg("tail", low=1, high=100_000)
        self.reply(await self.call(self.manager.log, run_id, offset, tail))


class EventsHandler(SimlabHandler):
    """``GET runs/{id}/events``: server-sent events following log and status.

    Events: ``log`` (``{"text", "offset", "next"}``), ``status`` (the run model
    when it changed) and ``end`` once the run has ended and its log is drained.
    ``?offset=`` or the ``Last-Event-ID`` header resumes the log where it was.
    """

    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        """Stream until the run ends or the client goes away."""
        manager = self.manager
        await self.call(manager.rundir, run_id)
        offset = self.int_arg("offset", 0) or 0
        last_id = self.request.headers.get("Last-Event-ID", "")
        if last_id.isascii() and last_id.isdigit() and len(last_id) < 19:
            offset = int(last_id)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        updated = None
        try:
            while True:
                model = await self.call(manager.get, run_id)
                log = await self.call(manager.log, run_id, offset)
                if log["text"]:
                    offset = log["next"]
                    self._event("log", log, event_id=offset)
                if model["updated"] != updated:
                    updated = model["updated"]
                    model.pop("config", None)
                    self._event("status", model)
                await self.flush()
                if State(model["state"]).is_final and offset >= log["size"]:
                    self._event("end", {"state": model["state"]})
                    break
                await asyncio.sleep(FOLLOW_INTERVAL)
        except StreamClosedError:
            return
        self.finish()

    def _event(self, name: str, data: Any, event_id: int | None = None) -> None:
        head = f"id: {event_id}\n" if event_id is not None else ""
        self.write(f"{head}event: {name}\ndata: {json.dumps(data, default=str)}\n\n")


class _Chunks:
    """A write-only file object collecting zip bytes until the handler sends them."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer.extend(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the handler drains ``buffer``."""

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


class ArtifactsHandler(SimlabHandler):
    """``GET runs/{id}/artifacts?parts=log,output``: a zip streamed as it is built."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        """Stream the zip; 400 names an unknown part."""
        raw = self.text_arg("parts") or ""
        parts = [p for p in raw.split(",") if p] or None
        files = await self.call(
            lambda: list(self.manager.artifact_files(run_id, parts))
        )
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="{run_id}.zip"')
        sink = _Chunks()
        try:
            with zipfile.ZipFile(
                sink, "w", zipfile.ZIP_DEFLATED, compresslevel=1
            ) as zf:
                for arcname, path in files:
                    size = path.stat().st_size
                    with (
                        open(path, "rb") as src,
                        zf.open(arcname, "w", force_zip64=size > 2**31) as dest,
                    ):
                        while chunk := await asyncio.to_thread(src.read, ZIP_CHUNK):
                            await asyncio.to_thread(dest.write, chunk)
                            self.write(sink.take())
                            await self.flush()
            self.write(sink.take())
        except StreamClosedError:
            return
        self.finish()


class SnapshotsHandler(SimlabHandler):
    """``GET runs/{id}/snapshots``: snapshot files with size and time."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        """The snapshots written so far, in time order."""
        self.reply({"snapshots": await self.call(self.manager.snapshots, run_id)})


class ResultsHandler(SimlabHandler):
    """``GET runs/{id}/results``: the values notebooks and analysis recorded."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self, run_id: str) -> None:
        """results.json, or ``{}``."""
        self.reply(await self.call(self.manager.results, run_id))


class CodesHandler(SimlabHandler):
    """``GET codes``: installed engines with their health and versions."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """Every engine in the registry."""
        self.reply({"codes": await self.call(self.manager.codes)})


class ClustersHandler(SimlabHandler):
    """``GET clusters``: profiles and started clusters with their workers."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """Profiles and clusters."""
        self.reply(await self.call(self.manager.clusters))


class ScaleHandler(SimlabHandler):
    """``POST clusters/{id}/scale`` with ``{"workers": n}``."""

    @tornado.web.authenticated
    @authorized("execute")
    async def post(self, cluster_id: str) -> None:
        """Ask the cluster for n workers (202)."""
        body = self.json_body()
        workers = body.get("workers") if isinstance(body, dict) else None
        if not isinstance(workers, int) or isinstance(workers, bool):
            raise tornado.web.HTTPError(
                400, f"workers={echo(workers)!r}: expected an integer in [0, 1000]"
            )
        await self.call(self.manager.scale, cluster_id, workers)
        self.reply({"id": cluster_id, "workers": workers}, 202)


class StatsHandler(SimlabHandler):
    """``GET stats``: counts by state and code, mean durations, queue length."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """The statistics of the catalogue."""
        self.reply(await self.call(self.manager.stats))


class HealthHandler(SimlabHandler):
    """``GET health``: the extension is loaded and answering."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """Version, run root and whether the dispatcher has started."""
        manager = self.manager
        self.reply(
            {
                "status": "ok",
                "version": __version__,
                "run_root": str(manager.root),
                "dispatcher": manager.started,
                "pending": manager.pending(),
            }
        )


class ReadyHandler(SimlabHandler):
    """``GET ready``: 200 when the run root and catalogue can be used, else 503."""

    @tornado.web.authenticated
    @authorized("read")
    async def get(self) -> None:
        """Check that the catalogue answers and the run root is writable."""
        import os

        manager = self.manager
        try:
            await asyncio.to_thread(manager.catalog.counts)
            writable = os.access(manager.root, os.W_OK)
        except Exception as exc:  # the boundary: any failure means not ready
            self.log.exception("simlab not ready")
            self.reply({"ready": False, "reason": f"{type(exc).__name__}: {exc}"}, 503)
            return
        if not writable:
            self.reply({"ready": False, "reason": f"{manager.root} not writable"}, 503)
            return
        self.reply({"ready": True})
