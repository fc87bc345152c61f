"""How a :class:`~simlab.Run` shows itself in a notebook.

Where widgets render (a kernel with a widget frontend) a Run displays as a live
:class:`~simlab.widgets.monitor.RunMonitor`; everywhere else (nbconvert, GitHub,
a plain terminal) the same bundle carries a static HTML summary and ``repr``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.runs.run import Run


def _in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (so widget comms can open)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def run_html(run: Run) -> str:
    """A static HTML summary: id, state, progress, engine, snapshots, path."""
    from simlab.widgets.monitor import state_badge

    status = run.status
    progress = status.get("progress") or {}
    done = 1.0 if status["state"] == "completed" else progress.get("fraction") or 0.0
    where = f"a = {progress['a']:.4f}, z = {progress['z']:.2f}" if progress else ""
    snapshots = run.snapshots
    rows = [
        ("state", state_badge(status["state"])),
        (
            "progress",
            f"<progress value='{done:.3f}' max='1'></progress> "
            f"{100 * done:.0f}% {where}",
        ),
        ("engine", html.escape(str(status.get("engine", "")))),
        ("snapshots", ", ".join(html.escape(p.name) for p in snapshots) or "none yet"),
        ("directory", f"<code>{html.escape(str(run.path))}</code>"),
    ]
    reason = status.get("reason")
    if reason:
        rows.append(("reason", html.escape(reason)))
    body = "".join(
        f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}"
        "</td></tr>"
        for k, v in rows
    )
    return f"<b>Run {html.escape(run.id)}</b><table>{body}</table>"


def run_mimebundle(run: Run) -> dict[str, Any]:
    """The display bundle of a Run: a live monitor in a kernel, HTML anywhere."""
    bundle: dict[str, Any] = {"text/plain": repr(run), "text/html": run_html(run)}
    if _in_kernel():
        from simlab.widgets.monitor import RunMonitor

        widget_bundle = RunMonitor(run)._repr_mimebundle_()
        bundle.update({k: v for k, v in widget_bundle.items() if k != "text/plain"})
    return bundle
