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

from ssl_bench.core import distributed

TaskKind = Literal["single", "multi"]
TASK_KINDS: tuple[str, ...] = ("single", "multi")


@dataclass
class Task:
    """What is being predicted: ``kind`` and ``num_classes``, plus optional class weights.

    ``class_weights`` weight the cross-entropy (a weighted mean, so their scale cancels);
    ``consistency_weights`` multiply each class's squared probability difference in
    :func:`ssl_bench.method_kit.losses.consistency_mse` (their scale matters), as the official
    SRC-MT code's ``softmax_mse_loss`` does.
    """

    kind: TaskKind
    num_classes: int
    class_weights: torch.Tensor | None = None
    consistency_weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {TASK_KINDS}, got {self.kind!r}")
        weighted = self.class_weights is not None or self.consistency_weights is not None
        if weighted and self.kind != "single":
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
        if self.class_weights is None:
            return F.cross_entropy(logits, targets.long())
        weight = self.class_weights.to(device=logits.device, dtype=logits.dtype)
        if not distributed.current().distributed:
            return F.cross_entropy(logits, targets.long(), weight=weight)
        # The weighted mean sum(w_i l_i) / sum(w_i) couples the rows through its
        # denominator: on several processes it is the whole batch's (mean over ranks of
        # each shard's sum), so DDP's gradient average is the global batch's loss.
        losses = F.cross_entropy(logits, targets.long(), weight=weight, reduction="none")
        denominator = distributed.mean_over_ranks(weight[targets.long()].sum())
        return losses.sum() / denominator

    def to(self, device: torch.device | str) -> Task:
        def move(weights: torch.Tensor | None) -> torch.Tensor | None:
            return None if weights is None else weights.to(device)

        return Task(self.kind, self.num_classes, move(self.class_weights),
                    move(self.consistency_weights))


def class_weights(labels: np.ndarray, num_classes: int, scheme: str) -> torch.Tensor | None:
    """Per-class weights from the class counts ``n_c`` of ``labels`` (0 for absent classes).

    ``balanced``: ``N / (K n_c)`` as scikit-learn's ``class_weight='balanced'`` (K: classes
    present); ``inverse_frequency``: ``N / n_c``, the scale of the official SRC-MT code's
    ``10000 / n_c`` (whose counts, over all 10,015 HAM10000 images, sum to about 10,000);
    ``none``: no weights.
    """
    if scheme == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / counts[present]
    if scheme == "balanced":
        weights /= present.sum()
    elif scheme != "inverse_frequency":
        raise ValueError(f"unknown class weighting {scheme!r}")
    return torch.tensor(weights, dtype=torch.float32)
