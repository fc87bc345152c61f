"""Run one benchmark case in this (fresh) process and print its timings as JSON.

``python -m benchmarks._worker MODULE CASE ARGS_JSON REPEAT WARMUP``: imports
``benchmarks.MODULE``, calls ``CASES[CASE](**args)`` to set up (untimed) and get the
step, runs the step ``WARMUP`` times untimed and ``REPEAT`` times timed. Before each
timed step the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``), so the
peak reported is that of the step alone, not of the setup or of imports.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_mb(key: str) -> float:
    """VmRSS or VmHWM of this process in MB (0 where /proc is missing)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _reset_peak() -> None:
    """Reset the peak-RSS mark to the current RSS (Linux ≥ 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def main(argv: list[str]) -> int:
    """Run the case named in ``argv`` and print one JSON line with the results."""
    module_name, case, args_json, repeat, warmup = argv
    result: dict = {}
    try:
        module = importlib.import_module(f"benchmarks.{module_name}")
        step = module.CASES[case](**json.loads(args_json))
        extra = None
        for _ in range(int(warmup)):
            step()
        times, peaks, steps_mb = [], [], []
        for _ in range(int(repeat)):
            gc.collect()
            _reset_peak()
            before = _status_mb("VmRSS")
            start = time.perf_counter()
            extra = step()
            times.append(time.perf_counter() - start)
            peak = max(_status_mb("VmHWM"), _status_mb("VmRSS"))
            peaks.append(peak)
            steps_mb.append(max(peak - before, 0.0))
        result = {
            "times": times,
            "peak_rss_mb": max(peaks),
            "step_mb": max(steps_mb),
            "extra": extra or {},
        }
    except Exception as exc:  # report any failure of a peer tool as data
        result = {
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=6),
        }
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
