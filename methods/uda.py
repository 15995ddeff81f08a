"""UDA (Xie et al., Unsupervised Data Augmentation for Consistency Training, NeurIPS
2020): a strongly augmented view is trained towards the sharpened prediction on a weak
view, where that prediction is confident.

For each unlabeled image the detached weak-view prediction, sharpened by ``temperature``
(T = 0.4: ``softmax(logits / T)``; 1 leaves it as it is), is the soft target of its
strong view (RandAugment + Cutout, ``ssl_bench.data.augmentations`` ``strong``) where the
weak view's top probability reaches ``threshold`` (0.8). Loss = supervised CE
(optionally with training-signal annealing) + ``unlabeled_weight * lambda(t)`` x the
masked soft CE averaged over *all* unlabeled rows.

Follows the paper's official code (``google-research/uda``: ``uda_softmax_temp`` 0.4),
and USB up to 0.2 (``semilearn/algorithms/uda``), in sharpening the targets by
``temperature`` 0.4. USB since 0.3.0 (commit 7429eee) no longer sharpens: it passes the
already-softmaxed weak probabilities to its PseudoLabelingHook with ``softmax=False``,
which returns them unchanged, so its ``T`` (0.4 in its ``config/classic_cv/uda`` files)
is never applied; ``temperature 1.0`` (``--temperature 1.0``) reproduces USB's current
code exactly (targets = the weak-view probabilities). The default stays with the paper's
code, whose sharpening is part of the method the paper describes. Further:
- one forward pass over labeled weak, unlabeled weak and unlabeled strong views
  concatenated (USB's ``use_cat``);
- targets ``softmax(weak logits / T)``, detached; confidence mask ``max p >= 0.8`` on
  the unsharpened weak prediction; ``(loss * mask).mean()`` over the unlabeled rows;
- the unlabeled loss is the soft cross-entropy ``-sum q log p_strong`` (USB's ``ce``).
  The paper's KL divergence ``KL(q || p_strong)`` differs from it by the entropy of the
  detached target ``q``, a constant: same gradients, the logged value is larger by
  ``H(q)`` on masked-in rows;
- unlabeled weight 1 and no ramp-up (``defaults``: ``rampup = 0``; lambda(t) is
  ``--consistency-weight``, 1 by default, from the first step);
- training-signal annealing (``tsa``: ``none`` (USB's default), ``linear``, ``log``,
  ``exp``): threshold ``eta_t = alpha_t (1 - 1/K) + 1/K`` over the run's steps; a labeled
  example whose *correct-class* probability exceeds ``eta_t`` is dropped from the
  supervised loss, which averages over the examples kept (at least 1), as the official
  code (``tf.reduce_sum(loss * mask) / max(tf.reduce_sum(mask), 1)``). USB masks on the
  *maximum* probability and averages over all labeled rows; with ``none`` (the default)
  all three agree: the plain supervised loss (class weights included);
- the mask ratio, the pseudo-labels' accuracy (arg-max of the weak view, masked) and the
  fraction of labeled examples kept by TSA are logged.

Deliberate differences:
- unlabeled-to-labeled ratio, optimiser and learning-rate schedule are the run's, shared
  by every method of a comparison (the paper: ratio 7 on CIFAR-10, SGD, cosine decay);
- the EMA teacher (``--ema-decay``) is kept for evaluation only, as USB evaluates its EMA
  model; the run reports the model chosen on validation (``--report-model``);
- the weak view is the SRC-MT perturbation (random affine + flip) rather than flip +
  crop; the strong view is the shared RandAugment + Cutout (the paper's RandAugment
  without Cutout in its CIFAR-10 code, USB's RandAugment with Cutout);
- with TSA and class weights, the kept examples' weighted mean is used;
- several processes (torchrun): the TSA mean's denominator (the examples or entries
  kept, weighted) is counted over every rank's labeled rows, so DDP's gradient average is
  the global batch's mean;
- multi-label tasks (no reference implementation): every (image, class) entry is a
  binary problem: targets ``sigmoid(logit / T)``, masked where ``max(p, 1 - p) >=
  threshold``, BCE with the soft target, averaged over all entries; TSA drops entries
  whose correct-side probability exceeds ``eta_t`` computed with K = 2, and the BCE is
  averaged over the entries kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.core import distributed
from ssl_bench.core.distributed import shard_denominator
from ssl_bench.core.errors import UserError
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.method import (
    EMA_MODEL_DEFAULTS,
    Batch,
    Method,
    MethodInfo,
    Option,
    StepContext,
    StepOutput,
    View,
)
from ssl_bench.method_kit.mixing import TSA_SCHEDULES, tsa_threshold
from ssl_bench.method_kit.pseudo_labels import confidence, hard_labels, masked_mean, target_loss
from ssl_bench.method_kit.search_space import UNLABELED_WEIGHT, Float
from ssl_bench.method_kit.steps import forward_views
from ssl_bench.plugins.registry import register_method


@register_method("uda")
class UDA(Method):
    summary = ("UDA: sharpened confident weak-view predictions train the strong view, "
               "optional training-signal annealing (Xie et al., 2020)")
    needs_teacher = True  # the EMA model, for evaluation only (as USB); not in the loss
    uses_unlabeled = True
    data_parallel = "global"
    views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}
    defaults = {"rampup": 0.0, **EMA_MODEL_DEFAULTS}  # buffers: as USB's EMA model
    search_space = {"threshold": Float(0.5, 0.95), "temperature": Float(0.2, 0.8),
                    "unlabeled_weight": UNLABELED_WEIGHT}
    options = (
        Option("threshold", float, 0.8, "confidence of the weak-view prediction a row needs "
               "to enter the unlabeled loss"),
        Option("temperature", float, 0.4, "sharpening temperature of the soft targets (0.4: "
               "the paper's code and USB <= 0.2; 1: USB >= 0.3, no sharpening)"),
        Option("unlabeled_weight", float, 1.0, "weight of the unlabeled loss (times lambda)"),
        Option("tsa", str, "none", "training-signal annealing schedule of the supervised "
               "loss", choices=TSA_SCHEDULES),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"option 'threshold' of method 'uda' must be in [0, 1]; "
                            f"got {self.threshold}")
        if not self.temperature > 0:
            raise UserError(f"option 'temperature' of method 'uda' must be > 0; "
                            f"got {self.temperature}")
        if self.unlabeled_weight < 0:
            raise UserError("option 'unlabeled_weight' of method 'uda' must be >= 0; "
                            f"got {self.unlabeled_weight}")
        self.total_steps = 1

    def setup(self, info: MethodInfo) -> None:
        self.total_steps = info.total_steps

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        logits_labeled, logits_weak, logits_strong = forward_views(batch, ctx)
        supervised, kept = self.supervised_loss(logits_labeled, batch.targets, ctx.task,
                                                ctx.step)
        unsupervised, labels, mask = self.unlabeled_loss(logits_weak, logits_strong, ctx.task)
        total = supervised + self.unlabeled_weight * ctx.consistency_weight * unsupervised
        return StepOutput(
            losses={"total": total, "supervised": supervised, "unsupervised": unsupervised},
            logs={"mask_ratio": mask.float().mean(), "tsa_kept": kept},
            pseudo_labels=(labels, mask),
        )

    def supervised_loss(self, logits: torch.Tensor, targets: torch.Tensor, task: Task,
                        step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The labeled loss with TSA; returns (loss, fraction of examples/entries kept)."""
        if self.tsa == "none":
            return task.supervised_loss(logits, targets), torch.ones((), device=logits.device)
        classes = 2 if task.multilabel else task.num_classes
        eta = tsa_threshold(self.tsa, step, self.total_steps, classes)
        probs = task.probabilities(logits.detach())
        if task.multilabel:
            correct = torch.where(targets.float() >= 0.5, probs, 1.0 - probs)
            keep = (correct <= eta).float()
            loss = target_loss(logits, targets, task)
            return (loss * keep).sum() / shard_denominator(keep.sum()), keep.mean()
        correct = probs.gather(1, targets.long().view(-1, 1)).squeeze(1)
        keep = correct <= eta
        if distributed.current().distributed:  # the global kept examples' (weighted) mean
            weights = keep.float() if task.class_weights is None else (
                keep * task.class_weights.to(logits.device)[targets.long()])
            losses = F.cross_entropy(logits.float(), targets.long(), reduction="none")
            return ((losses * weights).sum() / shard_denominator(weights.sum()),
                    keep.float().mean())
        if not keep.any():
            return logits.sum() * 0.0, keep.float().mean()
        return task.supervised_loss(logits[keep], targets[keep]), keep.float().mean()

    def unlabeled_loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                       task: Task) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked soft CE of the strong view against sharpened weak-view targets (per
        entry for multi-label); returns (loss, arg-max labels, mask)."""
        probs = task.probabilities(logits_weak)
        mask = confidence(probs, task) >= self.threshold
        # softmax(logits / T) (sigmoid per entry): sharpen(p, T) without the power's
        # underflow
        targets = task.probabilities(logits_weak.detach().float() / self.temperature)
        loss = masked_mean(target_loss(logits_strong, targets, task), mask)
        return loss, hard_labels(probs, task), mask
