"""Which Boltzmann codes (CAMB, CLASS) are installed, and importing them on demand.

Kept apart from :mod:`simlab.linear.boltzmann` so that checking a configuration
(``simlab run``'s validation) imports neither numpy nor the codes themselves.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: The transfer functions a Boltzmann code computes, by their ``ics.transfer`` name.
CODES = ("camb", "class")
#: Each code's Python module and the simlab extra that installs it.
_EXTRAS = {"camb": ("camb", "camb"), "class": ("classy", "class")}


class MissingPackageError(ImportError):
    """The package behind a transfer function is not installed."""


def _needs(code: str) -> str:
    module, extra = _EXTRAS[code]
    return (
        f"transfer function {code!r} needs the {module!r} package: "
        f"pip install 'simlab[{extra}]'"
    )


def missing(code: str) -> str | None:
    """Why transfer function ``code`` cannot be computed in this environment (its
    package is not installed), or None; found without importing the package."""
    if code not in _EXTRAS or importlib.util.find_spec(_EXTRAS[code][0]) is not None:
        return None
    return _needs(code)


def import_code(code: str) -> ModuleType:
    """The Python module of Boltzmann code ``code``; MissingPackageError if absent."""
    try:
        return importlib.import_module(_EXTRAS[code][0])
    except ImportError as exc:
        raise MissingPackageError(_needs(code)) from exc
