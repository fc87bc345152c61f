"""A broken ``simlab.engines`` plugin is reported and skipped; the others resolve."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import EntryPoint

import pytest

import simlab.engines
from simlab.engines.gadget4 import Gadget4Engine
from simlab.engines.pm import PMEngine
from simlab.errors import SimlabWarning

GROUP = simlab.engines.ENTRY_POINT_GROUP


def test_a_plugin_that_fails_to_load_is_named_and_skipped(monkeypatch):
    plugins = [
        EntryPoint("broken", "simlab_no_such_plugin.engine:Engine", GROUP),
        EntryPoint("gadget4", "simlab.engines.gadget4:Gadget4Engine", GROUP),
    ]
    asked = []

    def entry_points(*, group):
        asked.append(group)
        return plugins if group == GROUP else []

    monkeypatch.setattr(simlab.engines, "entry_points", entry_points)
    registry = simlab.engines._builtin_registry()
    with pytest.warns(SimlabWarning) as caught:
        names = registry.names()
    assert asked == [GROUP]
    (warning,) = caught
    message = str(warning.message)
    assert "'broken'" in message
    assert "simlab_no_such_plugin.engine:Engine" in message
    assert "ModuleNotFoundError" in message
    assert names == ["gadget4", "pm"]
    assert isinstance(registry.get("gadget4"), Gadget4Engine)
    assert isinstance(registry.get("pm"), PMEngine)
    with pytest.raises(KeyError, match="installed engines: gadget4, pm"):
        registry.get("broken")


def test_a_plugin_whose_engine_raises_on_creation_is_skipped(monkeypatch):
    class Boom:
        def __init__(self):
            raise RuntimeError("needs a licence file")

    plugin = EntryPoint("boom", "somewhere:Boom", GROUP)
    monkeypatch.setattr(EntryPoint, "load", lambda self: Boom)
    monkeypatch.setattr(simlab.engines, "entry_points", lambda *, group: [plugin])
    registry = simlab.engines._builtin_registry()
    with pytest.warns(SimlabWarning, match=r"'boom'.*RuntimeError: needs a licence"):
        assert isinstance(registry.get("pm"), PMEngine)  # built-in: no lookup
        with pytest.raises(KeyError):
            registry.get("boom")
    assert registry.names() == ["pm"]


def test_threads_looking_up_engines_while_they_load_all_find_them(monkeypatch):
    # The Jupyter server answers requests on several threads: one thread's
    # lookup must not see the list another thread is still loading.
    load = EntryPoint.load

    def slow_load(self):
        time.sleep(0.2)
        return load(self)

    plugins = [
        EntryPoint("gadget4", "simlab.engines.gadget4:Gadget4Engine", GROUP),
        EntryPoint("concept", "simlab.engines.concept:ConceptEngine", GROUP),
    ]
    monkeypatch.setattr(EntryPoint, "load", slow_load)
    monkeypatch.setattr(simlab.engines, "entry_points", lambda *, group: plugins)
    registry = simlab.engines._builtin_registry()

    def lookup(name: str) -> str:
        return registry.get(name).name

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lookup, ["gadget4", "concept"] * 4))
    assert found == ["gadget4", "concept"] * 4
    assert registry.names() == ["concept", "gadget4", "pm"]
