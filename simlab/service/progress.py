"""Progress for the terminal: a bar that redraws in place, or a few lines in logs.

On a terminal (or in a notebook, through ``tqdm.auto``) progress is a tqdm bar
sized to the window, so it redraws in place instead of wrapping into repeated
lines. Anywhere else (a pipe, a batch job's log, CI) a bar would write a carriage
return per update into the file; there :class:`LineProgress` prints one plain line
each time the whole-number percentage moves, at most 101 lines for a whole run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What a follower reports to: how far it is and a few facts."""

    def report(self, n: float, **facts: Any) -> None:
        """Show that ``n`` of the total is done, with ``facts`` beside it."""


class _Silent:
    def report(self, n: float, **facts: Any) -> None:
        """Show nothing."""


class LineProgress:
    """One line per whole percent reached (or less), for logs and pipes."""

    def __init__(self, total: float, desc: str, unit: str, stream: TextIO) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.shown = -1

    def report(self, n: float, **facts: Any) -> None:
        """Print a line if ``n`` reaches a whole percent not printed yet."""
        percent = int(100 * n / self.total) if self.total else 100
        if percent <= self.shown:
            return
        self.shown = percent
        extra = "".join(f" {k}={v}" for k, v in facts.items())
        done = f"{n:g}/{self.total:g} {self.unit}"
        self.stream.write(f"{self.desc}: {percent:3d}% ({done}){extra}\n")
        self.stream.flush()


class _BarProgress:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def report(self, n: float, **facts: Any) -> None:
        """Move the bar to ``n`` and show ``facts`` after it (one redraw)."""
        if facts:
            self.bar.set_postfix(facts, refresh=False)
        self.bar.update(n - self.bar.n)


def in_place(stream: TextIO) -> bool:
    """Whether a bar can redraw in place: a terminal, or a notebook's tqdm."""
    from tqdm.auto import tqdm

    if tqdm.__module__.startswith("tqdm.notebook"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress(
    total: float,
    desc: str,
    unit: str,
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
) -> Iterator[Progress]:
    """A progress display for ``total`` units: a tqdm bar where it can redraw in
    place, else :class:`LineProgress` lines; nothing when not ``enabled``."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        yield _Silent()
        return
    if not in_place(stream):
        yield LineProgress(total, desc, unit, stream)
        return
    from tqdm.auto import tqdm

    with tqdm(
        total=total, desc=desc, unit=unit, dynamic_ncols=True, file=stream
    ) as bar:
        yield _BarProgress(bar)
