"""The split record (its parts, labeled subset and provenance, and the names they use)
and the checks of what defines one: ratios and labeled specs."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.1, 0.2)
#: Version of the split file layout written by :func:`save_split`.
FORMAT_VERSION = 1
PART_NAMES: tuple[str, str, str] = ("train", "val", "test")
EVAL_PARTS: tuple[str, str] = ("val", "test")
#: Origins of an evaluation part in ``Split.eval_parts``.
EVAL_ORIGINS: tuple[str, str, str] = ("official", "carved", "none")


def _default_eval_parts() -> dict[str, str]:
    return {"val": "carved", "test": "carved"}


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
    #: Whether groups (patients/lesions) were kept whole, i.e. ``grouped`` was asked for
    #: *and* the data set has groups.
    grouped: bool = False
    #: ``{"val": "official" | "carved" | "none", "test": ...}``.
    eval_parts: dict[str, str] = field(default_factory=_default_eval_parts)
    #: Distinct groups per part (train, val, test, labeled); empty when not grouped.
    group_counts: dict[str, int] = field(default_factory=dict)
    #: Images nobody labeled (``ImageDataset.unlabeled_only``): unlabeled training images
    #: only, outside train/val/test so that ``--labeled`` counts annotated images alone.
    unlabeled_only: list[str] = field(default_factory=list)
    #: The data set's card (source, licence, citation, task, classes, splits).
    card: dict[str, str] = field(default_factory=dict)

    @property
    def unlabeled(self) -> list[str]:
        """The unlabeled training pool: train images not chosen to be labeled, then the
        images nobody labeled."""
        chosen = set(self.labeled)
        return [i for i in self.train if i not in chosen] + list(self.unlabeled_only)

    @property
    def labeled_kind(self) -> str:
        return "fraction" if isinstance(self.labeled_spec, float) else "count"

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "labeled": len(self.labeled),
            "unlabeled": len(self.train) - len(self.labeled) + len(self.unlabeled_only),
            "unlabeled_only": len(self.unlabeled_only),
        }

    @property
    def digest(self) -> str:
        """A short hash of the ids of every part: equal digests, identical splits."""
        parts = [self.train, self.val, self.test, self.labeled]
        if self.unlabeled_only:  # (absent: the digest of earlier versions)
            parts.append(self.unlabeled_only)
        ids = json.dumps(parts)
        return hashlib.sha256(ids.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The split file's content (ids last, so the header reads first)."""
        return {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "seed": self.seed,
            "ratios": list(self.ratios),
            "grouped": self.grouped,
            "labeled_spec": self.labeled_spec,
            "labeled_kind": self.labeled_kind,
            "eval_parts": dict(self.eval_parts),
            "sizes": self.sizes(),
            "class_counts": {part: dict(c) for part, c in self.class_counts.items()},
            "group_counts": dict(self.group_counts),
            "card": dict(self.card),
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "labeled": list(self.labeled),
            "unlabeled_only": list(self.unlabeled_only),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Split:
        """Inverse of :meth:`to_dict`; keys added in later versions get their defaults.

        Structure is not validated here: files come in through :func:`load_split`.
        """
        spec = record["labeled_spec"]
        kind = record.get("labeled_kind")
        if kind == "fraction" or (kind is None and isinstance(spec, float)):
            spec = float(spec)
        else:
            spec = int(spec)
        return cls(
            dataset=record["dataset"],
            fingerprint=record["fingerprint"],
            seed=int(record["seed"]),
            ratios=tuple(float(r) for r in record["ratios"]),  # type: ignore[arg-type]
            labeled_spec=spec,
            train=list(record["train"]),
            val=list(record["val"]),
            test=list(record["test"]),
            labeled=list(record["labeled"]),
            class_counts={p: dict(c) for p, c in record.get("class_counts", {}).items()},
            grouped=bool(record.get("grouped", False)),
            eval_parts=dict(record.get("eval_parts", _default_eval_parts())),
            group_counts=dict(record.get("group_counts", {})),
            unlabeled_only=list(record.get("unlabeled_only", [])),
            card=dict(record.get("card", {})),
        )


# ---------------------------------------------------------------------------------------
# checks


def check_ratios(ratios: Any) -> tuple[float, float, float]:
    """Three finite non-negative numbers summing to 1 with train > 0; returned as floats."""
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise UserError(
            f"split ratios must be three numbers (train, val, test): {ratios}"
        ) from None
    if (
        len(values) != 3
        or not all(math.isfinite(r) for r in values)
        or any(r < 0 for r in values)
        or values[0] <= 0
    ):
        raise UserError(f"split ratios must be three non-negative numbers, train > 0: {ratios}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise UserError(f"split ratios must sum to 1, got {ratios} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def check_labeled(spec: Any) -> float | int:
    if isinstance(spec, bool) or not isinstance(spec, (int, float, np.integer, np.floating)):
        raise UserError(f"--labeled must be a fraction in (0, 1] or a count, got {spec!r}")
    if isinstance(spec, (float, np.floating)):
        if not (math.isfinite(spec) and 0 < spec <= 1):
            raise UserError(f"--labeled fraction must lie in (0, 1], got {spec:g}")
        return float(spec)
    if spec < 1:
        raise UserError(f"--labeled count must be at least 1, got {spec}")
    return int(spec)


def labeled_count(spec: float | int, num_train: int) -> int:
    if isinstance(spec, float):
        return max(1, int(round(spec * num_train)))
    if spec > num_train:
        raise UserError(
            f"--labeled {spec} asks for more labeled images than the training part holds "
            f"({num_train})"
        )
    return int(spec)


def missing_classes(dataset: ImageDataset, indices: np.ndarray) -> list[str]:
    counts = dataset.class_counts(indices)
    return [name for name, count in counts.items() if count == 0]
