"""The papermill notebook templates shipped with simlab, and running them."""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
#: Installed wheels carry the templates in ``simlab/_notebooks``; a source checkout
#: keeps them in the top-level ``notebooks/`` folder.
_SEARCH = (_HERE / "_notebooks", _HERE.parent / "notebooks")
#: Longest Unix socket path in bytes that every platform accepts (macOS: 104).
SOCKET_PATH_MAX = 100


def template_path(name: str) -> Path:
    """Path of the template ``name`` (``quickstart`` or ``quickstart.ipynb``).

    A path to an existing ``.ipynb`` file is accepted as is (a user's template).
    """
    if name.endswith(".ipynb") and Path(name).is_file():
        return Path(name).resolve()
    filename = name if name.endswith(".ipynb") else f"{name}.ipynb"
    for folder in _SEARCH:
        if (folder / filename).is_file():
            return folder / filename
    known = sorted({p.stem for folder in _SEARCH for p in folder.glob("*.ipynb")})
    raise FileNotFoundError(
        f"no notebook template {filename!r}; available: {', '.join(known)}"
    )


def execute_notebook(
    name: str,
    output: str | Path,
    parameters: dict[str, Any] | None = None,
    *,
    cwd: str | Path | None = None,
    spare_kernel: bool = False,
) -> Path:
    """Execute template ``name`` with papermill into ``output``; return its path.

    The notebook runs with ``cwd`` (default: its folder) as working directory, so
    relative paths in it land beside the executed copy. With ``spare_kernel`` it
    runs on the kernel this process started ahead (:mod:`simlab.spare_kernel`),
    and the next one starts meanwhile.
    """
    import papermill

    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    cwd = str(cwd or output.parent)
    engine: dict[str, Any] = {}
    if spare_kernel:
        from simlab import spare_kernel as spare

        engine = spare.engine_options(cwd)
    papermill.execute_notebook(
        str(template_path(str(name))),
        str(output),
        parameters=parameters or {},
        cwd=cwd,
        progress_bar=False,
        kernel_name="python3",
        kernel_manager_class="simlab.templates.IPCKernelManager",
        **engine,
    )
    return output


@functools.cache
def _ipc_kernel_manager() -> type:
    """:class:`IPCKernelManager`, built on first use (jupyter_client is heavy)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        """A kernel on Unix sockets, not TCP: notebooks started at the same time
        cannot race for a port ("Address already in use"), and nothing listens
        on the network."""

        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return socket_base()

    return IPCKernelManager


def socket_base() -> str:
    """Path stem of a kernel's Unix sockets (``<stem>-<port>``).

    In the Jupyter runtime folder, unless that path is too long for a socket (a
    deep home or ``JUPYTER_RUNTIME_DIR``): then in a fresh private temp folder.
    """
    from jupyter_core.paths import jupyter_runtime_dir

    name = f"simlab-kernel-{uuid.uuid4().hex}"
    folder = Path(jupyter_runtime_dir())
    if len(os.fsencode(folder / name)) + len("-65535") > SOCKET_PATH_MAX:
        return str(Path(tempfile.mkdtemp(prefix="simlab-")) / "kernel")  # 0700
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return str(folder / name)


def __getattr__(name: str) -> Any:
    if name == "IPCKernelManager":
        return _ipc_kernel_manager()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
