"""Built-in ``digits`` data sets: scikit-learn's bundled 8x8 handwritten digits.

No download, so the main job and the tests run anywhere. ``digits`` is single-label
(10 classes); ``digits-multilabel`` asks four yes/no questions about the same images,
a small multi-label task for tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssl_bench.data.datasets.base import ImageDataset, dataset_card
from ssl_bench.data.images import resize_uint8
from ssl_bench.plugins.registry import register_dataset

#: Multi-label attributes of a digit: (name, digits that have it).
ATTRIBUTES: tuple[tuple[str, frozenset[int]], ...] = (
    ("even", frozenset({0, 2, 4, 6, 8})),
    ("at_least_5", frozenset({5, 6, 7, 8, 9})),
    ("prime", frozenset({2, 3, 5, 7})),
    ("closed_loop", frozenset({0, 6, 8, 9})),
)


DIGITS_SOURCE = ("scikit-learn's bundled copy of the UCI handwritten digits (1,797 grey 8x8 "
                 "images), built in: no files")
DIGITS_LICENCE = "CC BY 4.0 (UCI Machine Learning Repository)"
DIGITS_CITATION = ("Alpaydin, E. & Kaynak, C. Optical Recognition of Handwritten Digits. UCI "
                   "Machine Learning Repository (1998)")


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # [N, 8, 8]
    return images, bunch.target.astype(np.int64)


def _ids(n: int) -> list[str]:
    return [f"digit_{i:04d}" for i in range(n)]


@register_dataset("digits")
@dataset_card(
    source=DIGITS_SOURCE, licence=DIGITS_LICENCE, citation=DIGITS_CITATION,
    task="single-label, 10 classes", classes="0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
    splits="carved by --split-ratios (default 70/10/20), stratified")
def digits(root: Path | None = None) -> ImageDataset:
    """10-class single-label digits (1,797 grey images, upscaled on load)."""
    images, target = _load_digits()
    return ImageDataset(
        name="digits",
        ids=_ids(len(images)),
        labels=target,
        class_names=[str(d) for d in range(10)],
        kind="single",
        channels=1,
        load=lambda size, channels: resize_uint8(images, size, channels),
        recommended={"hflip": False},
        description="scikit-learn's 8x8 handwritten digits (built in, single-label)",
    )


@register_dataset("digits-multilabel", aliases=("digits_multilabel",))
@dataset_card(
    source=DIGITS_SOURCE, licence=DIGITS_LICENCE, citation=DIGITS_CITATION,
    task="multi-label, 4 yes/no attributes of each digit (a small multi-label task for tests)",
    classes=", ".join(name for name, _ in ATTRIBUTES),
    splits="carved by --split-ratios (default 70/10/20), stratified")
def digits_multilabel(root: Path | None = None) -> ImageDataset:
    """The same images with four binary attributes (even, >=5, prime, closed loop)."""
    images, target = _load_digits()
    labels = np.array(
        [[float(d in members) for _, members in ATTRIBUTES] for d in target], dtype=np.float32
    )
    return ImageDataset(
        name="digits-multilabel",
        ids=_ids(len(images)),
        labels=labels,
        class_names=[name for name, _ in ATTRIBUTES],
        kind="multi",
        channels=1,
        load=lambda size, channels: resize_uint8(images, size, channels),
        recommended={"hflip": False},
        description="digits with 4 binary attributes (built in, multi-label)",
    )
