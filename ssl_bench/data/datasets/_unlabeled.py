"""Images nobody labeled, added to a data set as unlabeled training images only.

SSL's whole point is a pool of images without labels: ISIC 2019/2020 images beside ISIC
2018's labeled ones, more X-rays beside ChestX-ray14's. ``--unlabeled-dir DIR`` (the
``unlabeled_dir`` option of the ``isic``, ``chestxray14`` and ``csv`` data sets) adds every
image file under DIR (recursively) as an image without a label
(``ImageDataset.unlabeled_only``): never labeled, validated or tested. An image whose
name or stem is already an image id of the data set is left out with a warning -- ISIC
2019's training images include all of ISIC 2018's, and training on a validation or test
image would leak it.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.plugins.options import Option

#: File types taken from an unlabeled folder (what the image decoder reads).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Prefix of their image ids (so they cannot collide with the data set's own ids).
ID_PREFIX = "unlabeled/"

UNLABELED_DIR_OPTION = Option(
    "unlabeled_dir", str, None,
    "folder of extra images nobody labeled (searched recursively; relative to the data "
    "root): unlabeled training images only, never labeled, validated or tested; images "
    "already in the data set are left out")


def add_unlabeled_folder(dataset: ImageDataset, folder: str | None,
                         root: Path | None = None) -> ImageDataset:
    """``dataset`` with every image under ``folder`` appended as unlabeled-only."""
    if folder is None or not str(folder).strip():
        return dataset
    flag = "--unlabeled-dir"
    path = Path(folder).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    if not path.is_dir():
        raise UserError(f"{flag} {path}: no such folder")
    if dataset.files is None:
        raise UserError(f"{flag}: data set {dataset.name!r} is held in memory and cannot "
                        "take image files")
    files = sorted(p for p in path.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{flag} {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    known = set(dataset.ids) | {Path(i).stem for i in dataset.ids} | {
        Path(i).name for i in dataset.ids}
    fresh = [p for p in files if p.name not in known and p.stem not in known]
    left_out = len(files) - len(fresh)
    if left_out:
        warnings.warn(
            f"{dataset.name}: {left_out} of the {len(files)} images in {flag} {path} are "
            "already in the data set (same image id) and were left out, so that no "
            "validation or test image is trained on", stacklevel=2)
    if not fresh:
        raise UserError(f"{flag} {path}: every image is already in the data set")
    n = len(fresh)
    placeholder = np.zeros((n, *dataset.labels.shape[1:]), dtype=dataset.labels.dtype)
    before = (np.zeros(len(dataset), dtype=bool) if dataset.unlabeled_only is None
              else dataset.unlabeled_only)
    groups = None
    if dataset.groups is not None:  # each extra image is a group of its own
        groups = np.concatenate([np.asarray(dataset.groups, dtype=object),
                                 np.full(n, None, dtype=object)])
    return replace(
        dataset,
        ids=[*dataset.ids, *(ID_PREFIX + p.relative_to(path).as_posix() for p in fresh)],
        labels=np.concatenate([dataset.labels, placeholder]),
        files=[*dataset.files, *fresh],
        sources=None if dataset.sources is None else [
            *dataset.sources, *(f"{flag} {path}" for _ in fresh)],
        groups=groups,
        unlabeled_only=np.concatenate([before, np.ones(n, dtype=bool)]),
        info={**dataset.info, "unlabeled_dir": {"folder": str(path), "images": n,
                                                "left_out_already_in_data_set": left_out}},
        description=f"{dataset.description}; {n:,} unlabeled images from {path}",
    )
