"""Dispatch of runs to dask clusters (local or batch systems)."""
