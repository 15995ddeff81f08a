"""Plug-in code kept beside the results it produced.

A method or data set from outside ssl-bench (``--plugin FILE`` or an entry point) can
change after a run; ``config.json`` records the file and its SHA-256 and the run folder
keeps a copy (``plugins/``), so a result can always be traced to the code that made it.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

#: Modules of ssl-bench's own methods and data sets (their code is the installed version).
BUILTIN_MODULES = ("ssl_bench.", "methods.")
#: The run folder's sub-folder of copies.
PLUGIN_FOLDER = "plugins"


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
    from .atomic import atomic_write_bytes

    for record in records:
        if "copy" in record:
            atomic_write_bytes(run_folder / record["copy"], Path(record["file"]).read_bytes())
