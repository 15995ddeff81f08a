"""Loss terms shared by methods: probability consistency and sample-relation consistency."""

from __future__ import annotations

import torch

from .tasks import Task


def consistency_mse(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, task: Task
) -> torch.Tensor:
    """Squared difference of probabilities, summed over classes, averaged over the batch.

    This is the official SRC-MT/Mean Teacher normalisation (``sum(...) / batch_size``).
    """
    diff = task.probabilities(student_logits) - task.probabilities(teacher_logits)
    return diff.pow(2).sum() / student_logits.shape[0]


def relation_matrix(features: torch.Tensor) -> torch.Tensor:
    """Sample relation matrix: Gram matrix ``A A^T`` of the batch, each row L2-normalised."""
    flat = features.float().reshape(features.shape[0], -1)
    gram = flat @ flat.t()
    return gram / gram.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)


def relation_consistency(
    student_features: torch.Tensor, teacher_features: torch.Tensor
) -> torch.Tensor:
    """SRC-MT's relation loss: ``sum((R_s - R_t)^2) / B`` over the B x B relation matrices."""
    diff = relation_matrix(student_features) - relation_matrix(teacher_features)
    return diff.pow(2).sum() / student_features.shape[0]
