"""Pseudo-label pieces the pseudo-labelling methods share, for both task kinds.

Single-label tasks work on softmax probabilities over classes (``B x K``); multi-label
tasks on independent per-class sigmoid probabilities, where every (image, class) entry
is its own binary problem: confidence, masks, sharpening and targets are per entry.
Methods import these instead of repeating them (FixMatch, UDA, pseudo-label, MixMatch,
FlexMatch, FreeMatch, SoftMatch, SimMatch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.data.tasks import Task


def confidence(probs: torch.Tensor, task: Task) -> torch.Tensor:
    """How sure a prediction is: max probability per row (single-label, ``B``), or per
    entry ``max(p, 1 - p)`` (multi-label, ``B x K``)."""
    if task.multilabel:
        return torch.maximum(probs, 1.0 - probs)
    return probs.max(dim=1).values


def hard_labels(probs: torch.Tensor, task: Task) -> torch.Tensor:
    """Arg-max class per row (single-label, long ``B``) or 0/1 per entry (multi-label)."""
    if task.multilabel:
        return (probs >= 0.5).float()
    return probs.argmax(dim=1)


def sharpen(probs: torch.Tensor, temperature: float, task: Task) -> torch.Tensor:
    """``p^(1/T)`` renormalised: over classes (single-label) or over {p, 1 - p} per entry
    (multi-label; that is ``sigmoid(logit(p) / T)``). ``T = 1`` returns ``probs``."""
    if temperature == 1.0:
        return probs
    power = 1.0 / temperature
    if task.multilabel:
        positive, negative = probs.pow(power), (1.0 - probs).pow(power)
        return positive / (positive + negative).clamp_min(1e-12)
    sharpened = probs.pow(power)
    return sharpened / sharpened.sum(dim=1, keepdim=True).clamp_min(1e-12)


def target_loss(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> torch.Tensor:
    """Cross-entropy of ``logits`` against hard or soft targets, *unreduced*: per row
    (single-label; class indices or a distribution per row) or per entry (multi-label;
    BCE with 0/1 or soft targets)."""
    logits = logits.float()
    if task.multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")
    if targets.dtype in (torch.long, torch.int64, torch.int32):
        return F.cross_entropy(logits, targets, reduction="none")
    return -(targets.float() * F.log_softmax(logits, dim=1)).sum(dim=1)


def masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(loss * mask).mean()`` over *all* rows (entries): unconfident ones count as zero,
    as FixMatch/USB normalise. ``mask`` may be 0/1 or a soft weight."""
    return (loss * mask.to(loss.dtype)).mean()


def distribution_alignment(probs: torch.Tensor, model_mean: torch.Tensor,
                           target_mean: torch.Tensor, task: Task) -> torch.Tensor:
    """ReMixMatch's distribution alignment: ``p * target / model``, renormalised.

    ``model_mean`` is a running mean of the model's predictions on unlabeled data,
    ``target_mean`` the class prior (uniform, or the labeled class frequencies). For
    multi-label tasks each class's positive probability is aligned on its own (odds
    ratio), keeping every entry a probability.
    """
    ratio = target_mean / model_mean.clamp_min(1e-6)
    if task.multilabel:
        negative = (1.0 - target_mean) / (1.0 - model_mean).clamp_min(1e-6)
        positive = probs * ratio
        return positive / (positive + (1.0 - probs) * negative).clamp_min(1e-12)
    aligned = probs * ratio
    return aligned / aligned.sum(dim=1, keepdim=True).clamp_min(1e-12)
