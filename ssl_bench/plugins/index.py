"""What the command line knows about registered methods and data sets without importing them.

A built-in method is a ``torch.nn.Module``, so importing one imports torch: seconds on a
busy machine. ``--help``, ``ssl-bench list`` and argument errors need only names,
aliases, options and summaries -- a *card* per entry. The first command that needs the
cards imports the entries, describes them and writes the cards to an index in the cache
folder (``registry/`` under ``$SSL_BENCH_CACHE``, as the image cache); later commands
read the index and answer without torch. The index is keyed by a stamp of every source
file it describes (path and a digest of its content: ``cp -p`` and ``rsync -a`` keep a
file's size and modification time) and the installed entry points, so an edited method,
a new plug-in or a new version rebuilds it; an index that cannot be read or written, or
is not of the shape :func:`write_index` writes, is rebuilt, never trusted. A run never
takes its settings from a card: :mod:`ssl_bench.config.run_config` resolves them from the imported
method class.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from ssl_bench.core.atomic import atomic_write_json
from ssl_bench.core.paths import default_cache_dir
from ssl_bench.plugins.options import Option

#: Bump when a card's fields change: older indexes are then rebuilt.
INDEX_FORMAT = 1
#: Option types a card can name (every declared option uses one of these).
OPTION_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}
#: What a method card's ``facts`` name (a data set's are its card: ``dataset_card``).
METHOD_FACTS: tuple[str, ...] = ("teacher", "unlabeled", "tasks", "views", "state")
#: What a data set's card says, in this order (``dataset_card``; ``list --datasets NAME``).
CARD_FIELDS: tuple[str, ...] = ("source", "licence", "citation", "task", "classes", "splits")
_CARD_FIELDS = frozenset({"name", "aliases", "summary", "options", "defaults", "facts"})
_OPTION_FIELDS = frozenset({"name", "type", "default", "help", "choices"})


def _check(condition: bool, problem: str) -> None:
    """Raise ``ValueError(problem)`` unless ``condition``: a record of the wrong shape."""
    if not condition:
        raise ValueError(f"registry index: {problem}")


def _fits(value: Any, kind: type) -> bool:
    """Whether a JSON value can be an option value of type ``kind`` (None: unset; a float
    option may hold an integer, a number option never a bool)."""
    if value is None:
        return True
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    _check(isinstance(value, list) and all(isinstance(v, str) for v in value),
           f"{what} must be a list of strings")
    return tuple(value)


def _option_from_json(record: Any) -> Option:
    """An option of a card as :meth:`Card.to_json` writes it; ValueError otherwise."""
    _check(isinstance(record, dict) and record.keys() == _OPTION_FIELDS,
           f"an option must be an object of {', '.join(sorted(_OPTION_FIELDS))}")
    kind = OPTION_TYPES.get(record["type"]) if isinstance(record["type"], str) else None
    if kind is None:
        raise ValueError(f"registry index: an option's type must be one of "
                         f"{', '.join(OPTION_TYPES)}")
    choices = record["choices"]
    _check(isinstance(record["name"], str) and isinstance(record["help"], str),
           "an option's name and help must be strings")
    _check(_fits(record["default"], kind), "an option's default must be of its type")
    _check(choices is None or (isinstance(choices, list)
                               and all(_fits(c, kind) for c in choices)),
           "an option's choices must be null or a list of values of its type")
    return Option(record["name"], kind, record["default"], record["help"],
                  None if choices is None else tuple(choices))


@dataclass(frozen=True)
class Card:
    """One registered method or data set as the command line shows and checks it."""

    name: str
    aliases: tuple[str, ...]
    summary: str
    options: tuple[Option, ...]
    #: Methods only: the engine settings its paper sets differently (``Method.defaults``).
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Methods: teacher, unlabeled data, task kinds, views and state; data sets: their card.
    facts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["options"] = [{**asdict(o), "type": o.type.__name__} for o in self.options]
        return record

    @classmethod
    def from_json(cls, record: Any) -> Card:
        """The card :meth:`to_json` wrote; ValueError for anything of another shape, field
        by field, so that a damaged index is rebuilt rather than breaking a command."""
        _check(isinstance(record, dict) and record.keys() == _CARD_FIELDS,
               f"a card must be an object of {', '.join(sorted(_CARD_FIELDS))}")
        _check(isinstance(record["name"], str) and isinstance(record["summary"], str),
               "a card's name and summary must be strings")
        _check(isinstance(record["options"], list), "a card's options must be a list")
        _check(isinstance(record["defaults"], dict), "a card's defaults must be an object")
        facts = record["facts"]
        _check(isinstance(facts, dict) and all(isinstance(v, str) for v in facts.values()),
               "a card's facts must be an object of strings")
        options = tuple(_option_from_json(o) for o in record["options"])
        return cls(record["name"], _strings(record["aliases"], "a card's aliases"),
                   record["summary"], options, dict(record["defaults"]), dict(facts))


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
    facts = dict(zip(METHOD_FACTS, ("yes" if cls.needs_teacher else "no",
                                    "yes" if cls.uses_unlabeled else "no", kinds, views,
                                    ", ".join(sorted(cls().state_dict())) or "none"),
                     strict=True))
    return Card(name, aliases, cls.summary or first_line(cls.__doc__), tuple(cls.options),
                dict(cls.defaults), facts)


def describe_entry(name: str, entry: Any, aliases: tuple[str, ...]) -> Card:
    """The card of a data set factory, augmentation or other entry with ``options``."""
    summary = getattr(entry, "summary", "") or first_line(entry.__doc__)
    return Card(name, aliases, summary, tuple(getattr(entry, "options", ())),
                facts=dict(getattr(entry, "card", {})))  # (a data set's card)


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


def _file_digest(path: Path) -> str:
    """xxh3 digest of a file's bytes (``"missing"`` when it cannot be read): content, not
    size and modification time, which ``cp -p``, ``rsync -a`` and checkouts can keep."""
    try:
        return xxhash.xxh3_64_hexdigest(path.read_bytes())
    except OSError:
        return "missing"


def source_stamp(packages: list[str], entry_point_group: str) -> str:
    """A hash of what the cards depend on: the packages' sources (each file's path and
    content digest), the entry points in ``entry_point_group`` and their modules' sources,
    and the Python version."""
    digest = hashlib.sha256(f"{INDEX_FORMAT} {sys.version}".encode())
    modules = list(packages)
    for entry in sorted(importlib.metadata.entry_points(group=entry_point_group),
                        key=lambda e: (e.name, e.value)):
        version = entry.dist.version if entry.dist else ""
        digest.update(f"{entry.name}={entry.value} {version}\n".encode())
        modules.append(entry.value.split(":")[0].split(".")[0])
    for path in (p for package in modules for p in _package_files(package)):
        digest.update(f"{path} {_file_digest(path)}\n".encode())
    return digest.hexdigest()


def index_path(*identity: str) -> Path:
    """One index file per registry (its kind, packages, entry-point group and describing
    function) and installation, so that neither two registries nor two checkouts share one."""
    where = str(Path(__file__).resolve().parent)
    key = hashlib.sha256("\n".join((where, *identity)).encode()).hexdigest()[:16]
    return default_cache_dir() / "registry" / f"{identity[0].replace(' ', '-')}-{key}.json"


def read_index(path: Path, stamp: str,
               facts: tuple[str, ...] | None = None) -> dict[str, Card] | None:
    """The cards stored at ``path`` when its stamp matches; None (rebuild it) when stale,
    unreadable or of any shape but the one :func:`write_index` writes -- a name -> card
    object whose cards are named by their key and, given ``facts``, state exactly those
    facts -- so that no file in the cache folder can break a command, ``--help`` included.
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return None
    if not isinstance(record, dict) or record.get("stamp") != stamp:
        return None
    cards = record.get("cards")
    if not isinstance(cards, Mapping):
        return None
    try:
        read = {name: Card.from_json(card) for name, card in cards.items()}
    except ValueError:
        return None
    if any(card.name != name or (facts is not None and set(card.facts) != set(facts))
           for name, card in read.items()):
        return None
    return read


def write_index(path: Path, stamp: str, cards: dict[str, Card]) -> None:
    """Store the cards; a cache folder that cannot be written only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"stamp": stamp,
                                 "cards": {n: c.to_json() for n, c in cards.items()}})
    except (OSError, TypeError, ValueError):
        pass
