"""Opening a snapshot without chunks does not import dask at all, and dask arrays
made later are still known to xarray as dask arrays and collections."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import data_path

SNAPSHOT = "gadget4-small/icfile16/output/snapshot_001.hdf5"

CHILD = """
import json, sys
import numpy as np
import simlab
ds = simlab.open_snapshot({path!r})
first = {{"dask_array": "dask.array" in sys.modules, "dask": "dask" in sys.modules,
          "values": float(ds.Coordinates.values.sum())}}
lazy = simlab.open_snapshot({path!r}, chunks={{}})
import xarray as xr
from xarray.namedarray.pycompat import array_type
from xarray.namedarray.utils import is_dask_collection
import dask.array as da
mixed = xr.Dataset({{"a": ("x", da.arange(4, chunks=2)), "b": ("x", np.arange(4))}})
print(json.dumps({{**first,
    "lazy_type": type(lazy.Coordinates.data).__module__,
    "lazy_chunks": bool(lazy.chunks),
    "lazy_values": float(lazy.Coordinates.sum().compute()),
    "mixed_chunked": sorted(k for k, v in mixed.data_vars.items() if v.chunks),
    "dask_type": [t.__name__ for t in array_type("dask")],
    "collections": [is_dask_collection(x)
                    for x in (da.arange(2), lazy, ds, np.ones(2))]}}))
"""


def test_first_open_skips_dask_and_chunks_still_work():
    path = str(data_path(SNAPSHOT))
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(path=path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["dask_array"], result["dask"]) == (False, False)
    assert result["lazy_type"].startswith("dask.array")
    assert result["lazy_chunks"] is True
    assert result["lazy_values"] == result["values"]
    assert result["mixed_chunked"] == ["a"]
    assert result["dask_type"] == ["Array"]
    # dask's own answer wherever an object has __dask_graph__ (xarray's do)
    assert result["collections"] == [True, True, False, False]


def test_a_first_power_spectrum_leaves_dask_array_unimported():
    child = (
        "import sys, numpy as np\n"
        "from simlab.analysis.power import power_spectrum\n"
        "pos = np.random.default_rng(0).random((4096, 3)).astype('f4') * 10\n"
        "pk = power_spectrum(pos, 10.0, 16)\n"
        "print(type(pk).__name__, 'dask.array' in sys.modules, int(pk.size > 0))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["DataArray", "False", "1"]
