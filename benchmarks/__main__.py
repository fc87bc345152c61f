"""``python -m benchmarks [--quick] [--only NAME ...]``: run and tabulate benchmarks.

Finds every ``benchmarks/bench_*.py``, runs its ``run(quick)``, adds to each record
its ratio to the floor of its (operation, size) group, and writes
``benchmarks/results/{latest,quick}.{json,md}`` with the versions of every tool and
a description of the machine. With ``--only`` the other modules' records already in
the results file are kept, so one module can be re-measured alone.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import pkgutil
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
#: Distributions whose versions every results file records (missing ones as such).
TOOLS = (
    "simlab",
    "numpy",
    "scipy",
    "h5py",
    "xarray",
    "dask",
    "distributed",
    "numba",
    "yt",
    "pynbody",
    "Pylians",
)


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_*``), sorted."""
    folder = Path(__file__).resolve().parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(folder)])
        if m.name.startswith("bench_")
    )


def versions() -> dict[str, str]:
    """Installed version of each tool in :data:`TOOLS`, or "not installed"."""
    found = {}
    for name in TOOLS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS and Python of this machine, and its load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def add_ratios(records: list[dict]) -> None:
    """Set ``ratio_to_floor`` on each timed record of an (operation, size) group.

    The floor is the group's record marked ``extra["floor"]``, or else its fastest.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["operation"], rec["size"]), []).append(rec)
    for group in groups.values():
        timed = [r for r in group if r.get("min_s")]
        marked = [r for r in timed if r.get("extra", {}).get("floor")]
        floor = (
            marked[0] if marked else min(timed, key=lambda r: r["min_s"], default=None)
        )
        for rec in group:
            rec["ratio_to_floor"] = (
                round(rec["min_s"] / floor["min_s"], 3)
                if floor is not None and rec.get("min_s")
                else None
            )


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.3f} s"


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown: machine, versions, targets, one table per module."""
    m = results["machine"]
    lines = [
        f"# simlab benchmarks ({'quick' if results['quick'] else 'full'} run)",
        "",
        f"Run {results['started']} (UTC), {results['duration_s']:.0f} s. Machine: "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}; load average at start "
        f"{', '.join(map(str, m['load_average_at_start']))}.",
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + ".",
        "",
    ]
    if results["targets"]:
        lines += [
            "## Targets",
            "",
            "| target | measured | limit | met |",
            "|---|---|---|---|",
        ]
        for t in results["targets"]:
            value = t["value"]
            shown = "—" if value is None else f"{value:.4g}"
            met = "yes" if t["met"] else "**no**"
            lines.append(f"| {t['target']} | {shown} | {t['limit']:.4g} | {met} |")
        lines.append("")
    by_module: dict[str, list[dict]] = {}
    for rec in results["records"]:
        by_module.setdefault(rec["module"], []).append(rec)
    for module, records in by_module.items():
        lines += [
            f"## {module}",
            "",
            "| operation | size | tool | min | median | × floor | peak RSS MB | "
            "step MB | notes |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in records:
            extra = dict(r.get("extra") or {})
            step_mb = extra.pop("step_mb", None)
            extra.pop("floor", None)
            extra.pop("repeat", None)
            notes = ", ".join(f"{k}={v}" for k, v in extra.items())
            ratio = r.get("ratio_to_floor")
            lines.append(
                f"| {r['operation']} | {r['size']} | {r['tool']} | "
                f"{_seconds(r['min_s'])} | {_seconds(r['median_s'])} | "
                f"{'—' if ratio is None else f'{ratio:.2f}'} | "
                f"{'—' if r['peak_rss_mb'] is None else r['peak_rss_mb']} | "
                f"{'—' if step_mb is None else step_mb} | {notes} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected modules and write the results; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this module (e.g. snapshot or bench_snapshot); repeatable",
    )
    args = parser.parse_args(argv)
    available = discover()
    selected = available
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        unknown = sorted(wanted - set(available))
        if unknown:
            parser.error(
                f"--only {', '.join(unknown)}: no such module; "
                f"available: {', '.join(available)}"
            )
        selected = [n for n in available if n in wanted]
    stem = "quick" if args.quick else "latest"
    started = time.time()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
    }
    records: list[dict] = []
    targets: list[dict] = []
    previous = RESULTS / f"{stem}.json"
    if args.only and previous.exists():
        old = json.loads(previous.read_text())
        records = [r for r in old["records"] if r["module"] not in selected]
        targets = [t for t in old.get("targets", []) if t["module"] not in selected]
    for name in selected:
        print(f"benchmarks: running {name} ...", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        t0 = time.time()
        module_records = module.run(quick=args.quick)
        for rec in module_records:
            rec["module"] = name
        records += module_records
        check = getattr(module, "targets", None)
        if check is not None:
            targets += [{**t, "module": name} for t in check(module_records)]
        print(f"benchmarks: {name} done in {time.time() - t0:.0f} s", flush=True)
    add_ratios(records)
    results.update(
        duration_s=time.time() - started,
        records=records,
        targets=targets,
    )
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results)
    (RESULTS / f"{stem}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
