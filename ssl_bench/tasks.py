"""Task types: how logits become probabilities and how labeled loss is computed.

The data set decides the task (single-label: softmax + cross-entropy; multi-label:
sigmoid + binary cross-entropy); methods only ever call :class:`Task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

TaskKind = Literal["single", "multi"]
TASK_KINDS: tuple[str, ...] = ("single", "multi")


@dataclass
class Task:
    """What is being predicted: ``kind`` and ``num_classes`` (plus optional CE weights)."""

    kind: TaskKind
    num_classes: int
    class_weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {TASK_KINDS}, got {self.kind!r}")
        if self.class_weights is not None and self.kind != "single":
            raise ValueError("class weights apply to single-label tasks only")

    @property
    def multilabel(self) -> bool:
        return self.kind == "multi"

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over classes (single-label) or independent sigmoids (multi-label)."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def supervised_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on raw logits (once, unlike the official SRC-MT code) or BCE."""
        logits = logits.float()
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, targets.float())
        weight = None
        if self.class_weights is not None:
            weight = self.class_weights.to(device=logits.device, dtype=logits.dtype)
        return F.cross_entropy(logits, targets.long(), weight=weight)

    def to(self, device: torch.device | str) -> Task:
        weights = None if self.class_weights is None else self.class_weights.to(device)
        return Task(self.kind, self.num_classes, weights)


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (k * count_c)`` as scikit-learn's ``class_weight='balanced'``; 0 for absent."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)
