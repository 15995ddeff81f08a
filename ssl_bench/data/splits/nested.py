"""Nested labeled subsets: one seeded, near-stratified order of the training part whose
prefixes are the labeled sets (5% inside 10% inside 20%)."""

from __future__ import annotations

import numpy as np

from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.splits.carving import binary_labels

# ---------------------------------------------------------------------------------------
# labeled subsets


def _rank_within(strata: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions share its stratum."""
    order = np.argsort(strata, kind="stable")
    ordered = strata[order]
    rank = np.empty(len(strata))
    rank[order] = np.arange(len(strata)) - np.searchsorted(ordered, ordered, side="left")
    return rank


def nested_labeled_order(dataset: ImageDataset, train: np.ndarray, seed: int) -> np.ndarray:
    """Order ``train`` so every prefix is a near-stratified labeled set (see module doc).

    The head covers every class present in ``train`` (one image per class for
    single-label; a greedy cover, rarest class first, for multi-label); then images of
    each stratum come at evenly spaced, jittered positions (image ``r`` of a stratum of
    ``n`` at ``(r + u) / n``), so classes interleave in proportion. Multi-label strata are
    an image's rarest positive class (or "no positive").
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    shuffled = rng.permutation(np.asarray(train, dtype=np.int64))
    if dataset.kind == "single":
        strata = np.asarray(dataset.labels[shuffled], dtype=np.int64)
        rank = _rank_within(strata)
        head_mask = rank == 0
    else:
        labels = binary_labels(dataset, shuffled)
        frequency = labels.sum(axis=0)
        by_rarity = np.argsort(frequency, kind="stable")  # rarest first
        position = np.empty(dataset.num_classes, dtype=np.int64)
        position[by_rarity] = np.arange(dataset.num_classes)
        strata = np.where(labels, position[None, :], dataset.num_classes).min(axis=1)
        rank = _rank_within(strata)
        head_mask = np.zeros(len(shuffled), dtype=bool)
        covered = np.zeros(dataset.num_classes, dtype=bool)
        for klass in by_rarity:
            if covered[klass] or frequency[klass] == 0:
                continue
            first = int(np.flatnonzero(labels[:, klass])[0])
            head_mask[first] = True
            covered |= labels[first]
    counts = np.bincount(strata)
    key = (rank + rng.random(len(shuffled))) / np.maximum(counts[strata], 1)
    head = shuffled[head_mask][np.argsort(key[head_mask], kind="stable")]
    tail = shuffled[~head_mask][np.argsort(key[~head_mask], kind="stable")]
    return np.concatenate([head, tail])


def labeled_head(dataset: ImageDataset, train: np.ndarray, seed: int) -> np.ndarray:
    """The shortest prefix of the nested order that covers every class in ``train``."""
    order = nested_labeled_order(dataset, train, seed)
    if dataset.kind == "single":
        present = len(np.unique(dataset.labels[train]))
        return order[:present]
    labels = binary_labels(dataset, order)
    needed = labels.any(axis=0)
    covered = np.logical_or.accumulate(labels, axis=0)
    done = np.flatnonzero((covered | ~needed).all(axis=1))
    return order[: int(done[0]) + 1] if len(done) else order
