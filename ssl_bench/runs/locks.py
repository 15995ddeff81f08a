"""One process per run folder: an OS advisory lock on ``<run>/.lock``.

A run (or a sweep worker) holds the lock of its folder from before it checks the folder
until it exits, so two processes never train into one folder: the second is told which
process holds it (``run``: an error; ``sweep``: the run is reported *busy* and left to
its holder). ``flock`` locks belong to the open file, so the kernel releases them when
the holder exits in any way, kill -9 included: a lock is never stale. The lock file
stays (an empty hidden file with the holder's pid); removing it while others may open
it would let two processes each lock a different file.

:func:`waiting_lock` is the blocking kind, for a file that concurrent processes update
in turn (a sweep's ``sweep.json``, which every cluster submission extends).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from ssl_bench.core.errors import UserError

LOCK = ".lock"

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def _wait_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _wait_lock(fd: int) -> None:
        while True:  # LK_LOCK gives up after 10 s
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue


class RunLocked(UserError):
    """Another process holds the folder's lock; ``holder`` is its pid (if known)."""

    def __init__(self, folder: Path, holder: int | None) -> None:
        who = f"pid {holder}" if holder else "pid unknown"
        super().__init__(f"{folder} is in use by another ssl-bench process ({who}); wait for "
                         "it to finish or choose another --output")
        self.folder = folder
        self.holder = holder


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


class FolderLock:
    """The exclusive lock of ``folder`` (created, with its parents, if missing)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock without waiting; raise :class:`RunLocked` if another has it."""
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"output {self.folder} exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"cannot write the run folder {self.folder}: "
                            f"{exc.strerror or exc}") from None
        if not _try_lock(fd):
            os.close(fd)
            raise RunLocked(self.folder, _holder(self.path))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def holder_of(folder: str | os.PathLike) -> int | None:
    """The pid holding ``folder``'s lock, 0 if held by an unknown pid, None if free."""
    path = Path(folder) / LOCK
    if not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            return None
        return _holder(path) or 0
    finally:
        os.close(fd)  # also releases the lock if we just took it


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of the file ``path`` (created if missing), waiting for it:
    concurrent read-modify-write updates of one record then happen one after the other."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise UserError(f"cannot write the lock file {path}: {exc.strerror or exc}") from None
    try:
        _wait_lock(fd)
        yield
    finally:
        os.close(fd)  # releases the lock
