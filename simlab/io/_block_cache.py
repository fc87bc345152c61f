"""The fsspec cache simlab reads remote HDF5 files through: small reads (HDF5's
metadata, a slab's first rows) from cached blocks, large reads in one request.

fsspec's ``blockcache`` alone fetches a large read block by block, one request per
block (hundreds for one dask chunk of a big snapshot); ``readahead`` alone refetches
a block each time HDF5 jumps between metadata spread over the file. Importing this
module registers the cache under :data:`NAME`; it imports fsspec, so only
``simlab.io.remote`` imports it, once a URL is opened.
"""

from __future__ import annotations

from fsspec.caching import BlockCache, register_cache

NAME = "simlab-hdf5"


class HDF5Cache(BlockCache):
    """Blocks of ``blocksize`` for reads shorter than a block; longer reads go
    straight to the store in one request and are not kept."""

    name = NAME

    def _fetch(self, start: int | None, end: int | None) -> bytes:
        start = start or 0
        end = self.size if end is None else min(end, self.size)
        if end - start < self.blocksize:
            return super()._fetch(start, end)
        self.miss_count += 1
        self.total_requested_bytes += end - start
        return self.fetcher(start, end)


register_cache(HDF5Cache, clobber=True)
