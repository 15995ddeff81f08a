"""The in-memory description of a labeled image data set, shared by every loader."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ssl_bench.data.tasks import Task, TaskKind
from ssl_bench.plugins.index import CARD_FIELDS
from ssl_bench.plugins.options import Option

F = TypeVar("F", bound=Callable[..., Any])

#: ``load(size, channels) -> uint8 array [N, size, size, channels]`` in ``ids`` order.
ImageLoader = Callable[[int, int], np.ndarray]


@dataclass
class ImageDataset:
    """Image ids, their labels and how to decode the images.

    ``labels`` are int class indices ``(N,)`` for single-label tasks and 0/1 floats
    ``(N, K)`` for multi-label ones. ``groups`` (patient or lesion ids) keep related
    images in one split part. Images are identified by ``ids``, never by row number.

    Pixels come either from ``load`` (in-memory data such as ``digits``) or from
    ``files`` (one image file per id, decoded once into the image cache); ``sources``
    says where each image was listed (``"GroundTruth.csv row 12"``) for error messages.
    ``predefined`` holds official evaluation parts (``{"test": [ids]}``) that the split
    generator must use instead of carving them from the training images.

    ``unlabeled_only`` marks images nobody labeled (a CSV row without a label, a folder
    of extra images): their ``labels`` rows are placeholders that nothing reads -- they
    join the unlabeled training pool and are never labeled, validated, tested or counted.

    ``content`` is a digest of what the image files hold (their sizes and the xxh3 digests
    of their bytes, see :func:`ssl_bench.data.cache.file_content`), set once they were read: it
    joins :meth:`fingerprint`, so the same ids and labels over other pixels are another
    data set (for the image cache and in ``config.json``). A split depends on ids and
    labels only: :meth:`label_fingerprint`.
    """

    name: str
    ids: list[str]
    labels: np.ndarray
    class_names: list[str]
    kind: TaskKind
    channels: int
    load: ImageLoader | None = None
    files: list[Path] | None = None
    sources: list[str] | None = None
    groups: np.ndarray | None = None
    predefined: dict[str, list[str]] = field(default_factory=dict)
    #: Augmentation advice, e.g. ``{"hflip": False}`` for digits.
    recommended: dict[str, Any] = field(default_factory=dict)
    #: What was read and decided (files, evaluation parts), recorded beside results.
    info: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: True where an image has no label (see above); None: every image is labeled.
    unlabeled_only: np.ndarray | None = None
    #: Digest of the image files' content (see above); None: not read (or in memory).
    content: str | None = None
    #: The data set's card (``dataset_card``: source, licence, citation, task, classes,
    #: splits), recorded in ``split.json``; set from the factory's unless it sets its own.
    card: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if (self.load is None) == (self.files is None):
            raise ValueError(f"data set {self.name!r} needs exactly one of load and files")
        if self.files is not None and len(self.files) != n:
            raise ValueError(f"data set {self.name!r}: {len(self.files)} files for {n} ids")
        if self.sources is not None and len(self.sources) != n:
            raise ValueError(f"data set {self.name!r}: {len(self.sources)} sources for {n} ids")
        unknown = {part for part in self.predefined if part not in ("train", "val", "test")}
        if unknown:
            raise ValueError(f"data set {self.name!r}: unknown predefined parts {unknown}")
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
        if self.unlabeled_only is not None:
            self.unlabeled_only = np.asarray(self.unlabeled_only, dtype=bool)
            if self.unlabeled_only.shape != (n,):
                raise ValueError(f"data set {self.name!r}: unlabeled_only has shape "
                                 f"{self.unlabeled_only.shape}, expected ({n},)")
            if not self.unlabeled_only.any():
                self.unlabeled_only = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def task(self) -> Task:
        return Task(self.kind, self.num_classes)

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {image_id: row for row, image_id in enumerate(self.ids)}

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row indices of image ``ids`` (``KeyError`` for an id not in the data set)."""
        return np.array([self._position[i] for i in ids], dtype=np.int64)

    def labeled_rows(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The rows among ``indices`` (default: all) whose image has a label."""
        rows = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        return rows if self.unlabeled_only is None else rows[~self.unlabeled_only[rows]]

    def unlabeled_only_rows(self) -> np.ndarray:
        """Rows of the images nobody labeled."""
        if self.unlabeled_only is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.unlabeled_only)

    def class_counts(self, indices: np.ndarray | None = None) -> dict[str, int]:
        """Images per class (positives per class for multi-label); unlabeled-only images
        count nowhere."""
        labels = self.labels[self.labeled_rows(indices)]
        if self.kind == "single":
            counts = np.bincount(labels.astype(np.int64), minlength=self.num_classes)
        else:
            counts = labels.sum(axis=0)
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def source(self, row: int) -> str:
        """Where image ``row`` was listed, for error messages."""
        where = self.sources[row] if self.sources is not None else f"image {self.ids[row]}"
        if self.files is not None:
            return f"{self.files[row]} ({where})"
        return where

    def subset(self, keep: np.ndarray) -> ImageDataset:
        """The same data set restricted to rows ``keep`` (e.g. without unreadable images)."""
        keep = np.asarray(keep, dtype=np.int64)
        kept_ids = [self.ids[i] for i in keep]
        kept = set(kept_ids)
        load = None
        if self.load is not None:
            parent = self.load
            load = lambda size, channels: parent(size, channels)[keep]  # noqa: E731
        return replace(
            self,
            ids=kept_ids,
            labels=self.labels[keep],
            load=load,
            files=None if self.files is None else [self.files[i] for i in keep],
            sources=None if self.sources is None else [self.sources[i] for i in keep],
            groups=None if self.groups is None else self.groups[keep],
            unlabeled_only=None if self.unlabeled_only is None else self.unlabeled_only[keep],
            predefined={k: [i for i in v if i in kept] for k, v in self.predefined.items()},
        )

    def _label_digest(self) -> hashlib._Hash:
        digest = hashlib.sha256()
        digest.update(self.kind.encode())
        digest.update("\x1f".join(self.class_names).encode())
        digest.update("\x1e".join(self.ids).encode())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.float32).tobytes())
        if self.unlabeled_only is not None:  # (absent: the fingerprint of earlier versions)
            digest.update(b"unlabeled-only" + np.packbits(self.unlabeled_only).tobytes())
        return digest

    def label_fingerprint(self) -> str:
        """SHA-256 over ids and labels only: what a split depends on."""
        return self._label_digest().hexdigest()[:16]

    def fingerprint(self) -> str:
        """SHA-256 over ids, labels and, once read, the files' ``content``: identifies the
        data, not where it lives (no paths, no mtimes). Without ``content`` it is
        :meth:`label_fingerprint` (in-memory data sets, earlier versions)."""
        digest = self._label_digest()
        if self.content is not None:
            digest.update(b"file-content" + self.content.encode())
        return digest.hexdigest()[:16]

    def without_content(self) -> ImageDataset:
        """The same data set with ``content`` unset (its fingerprint is the labels' only)."""
        return self if self.content is None else replace(self, content=None)


def dataset_card(**facts: str) -> Callable[[F], F]:
    """Declare a data set factory's card: where the data come from, its licence and
    citation, the task, its classes and how it is split (each a line of text, the fields
    of :data:`~ssl_bench.plugins.index.CARD_FIELDS`); ``list --datasets NAME`` shows it."""
    unknown = sorted(set(facts) - set(CARD_FIELDS))
    missing = [name for name in CARD_FIELDS if name not in facts]
    if unknown or missing:
        raise ValueError(f"a data set card has {', '.join(CARD_FIELDS)}; "
                         f"unknown {unknown}, missing {missing}")

    def decorate(factory: F) -> F:
        factory.card = {name: facts[name] for name in CARD_FIELDS}  # type: ignore[attr-defined]
        return factory

    return decorate


def dataset_options(*options: Option) -> Callable[[F], F]:
    """Declare a data set factory's options (they become CLI flags and config keys)."""

    def decorate(factory: F) -> F:
        factory.options = tuple(options)  # type: ignore[attr-defined]
        return factory

    return decorate
