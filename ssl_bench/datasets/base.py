"""The in-memory description of a labeled image data set, shared by every loader."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..tasks import Task, TaskKind

#: ``load(size, channels) -> uint8 array [N, size, size, channels]`` in ``ids`` order.
ImageLoader = Callable[[int, int], np.ndarray]


@dataclass
class ImageDataset:
    """Image ids, their labels and how to decode the images.

    ``labels`` are int class indices ``(N,)`` for single-label tasks and 0/1 floats
    ``(N, K)`` for multi-label ones. ``groups`` (patient or lesion ids) keep related
    images in one split part. Images are identified by ``ids``, never by row number.
    """

    name: str
    ids: list[str]
    labels: np.ndarray
    class_names: list[str]
    kind: TaskKind
    channels: int
    load: ImageLoader
    groups: np.ndarray | None = None
    #: Augmentation advice, e.g. ``{"hflip": False}`` for digits.
    recommended: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(set(self.ids)) != n:
            raise ValueError(f"data set {self.name!r} has duplicate image ids")
        expected = (n,) if self.kind == "single" else (n, len(self.class_names))
        if self.labels.shape != expected:
            raise ValueError(
                f"data set {self.name!r}: labels have shape {self.labels.shape}, "
                f"expected {expected}"
            )
        if self.groups is not None and len(self.groups) != n:
            raise ValueError(f"data set {self.name!r}: {len(self.groups)} groups for {n} ids")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def task(self) -> Task:
        return Task(self.kind, self.num_classes)

    def class_counts(self, indices: np.ndarray | None = None) -> dict[str, int]:
        """Images per class (positives per class for multi-label)."""
        labels = self.labels if indices is None else self.labels[indices]
        if self.kind == "single":
            counts = np.bincount(labels.astype(np.int64), minlength=self.num_classes)
        else:
            counts = labels.sum(axis=0)
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def fingerprint(self) -> str:
        """SHA-256 over ids and labels: identifies the data, not where it lives."""
        digest = hashlib.sha256()
        digest.update(self.kind.encode())
        digest.update("\x1f".join(self.class_names).encode())
        digest.update("\x1e".join(self.ids).encode())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]
