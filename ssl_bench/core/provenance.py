"""What produced a result: library versions, platform, the project's git commit and a
digest of the code that ran (so runs from trees with uncommitted changes can still be
told apart or matched)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = (
    "ssl-bench", "torch", "torchvision", "timm", "kornia", "pillow", "numpy", "scikit-learn",
    "pandas", "iterative-stratification",
)
#: The folders (beside each other, as in the repository and an installed wheel) whose
#: Python files are the engine's and the built-in methods' code, and the package each one
#: is imported as.
CODE_PACKAGES = {"ssl_bench": "ssl_bench", "methods": "ssl_bench.methods"}
CODE_FOLDERS = tuple(CODE_PACKAGES)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(where: Path, *args: str) -> str | None:
    """``git ARGS`` in ``where``: its standard output, or None outside git (or no git)."""
    try:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                              timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def checkout(path: Path | None = None) -> Path:
    """The checkout holding the running ssl_bench (or ``path``)."""
    return path or Path(__file__).resolve().parents[2]


def git_commit(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding ssl-bench (None outside git)."""
    where = checkout(path)
    commit = _git(where, "rev-parse", "HEAD")
    dirty = _git(where, "status", "--porcelain", "--untracked-files=no")
    if commit is None or dirty is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit.strip(), "dirty": bool(dirty.strip())}


def uncommitted_code(path: Path | None = None) -> list[str] | None:
    """Files of :data:`CODE_FOLDERS` that differ from the checkout's commit (modified,
    staged, deleted or untracked, as ``git status`` lists them); None outside git."""
    listed = _git(checkout(path), "status", "--porcelain", "--untracked-files=all", "--",
                  *CODE_FOLDERS)
    return None if listed is None else [line[3:] for line in listed.splitlines()
                                        if line.strip()]


def code_elsewhere() -> list[str]:
    """The code folders whose running package is not this checkout's own folder: e.g.
    ``ssl_bench`` from a worktree on ``PYTHONPATH`` with ``ssl_bench.methods`` mapped by
    another checkout's editable install. A record naming this checkout's commit would
    then not describe the code that ran."""
    import importlib

    root = checkout()
    found = []
    for folder, package in CODE_PACKAGES.items():
        places = [Path(p).resolve() for p in importlib.import_module(package).__path__]
        if (root / folder).resolve() not in places:
            found.append(f"{package} from {places[0]}")
    return found


def code_digest(root: Path | None = None) -> dict[str, Any]:
    """SHA-256 over the path and content of every ``.py`` file of :data:`CODE_FOLDERS`
    (sorted): equal digests mean the same engine and method code, committed or not."""
    root = checkout(root)
    files = sorted(path for folder in CODE_FOLDERS for path in (root / folder).rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return {"digest": digest.hexdigest()[:16], "files": len(files)}


def processor() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(device: str) -> dict[str, Any]:
    import torch

    return {
        "versions": package_versions(),
        "git": git_commit(),
        "code": code_digest(),
        "platform": platform.platform(),
        "processor": processor(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "argv": sys.argv,
    }
