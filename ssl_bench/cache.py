"""The decoded-image cache: decode and resize every image once, memory-map it afterwards.

Decoding a JPEG and resizing it at every step is the classic bottleneck of the official
SRC-MT code. Here each image is decoded once per (data set fingerprint, image size,
channel count) into one uint8 ``.npy`` array ``[N, size, size, C]`` under the cache
folder; later runs memory-map it and start training at once.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .atomic import atomic_write_json, remove_stale_temporaries
from .datasets.base import ImageDataset
from .errors import UserError
from .images import IMAGE_ERRORS, decode_image, describe_error
from .paths import default_cache_dir

#: Bump when decoding changes so that old caches are rebuilt.
CACHE_VERSION = 1
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
class CachedImages:
    """A (memory-mapped) decoded array and what happened while making it."""

    array: np.ndarray
    path: Path | None
    bad: list[BadImage] = field(default_factory=list)
    built: bool = False
    seconds: float = 0.0

    def manifest_bad(self) -> list[dict[str, str]]:
        return [vars(b) for b in self.bad]


def cache_key(dataset: ImageDataset, size: int, channels: int) -> str:
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


def _decode_into(dataset: ImageDataset, out: np.ndarray, size: int, channels: int,
                 workers: int, progress: Progress) -> list[BadImage]:
    """Decode every file of ``dataset`` into ``out`` in parallel; return the failures."""
    files = dataset.files or []
    bad: list[BadImage] = []

    def work(start: int) -> list[BadImage]:
        failed = []
        for row in range(start, min(start + CHUNK, len(files))):
            try:
                out[row] = decode_image(files[row], size, channels)
            except IMAGE_ERRORS as exc:
                out[row] = 0
                failed.append(BadImage(dataset.ids[row], str(files[row]),
                                       dataset.sources[row] if dataset.sources else "",
                                       describe_error(exc)))
        return failed

    task = progress.add_task(f"decoding {dataset.name} at {size}px", total=len(files))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for failed in pool.map(work, range(0, len(files), CHUNK)):
            bad.extend(failed)
            progress.advance(task, CHUNK)
    return bad


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
                          f"{dataset.name} images at {size} px)", highlight=False,
                          soft_wrap=True)
        return CachedImages(array, array_path, bad)

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
            bad = _decode_into(dataset, out, size, channels, workers or default_workers(),
                               progress)
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
        "fingerprint": dataset.fingerprint(), "shape": list(shape), "size": size,
        "channels": channels, "images": len(dataset), "build_seconds": round(seconds, 2),
        "bad": [vars(b) for b in bad], "checksum": {"xxh3_64": file_checksum(array_path)},
    })
    if not quiet and not console.is_terminal:
        console.print(f"decoded {len(dataset)} images in {seconds:.1f} s", highlight=False,
                      soft_wrap=True)
    array = np.load(array_path, mmap_mode="r")
    return CachedImages(array, array_path, bad, built=True, seconds=seconds)
