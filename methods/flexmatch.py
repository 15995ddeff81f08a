"""FlexMatch (Zhang et al., NeurIPS 2021): FixMatch with curriculum pseudo-labelling,
per-class thresholds scaled by how well each class is learned.

Every unlabeled image keeps a *learning status*: the class its weak view was last
predicted with confidence >= ``threshold`` (tau, 0.95), or -1 (unused). The learning
effect of class c is ``sigma_c`` = number of images whose status is c; normalised with
threshold warm-up, ``beta_c = sigma_c / max(max_c' sigma_c', unused)``; the threshold of
class c is ``tau * M(beta_c)`` with the convex mapping ``M(x) = x / (2 - x)``. Loss =
supervised CE + ``unlabeled_weight * lambda(t)`` x CE of the strong view against the
weak-view hard pseudo-label, masked by ``p_max >= tau M(beta_label)``, averaged over all
unlabeled rows.

Follows the paper and USB (``semilearn/algorithms/flexmatch``, FlexMatchThresholdingHook,
``config/classic_cv/flexmatch``): p_cutoff 0.95, hard labels, unlabeled weight 1,
``thresh_warmup`` true (unused images count in the normaliser, so every threshold starts
at 0 and rises as the pool is labelled), no ramp-up (``defaults``: ``rampup = 0``); the
mask of a step uses the status *before* the step's update, then images with
``p_max >= tau`` set their status (others keep theirs), as USB; one forward pass over
labeled weak, unlabeled weak and strong views; the status (``status`` buffer over the
unlabeled pool, sized in ``setup``) is checkpointed, so ``--resume`` restores it.

Deliberate differences (as FixMatch, ``methods/fixmatch.py``): the unlabeled ratio is the
run's shared batch (CPU preset 12 labeled + 36 unlabeled, mu = 3, not 7); the optimiser
and schedule are the run's; the weak view is the SRC-MT affine + flip and the strong view
``strong`` (RandAugment + Cutout); the EMA teacher is kept for evaluation only. USB skips
the normaliser update in the corner case where one class holds the whole pool; here the
formula is applied as written.

Several processes (torchrun): the status is updated from every rank's unlabeled rows
(gathered, as USB's ``concat_all_gather``), so every rank holds the same table and the
same thresholds.

Multi-label (no reference has it): each class is its own two-class FlexMatch, so the
status is per (image, class) entry: -1, 0 (confident negative) or 1 (confident positive),
with confidence ``max(p, 1 - p)``; the learning effects and thresholds are per class and
per outcome, normalised by ``max(sigma_neg, sigma_pos, unused)`` of that class. The
status is an ``int8`` table (unlabeled pool x classes: 1.4 MB for 100k images x 14).
"""

from __future__ import annotations

import torch

from ssl_bench.core.distributed import gather_rows
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
from ssl_bench.method_kit.pseudo_labels import masked_mean, target_loss
from ssl_bench.method_kit.search_space import THRESHOLD, UNLABELED_WEIGHT
from ssl_bench.method_kit.steps import forward_weak_strong, step_output
from ssl_bench.method_kit.thresholds import (
    grouped_labels,
    groups,
    pick,
    pseudo_targets,
    ungroup,
)
from ssl_bench.plugins.registry import register_method


@register_method("flexmatch", aliases=("flex-match",))
class FlexMatch(Method):
    summary = ("FlexMatch: curriculum pseudo-labelling, per-class thresholds from learning "
               "status (Zhang et al., 2021)")
    needs_teacher = True  # the EMA model, evaluated; not in the loss
    uses_unlabeled = True
    data_parallel = "global"
    views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}
    defaults = {"rampup": 0.0, **EMA_MODEL_DEFAULTS}  # buffers: as USB's EMA model
    search_space = {"threshold": THRESHOLD, "unlabeled_weight": UNLABELED_WEIGHT}
    options = (
        Option("threshold", float, 0.95, "tau: the upper threshold, scaled per class"),
        Option("unlabeled_weight", float, 1.0, "weight of the unlabeled loss (times lambda)"),
        Option("threshold_warmup", bool, True, "count unused images in the normaliser"),
    )

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.register_buffer("status", torch.full((0, 1), -1, dtype=torch.int8))

    def setup(self, info: MethodInfo) -> None:
        num_groups = groups(Task(info.kind, info.num_classes))[0]
        self.status = torch.full((info.num_unlabeled, num_groups), -1, dtype=torch.int8,
                                 device=info.device)

    def class_thresholds(self, task: Task) -> torch.Tensor:
        """``tau * M(beta)`` per group and outcome (``G x C``) from the learning status."""
        num_groups, outcomes = groups(task)
        counts = torch.zeros(num_groups, outcomes + 1, device=self.status.device)
        ones = torch.ones(self.status.shape[::-1], device=self.status.device)
        counts.scatter_add_(1, self.status.T.long() + 1, ones)
        sigma, unused = counts[:, 1:], counts[:, :1]
        peak = sigma.max(dim=1, keepdim=True).values
        norm = torch.maximum(peak, unused) if self.threshold_warmup else peak
        beta = sigma / norm.clamp_min(1.0)
        return self.threshold * beta / (2.0 - beta)

    def unlabeled_loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                       index: torch.Tensor, task: Task
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked CE/BCE with class-wise thresholds, then the status update.

        Returns the loss, pseudo-labels, mask and per-entry thresholds (task shapes).
        """
        conf, labels = grouped_labels(task.probabilities(logits_weak), task)
        thresholds = pick(self.class_thresholds(task), labels)
        mask = conf >= thresholds
        with torch.no_grad():  # every rank's rows update the status (see docstring)
            selected, index = conf >= self.threshold, index.to(self.status.device)
            selected, index, chosen = (gather_rows(t) for t in (selected, index, labels))
            old = self.status[index]
            self.status[index] = torch.where(selected, chosen.to(old.dtype), old)
        mask = ungroup(mask, task)
        loss = masked_mean(target_loss(logits_strong, pseudo_targets(labels, task), task), mask)
        return loss, pseudo_targets(labels, task), mask, ungroup(thresholds, task)

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        supervised, weak, strong = forward_weak_strong(batch, ctx)
        loss, labels, mask, thresholds = self.unlabeled_loss(
            weak, strong, batch.unlabeled_index, ctx.task)
        return step_output(supervised, {"unsupervised": loss},
                           {"unsupervised": self.unlabeled_weight * ctx.consistency_weight},
                           labels, mask, thresholds)
