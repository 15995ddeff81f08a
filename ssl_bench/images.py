"""Decoding one image file into a fixed-size uint8 array, the way every loader needs it.

Images are resized straight to ``size x size`` (as the official SRC-MT code does with
``Resize((224, 224))``) and converted to the requested channel count: grey, RGB and RGBA
files all load (alpha is dropped; grey is replicated for 3-channel backbones).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

#: Exceptions that mean "this file is not a readable image" (not a bug in ssl-bench).
IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError,
)


def decode_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """Read ``path`` as a ``[size, size, channels]`` uint8 array (bilinear, antialiased)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with Image.open(path) as image:
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
