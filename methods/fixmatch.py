"""FixMatch (Sohn et al., NeurIPS 2020): confident weak-view pseudo-labels teach the
strong view.

For each unlabeled image, the prediction on its weakly augmented view becomes a
pseudo-label where its top probability reaches ``threshold`` (0.95); the strongly
augmented view (RandAugment + Cutout, ``ssl_bench.data.augmentations`` ``strong``) is trained
towards it with cross-entropy. Loss = supervised CE on the labeled rows +
``unlabeled_weight * lambda(t)`` x the masked CE averaged over *all* unlabeled rows.

Follows the paper and USB (``semilearn/algorithms/fixmatch``):
- one forward pass over labeled weak, unlabeled weak and unlabeled strong views
  concatenated (batch-norm statistics of all three, as USB);
- pseudo-labels from the detached weak-view prediction of the model being trained;
  hard labels by default, or (``hard_label false``) ``softmax(logits / temperature)``;
- fixed confidence threshold, mask = max probability >= threshold; the unlabeled loss
  is ``(ce * mask).mean()`` over the unlabeled rows; no ramp-up (``defaults``:
  ``rampup = 0``, so lambda(t) is ``--consistency-weight``, 1 by default, at once);
- the mask ratio and the pseudo-labels' accuracy (against the hidden labels, measured
  by the engine) are logged in the history.

Deliberate differences:
- unlabeled-to-labeled ratio: the run's shared batch (CPU preset: 12 labeled + 36
  unlabeled, mu = 3) instead of the paper's mu = 7, so every method of a comparison sees
  the same images per step;
- SGD with momentum 0.9, lr 0.03 and a cosine decay in the paper; here the run's
  optimiser and schedule, shared by every method of a comparison (set them with
  ``--optimizer sgd --lr 0.03 --lr-schedule cosine`` to follow the paper);
- the EMA teacher (decay ``--ema-decay``, 0.99 by default; the paper's 0.999) is kept
  for evaluation only, as the paper evaluates the EMA model; the run reports the model
  chosen on validation (``--report-model``);
- the weak view is the SRC-MT perturbation (random affine + flip) rather than flip +
  crop; the strong view adds RandAugment + Cutout to a flip + translate (see
  ``ssl_bench.data.augmentations``);
- multi-label tasks (no reference implementation has them): per class, sigmoid
  pseudo-labels, *positive* where p >= ``threshold`` and *negative* where p <=
  ``negative_threshold`` (default ``1 - threshold``), binary cross-entropy on those
  confident class entries only, summed and divided by the number of entries
  (unlabeled rows x classes): the per-class analogue of the single-label mean.
"""

from __future__ import annotations

import torch

from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.method import (
    EMA_MODEL_DEFAULTS,
    Batch,
    Method,
    Option,
    StepContext,
    StepOutput,
    View,
)
from ssl_bench.method_kit.pseudo_labels import confidence, hard_labels, masked_mean, target_loss
from ssl_bench.method_kit.search_space import THRESHOLD, UNLABELED_WEIGHT
from ssl_bench.method_kit.steps import forward_weak_strong
from ssl_bench.plugins.registry import register_method


@register_method("fixmatch")
class FixMatch(Method):
    summary = ("FixMatch: confident weak-view pseudo-labels train the strong view "
               "(Sohn et al., 2020)")
    data_parallel = "global"
    needs_teacher = True  # the EMA model, evaluated (the paper reports it); not in the loss
    uses_unlabeled = True
    views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}
    defaults = {"rampup": 0.0, **EMA_MODEL_DEFAULTS}  # buffers: as USB's EMA model
    search_space = {"threshold": THRESHOLD, "unlabeled_weight": UNLABELED_WEIGHT}
    options = (
        Option("threshold", float, 0.95, "confidence a weak-view prediction needs to become "
               "a pseudo-label"),
        Option("unlabeled_weight", float, 1.0, "weight of the unlabeled loss (times lambda)"),
        Option("hard_label", bool, True, "one-hot pseudo-labels (false: soft, sharpened by "
               "temperature)"),
        Option("temperature", float, 1.0, "sharpening temperature of soft pseudo-labels"),
        Option("negative_threshold", float, -1.0, "multi-label: a class is a confident "
               "negative where p <= this (default -1: 1 - threshold)"),
    )

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        supervised, logits_weak, logits_strong = forward_weak_strong(batch, ctx)
        if ctx.task.multilabel:
            unsupervised, labels, mask = self.multilabel_loss(logits_weak, logits_strong)
        else:
            unsupervised, labels, mask = self.single_label_loss(logits_weak, logits_strong)
        weight = self.unlabeled_weight * ctx.consistency_weight
        total = supervised + weight * unsupervised
        return StepOutput(
            losses={"total": total, "supervised": supervised, "unsupervised": unsupervised},
            logs={"mask_ratio": mask.float().mean()},
            pseudo_labels=(labels, mask),
        )

    def single_label_loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked CE of the strong view against weak-view pseudo-labels; labels, mask."""
        return self._loss(logits_weak, logits_strong, SINGLE, self.threshold)

    def multilabel_loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-class masked BCE on confident positives/negatives; labels, mask."""
        return self._loss(logits_weak, logits_strong, MULTI, self.threshold)

    def _loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor, task: Task,
              threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs = task.probabilities(logits_weak)
        labels = hard_labels(probs, task)
        if task.multilabel:
            negative = (self.negative_threshold if self.negative_threshold >= 0
                        else 1.0 - threshold)
            mask = (probs >= threshold) | (probs <= negative)
        else:
            mask = confidence(probs, task) >= threshold
        targets = labels if self.hard_label else task.probabilities(
            logits_weak.float() / self.temperature)
        return masked_mean(target_loss(logits_strong, targets, task), mask), labels, mask


SINGLE, MULTI = Task("single", 2), Task("multi", 2)  # kinds only: losses need no weights
