"""SoftMatch (Chen et al., ICLR 2023): truncated-Gaussian sample weights instead of a
hard confidence threshold, with uniform alignment.

The weak-view probabilities are aligned (``distribution_alignment``) towards a uniform
class distribution by an EMA of the model's mean prediction on unlabeled data; the
alignment serves the *weights* only. The mean ``mu_t`` and (unbiased) variance
``sigma_t^2`` of the aligned max-confidence are EMAs (momentum ``ema_momentum``, 0.999;
start 1/K and 1) over unlabeled batches, and each image is weighted by
``exp(-max(mu_t - p_max, 0)^2 / (2 sigma_t^2 / n_sigma^2))`` (1 above the mean).
Loss = supervised CE + ``unlabeled_weight * lambda(t)`` x the weighted CE of the strong
view against the hard pseudo-label ``argmax`` of the *unaligned* weak-view prediction,
averaged over all unlabeled rows.

Follows the paper and USB (``semilearn/algorithms/softmatch``, SoftMatchWeightingHook,
DistAlignEMAHook, ``config/classic_cv/softmatch``): n_sigma 2, ``ema_p`` 0.999, hard
labels, ``dist_align`` + ``dist_uniform`` true, ``per_class`` false, unlabeled weight 1;
the pseudo-label is taken from the weak-view logits, not the aligned probabilities
(USB passes ``logits=logits_x_ulb_w`` to its PseudoLabelingHook with the comment that
uniform alignment in SoftMatch does not generate the pseudo-labels; the paper uses
UA(p) inside the weighting function only); the statistics are updated with the batch
*before* weighting it (unbiased variance); the model's mean prediction starts at the
first batch's mean (a ``seen`` flag, so resuming is exact); no ramp-up (``defaults``:
``rampup = 0``); statistics are buffers, checkpointed.

``label_from aligned`` takes the pseudo-label from the aligned probabilities instead:
what ssl-bench did before issue 26 (the ``results/`` runs committed before it), kept so
those runs can be reproduced. It is not SoftMatch: on imbalanced data (ISIC is 67% NV)
alignment moves confident rows' labels towards rare classes (10% of rows relabelled with
unbiased logits, 21-25% with predictions leaning towards some classes, measured against
USB).

Deliberate differences: the alignment uses the shared
``ssl_bench.method_kit.pseudo_labels.distribution_alignment`` (``p * target / max(model, 1e-6)``;
USB adds 1e-6 to both); a batch with a single unlabeled row adds variance 0 (USB: NaN,
which would poison the EMA); as FixMatch, the run's shared batch (CPU preset 12 labeled
+ 36 unlabeled), optimiser and schedule, the SRC-MT affine + flip weak view and the
``strong`` view, and the EMA teacher for evaluation only.

Multi-label (no reference has it): each class is its own two-class SoftMatch: per-class
EMA mean/variance of the entry confidence ``max(p, 1 - p)`` (starting at 1/2 and 1) and
per-entry weights against the unaligned entry labels ``p >= 1/2``, BCE summed over
entries divided by their number. The alignment
target of a binary class cannot sensibly be uniform (p = 1/2 would inflate rare
findings), so ``alignment auto`` aligns each class to its positive rate among the
labeled images (clamped to [0.001, 0.999]); ``alignment uniform`` forces 1/2.
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
from ssl_bench.method_kit.pseudo_labels import distribution_alignment, masked_mean, target_loss
from ssl_bench.method_kit.search_space import UNLABELED_WEIGHT, Float
from ssl_bench.method_kit.steps import forward_weak_strong, step_output
from ssl_bench.method_kit.thresholds import (
    ema_,
    grouped_labels,
    groups,
    pseudo_targets,
    ungroup,
)
from ssl_bench.plugins.registry import register_method


@register_method("softmatch", aliases=("soft-match",))
class SoftMatch(Method):
    summary = ("SoftMatch: truncated-Gaussian pseudo-label weights with uniform alignment "
               "(Chen et al., 2023)")
    needs_teacher = True  # the EMA model, evaluated; not in the loss
    uses_unlabeled = True
    data_parallel = "global"
    views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}
    defaults = {"rampup": 0.0, **EMA_MODEL_DEFAULTS}  # buffers: as USB's EMA model
    search_space = {"n_sigma": Float(1.0, 3.0), "unlabeled_weight": UNLABELED_WEIGHT}
    options = (
        Option("n_sigma", float, 2.0, "width of the Gaussian: variance / n_sigma^2"),
        Option("ema_momentum", float, 0.999, "momentum of the confidence statistics"),
        Option("unlabeled_weight", float, 1.0, "weight of the unlabeled loss (times lambda)"),
        Option("alignment", str, "auto", "distribution alignment target (auto: uniform, "
               "multi-label: labeled positive rate)",
               choices=("auto", "uniform", "labeled", "none")),
        Option("label_from", str, "prediction", "pseudo-labels from the weak-view prediction "
               "(the paper, USB) or the aligned probabilities (ssl-bench before issue 26)",
               choices=("prediction", "aligned")),
    )

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        for name in ("conf_mean", "conf_var", "model_mean", "target_mean"):
            self.register_buffer(name, torch.zeros(0))
        self.register_buffer("model_mean_seen", torch.zeros((), dtype=torch.bool))

    def setup(self, info: MethodInfo) -> None:
        num_groups, outcomes = groups(Task(info.kind, info.num_classes))
        device, multi = info.device, info.kind == "multi"
        self.conf_mean = torch.full((num_groups,), 1.0 / outcomes, device=device)
        self.conf_var = torch.ones(num_groups, device=device)
        self.model_mean = torch.full((info.num_classes,), 1.0 / outcomes, device=device)
        counts = torch.tensor(info.labeled_class_counts, dtype=torch.float, device=device)
        labeled = self.alignment == "labeled" or (self.alignment == "auto" and multi)
        if not labeled:
            self.target_mean = torch.full_like(self.model_mean, 1.0 / outcomes)
        elif multi:
            self.target_mean = (counts / max(info.num_labeled, 1)).clamp(1e-3, 1 - 1e-3)
        else:
            self.target_mean = counts / counts.sum().clamp_min(1.0)

    def unlabeled_loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                       task: Task) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Align, update the statistics, weight; returns loss, labels, weights (task shapes).

        The weights come from the aligned probabilities, the labels (by default) from
        the unaligned ones (module docstring)."""
        probs = task.probabilities(logits_weak)
        with torch.no_grad():
            aligned = probs
            if self.alignment != "none":  # statistics of every rank's rows (docstring)
                batch_mean = gather_rows(probs).mean(dim=0)
                ema_(self.model_mean, batch_mean, self.ema_momentum)
                self.model_mean.copy_(torch.where(self.model_mean_seen, self.model_mean,
                                                  batch_mean))
                self.model_mean_seen.fill_(True)
                aligned = distribution_alignment(probs, self.model_mean, self.target_mean, task)
            conf, _ = grouped_labels(aligned, task)  # the weights: aligned confidence
            _, labels = grouped_labels(aligned if self.label_from == "aligned" else probs, task)
            every_conf = gather_rows(conf)
            ema_(self.conf_mean, every_conf.mean(dim=0), self.ema_momentum)
            rows = every_conf.shape[0]  # unbiased as USB; one row (undefined) counts as 0
            ema_(self.conf_var, every_conf.var(dim=0, correction=int(rows > 1)),
                 self.ema_momentum)
            gap = (conf - self.conf_mean).clamp(max=0.0)
            weights = ungroup(torch.exp(-gap.square() / (2 * self.conf_var / self.n_sigma ** 2)),
                              task)
        targets = pseudo_targets(labels, task)
        return masked_mean(target_loss(logits_strong, targets, task), weights), targets, weights

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        supervised, weak, strong = forward_weak_strong(batch, ctx)
        loss, labels, weights = self.unlabeled_loss(weak, strong, ctx.task)
        return step_output(supervised, {"unsupervised": loss},
                           {"unsupervised": self.unlabeled_weight * ctx.consistency_weight},
                           labels, weights, self.conf_mean)
