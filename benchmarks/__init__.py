"""Benchmarks of simlab against the tools users would pick instead.

Run ``python -m benchmarks`` (or ``make bench``). Every ``bench_*.py`` module here
exposes ``run(quick: bool = False) -> list[dict]``; the runner in ``__main__`` finds
them, adds ratios to the floor of each operation, tool versions and the machine, and
writes JSON and a markdown table to ``benchmarks/results/``. See README.md.
"""
