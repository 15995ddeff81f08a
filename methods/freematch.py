"""FreeMatch (Wang et al., ICLR 2023): self-adaptive thresholds and fairness.

A global threshold ``tau_t`` is the EMA (momentum ``ema_momentum``, 0.999) of the mean
max-confidence on unlabeled weak views; the local class-wise estimate ``p_t(c)`` is the
EMA of the mean probability of class c, and a histogram ``h_t(c)`` the EMA of the share
of hard labels of class c; all start at 1/K. The threshold of class c is
``MaxNorm(p_t)(c) * tau_t``. Loss = supervised CE + ``lambda(t)`` x
(``unlabeled_weight`` x masked CE of strong view vs weak hard pseudo-label, over all
unlabeled rows + ``fairness_weight`` x the self-adaptive fairness term
``sum SumNorm(p_t / h_t) log SumNorm(p_bar / h_bar)`` (the paper's ``-H(., .)``), where
``p_bar`` / ``h_bar`` are the mean strong-view probability and hard-label histogram of the
*masked* rows, ``1/0`` read as 0 and the term 0 when no row passes).

Follows the paper and USB (``semilearn/algorithms/freematch``, FreeMatchThresholingHook,
``config/classic_cv/freematch``): the statistics are updated with the batch *before*
its mask is taken; mean (not quantile) confidence, no clipping; hard labels; unlabeled
weight 1; fairness weight 0.001 (the ``ent_loss_ratio`` of every classic-CV config; the
argument default is 0.01); no ramp-up (``defaults``: ``rampup = 0``); statistics are
buffers, checkpointed. Deliberate differences (as FixMatch): the run's shared batch
(CPU preset 12 labeled + 36 unlabeled), optimiser and schedule; the SRC-MT affine + flip
weak view and the ``strong`` view; the EMA teacher for evaluation only; the fairness
term is scaled by lambda(t) like every unsupervised term (1 at once with no ramp-up).

Several processes (torchrun): the statistics are updated with the means of the global
batch (each rank's equal shard averaged over ranks), and the fairness term's batch
averages span every rank's masked rows (strong-view logits gathered with their
gradient), so every rank holds the same statistics and computes the global term.

Multi-label (no reference has it): each class is its own two-class FreeMatch (see
``ssl_bench.method_kit.thresholds``): per class a global threshold (EMA of the mean entry
confidence ``max(p, 1 - p)``, starting at 1/2), a local (negative, positive) estimate
and histogram; the fairness term is computed per class over that class's masked entries
and averaged over classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.core.distributed import gather_rows, mean_over_ranks
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
from ssl_bench.method_kit.search_space import UNLABELED_WEIGHT, Float
from ssl_bench.method_kit.steps import forward_weak_strong, step_output
from ssl_bench.method_kit.thresholds import (
    ema_,
    grouped_labels,
    grouped_probs,
    groups,
    max_norm,
    pick,
    pseudo_targets,
    ungroup,
)
from ssl_bench.plugins.registry import register_method


def _inverse(values: torch.Tensor) -> torch.Tensor:
    """``1 / x`` with ``1 / 0`` read as 0 (USB's ``replace_inf_to_zero``)."""
    return torch.where(values > 0, 1.0 / values.clamp_min(1e-12), torch.zeros_like(values))


def _sum_norm(values: torch.Tensor) -> torch.Tensor:
    return values / values.sum(dim=-1, keepdim=True).clamp_min(1e-12)


@register_method("freematch", aliases=("free-match",))
class FreeMatch(Method):
    summary = ("FreeMatch: self-adaptive global and class-wise thresholds plus a fairness "
               "term (Wang et al., 2023)")
    needs_teacher = True  # the EMA model, evaluated; not in the loss
    uses_unlabeled = True
    data_parallel = "global"
    views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}
    defaults = {"rampup": 0.0, **EMA_MODEL_DEFAULTS}  # buffers: as USB's EMA model
    search_space = {"unlabeled_weight": UNLABELED_WEIGHT,
                    "fairness_weight": Float(1e-4, 1e-1, log=True)}
    options = (
        Option("ema_momentum", float, 0.999, "momentum of the confidence statistics"),
        Option("unlabeled_weight", float, 1.0, "weight of the unlabeled loss (times lambda)"),
        Option("fairness_weight", float, 0.001, "weight of the self-adaptive fairness term"),
    )

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        for name in ("global_threshold", "class_probs", "label_hist"):
            self.register_buffer(name, torch.zeros(0))

    def setup(self, info: MethodInfo) -> None:
        num_groups, outcomes = groups(Task(info.kind, info.num_classes))
        start = 1.0 / outcomes
        self.global_threshold = torch.full((num_groups,), start, device=info.device)
        self.class_probs = torch.full((num_groups, outcomes), start, device=info.device)
        self.label_hist = self.class_probs.clone()

    def unlabeled_loss(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                       task: Task) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                                            torch.Tensor, torch.Tensor]:
        """Update the statistics, then the masked loss and the fairness term.

        Returns the terms, pseudo-labels, mask and per-entry thresholds (task shapes).
        """
        probs = task.probabilities(logits_weak)
        conf, labels = grouped_labels(probs, task)
        outcomes = groups(task)[1]
        with torch.no_grad():
            ema_(self.global_threshold, mean_over_ranks(conf.mean(dim=0)), self.ema_momentum)
            ema_(self.class_probs, mean_over_ranks(grouped_probs(probs, task).mean(dim=0)),
                 self.ema_momentum)
            ema_(self.label_hist, mean_over_ranks(F.one_hot(labels, outcomes).float().mean(dim=0)),
                 self.ema_momentum)
        thresholds = pick(max_norm(self.class_probs), labels) * self.global_threshold
        mask = conf >= thresholds
        loss = masked_mean(target_loss(logits_strong, pseudo_targets(labels, task), task),
                           ungroup(mask, task))
        terms = {"unsupervised": loss, "fairness": self.fairness(logits_strong, mask, task)}
        return terms, pseudo_targets(labels, task), ungroup(mask, task), ungroup(thresholds,
                                                                                 task)

    def fairness(self, logits_strong: torch.Tensor, mask: torch.Tensor, task: Task
                 ) -> torch.Tensor:
        """``sum SumNorm(p_t/h_t) log SumNorm(p_bar/h_bar)`` per group, over masked rows
        (of every rank)."""
        logits_strong, mask = gather_rows(logits_strong), gather_rows(mask)
        probs = grouped_probs(task.probabilities(logits_strong), task)  # B x G x C
        weights = mask.float().unsqueeze(2)
        count = weights.sum(dim=0)  # G x 1
        hist = (F.one_hot(probs.argmax(dim=2), probs.shape[2]) * weights).sum(dim=0)
        mean = (probs * weights).sum(dim=0) / count.clamp_min(1.0)
        model = _sum_norm(self.class_probs * _inverse(self.label_hist))
        batch = _sum_norm(mean * _inverse(hist / count.clamp_min(1.0)))
        per_group = (model * torch.log(batch + 1e-12)).sum(dim=1)
        return torch.where(count[:, 0] > 0, per_group, torch.zeros_like(per_group)).mean()

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        supervised, weak, strong = forward_weak_strong(batch, ctx)
        terms, labels, mask, thresholds = self.unlabeled_loss(weak, strong, ctx.task)
        weights = {"unsupervised": self.unlabeled_weight * ctx.consistency_weight,
                   "fairness": self.fairness_weight * ctx.consistency_weight}
        return step_output(supervised, terms, weights, labels, mask, thresholds)
