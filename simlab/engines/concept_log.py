"""Reading CONCEPT's stdout: escapes, time-step progress, closing lines, errors.

Facts from real runs (``tests/data/concept-small/README.md``): the stdout is
coloured (ANSI SGR codes, ``ESC ( B`` charset switches, OSC palette sequences in
the logo); each step starts with ``Time step N`` / ``Scale factor: a`` /
``Cosmic time: t Gyr`` / ``Step size: dt Gyr``; a run ends with
``CONCEPT run <id> finished[ successfully]``; warnings and aborts are bold red
blocks, and a run that had any ends by pointing at ``<concept>/job/<id>/log_err``.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from simlab.engines.base import Progress

#: ANSI colour/charset escapes and the OSC palette sequences of the logo.
ANSI = re.compile(
    r"\x1b\[[0-9;]*[A-Za-z]|\x1b\([A-Z0-9]|\x1b\][^\x1b\x07]*(\x1b\\|\x07)"
)
_STEP = re.compile(r"^Time step (\d+)$")
_SCALE = re.compile(r"^Scale factor:\s+(\S+)$")
_JOB_ID = re.compile(r"^Job ID:\s+(\d+)$")
_FINISHED = re.compile(r"^CO(?:N|\U0001d615)CEPT run (\d+) finished( successfully)?$")
_LOG_ERR = re.compile(r'^"(?P<path>.*/job/\d+/log_err)"$')
#: A bold red message block (warnings, aborts and the closing error notes).
_RED = re.compile(r"\x1b\[1m\x1b\[31m(.*?)\x1b\(B\x1b\[m", re.DOTALL)
#: The last line of a Python traceback (it goes to stderr, which the task merges).
_EXCEPTION = re.compile(r"^[A-Z]\w*(Error|Exception): ")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escapes (colours, charset switches, palette)."""
    return ANSI.sub("", text)


class ProgressParser(threading.local):
    """Turns CONCEPT's stdout, line by line, into :class:`Progress` reports.

    The step number comes from the ``Time step N`` line and is reported with the
    ``Scale factor:`` line that follows (a at the start of step N, so N steps are
    done); the ``Scale factor`` after ``End of main time loop`` is the final a,
    reported with ``steps`` set. The step number is remembered per thread (the
    task reads one run's stream in one thread), so one parser serves every run.
    """

    step: int | None = None
    after_loop: bool = False

    def feed(self, line: str) -> Progress | None:
        """Progress in this line (escapes allowed), or None."""
        text = strip_ansi(line).strip()
        if text.startswith("Running CO"):
            self.step, self.after_loop = None, False
            return None
        match = _STEP.match(text)
        if match:
            self.step = int(match[1])
            return None
        if text == "End of main time loop":
            self.after_loop = True
            return None
        match = _SCALE.match(text)
        if match is None or self.step is None:
            return None
        try:
            a = float(match[1])
        except ValueError:
            return None
        if self.after_loop:
            steps = self.step + 1
            self.step, self.after_loop = None, False
            return Progress(step=steps, a=a, steps=steps)
        return Progress(step=self.step, a=a)


def _messages(raw: str) -> list[str]:
    """CONCEPT's red (bold) messages, unwrapped: warnings, aborts, closing notes.

    CONCEPT wraps at about 80 columns, even inside paths, so a continuation line
    that starts with "/" is joined without a space.
    """
    found = []
    for block in _RED.findall(raw):
        text = ""
        for line in strip_ansi(block).splitlines():
            line = line.strip()
            if line:
                text += line if line.startswith("/") or not text else " " + line
        if text:
            found.append(text)
    return found


def read_log(path: Path) -> dict[str, Any]:
    """What CONCEPT's stdout says about its run: job id, end, warnings, errors."""
    raw = path.read_text(errors="replace") if path.exists() else ""
    report: dict[str, Any] = {
        "job_id": None,
        "finished": False,
        "successfully": False,
        "warnings": [],
        "errors": [],
        "log_err": None,
    }
    for line in strip_ansi(raw).splitlines():
        line = line.strip()
        if (match := _JOB_ID.match(line)) and report["job_id"] is None:
            report["job_id"] = int(match[1])
        elif match := _FINISHED.match(line):
            report["finished"] = True
            report["successfully"] = bool(match[2])
        elif match := _LOG_ERR.match(line):
            report["log_err"] = match["path"]
        elif _EXCEPTION.match(line):
            report["errors"].append(line)
    for message in _messages(raw):
        if message.startswith("Warning:"):
            report["warnings"].append(message)
        elif message.startswith("Aborting:"):
            report["errors"].append(message)
    report["job_dir"] = (
        str(Path(report["log_err"]).parent) if report["log_err"] else None
    )
    return report
