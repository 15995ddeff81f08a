"""What the command line knows about registered methods and data sets without importing them.

A built-in method is a ``torch.nn.Module``, so importing one imports torch: seconds on a
busy machine. ``--help``, ``ssl-bench list`` and argument errors need only names,
aliases, options and summaries -- a *card* per entry. The first command that needs the
cards imports the entries, describes them and writes the cards to an index in the cache
folder (``registry/`` under ``$SSL_BENCH_CACHE``, as the image cache); later commands
read the index and answer without torch. The index is keyed by a stamp of every source
file it describes (path, size, modification time) and the installed entry points, so an
edited method, a new plug-in or a new version rebuilds it; an index that cannot be read
or written is rebuilt in memory, never trusted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .options import Option
from .paths import default_cache_dir

#: Bump when a card's fields change: older indexes are then rebuilt.
INDEX_FORMAT = 1
#: Option types a card can name (every declared option uses one of these).
OPTION_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}


@dataclass(frozen=True)
class Card:
    """One registered method or data set as the command line shows and checks it."""

    name: str
    aliases: tuple[str, ...]
    summary: str
    options: tuple[Option, ...]
    #: Methods only: the engine settings its paper sets differently (``Method.defaults``).
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Methods only: teacher, unlabeled data, task kinds, views and state, one line each.
    facts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["options"] = [{**asdict(o), "type": o.type.__name__} for o in self.options]
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Card:
        options = tuple(
            Option(o["name"], OPTION_TYPES[o["type"]], o["default"], o["help"],
                   None if o["choices"] is None else tuple(o["choices"]))
            for o in record["options"])
        return cls(record["name"], tuple(record["aliases"]), record["summary"], options,
                   dict(record["defaults"]), dict(record["facts"]))


def first_line(text: str | None) -> str:
    """A docstring's first line without reStructuredText markup (``x``, :class:`y`)."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    for role in (":class:", ":func:", ":meth:", ":mod:", ":attr:"):
        line = line.replace(role, "")
    return line.replace("``", "").replace("`", "")


def describe_method(name: str, cls: Any, aliases: tuple[str, ...]) -> Card:
    """The card of a method class (instantiates it once, to name its state)."""
    views = ", ".join(f"{n}={v.augmentation}" + ("" if v.rows == "all" else f"[{v.rows}]")
                      for n, v in cls.view_specs().items())
    kinds = ", ".join({"single": "single-label", "multi": "multi-label"}.get(k, k)
                      for k in cls.task_kinds)
    facts = {"teacher": "yes" if cls.needs_teacher else "no",
             "unlabeled": "yes" if cls.uses_unlabeled else "no",
             "tasks": kinds, "views": views,
             "state": ", ".join(sorted(cls().state_dict())) or "none"}
    return Card(name, aliases, cls.summary or first_line(cls.__doc__), tuple(cls.options),
                dict(cls.defaults), facts)


def describe_entry(name: str, entry: Any, aliases: tuple[str, ...]) -> Card:
    """The card of a data set factory, augmentation or other entry with ``options``."""
    summary = getattr(entry, "summary", "") or first_line(entry.__doc__)
    return Card(name, aliases, summary, tuple(getattr(entry, "options", ())))


def _package_files(package: str) -> list[Path]:
    """The Python files of a package (or one module) found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(p for root in spec.submodule_search_locations
                      for p in Path(root).rglob("*.py"))
    return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []


def source_stamp(packages: list[str], entry_point_group: str) -> str:
    """A hash of what the cards depend on: the packages' sources, the entry points in
    ``entry_point_group`` and their modules' sources, and the Python version."""
    digest = hashlib.sha256(f"{INDEX_FORMAT} {sys.version}".encode())
    modules = list(packages)
    for entry in sorted(importlib.metadata.entry_points(group=entry_point_group),
                        key=lambda e: (e.name, e.value)):
        version = entry.dist.version if entry.dist else ""
        digest.update(f"{entry.name}={entry.value} {version}\n".encode())
        modules.append(entry.value.split(":")[0].split(".")[0])
    for path in (p for package in modules for p in _package_files(package)):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def index_path(*identity: str) -> Path:
    """One index file per registry (its kind, packages, entry-point group and describing
    function) and installation, so that neither two registries nor two checkouts share one."""
    where = str(Path(__file__).resolve().parent)
    key = hashlib.sha256("\n".join((where, *identity)).encode()).hexdigest()[:16]
    return default_cache_dir() / "registry" / f"{identity[0].replace(' ', '-')}-{key}.json"


def read_index(path: Path, stamp: str) -> dict[str, Card] | None:
    """The cards stored at ``path`` when its stamp matches; None when stale or unreadable."""
    try:
        record = json.loads(path.read_text())
        if record.get("stamp") != stamp:
            return None
        return {name: Card.from_json(card) for name, card in record["cards"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def write_index(path: Path, stamp: str, cards: dict[str, Card]) -> None:
    """Store the cards; a cache folder that cannot be written only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"stamp": stamp,
                                 "cards": {n: c.to_json() for n, c in cards.items()}})
    except (OSError, TypeError, ValueError):
        pass
