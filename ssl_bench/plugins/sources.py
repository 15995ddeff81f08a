"""Plug-in code kept beside the results it produced.

A method or data set from outside ssl-bench (``--plugin FILE`` or an entry point) can
change after a run; ``config.json`` records the file and its SHA-256 and the run folder
keeps a copy (``plugins/``), so a result can always be traced to the code that made it.

Only a method's *name* travels to a sweep's worker processes and cluster jobs, so the
``--plugin`` files the sweep loaded are loaded again there (:func:`loaded_plugin_files`,
:func:`load_plugin_files`) before a run looks its method up.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ssl_bench.plugins.registry import EXTENSION_POINTS, PLUGIN_MODULE_PREFIX, load_plugin

#: Modules of ssl-bench's own methods and data sets (their code is the installed version).
BUILTIN_MODULES = ("ssl_bench.",)
#: The run folder's sub-folder of copies.
PLUGIN_FOLDER = "plugins"


def loaded_plugin_files() -> tuple[str, ...]:
    """The ``--plugin`` files imported into this process whose entries are still
    registered, as absolute paths in load order: what a worker process or a cluster job
    has to load again to know their methods (a file whose entries were unregistered
    would register them again there, and could clash with a later file's)."""
    in_force = {getattr(entry, "__module__", "") for registry in _registries()
                for entry in registry.registered()}
    files: dict[str, None] = {}
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if name.startswith(PLUGIN_MODULE_PREFIX) and origin and name in in_force:
            files[str(Path(origin).resolve())] = None
    return tuple(files)


def _registries() -> list[Any]:
    """Every registry a plug-in can add to."""
    return [point.registry for point in EXTENSION_POINTS]


def load_plugin_files(files: Iterable[str]) -> None:
    """Import ``files`` in this process (a sweep worker or job) as the sweep did; a file
    already imported here is not imported again."""
    for file in files:
        load_plugin(file)


def plugin_sources(entries: dict[str, Any]) -> list[dict[str, str]]:
    """One record per entry (``{"method": cls, "data set": factory}``) defined outside
    ssl-bench: kind, name, module, file, its SHA-256 and where the run keeps a copy."""
    records = []
    for kind, entry in entries.items():
        module = getattr(entry, "__module__", "") or ""
        if module.startswith(BUILTIN_MODULES):
            continue
        try:
            source = Path(inspect.getsourcefile(entry) or "")
            data = source.read_bytes()
        except (TypeError, OSError):
            records.append({"kind": kind, "module": module, "file": "unknown"})
            continue
        records.append({
            "kind": kind, "name": getattr(entry, "registry_name", entry.__name__),
            "module": module, "file": str(source.resolve()),
            "sha256": hashlib.sha256(data).hexdigest(),
            "copy": f"{PLUGIN_FOLDER}/{kind.replace(' ', '-')}-{source.name}"})
    return records


def copy_plugin_sources(run_folder: Path, records: list[dict[str, str]]) -> None:
    """Copy each recorded plug-in file into the run folder (as the record says)."""
    from ssl_bench.core.atomic import atomic_write_bytes

    for record in records:
        if "copy" in record:
            atomic_write_bytes(run_folder / record["copy"], Path(record["file"]).read_bytes())
