"""A kernel started ahead of the next notebook a process executes (sweep points).

A sweep point's notebook would otherwise pay for a kernel's start and for the
imports of its first cells before its work begins. The process that executes
notebooks one after another (a dask worker of the sweep's cluster) keeps one spare:
taking it starts the next one in a background thread, while the current notebook
runs, and has it load ahead what a point like the current one uses
(:func:`simlab.dispatch.notebook_task.load_ahead`: imports, the engine's process,
linear theory, h5netcdf). papermill runs the notebook on the spare through
:class:`SpareKernelEngine` (engine ``simlab-spare``), and its executed notebook
stays the record: only the notebook's cells run in the user's namespace; the
loading and the change of working directory run silently and leave no names and
no execution count. Each notebook gets a fresh kernel, shut down after it; a spare
left at exit is shut down then (and a kernel whose parent died exits on its own,
as ipykernel polls its parent).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import logging
import queue
import tempfile
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds a spare may take to start and import before it is given up.
START_TIMEOUT = 60.0
#: Seconds a spare taken for a notebook may take to answer before the notebook
#: starts a kernel of its own instead.
CONNECT_TIMEOUT = 10.0
#: The papermill engine name of :class:`SpareKernelEngine`.
ENGINE = "simlab-spare"

_lock = threading.Lock()
_next: concurrent.futures.Future | None = None
_starter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spare-kernel")


def engine_options(cwd: str) -> dict[str, Any]:
    """papermill options that run the next notebook on the spare kernel, in ``cwd``
    (none when no spare is ready); a new spare starts either way."""
    manager = take(cwd)
    if manager is None:
        return {}
    _engine()
    return {"engine_name": ENGINE, "km": manager, "kernel_cwd": cwd}


def take(like: str) -> Any | None:
    """The spare kernel's manager, or None when none was started yet (the first
    notebook of the process) or it failed; a new spare starts either way, loading
    ahead for a point like the run in ``like``."""
    global _next
    with _lock:
        ready, _next = _next, _starter.submit(_start, like)
    if ready is None:
        return None
    from jupyter_client.utils import run_sync

    manager = None
    try:
        manager = ready.result(timeout=START_TIMEOUT)
        if not run_sync(manager.is_alive)():
            raise RuntimeError("it died while it waited")
    except Exception as exc:  # a spare that failed: the notebook starts its own
        logger.warning("spare kernel not used: %s", exc)
        if manager is not None:
            shutdown(manager)
        return None
    return manager


def shutdown(manager: Any, now: bool = True) -> None:
    """End a kernel: a spare nobody will use at once, one whose notebook ended
    (``now=False``) as Python exits."""
    from jupyter_client.utils import run_sync

    try:
        run_sync(manager.shutdown_kernel)(now=now)
    except Exception as exc:  # already gone
        logger.debug("spare kernel shutdown: %s", exc)


def _end_after_notebook(client: Any) -> None:
    """Close the notebook's channels and shut its kernel down in a thread: the
    kernel exits as Python does (what a cell left open is flushed) while the
    worker goes on with its next notebook, rather than after (0.4 s a point)."""
    if client.kc is not None:
        client.kc.stop_channels()
    threading.Thread(
        target=shutdown, args=(client.km,), kwargs={"now": False}, daemon=True
    ).start()


@functools.cache
def _engine() -> type:
    """:class:`SpareKernelEngine`, built and registered with papermill on first use
    (papermill is heavy to import)."""
    from nbclient.util import run_hook, run_sync
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class SpareKernelClient(PapermillNotebookClient):
        """papermill's client on a kernel known to be up: it connects with
        :func:`_connect` (jupyter_client's ``wait_for_ready`` listens 0.2 s more for
        IOPub to fall quiet) and first moves the kernel into ``kernel_cwd``."""

        def __init__(self, nb_man: Any, kernel_cwd: str, **options: Any) -> None:
            super().__init__(nb_man, **options)
            self.kernel_cwd = kernel_cwd

        async def async_start_new_kernel_client(self) -> Any:
            self.kc = self.km.client()
            self.kc.start_channels()
            try:
                await _connect(self.kc, self.kernel_cwd, self.startup_timeout)
            except Exception:
                await self._async_cleanup_kernel()
                raise
            self.kc.allow_stdin = False
            await run_hook(self.on_notebook_start, notebook=self.nb)
            return self.kc

        # papermill's execute sets the kernel up through the synchronous name
        start_new_kernel_client = run_sync(async_start_new_kernel_client)

    class SpareKernelEngine(NBClientEngine):
        """papermill's nbclient engine on the kernel given as ``km``, in the folder
        ``kernel_cwd``; the kernel is ended after the notebook (nbclient leaves a
        kernel it was given running): :func:`_end_after_notebook`."""

        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: int | None = None,
            **kwargs: Any,
        ) -> Any:
            kwargs = remove_args(["input_path"], **kwargs)
            options = merge_kwargs(
                remove_args(["timeout", "startup_timeout"], **kwargs),
                timeout=execution_timeout or kwargs.get("timeout"),
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
            )
            client = SpareKernelClient(nb_man, **options)
            try:
                return client.execute()
            except SpareKernelLost as exc:  # before any cell: start a kernel
                logger.warning("%s; the notebook starts a kernel of its own", exc)
                fresh = remove_args(["km", "kernel_cwd"], **kwargs)
                return super().execute_managed_notebook(
                    nb_man, kernel_name, log_output, stdout_file, stderr_file,
                    start_timeout, execution_timeout, **fresh,
                )  # fmt: skip
            finally:
                _end_after_notebook(client)

    papermill_engines.register(ENGINE, SpareKernelEngine)
    return SpareKernelEngine


def _start(like: str) -> Any:
    """Start a kernel on Unix sockets in a neutral folder and run
    :func:`simlab.dispatch.notebook_task.load_ahead` in it for a point like the
    one in ``like`` (the point that took the previous spare: sweep points share
    their code and resources)."""
    from jupyter_client.utils import run_sync

    from simlab.templates import _ipc_kernel_manager

    manager = _ipc_kernel_manager()(kernel_name="python3")
    run_sync(manager.start_kernel)(cwd=tempfile.gettempdir())
    try:  # a head start only: the kernel is ready without it
        _run_silently(
            manager,
            "from simlab.dispatch.notebook_task import load_ahead as _simlab_l\n"
            f"try:\n    _simlab_l({like!r})\nfinally:\n    del _simlab_l",
        )
    except RuntimeError as exc:
        logger.warning("spare kernel: not all loaded ahead: %s", exc)
    return manager


class SpareKernelLost(RuntimeError):
    """The spare kernel did not answer (it died or hangs): nothing ran on it."""


async def _connect(client: Any, cwd: str, timeout: float) -> None:
    """Move a ready kernel into ``cwd`` without a trace in its history, and return
    once ``client``'s IOPub is connected: a ``kernel_info`` request is sent after
    the move until IOPub reports the kernel idle after it. RuntimeError if the
    move failed; SpareKernelLost if the kernel died or said nothing in
    ``timeout`` (at most :data:`CONNECT_TIMEOUT`)."""
    chdir = f"import os as _simlab_os\n_simlab_os.chdir({cwd!r})\ndel _simlab_os"
    deadline = time.monotonic() + min(timeout, CONNECT_TIMEOUT)
    request = client.execute(chdir, silent=True, store_history=False)
    moved = await _reply(client, request, deadline)
    if moved["content"]["status"] != "ok":
        raise RuntimeError(f"spare kernel: cannot move into {cwd}")
    while True:
        asked = client.kernel_info()
        await _reply(client, asked, deadline)
        if await _idle_after(client, asked, deadline):
            return


async def _reply(client: Any, msg_id: str, deadline: float) -> dict[str, Any]:
    """The shell reply to ``msg_id``; SpareKernelLost when the kernel died or
    ``deadline`` (a ``time.monotonic`` value) passed first."""
    while time.monotonic() < deadline:
        try:
            reply = await client.get_shell_msg(timeout=1.0)
        except queue.Empty:
            if not await client.is_alive():
                raise SpareKernelLost("the spare kernel died") from None
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply
    raise SpareKernelLost("the spare kernel did not answer in time")


async def _idle_after(client: Any, msg_id: str, deadline: float) -> bool:
    """Whether IOPub says the kernel is idle after ``msg_id``; False when IOPub
    is silent for 0.2 s (not connected yet: its messages were sent before)."""
    while time.monotonic() < deadline:
        try:
            message = await client.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            return False
        if (
            message["msg_type"] == "status"
            and message["parent_header"].get("msg_id") == msg_id
            and message["content"]["execution_state"] == "idle"
        ):
            return True
    return False


def _run_silently(manager: Any, code: str) -> None:
    """Run ``code`` in the kernel without a trace in its history or outputs;
    RuntimeError if it raised."""
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=START_TIMEOUT)
        reply = client.execute_interactive(
            code, silent=True, store_history=False, timeout=START_TIMEOUT
        )
    finally:
        client.stop_channels()
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"spare kernel: {reply['content'].get('evalue', reply)}")


@atexit.register
def close() -> None:
    """Shut down the spare nobody took, once it has started (at exit, the process
    is ending); the next :func:`take` starts afresh."""
    global _next
    with _lock:
        pending, _next = _next, None
    if pending is None:
        return
    try:
        manager = pending.result(timeout=START_TIMEOUT)
    except Exception:  # it never started: nothing to end
        return
    shutdown(manager)
