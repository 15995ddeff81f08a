"""One plug-in mechanism for every extension point: each registry in
:data:`ssl_bench.plugins.registry.EXTENSION_POINTS` gets the same checks, so a future one
does too: built-ins found, a decorator that adds to it, an entry-point group that loads
plug-ins (and a broken one that is a one-line error), cards for the command line, a
misspelt name answered with a hint, and ``ssl-bench list`` showing it."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import sys
import types

import pytest

from ssl_bench.cli.main import main
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import EXTENSION_POINTS, Registry

POINTS = {point.registry.kind: point for point in EXTENSION_POINTS}
#: One built-in entry each extension point must have.
BUILTIN = {"method": "srcmt", "data set": "digits", "augmentation": "strong",
           "selection rule": "highest", "tracker": "mlflow",
           "weight source": "tf_efficientnet_lite0", "executor": "slurm"}


def test_every_extension_point_is_declared_once() -> None:
    assert set(POINTS) == set(BUILTIN)
    groups = [point.registry.entry_point_group for point in EXTENSION_POINTS]
    flags = [point.list_flag for point in EXTENSION_POINTS]
    assert len(set(groups)) == len(groups) and len(set(flags)) == len(flags)
    assert all(group.startswith("ssl_bench.") for group in groups)


def _decorator(point):
    module, _, name = point.decorator.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _another(entry, name: str):
    """A new entry like ``entry`` (a subclass or a renamed copy: the built-in untouched)."""
    if isinstance(entry, type):
        return type(f"Test{entry.__name__}", (entry,), {"__doc__": f"{name}: for tests."})
    if dataclasses.is_dataclass(entry):
        return dataclasses.replace(entry, architecture=name)
    return lambda *args, **kwargs: entry(*args, **kwargs)


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_builtins_are_found_and_described(kind: str) -> None:
    registry = POINTS[kind].registry
    assert BUILTIN[kind] in registry.names()
    for name, card in registry.cards().items():
        assert card.name == name and card.summary, f"{kind} {name!r} has no summary"


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_the_decorator_adds_to_its_registry(kind: str) -> None:
    point = POINTS[kind]
    registry = point.registry
    entry = _another(registry.get(BUILTIN[kind]), "test-entry")
    try:
        if point.registry.kind == "weight source":
            _decorator(point)(entry)
        else:
            _decorator(point)("test-entry")(entry)
        assert "test-entry" in registry.names()
        assert registry.get("TEST-entry") is entry  # names are case-insensitive
    finally:
        registry.unregister("test-entry")
    assert "test-entry" not in registry.names()


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_an_entry_point_plugin_is_loaded_from_its_group(kind, monkeypatch) -> None:
    """A fresh registry of the same kind loads what its entry-point group names; a plug-in
    that fails to import is a one-line error naming the kind and the group."""
    point = POINTS[kind]
    original = point.registry
    fresh = Registry(original.kind, original.builtin_package, original.entry_point_group,
                     original.describe)
    plugin = types.ModuleType("ssl_bench_test_entry_point")
    sample = _another(original.get(BUILTIN[kind]), "from-entry-point")

    def load_plugin_module():  # what importing a plug-in's module does: register
        fresh.register("from-entry-point")(sample)
        return plugin

    plugin.entry = sample
    asked = []

    class FakeEntryPoint:
        name, value = "from-entry-point", "ssl_bench_test_entry_point:entry"

        def load(self):
            return load_plugin_module()

    def entry_points(group):
        asked.append(group)
        return [FakeEntryPoint()]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setitem(sys.modules, "ssl_bench_test_entry_point", plugin)
    fresh.discover()  # (discovered first: the cards then describe it, not the index)
    assert "from-entry-point" in fresh.names()
    assert asked == [original.entry_point_group]

    broken = Registry(original.kind, original.builtin_package, original.entry_point_group,
                      original.describe)
    bad = importlib.metadata.EntryPoint(name="bad", value="no_such_module_xyz:thing",
                                        group=original.entry_point_group)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [bad])
    with pytest.raises(UserError, match=f"{kind} plug-in 'bad'.*{original.entry_point_group}"):
        broken.discover()


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_a_misspelt_name_is_a_one_line_hint(kind: str) -> None:
    registry = POINTS[kind].registry
    misspelt = BUILTIN[kind][:-1] + "x"
    with pytest.raises(UserError) as info:
        registry.resolve(misspelt)
    text = str(info.value)
    assert "\n" not in text and f"unknown {kind}" in text and BUILTIN[kind] in text


@pytest.mark.parametrize("kind", sorted(POINTS))
def test_ssl_bench_list_shows_every_entry(kind: str, capsys) -> None:
    point = POINTS[kind]
    assert main(["list", point.list_flag]) == 0
    shown = capsys.readouterr().out
    for name in point.registry.names():
        assert name in shown, f"ssl-bench list {point.list_flag} does not show {name!r}"
