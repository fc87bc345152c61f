"""Shared pieces of the benchmark modules: subprocess timing, records, data dir."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Where generated inputs (snapshots, position arrays) are cached between runs.
DATA_DIR = Path(os.environ.get("SIMLAB_BENCH_DATA", "/tmp/simlab-bench"))
ROOT = Path(__file__).resolve().parent.parent


def record(
    tool: str,
    operation: str,
    size: str,
    min_s: float | None,
    median_s: float | None,
    peak_rss_mb: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """One result row in the shape every ``bench_*`` module returns."""
    return {
        "tool": tool,
        "operation": operation,
        "size": size,
        "min_s": min_s,
        "median_s": median_s,
        "peak_rss_mb": peak_rss_mb,
        "extra": extra,
    }


def missing(tool: str, operation: str, size: str, reason: str) -> dict[str, Any]:
    """A row for a peer that could not be measured (not installed, failed)."""
    return record(tool, operation, size, None, None, None, missing=reason)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    return importlib.util.find_spec(module) is not None


def measure(
    module: str,
    case: str,
    args: dict[str, Any],
    *,
    tool: str,
    operation: str,
    size: str,
    repeat: int = 3,
    warmup: int = 1,
    timeout: float = 600.0,
    **extra: Any,
) -> dict[str, Any]:
    """Time ``CASES[case]`` of ``benchmarks.<module>`` in a fresh subprocess.

    The subprocess keeps the peak memory of each tool apart from the others and
    from this runner; min and median are over ``repeat`` timed steps.
    """
    command = [
        sys.executable,
        "-m",
        "benchmarks._worker",
        module,
        case,
        json.dumps(args),
        str(repeat),
        str(warmup),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return missing(tool, operation, size, f"timed out after {timeout:.0f} s")
    lines = [
        line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")
    ]
    if not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return missing(
            tool,
            operation,
            size,
            f"worker exited {done.returncode}: {' | '.join(tail)}",
        )
    result = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    if "error" in result:
        return missing(tool, operation, size, f"failed: {result['error']}")
    times = result["times"]
    return record(
        tool,
        operation,
        size,
        min(times),
        statistics.median(times),
        round(result["peak_rss_mb"], 1),
        step_mb=round(result["step_mb"], 1),
        repeat=len(times),
        **result["extra"],
        **extra,
    )
