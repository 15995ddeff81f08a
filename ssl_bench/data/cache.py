"""The decoded-image cache: decode and resize every image once, memory-map it afterwards.

Decoding a JPEG and resizing it at every step is the classic bottleneck of the official
SRC-MT code. Here each image is decoded once per (data set fingerprint, image size,
channel count) into one uint8 ``.npy`` array ``[N, size, size, C]`` under the cache
folder; later runs memory-map it and start training at once.

The fingerprint covers what the files hold, not just their ids and labels: every run
first reads every image file once (:func:`file_content`: size and xxh3-64 digest of its
bytes; ``benchmarks/cache_key_cost.py`` measures the cost), so other pixels under the same
names, an image repaired after ``--skip-bad-images`` or a file that appeared are another
key, decoded again. Only regular files are read (a FIFO would block the decoder forever).

A cache is complete only when its manifest (``.json``, written last and atomically)
matches its key and shape: an interrupted build leaves a ``.partial`` file that never
looks complete (and is removed when the build fails in-process), and a cache whose key or
size does not match is rebuilt. The manifest also holds an xxHash3 checksum of the array
file, verified at every open: a file whose bytes changed after it was built (overwritten
pixels, a torn copy) is rebuilt with a warning, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import xxhash
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ssl_bench.core.atomic import atomic_write_json, remove_stale_temporaries
from ssl_bench.core.errors import UserError
from ssl_bench.core.paths import default_cache_dir
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.images import (
    IMAGE_ERRORS,
    FileStamp,
    decode_stream,
    describe_error,
    file_stamp,
    open_regular,
    stamp_of,
)

T = TypeVar("T")

#: Bump when decoding or the key changes so that old caches are rebuilt (2: file content).
CACHE_VERSION = 2
#: Images decoded per task handed to the thread pool.
CHUNK = 64
#: Bytes read at a time when checksumming a cache file.
CHECKSUM_CHUNK = 16 * 2**20


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class BadImage:
    """An image that could not be decoded, with where it was listed."""

    id: str
    file: str
    source: str
    reason: str


@dataclass
class FileContent:
    """What the image files of a data set held when read: per file, its stamp or why it
    cannot be an image, and one digest of them all (the data set's ``content``)."""

    stamps: list[FileStamp | None]
    #: Why file ``i`` is no image ("missing file", "a FIFO ...") or None.
    problems: list[str | None]
    digest: str
    seconds: float

    def bad_images(self, dataset: ImageDataset) -> list[BadImage]:
        """The files that could not be read, as bad images of ``dataset``."""
        files = dataset.files or []
        return [BadImage(dataset.ids[row], str(files[row]),
                         dataset.sources[row] if dataset.sources else "", problem)
                for row, problem in enumerate(self.problems) if problem is not None]


@dataclass
class CachedImages:
    """A (memory-mapped) decoded array and what happened while making it."""

    array: np.ndarray
    path: Path | None
    bad: list[BadImage] = field(default_factory=list)
    built: bool = False
    seconds: float = 0.0
    #: What the files held (None for in-memory data sets).
    content: FileContent | None = None

    def manifest_bad(self) -> list[dict[str, str]]:
        return [vars(b) for b in self.bad]


def _in_chunks(work: Callable[[int], list[T]], total: int, workers: int,
               advance: Callable[[int], None]) -> list[T]:
    """``work(start)`` for every CHUNK of ``total`` rows on a thread pool, in row order.

    On any exception (Ctrl-C included) the chunks not yet started are cancelled, so the
    interrupt stops the pass after the running chunks instead of after all of them.
    """
    results: list[T] = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for part in pool.map(work, range(0, total, CHUNK)):
            results.extend(part)
            advance(CHUNK)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _read_file(path: Path) -> tuple[FileStamp | None, str | None, str]:
    """(stamp, problem, fingerprint token) of one file; tokens name no paths."""
    try:
        stamp = file_stamp(path)
    except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte
        return None, describe_error(exc), f"!{type(exc).__name__}"
    return stamp, None, f"{stamp.size}:{stamp.digest}"


def file_content(dataset: ImageDataset, workers: int | None = None,
                 progress: Progress | None = None) -> FileContent:
    """Read every image file of ``dataset`` once: size and xxh3-64 digest of its bytes.

    The digest of them all (xxh3-128 over ids, sizes and digests, or the kind of failure
    of unreadable files; no paths, no mtimes) becomes the data set's ``content``, so the
    cache key and the data fingerprint change whenever a file's bytes do. FIFOs, devices
    and folders are never opened (a problem, like a missing file).
    """
    files = dataset.files or []
    started = time.perf_counter()
    task = progress.add_task(f"reading {dataset.name} files", total=len(files)) \
        if progress is not None else None

    def advance(step: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, step)

    def work(start: int) -> list[tuple[FileStamp | None, str | None, str]]:
        return [_read_file(path) for path in files[start:start + CHUNK]]

    read = _in_chunks(work, len(files), workers or default_workers(), advance)
    digest = xxhash.xxh3_128()
    for image_id, (_, _, token) in zip(dataset.ids, read, strict=True):
        digest.update(f"{image_id}\x1f{token}\x1e".encode())
    return FileContent([r[0] for r in read], [r[1] for r in read], digest.hexdigest(),
                       time.perf_counter() - started)


def with_content(dataset: ImageDataset, content: FileContent) -> ImageDataset:
    """``dataset`` whose fingerprint covers what its files held (``content``)."""
    return replace(dataset, content=content.digest)


def cache_key(dataset: ImageDataset, size: int, channels: int) -> str:
    """The key of a cache of ``dataset``; give it the data set :func:`with_content`."""
    record = json.dumps([CACHE_VERSION, dataset.name, dataset.fingerprint(), size, channels])
    return hashlib.sha256(record.encode()).hexdigest()[:20]


def _paths(dataset: ImageDataset, size: int, channels: int, cache_dir: Path) -> tuple[Path, Path]:
    stem = f"{dataset.name}-{size}px-{channels}ch-{cache_key(dataset, size, channels)}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def file_checksum(path: Path) -> str:
    """xxHash3 (64 bit) of a file's bytes: several GB/s, so checking a cache is cheap."""
    digest = xxhash.xxh3_64()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHECKSUM_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open_existing(array_path: Path, manifest_path: Path, key: str, shape: tuple[int, ...],
                   console: Console, quiet: bool) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cached array if its manifest says it is complete and its bytes match; else None.

    A file whose checksum differs from the manifest's (overwritten pixels, a torn copy,
    a cache from before checksums) is never used: it is rebuilt, with a warning.
    """
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("key") != key or tuple(manifest.get("shape", ())) != shape:
            return None
        array = np.load(array_path, mmap_mode="r")
        if array.shape != shape or array.dtype != np.uint8:
            return None
        expected = manifest.get("checksum", {}).get("xxh3_64")
        actual = file_checksum(array_path)
    except (OSError, ValueError, AttributeError):
        return None
    if actual != expected:
        why = ("has no checksum (built by an older ssl-bench)" if expected is None
               else f"does not match its checksum (xxh3_64 {actual}, manifest {expected})")
        if not quiet:
            console.print(f"warning: image cache {array_path} {why}; rebuilding it",
                          highlight=False, markup=False)
        return None
    return array, manifest


def _progress(console: Console, quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, disable=quiet or not console.is_terminal,
    )


def _decode_file(dataset: ImageDataset, row: int, stamp: FileStamp, size: int,
                 channels: int) -> np.ndarray:
    """Decode file ``row``, refusing one whose size or mtime changed since it was read
    (its pixels would not be the ones the cache key names)."""
    path = (dataset.files or [])[row]
    with open_regular(path) as handle:
        if stamp_of(handle) != (stamp.size, stamp.mtime_ns):
            raise UserError(f"{dataset.source(row)} changed while the image cache was being "
                            "built; run again once nothing writes to the data set")
        return decode_stream(handle, size, channels)


def _decode_into(dataset: ImageDataset, content: FileContent, out: np.ndarray, size: int,
                 channels: int, workers: int, progress: Progress) -> list[BadImage]:
    """Decode every readable file of ``dataset`` into ``out`` in parallel; return the
    failures (unreadable files of ``content`` are not opened again)."""
    files = dataset.files or []

    def failure(row: int, reason: str) -> BadImage:
        out[row] = 0
        return BadImage(dataset.ids[row], str(files[row]),
                        dataset.sources[row] if dataset.sources else "", reason)

    def work(start: int) -> list[BadImage]:
        failed = []
        for row in range(start, min(start + CHUNK, len(files))):
            stamp, problem = content.stamps[row], content.problems[row]
            if stamp is None:
                failed.append(failure(row, problem or "unreadable image"))
                continue
            try:
                out[row] = _decode_file(dataset, row, stamp, size, channels)
            except IMAGE_ERRORS as exc:
                failed.append(failure(row, describe_error(exc)))
        return failed

    task = progress.add_task(f"decoding {dataset.name} at {size}px", total=len(files))
    return _in_chunks(work, len(files), workers, lambda step: progress.advance(task, step))


def bad_image_error(dataset: ImageDataset, bad: list[BadImage]) -> UserError:
    first = bad[0]
    where = f" ({first.source})" if first.source else ""
    more = ""
    if len(bad) > 1:
        others = "; ".join(f"{b.file}: {b.reason}" for b in bad[1:4])
        more = f"; {len(bad) - 1} more bad image(s), e.g. {others}"
    return UserError(
        f"{dataset.name}: cannot use image {first.file}{where}: {first.reason}{more}. "
        "Fix the files or pass --skip-bad-images to leave them out with a report"
    )


def _check_writable(cache_dir: Path) -> None:
    """Create ``cache_dir`` and prove a file can be written there, or say which flag helps."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".probe.{os.getpid()}.", suffix=".tmp",
                                     dir=cache_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write the image cache in --cache-dir {cache_dir}: "
                        f"{exc.strerror or exc}; choose another --cache-dir (or "
                        "--image-cache false to decode at every step)") from None


def load_images(dataset: ImageDataset, size: int, channels: int, cache_dir: Path | None = None,
                *, skip_bad: bool = False, workers: int | None = None, quiet: bool = False,
                console: Console | None = None) -> CachedImages:
    """The decoded images of ``dataset`` as ``uint8 [N, size, size, channels]``.

    In-memory data sets are returned as they are; file-based ones come from the cache,
    built first if needed. Unreadable or missing files raise :class:`UserError` naming
    the file and where it was listed, unless ``skip_bad`` (then they are zeros and listed
    in ``CachedImages.bad``).
    """
    if dataset.files is None:
        assert dataset.load is not None
        return CachedImages(dataset.load(size, channels), None)
    console = console or Console(stderr=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    workers = workers or default_workers()
    with _progress(console, quiet) as progress:
        content = file_content(dataset, workers, progress)
    dataset = with_content(dataset, content)
    array_path, manifest_path = _paths(dataset, size, channels, cache_dir)
    key = cache_key(dataset, size, channels)
    shape = (len(dataset), size, size, channels)
    remove_stale_temporaries(cache_dir)  # partial builds of killed processes
    existing = _open_existing(array_path, manifest_path, key, shape, console, quiet)
    if existing is not None:
        array, manifest = existing
        bad = [BadImage(**b) for b in manifest.get("bad", [])]
        if bad and not skip_bad:
            raise bad_image_error(dataset, bad)
        if not quiet:
            console.print(f"using the decoded-image cache {array_path} ({len(dataset):,} "
                          f"{dataset.name} images at {size} px; their files read in "
                          f"{content.seconds:.1f} s)", highlight=False, soft_wrap=True)
        return CachedImages(array, array_path, bad, content=content)

    _check_writable(cache_dir)
    needed = int(np.prod(shape)) + 4096
    free = shutil.disk_usage(cache_dir).free
    if free < needed:
        raise UserError(
            f"the image cache needs {needed / 2**20:.0f} MiB in {cache_dir} but only "
            f"{free / 2**20:.0f} MiB are free; choose another --cache-dir"
        )
    partial = array_path.with_name(f"{array_path.name}.partial-{os.getpid()}")
    started = time.perf_counter()
    if not quiet and not console.is_terminal:
        console.print(f"decoding {len(dataset)} {dataset.name} images at {size}px into "
                      f"{array_path} ...", highlight=False, soft_wrap=True)
    try:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
        with _progress(console, quiet) as progress:
            bad = _decode_into(dataset, content, out, size, channels, workers, progress)
        if bad and not skip_bad:
            raise bad_image_error(dataset, bad)
        out.flush()
        del out
        os.replace(partial, array_path)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    atomic_write_json(manifest_path, {
        "key": key, "version": CACHE_VERSION, "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(), "content": content.digest,
        "content_seconds": round(content.seconds, 2), "shape": list(shape), "size": size,
        "channels": channels, "images": len(dataset), "build_seconds": round(seconds, 2),
        "bad": [vars(b) for b in bad], "checksum": {"xxh3_64": file_checksum(array_path)},
    })
    if not quiet and not console.is_terminal:
        console.print(f"decoded {len(dataset)} images in {seconds:.1f} s", highlight=False,
                      soft_wrap=True)
    array = np.load(array_path, mmap_mode="r")
    return CachedImages(array, array_path, bad, built=True, seconds=seconds, content=content)
