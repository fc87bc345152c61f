"""`simlab run` progress: a bar redrawn in place on a terminal, few lines in logs."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from simlab.service.progress import LineProgress, in_place, progress

RUN = [
    sys.executable, "-m", "simlab.cli", "run", "--set", "box.particles_per_side=16",
    "--set", "gravity.steps=40", "--set", "metadata.name=bar",
]  # fmt: skip
LINE = re.compile(r"^bar: +(\d+)% \((\d+)/100 %\)( a=[0-9.]+ z=[0-9.]+)?$")


def test_line_progress_prints_once_per_whole_percent():
    out = io.StringIO()
    lines = LineProgress(200, "sweep", "pt", out)
    for n in [0, 0, 1, 1, 2, 3, 3, 50, 50, 51, 200, 200]:
        lines.report(n, done=n)
    assert out.getvalue().splitlines() == [
        "sweep:   0% (0/200 pt) done=0",
        "sweep:   1% (2/200 pt) done=2",
        "sweep:  25% (50/200 pt) done=50",
        "sweep: 100% (200/200 pt) done=200",
    ]


def test_a_pipe_gets_lines_and_a_terminal_a_bar(tmp_path):
    assert not in_place(io.StringIO())
    with progress(10, "x", "pt", stream=io.StringIO()) as shown:
        assert isinstance(shown, LineProgress)
    out = io.StringIO()
    with progress(10, "x", "pt", enabled=False, stream=out) as shown:
        shown.report(10)
    assert out.getvalue() == ""


@pytest.mark.slow
def test_simlab_run_in_a_log_prints_at_most_a_line_per_percent(tmp_path):
    done = subprocess.run(
        [*RUN, "--root", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr  # no carriage returns in a log file
    shown = [LINE.match(line) for line in done.stderr.splitlines()]
    assert all(shown), done.stderr
    percents = [int(m[1]) for m in shown]
    assert percents == sorted(set(percents)) and percents[-1] == 100
    assert len(percents) <= 101
    assert "completed" in done.stdout


@pytest.mark.slow
def test_simlab_run_on_a_terminal_redraws_the_bar_in_place(tmp_path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [*RUN, "--root", str(tmp_path)],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    bar, _, rest = text.partition("\r\nrun ")
    assert "completed" in rest
    frames = [frame for frame in bar.split("\r") if frame]
    assert len(frames) > 3 and "\n" not in bar  # redrawn in place, never a new line
    assert all(len(frame) <= 80 for frame in frames)  # fits the 80-column window
    assert frames[-1].startswith("bar: 100%|")
