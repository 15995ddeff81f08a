"""One split generator for every data set: train/val/test parts plus a labeled subset.

Labeled subsets are *nested* for a seed: the training part is put in one seeded order
whose every prefix is close to stratified and whose first images cover every class; the
labeled set is a prefix of it, so the 5% set lies inside the 10% set, and so on.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from .datasets.base import ImageDataset
from .errors import UserError

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.1, 0.2)


def parse_labeled(value: str | float | int) -> float | int:
    """``"0.2"`` -> fraction 0.2; ``"50"`` -> count 50; ``"1"``/``1.0`` -> all (fraction 1)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise UserError(
            f"--labeled must be a fraction in (0, 1] or a count, got {text!r}"
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise UserError(f"--labeled must be a fraction in (0, 1] or a count > 0, got {text!r}")
    if number <= 1:
        return float(number)
    if not number.is_integer():
        raise UserError(
            f"--labeled {text}: above 1 it is a count of images and must be a whole number "
            "(a fraction must lie in (0, 1])"
        )
    return int(number)


def labeled_tag(labeled: float | int) -> str:
    """Stable text for paths and tables: ``0.2`` or ``50``."""
    return f"{labeled:g}" if isinstance(labeled, float) else str(labeled)


@dataclass
class Split:
    """Image ids of each part, with everything needed to check and reproduce them."""

    dataset: str
    fingerprint: str
    seed: int
    ratios: tuple[float, float, float]
    labeled_spec: float | int
    train: list[str]
    val: list[str]
    test: list[str]
    labeled: list[str]
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def unlabeled(self) -> list[str]:
        chosen = set(self.labeled)
        return [i for i in self.train if i not in chosen]

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["ratios"] = list(self.ratios)
        record["sizes"] = {
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "labeled": len(self.labeled),
            "unlabeled": len(self.train) - len(self.labeled),
        }
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Split:
        fields = {k: v for k, v in record.items() if k != "sizes"}
        fields["ratios"] = tuple(fields["ratios"])
        return cls(**fields)


def _check_ratios(ratios: tuple[float, float, float]) -> None:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0:
        raise UserError(f"split ratios must be three non-negative numbers, train > 0: {ratios}")
    if not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise UserError(f"split ratios must sum to 1, got {ratios} (sum {sum(ratios):g})")


def _stratify_key(dataset: ImageDataset, indices: np.ndarray) -> np.ndarray | None:
    """Class per image for stratification (single-label), None where it cannot apply."""
    if dataset.kind != "single":
        return None
    labels = dataset.labels[indices]
    counts = np.bincount(labels, minlength=dataset.num_classes)
    return labels if counts[counts > 0].min() >= 2 else None


def _partition(
    dataset: ImageDataset, ratios: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (single-label) random train/val/test indices."""
    rng_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    everything = np.arange(len(dataset))
    train_ratio, val_ratio, test_ratio = ratios
    if test_ratio > 0:
        rest, test = train_test_split(
            everything,
            test_size=test_ratio,
            random_state=rng_seed,
            stratify=_stratify_key(dataset, everything),
        )
    else:
        rest, test = everything, everything[:0]
    if val_ratio > 0:
        train, val = train_test_split(
            rest,
            test_size=val_ratio / (train_ratio + val_ratio),
            random_state=rng_seed + 1,
            stratify=_stratify_key(dataset, rest),
        )
    else:
        train, val = rest, rest[:0]
    return np.sort(train), np.sort(val), np.sort(test)


def nested_labeled_order(dataset: ImageDataset, train: np.ndarray, seed: int) -> np.ndarray:
    """Order ``train`` so every prefix is a near-stratified labeled set (see module doc)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    shuffled = rng.permutation(train)
    if dataset.kind == "single":
        labels = dataset.labels[shuffled]
        counts = np.bincount(labels, minlength=dataset.num_classes)
        rank = np.zeros(len(shuffled))
        seen = np.zeros(dataset.num_classes, dtype=np.int64)
        for position, label in enumerate(labels):
            rank[position] = seen[label]
            seen[label] += 1
        # Image r of class c sits at (r + u) / n_c: classes interleave in proportion.
        key = (rank + rng.random(len(shuffled))) / counts[labels]
        head_mask = rank == 0
    else:
        labels = dataset.labels[shuffled]
        head_mask = np.zeros(len(shuffled), dtype=bool)
        covered = np.zeros(dataset.num_classes, dtype=bool)
        for klass in np.argsort(labels.sum(axis=0), kind="stable"):  # rarest first
            if covered[klass] or labels[:, klass].sum() == 0:
                continue
            first = int(np.flatnonzero(labels[:, klass] > 0)[0])
            head_mask[first] = True
            covered |= labels[first] > 0
        key = rng.random(len(shuffled))
    head = shuffled[head_mask][np.argsort(key[head_mask], kind="stable")]
    tail = shuffled[~head_mask][np.argsort(key[~head_mask], kind="stable")]
    return np.concatenate([head, tail])


def _labeled_count(spec: float | int, num_train: int) -> int:
    if isinstance(spec, float):
        if not 0 < spec <= 1:
            raise UserError(f"--labeled fraction must lie in (0, 1], got {spec:g}")
        return max(1, int(round(spec * num_train)))
    if spec > num_train:
        raise UserError(
            f"--labeled {spec} asks for more labeled images than the training part holds "
            f"({num_train})"
        )
    return int(spec)


def _missing_classes(dataset: ImageDataset, indices: np.ndarray) -> list[str]:
    counts = dataset.class_counts(indices)
    return [name for name, count in counts.items() if count == 0]


def make_split(
    dataset: ImageDataset,
    seed: int = 0,
    labeled: float | int = 0.2,
    ratios: tuple[float, float, float] = DEFAULT_RATIOS,
) -> Split:
    """Split ``dataset`` into train/val/test and choose the nested labeled subset."""
    ratios = tuple(float(r) for r in ratios)  # type: ignore[assignment]
    _check_ratios(ratios)
    train, val, test = _partition(dataset, ratios, seed)
    count = _labeled_count(labeled, len(train))
    order = nested_labeled_order(dataset, train, seed)
    chosen = np.sort(order[:count])

    absent_in_train = _missing_classes(dataset, train)
    if absent_in_train:
        warnings.warn(
            f"{dataset.name}: classes {', '.join(absent_in_train)} have no image in the "
            "training part, so no labeled example either",
            stacklevel=2,
        )
    missing = sorted(set(_missing_classes(dataset, chosen)) - set(absent_in_train))
    if missing:
        raise UserError(
            f"the labeled set ({count} images, --labeled {labeled_tag(labeled)}) misses "
            f"class(es) {', '.join(missing)}; label more images (at least one per class)"
        )
    ids = np.asarray(dataset.ids)
    return Split(
        dataset=dataset.name,
        fingerprint=dataset.fingerprint(),
        seed=seed,
        ratios=ratios,
        labeled_spec=labeled,
        train=ids[train].tolist(),
        val=ids[val].tolist(),
        test=ids[test].tolist(),
        labeled=ids[chosen].tolist(),
        class_counts={
            part: dataset.class_counts(idx)
            for part, idx in (("train", train), ("val", val), ("test", test), ("labeled", chosen))
        },
    )
