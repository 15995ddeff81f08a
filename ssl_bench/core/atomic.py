"""Atomic file writes: every file ssl-bench writes goes through here.

A reader (or a crashed run) never sees a half-written file: content goes to a temporary
name in the same folder and is renamed over the target in one step. Temporary names carry
the writer's process id (``.<name>.<pid>.<random>.tmp``), so the ones a killed process
left behind can be told from those of a live writer and removed
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ssl_bench.core.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Temporary files of :func:`atomic_write` and of the image cache's builds, with the pid.
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$|^.+\.partial-(?P<pid2>\d+)$")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporaries in ``folder`` whose writing process is gone; return them.

    A killed run or cache build (kill -9, a machine reset) cannot clean up after itself;
    the next run or cache open in the same folder does. Files of live processes stay.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or not entry.is_file():
            continue
        pid = int(match["pid"] or match["pid2"])
        if pid != os.getpid() and not process_alive(pid):
            try:
                entry.unlink(missing_ok=True)
            except OSError:  # a read-only folder: whoever can write there cleans up
                continue
            removed.append(entry)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:  # a read-only folder, a file where a folder should be, ...
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by null, recursively; numpy scalars become Python."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write strict JSON (NaN becomes null) atomically, pretty-printed."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


class _RecordingWriter:
    """A file handle that remembers the exception its ``write`` raised.

    ``torch.save`` calls ``write`` from C++ and turns whatever it raised into a
    ``RuntimeError("[enforce fail at inline_container.cc] unexpected pos")``; the real
    cause (a full disk, a second Ctrl-C) must reach the caller instead.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.failure: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except BaseException as exc:
            self.failure = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def _torch_save(obj: Any, handle: IO[bytes], path: Path) -> None:
    import torch

    writer = _RecordingWriter(handle)
    try:
        torch.save(obj, writer)
    except RuntimeError:
        failure = writer.failure
        if isinstance(failure, OSError):  # ENOSPC, EFBIG, EIO: one line naming the file
            raise OSError(failure.errno, failure.strerror or str(failure), str(path)) from None
        if failure is not None:  # a KeyboardInterrupt (Ctrl-C twice) or another signal
            raise failure from None
        raise


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` atomically; a failed write raises what failed (``OSError``), never
    torch's opaque ``RuntimeError``, and leaves the previous file as it was."""
    return atomic_write(path, lambda handle: _torch_save(obj, handle, Path(path)))
