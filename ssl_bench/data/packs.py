"""Data packs: a data set's decoded images at one size, its ids, labels and groups, and
split files, in one file that travels where the original images cannot (a GPU machine
that takes 64 MiB; a cluster node without the data folder).

A pack is a zip archive (``.sslpack``):

* ``pack.json``: what the data set is (name, options, ids, class names, task, card,
  ``content`` digest of the original files), the image size and channels, an xxh3-64
  checksum of the decoded pixels, and the names of the split files it carries;
* ``arrays.npz``: labels, groups and the unlabeled-only mask, exactly as loaded;
* ``images/<row>.png``: every decoded image, lossless (PNG: about half of the raw
  ``uint8`` bytes on isic2018-mini at 64 px, decoded at ~4,000 images/s);
* ``splits/<name>``: split files, byte for byte.

Reading a pack gives back the same :class:`ImageDataset` -- same ids, labels, groups and
**fingerprint** (the original files' content digest travels with it) -- whose pixels are
the decoded array, checked against the checksum. So a run on a pack makes the same split,
records the same data fingerprint and is compared with runs on the original files. A run
at another image size or channel count than the pack's is refused (pack it again).
"""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from PIL import Image

from ssl_bench.core.atomic import atomic_write
from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset

#: What ``pack.json`` says it is, and the layout's version.
FORMAT = "ssl-bench data pack"
FORMAT_VERSION = 1
SUFFIX = ".sslpack"
MANIFEST = "pack.json"
ARRAYS = "arrays.npz"


@dataclass(frozen=True)
class PackInfo:
    """What a pack holds, from its manifest (``read_pack`` checks the pixels too)."""

    path: Path
    dataset: str
    images: int
    image_size: int
    channels: int
    splits: tuple[str, ...]
    fingerprint: str
    pixels_checksum: str


def is_pack(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a file that holds a data pack (a zip with ``pack.json``)."""
    if path is None or not Path(path).is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return MANIFEST in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def pixels_checksum(images: np.ndarray) -> str:
    """xxh3-64 of the decoded pixels (``uint8 [N, size, size, channels]``, C order)."""
    return xxhash.xxh3_64(np.ascontiguousarray(images).tobytes()).hexdigest()


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _arrays(dataset: ImageDataset) -> bytes:
    arrays = {"labels": np.asarray(dataset.labels)}
    if dataset.groups is not None and np.asarray(dataset.groups).dtype != object:
        arrays["groups"] = np.asarray(dataset.groups)  # (object arrays go in pack.json)
    if dataset.unlabeled_only is not None:
        arrays["unlabeled_only"] = np.asarray(dataset.unlabeled_only, dtype=bool)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """JSON for what a data set's records may hold besides JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot record {type(value).__name__} in a data pack")


def _manifest(dataset: ImageDataset, images: np.ndarray, options: dict[str, Any],
              splits: Sequence[str], made_by: dict[str, Any]) -> dict[str, Any]:
    groups = None if dataset.groups is None else np.asarray(dataset.groups)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "dataset": dataset.name, "options": options, "ids": list(dataset.ids),
        "class_names": list(dataset.class_names), "kind": dataset.kind,
        "dataset_channels": dataset.channels, "predefined": dataset.predefined,
        "recommended": dataset.recommended, "info": dataset.info,
        "description": dataset.description, "card": dataset.card,
        "content": dataset.content, "fingerprint": dataset.fingerprint(),
        "groups": groups.tolist() if groups is not None and groups.dtype == object else None,
        "images": int(images.shape[0]), "image_size": int(images.shape[1]),
        "channels": int(images.shape[3]), "pixels_xxh3_64": pixels_checksum(images),
        "splits": list(splits), "made_by": made_by,
    }


def write_pack(path: str | os.PathLike, dataset: ImageDataset, images: np.ndarray, *,
               options: dict[str, Any] | None = None,
               splits: Sequence[str | os.PathLike] = (),
               made_by: dict[str, Any] | None = None,
               advance: Callable[[int], None] | None = None) -> Path:
    """Write ``dataset`` (its ``content`` read) with its decoded ``images`` and the split
    files ``splits`` as one pack at ``path``, atomically (no half-written pack);
    ``advance(n)`` is told of every n images written (a progress bar)."""
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be uint8 [N, size, size, C], got {images.dtype} "
                         f"{images.shape}")
    if images.shape[0] != len(dataset):
        raise ValueError(f"{images.shape[0]} images for {len(dataset)} ids")
    split_paths = [Path(s) for s in splits]
    names = [p.name for p in split_paths]
    if len(set(names)) != len(names):
        raise UserError(f"--split: two split files share a name ({', '.join(names)}); a pack "
                        "holds them by file name")
    manifest = _manifest(dataset, images, dict(options or {}), names, dict(made_by or {}))

    def write(handle: Any) -> None:
        with zipfile.ZipFile(handle, "w") as archive:
            for row in range(images.shape[0]):  # PNG is compressed already: stored
                archive.writestr(f"images/{row:06d}.png", _png(images[row]),
                                 compress_type=zipfile.ZIP_STORED)
                if advance is not None:
                    advance(1)
            archive.writestr(ARRAYS, _arrays(dataset), compress_type=zipfile.ZIP_DEFLATED)
            for name, split in zip(names, split_paths, strict=True):
                archive.writestr(f"splits/{name}", split.read_bytes(),
                                 compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1, default=_plain),
                             compress_type=zipfile.ZIP_DEFLATED)

    return atomic_write(path, write)


def _open(path: Path) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    try:
        archive = zipfile.ZipFile(path)
        manifest = json.loads(archive.read(MANIFEST))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UserError(f"data pack {path} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        archive.close()
        raise UserError(f"data pack {path} is not a version-{FORMAT_VERSION} ssl-bench data "
                        f"pack (format {manifest.get('format')!r}, version "
                        f"{manifest.get('format_version')!r}); pack the data again")
    return archive, manifest


def pack_info(path: str | os.PathLike) -> PackInfo:
    """What the pack at ``path`` holds, from its manifest alone (fast)."""
    path = Path(path)
    archive, manifest = _open(path)
    archive.close()
    return PackInfo(path, manifest["dataset"], manifest["images"], manifest["image_size"],
                    manifest["channels"], tuple(manifest["splits"]), manifest["fingerprint"],
                    manifest["pixels_xxh3_64"])


def _decode(archive: zipfile.ZipFile, manifest: dict[str, Any], path: Path) -> np.ndarray:
    size, channels = manifest["image_size"], manifest["channels"]
    images = np.empty((manifest["images"], size, size, channels), dtype=np.uint8)
    for row in range(images.shape[0]):
        with Image.open(io.BytesIO(archive.read(f"images/{row:06d}.png"))) as image:
            pixels = np.asarray(image, dtype=np.uint8)
        images[row] = pixels[..., None] if pixels.ndim == 2 else pixels
    if pixels_checksum(images) != manifest["pixels_xxh3_64"]:
        raise UserError(f"data pack {path}: its images do not match the checksum it was "
                        "written with (a damaged or altered copy); copy or pack it again")
    return images


def read_pack(path: str | os.PathLike) -> tuple[ImageDataset, dict[str, Any]]:
    """The data set a pack holds (its fingerprint the original's; its ``load`` gives the
    decoded images, checked against the pack's checksum) and the options it was loaded
    with."""
    path = Path(path)
    archive, manifest = _open(path)
    with archive:
        try:
            arrays = np.load(io.BytesIO(archive.read(ARRAYS)), allow_pickle=False)
            images = _decode(archive, manifest, path)
        except (KeyError, ValueError, OSError) as exc:
            raise UserError(f"data pack {path} is damaged: {exc}") from None
    groups = arrays["groups"] if "groups" in arrays else None
    if manifest["groups"] is not None:
        groups = np.empty(len(manifest["groups"]), dtype=object)
        groups[:] = manifest["groups"]
    info = {**manifest["info"], "pack": {"path": str(path), "image_size": images.shape[1],
                                         "channels": images.shape[3],
                                         "pixels_xxh3_64": manifest["pixels_xxh3_64"]}}

    def load(size: int, channels: int) -> np.ndarray:
        if size != images.shape[1] or channels != images.shape[3]:
            raise UserError(
                f"--data-root {path} is a pack of {manifest['dataset']} at {images.shape[1]} px "
                f"with {images.shape[3]} channel(s); this run needs {size} px with {channels}: "
                f"pack it again with ssl-bench pack --image-size {size}")
        return images

    dataset = ImageDataset(
        name=manifest["dataset"], ids=list(manifest["ids"]), labels=arrays["labels"],
        class_names=list(manifest["class_names"]), kind=manifest["kind"],
        channels=int(manifest["dataset_channels"]), load=load, groups=groups,
        predefined=manifest["predefined"], recommended=manifest["recommended"], info=info,
        description=manifest["description"],
        unlabeled_only=arrays["unlabeled_only"] if "unlabeled_only" in arrays else None,
        content=manifest["content"], card=manifest["card"])
    if dataset.fingerprint() != manifest["fingerprint"]:
        raise UserError(f"data pack {path}: its ids and labels do not give the fingerprint "
                        "it was written with (a damaged or altered copy); pack it again")
    return dataset, dict(manifest["options"])


@functools.lru_cache(maxsize=2)
def _read_stamped(path: str, mtime_ns: int, size: int) -> tuple[ImageDataset, dict[str, Any]]:
    return read_pack(path)


def read_pack_cached(path: str | os.PathLike) -> tuple[ImageDataset, dict[str, Any]]:
    """:func:`read_pack`, decoded once per process while the file stays the same (a run
    loads its data set more than once: the split, then the pixels)."""
    stat = os.stat(path)
    dataset, options = _read_stamped(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    return dataset, dict(options)


def read_pack_split(path: str | os.PathLike, name: str) -> bytes:
    """The bytes of the split file ``name`` a pack carries."""
    path = Path(path)
    archive, manifest = _open(path)
    with archive:
        if name not in manifest["splits"]:
            carried = ", ".join(manifest["splits"]) or "none"
            raise UserError(f"data pack {path} carries no split file {name!r} (it carries: "
                            f"{carried})")
        return archive.read(f"splits/{name}")
