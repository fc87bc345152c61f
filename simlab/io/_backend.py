"""What simlab's xarray backends share: files with several groups, and a cheap
content check that also accepts a multi-file snapshot's folder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint
from xarray.backends.common import datatree_from_dict_with_io_cleanup

from simlab.io import _lazy_dask_check

# every simlab backend imports this module: from here on, opening a snapshot
# without chunks no longer imports dask.array (see the module)
_lazy_dask_check.install()


class GroupedBackend(BackendEntrypoint):
    """A backend whose files hold one group per particle type, component or table.

    Subclasses implement ``open_dataset(..., group=)`` and ``open_groups_as_dict``;
    the DataTree is built from the latter, the same way for all of them.
    """

    supports_groups = True
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group")

    def open_datatree(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> xr.DataTree:
        """The file as a DataTree, one node per group; closing it closes the files.

        Other keywords (``storage_options`` of a URL) go to ``open_groups_as_dict``.
        """
        return datatree_from_dict_with_io_cleanup(
            self.open_groups_as_dict(
                filename_or_obj, drop_variables=drop_variables, **kwargs
            )
        )


def looks_like(filename_or_obj: Any, is_file: Callable[[Path], bool]) -> bool:
    """Whether a path is a file ``is_file`` accepts, or a multi-file folder whose
    ``*.0.hdf5`` is; never raises (xarray asks every backend about every path)."""
    try:
        path = Path(filename_or_obj)
        if path.is_dir():
            return any(is_file(p) for p in path.glob("*.0.hdf5"))
        return path.is_file() and is_file(path)
    except (TypeError, OSError):
        return False
