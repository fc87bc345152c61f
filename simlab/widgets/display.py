"""A :class:`~simlab.Run` displayed as a live RunMonitor in a Jupyter kernel.

``import simlab`` in a kernel registers :func:`run_mimebundle` with IPython's
formatter for Run (by name, so nothing heavy is imported until a Run is shown);
elsewhere (nbconvert, a terminal) a Run shows its static ``_repr_html_``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simlab.service.run import Run


def run_mimebundle(run: Run) -> dict[str, Any]:
    """The display bundle of a Run in a kernel: its live monitor."""
    from simlab.widgets.monitor import RunMonitor

    bundle = RunMonitor(run)._repr_mimebundle_()
    return {k: v for k, v in bundle.items() if k != "text/plain"}
