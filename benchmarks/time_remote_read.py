"""``python -m benchmarks.time_remote_read [N]``: reading positions from S3 against
reading them from the local disk.

Starts moto's S3 server in this process (as tests/io/test_object_storage.py does),
uploads a clustered N_SIDE³ single-file snapshot (default 256³,
:func:`benchmarks._data.snapshot`), then prints the best of three of opening it
and reading all ``Coordinates`` through simlab's backend, from the path and from
its ``s3://`` URL, and the bytes a 1000-row slab transfers. The server is local,
so the remote time is simlab's and s3fs's overhead, not a network's. These are the
numbers docs/object-storage.md quotes.
"""

from __future__ import annotations

import os
import sys
import time


def _best(url: str, repeat: int = 3) -> float:
    import simlab

    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        with simlab.open_snapshot(url) as ds:
            ds.Coordinates.to_numpy()
        best = min(best, time.perf_counter() - started)
    return best


def main(n_side: int = 256) -> None:
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    from benchmarks._data import snapshot

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    try:
        path = snapshot(n_side, 1)
        fs = s3fs.S3FileSystem()
        fs.mkdir("simlab-bench")
        fs.put_file(str(path), "simlab-bench/snapshot_000.hdf5")
        url = "s3://simlab-bench/snapshot_000.hdf5"
        local, remote = _best(str(path)), _best(url)
        size = path.stat().st_size
        nbytes = n_side**3 * 12
        print(f"{n_side}³ positions ({nbytes / 1e6:.0f} MB), file {size / 1e6:.0f} MB")
        ratio = remote / local
        print(f"local: {local:.3f} s   S3 (moto): {remote:.3f} s   {ratio:.1f}x")
        print(f"S3 throughput: {nbytes / remote / 1e6:.0f} MB/s")
        fetched = []
        original = s3fs.core.S3File._fetch_range

        def counting(self: s3fs.core.S3File, start: int, end: int) -> bytes:
            data = original(self, start, end)
            fetched.append(len(data))
            return data

        s3fs.core.S3File._fetch_range = counting
        import simlab

        with simlab.open_snapshot(url) as ds:
            ds.Coordinates[:1000].to_numpy()
        print(
            f"1000-row slab: {sum(fetched)} bytes in {len(fetched)} requests "
            f"({sum(fetched) / size:.2%} of the file)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
