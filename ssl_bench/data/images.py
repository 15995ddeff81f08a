"""Decoding one image file into a fixed-size uint8 array, the way every loader needs it.

Images are resized straight to ``size x size`` (as the official SRC-MT code does with
``Resize((224, 224))``) and converted to the requested channel count: grey, RGB and RGBA
files all load (alpha is dropped; grey is replicated for 3-channel backbones).

Only regular files are read: a path is stat'ed before it is opened, so a FIFO, device or
socket named by a CSV row is refused at once (opening a FIFO blocks until a writer comes,
which hung a run at "decoding" and kept it from stopping on the first Ctrl-C).
:func:`file_stamp` reads what a file holds (size, mtime and an xxh3 digest of its bytes)
for the cache key and the data fingerprint.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
import xxhash
from PIL import Image, UnidentifiedImageError

#: Exceptions that mean "this file is not a readable image" (not a bug in ssl-bench).
IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError,
)


#: Bytes read at a time when digesting an image file.
READ_CHUNK = 4 * 2**20
#: What :func:`open_regular` calls each kind of file that is not a regular one.
FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class NotARegularFile(OSError):
    """A path that names a FIFO, device or socket: never opened as an image."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}")
        self.kind = kind


@dataclass(frozen=True)
class FileStamp:
    """What one file held when it was read: its size, mtime and xxh3-64 digest of its bytes."""

    size: int
    mtime_ns: int
    digest: str


def _require_regular(path: str | Path, mode: int) -> None:
    """Raise unless ``mode`` is a regular file's (a directory keeps its own error)."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a directory")
    kind = next((name for test, name in FILE_KINDS if test(mode)), "not a regular file")
    raise NotARegularFile(path, kind)


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading, only if it is a regular file.

    ``stat`` first, so a FIFO or device is never opened; then open non-blocking and check
    the opened file again, so one swapped in between the two cannot block either.
    """
    _require_regular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        _require_regular(path, os.fstat(descriptor).st_mode)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def stamp_of(handle: BinaryIO) -> tuple[int, int]:
    """(size, mtime_ns) of an open file: cheap, to see that it did not change."""
    info = os.fstat(handle.fileno())
    return info.st_size, info.st_mtime_ns


def file_stamp(path: str | Path) -> FileStamp:
    """Size, mtime and xxh3-64 digest of the bytes of the regular file ``path``."""
    digest = xxhash.xxh3_64()
    with open_regular(path) as handle:
        size, mtime_ns = stamp_of(handle)
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
    return FileStamp(size, mtime_ns, digest.hexdigest())


def decode_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """Read ``path`` as a ``[size, size, channels]`` uint8 array (bilinear, antialiased).

    A path that is not a regular file raises ``OSError`` (see :func:`open_regular`).
    """
    with open_regular(path) as handle:
        return decode_stream(handle, size, channels)


def decode_stream(handle: BinaryIO, size: int, channels: int) -> np.ndarray:
    """Decode an open image file as :func:`decode_image` does."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with Image.open(handle) as image:
        # JPEG: let the decoder downscale by a power of two first (much faster, same result
        # up to resampling noise once the final resize runs).
        image.draft("L" if channels == 1 else "RGB", (size, size))
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def describe_error(exc: BaseException) -> str:
    """A short reason for a failed decode: 'missing file' or the decoder's complaint."""
    if isinstance(exc, FileNotFoundError):
        return "missing file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image"
    if isinstance(exc, NotARegularFile):
        return f"{exc.kind}, not a regular image file"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"unreadable image ({text})"


class ArrayImages:
    """Batches from a decoded ``uint8 [N, H, W, C]`` array (in memory or memory-mapped)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def take(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.array[rows]))


class DeviceImages:
    """Batches from a decoded array held in a device's memory (``--images-on-device``):
    rows are gathered where the model runs, so no pixels cross from the host per step."""

    def __init__(self, array: np.ndarray, device: torch.device) -> None:
        self.device = device
        self.array = torch.from_numpy(np.ascontiguousarray(array)).to(device)

    def __len__(self) -> int:
        return len(self.array)

    def take(self, rows: np.ndarray) -> torch.Tensor:
        return self.array[torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)]


class DecodingImages:
    """Batches decoded from the files at every request: the slow path the cache replaces.

    Kept for comparisons (``--no-image-cache``) and for data too large to cache.
    """

    def __init__(self, files: list[Path], size: int, channels: int, workers: int = 2) -> None:
        self.files = files
        self.size = size
        self.channels = channels
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def __len__(self) -> int:
        return len(self.files)

    def _one(self, row: int) -> np.ndarray:
        return decode_image(self.files[row], self.size, self.channels)

    def take(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack(list(self.pool.map(self._one, rows.tolist()))))


def resize_uint8(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize ``[N, H, W(, C)]`` uint8 images to ``[N, size, size, channels]`` (bilinear)."""
    tensor = torch.from_numpy(images).float()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(-1)
    tensor = tensor.permute(0, 3, 1, 2)
    if tensor.shape[-1] != size or tensor.shape[-2] != size:
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    if tensor.shape[1] == 1 and channels == 3:
        tensor = tensor.expand(-1, 3, -1, -1)
    elif tensor.shape[1] != channels:
        raise ValueError(f"cannot turn {tensor.shape[1]}-channel images into {channels}")
    return tensor.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


#: Where a run's batches come from (``take(rows)`` -> uint8 ``[B, H, W, C]``).
Images = ArrayImages | DecodingImages | DeviceImages
