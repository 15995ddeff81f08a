"""Pieces of the mixing and signal-annealing methods (MixMatch, UDA), for both task kinds.

* :func:`frozen_batchnorm_stats`: a forward pass that uses batch statistics but leaves
  the running statistics of every BatchNorm layer as they were (USB's
  ``bn_controller.freeze_bn`` / ``unfreeze_bn``; the official MixMatch code drops the
  update ops of its label-guessing pass the same way);
* :func:`targets_as_probabilities`: labeled targets as distributions (one-hot rows) or
  per-class probabilities (multi-hot), so they can be mixed with guessed labels;
* :func:`soft_supervised_loss`: cross-entropy against mixed (soft) targets, with the
  task's class weights where it has them;
* :func:`probability_mse`: MixMatch's unlabeled term, the squared difference of
  probabilities and targets averaged over every entry;
* :func:`tsa_threshold`: UDA's training-signal-annealing threshold;
* :func:`mixup`: MixMatch's MixUp of images and targets with random partners.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ssl_bench.core import distributed
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.pseudo_labels import target_loss

TSA_SCHEDULES = ("none", "linear", "log", "exp")


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Inside, BatchNorm layers normalise with batch statistics (train mode) as usual, but
    their running mean/variance and batch counters are restored on exit."""
    saved = [(module, {name: buffer.clone() for name, buffer in module.named_buffers(
        recurse=False) if buffer is not None})
        for module in model.modules() if isinstance(module, _BatchNorm)]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers in saved:
                for name, value in buffers.items():
                    getattr(module, name).copy_(value)


def targets_as_probabilities(targets: torch.Tensor, task: Task) -> torch.Tensor:
    """Class indices -> one-hot float rows (single-label); 0/1 rows -> floats (multi)."""
    if task.multilabel:
        return targets.float()
    return F.one_hot(targets.long(), task.num_classes).float()


def soft_supervised_loss(logits: torch.Tensor, targets: torch.Tensor,
                         task: Task) -> torch.Tensor:
    """Cross-entropy against soft targets, reduced to a scalar.

    Multi-label: BCE with soft targets averaged over entries (as ``Task.supervised_loss``).
    Single-label: soft CE averaged over rows; with ``task.class_weights`` each row weighs
    ``sum_c w_c t_c`` and the mean is a weighted mean, which for one-hot targets is exactly
    ``F.cross_entropy(weight=w)``, the loss the other methods use on labeled rows.
    """
    loss = target_loss(logits, targets, task)
    if task.multilabel or task.class_weights is None:
        return loss.mean()
    weights = targets.float() @ task.class_weights.to(targets.device, torch.float32)
    # several processes: the weighted mean of the global batch (see ssl_bench.core.distributed)
    denominator = distributed.mean_over_ranks(weights.sum()).clamp_min(1e-12)
    return (loss * weights).sum() / denominator


def probability_mse(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> torch.Tensor:
    """``mean((p - q)^2)`` over rows *and* classes: MixMatch's ``L_U`` (the paper's
    ``1 / (L |U'|)``; the official code's and USB's ``reduce_mean`` / ``mse_loss``)."""
    return (task.probabilities(logits) - targets.float()).pow(2).mean()


def tsa_threshold(schedule: str, step: int, total_steps: int, num_classes: int) -> float:
    """UDA's training-signal-annealing threshold ``eta_t`` at ``step`` of ``total_steps``.

    ``alpha_t``: ``t/T`` (linear), ``1 - exp(-5 t/T)`` (log), ``exp(5 (t/T - 1))`` (exp);
    ``eta_t = alpha_t (1 - 1/K) + 1/K``. ``none`` gives 1: nothing is dropped.
    """
    if schedule == "none":
        return 1.0
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if schedule == "linear":
        alpha = progress
    elif schedule == "log":
        alpha = 1.0 - math.exp(-5.0 * progress)
    elif schedule == "exp":
        alpha = math.exp(5.0 * (progress - 1.0))
    else:
        raise ValueError(f"unknown TSA schedule {schedule!r}; one of {', '.join(TSA_SCHEDULES)}")
    return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


def mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MixMatch's MixUp: each row mixed with a random partner, ``lam' = max(lam, 1 - lam)``
    so the result stays closer to its own row; ``lam ~ Beta(alpha, alpha)`` per row.

    ``targets`` are distributions (single-label) or per-class probabilities (multi-hot
    multi-label) and are mixed with the same weights. Draws come from torch's global RNG
    (seeded by the run, saved in checkpoints). Returns (inputs, targets, lam).
    """
    size = inputs.shape[0]
    alpha_t = torch.tensor(float(alpha))
    lam = torch.distributions.Beta(alpha_t, alpha_t).sample((size,))
    lam = torch.maximum(lam, 1.0 - lam).to(inputs.device, inputs.dtype)
    partner = torch.randperm(size).to(inputs.device)
    shape = (size,) + (1,) * (inputs.ndim - 1)
    mixed = lam.view(shape) * inputs + (1 - lam.view(shape)) * inputs[partner]
    target_shape = (size,) + (1,) * (targets.ndim - 1)
    lam_t = lam.to(targets.dtype).view(target_shape)
    mixed_targets = lam_t * targets + (1 - lam_t) * targets[partner]
    return mixed, mixed_targets, lam
