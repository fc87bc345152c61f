"""simlab's xarray backends by name, without xarray's plugin discovery.

On its first ``engine="gadget4"`` xarray reads the entry points of every installed
package (about 0.1 s in a fresh process); simlab's own calls hand xarray the class
instead. The names are those of pyproject's ``xarray.backends`` entry points, which
stay the way users name them.
"""

from __future__ import annotations

import importlib

from xarray.backends import BackendEntrypoint

#: backend name → (module, class), as in pyproject's ``xarray.backends`` entry points
BACKENDS: dict[str, tuple[str, str]] = {
    "gadget4": ("simlab.io.gadget4", "Gadget4BackendEntrypoint"),
    "gadget4_groups": ("simlab.io.groups", "GroupCatalogueBackendEntrypoint"),
    "concept": ("simlab.io.concept", "ConceptBackendEntrypoint"),
}


def backend(name: str) -> type[BackendEntrypoint] | str:
    """The entrypoint class of simlab's backend ``name``; other names unchanged."""
    if name not in BACKENDS:
        return name
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)
