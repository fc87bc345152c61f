"""Let xarray build a numpy-backed Dataset without importing dask.

Every Dataset xarray builds asks whether its data are dask arrays, and to answer
it imports ``dask.array`` (with scipy.fft and scipy.sparse): about 0.6 s of a
fresh process's first ``open_snapshot``, even when nothing is chunked. Until
``dask.array`` has been imported no dask array can exist, so the answer is "no"
without importing it. :func:`install` puts an entry in xarray's cache of
duck-array modules that answers so, and behaves as xarray's own entry from the
moment ``dask.array`` is imported (by ``chunks=``, by the user, by anything).

Its index variables then ask ``is_dask_collection`` of each numpy array, which
imports ``dask.base`` (0.2 s more) to look for a ``__dask_graph__`` method.
:func:`install` wraps that function with dask's own first test: an object
without the method is not a collection, and dask is asked about the rest.

Both touch xarray's internals: where they are not there as expected nothing is
changed, and xarray imports dask as before.
"""

from __future__ import annotations

import sys
from typing import Any


class _DaskOnceImported:
    """xarray's ``DuckArrayModule("dask")``, made only when something needs more
    than the array types of a dask.array that is not imported yet."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._real: Any = None

    def _resolved(self) -> Any:
        if self._real is None:
            self._real = self._factory("dask")
        return self._real

    @property
    def type(self) -> tuple[type, ...]:
        """The dask array types; none while dask.array is not imported."""
        if "dask.array" not in sys.modules:
            return ()
        return self._resolved().type

    def __getattr__(self, name: str) -> Any:  # module, version, available
        return getattr(self._resolved(), name)


def install() -> None:
    """Put the lazy dask entry in xarray's duck-array cache (once; a no-op when
    xarray already resolved dask or keeps its cache elsewhere)."""
    try:
        from xarray.namedarray import pycompat
    except ImportError:  # pragma: no cover (an xarray without namedarray)
        return
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    factory = getattr(pycompat, "DuckArrayModule", None)
    if isinstance(cache, dict) and factory is not None:
        cache.setdefault("dask", _DaskOnceImported(factory))
    _wrap_collection_check()


def _wrap_collection_check() -> None:
    """Answer ``is_dask_collection`` for objects without ``__dask_graph__``
    (numpy arrays among them) as dask does, without importing dask."""
    from xarray.namedarray import utils

    original = getattr(utils, "is_dask_collection", None)
    if original is None or getattr(original, "skips_dask_import", False):
        return

    def is_dask_collection(x: object) -> bool:
        if not hasattr(x, "__dask_graph__"):
            return False  # dask.base.is_dask_collection's own first test
        return original(x)

    is_dask_collection.skips_dask_import = True  # type: ignore[attr-defined]
    utils.is_dask_collection = is_dask_collection
