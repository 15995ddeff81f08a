"""Loss terms shared by methods: probability consistency and sample-relation consistency."""

from __future__ import annotations

import torch

from ssl_bench.data.tasks import Task


def consistency_mse(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, task: Task
) -> torch.Tensor:
    """Squared difference of probabilities, summed over classes, divided by the batch size.

    ``sum(...) / batch_size`` is the official SRC-MT code's normalisation (its
    ``/ N_CLASSES`` is commented out); the original Mean Teacher code also divides by the
    number of classes, so this term is K times Mean Teacher's. With
    ``task.consistency_weights`` each class's squared difference is multiplied by its
    weight first, as SRC-MT's ``softmax_mse_loss`` does with ``CLASS_WEIGHT``.
    """
    diff = task.probabilities(student_logits) - task.probabilities(teacher_logits)
    squared = diff.pow(2)
    if task.consistency_weights is not None:
        squared = squared * task.consistency_weights.to(squared.device, squared.dtype)
    return squared.sum() / student_logits.shape[0]


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
