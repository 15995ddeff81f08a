"""Pseudo-Label (Lee, ICML Workshop on Challenges in Representation Learning 2013): the
model's own confident predictions on unlabeled images become their hard labels.

One weak view of the whole batch goes through the student once; the labeled rows give
the supervised loss, the unlabeled rows' *detached* predictions give pseudo-labels
(arg-max class) where the top probability reaches ``threshold`` (0.95), and the same
predictions are trained towards them with cross-entropy. Loss = supervised CE +
``unlabeled_weight * lambda(t)`` x the masked CE averaged over *all* unlabeled rows.

Follows USB (``semilearn/algorithms/pseudolabel``):
- hard pseudo-labels from the detached prediction on the *same* (weak) view that is
  trained (no second view, unlike FixMatch);
- fixed confidence threshold (USB's ``p_cutoff`` 0.95; the 2013 paper labels every
  unlabeled image, ``--threshold 0`` does that), mask = max probability >= threshold,
  ``(ce * mask).mean()`` over the unlabeled rows, as USB's ``consistency_loss``;
- the unsupervised weight ramps up (USB's ``unsup_warmup``; the paper's alpha(t)): the
  engine's lambda(t) = ``--consistency-weight`` x its ramp-up, times ``unlabeled_weight``
  (USB's ``lambda_u``, 1);
- the mask ratio and the pseudo-labels' accuracy are logged in the history.

Deliberate differences:
- the ramp-up is the engine's sigmoid ramp over ``--rampup`` (0.3 of training by
  default), shared by every ramped method of a comparison, rather than USB's linear ramp
  over 0.4 of training or the paper's linear alpha(t) from epoch 100 to 600 up to 3;
- one forward pass over labeled and unlabeled rows: BatchNorm statistics (batch and
  running) come from both, where USB freezes the running statistics during its separate
  unlabeled pass;
- optimiser, schedule, batch composition and the weak view are the run's, shared by
  every method of a comparison (the paper: dropout nets with SGD, denoising-AE
  pre-training);
- the EMA teacher (``--ema-decay``) is kept for evaluation only, as USB evaluates its EMA
  model (the paper has none); the run reports the model chosen on validation
  (``--report-model``);
- multi-label tasks (no reference implementation): per (image, class) entry, a positive
  pseudo-label where p >= ``threshold`` and a negative one where p <= ``1 - threshold``,
  BCE on those confident entries, summed and divided by the number of entries (the
  per-entry analogue of the single-label mean, as ``fixmatch``).
"""

from __future__ import annotations

from ssl_bench.core.errors import UserError
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.method import (
    EMA_MODEL_DEFAULTS,
    Batch,
    Method,
    Option,
    StepContext,
    StepOutput,
)
from ssl_bench.method_kit.pseudo_labels import confidence, hard_labels, masked_mean, target_loss
from ssl_bench.method_kit.search_space import THRESHOLD, UNLABELED_WEIGHT
from ssl_bench.plugins.registry import register_method


@register_method("pseudo-label", aliases=("pseudolabel", "pseudo_label"))
class PseudoLabel(Method):
    summary = ("Pseudo-Label: the model's confident predictions become hard labels of its "
               "unlabeled images (Lee, 2013)")
    data_parallel = "global"
    needs_teacher = True  # the EMA model, for evaluation only (as USB); not in the loss
    defaults = dict(EMA_MODEL_DEFAULTS)  # its batch-norm statistics: as USB's EMA model
    uses_unlabeled = True
    views = {"weak": "weak"}
    search_space = {"threshold": THRESHOLD, "unlabeled_weight": UNLABELED_WEIGHT}
    options = (
        Option("threshold", float, 0.95, "confidence a prediction needs to become a "
               "pseudo-label (0: every unlabeled image, as the 2013 paper)"),
        Option("unlabeled_weight", float, 1.0, "weight of the unlabeled loss (times lambda)"),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"option 'threshold' of method 'pseudo-label' must be in [0, 1]; "
                            f"got {self.threshold}")
        if self.unlabeled_weight < 0:
            raise UserError("option 'unlabeled_weight' of method 'pseudo-label' must be >= 0; "
                            f"got {self.unlabeled_weight}")

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        labeled = batch.num_labeled
        _, logits = ctx.student(batch.views["weak"])
        supervised = ctx.task.supervised_loss(logits[:labeled], batch.targets)
        unsupervised, labels, mask = self.unlabeled_loss(logits[labeled:], ctx.task)
        total = supervised + self.unlabeled_weight * ctx.consistency_weight * unsupervised
        return StepOutput(
            losses={"total": total, "supervised": supervised, "unsupervised": unsupervised},
            logs={"mask_ratio": mask.float().mean()},
            pseudo_labels=(labels, mask),
        )

    def unlabeled_loss(self, logits, task: Task):
        """Masked CE (BCE per entry) of ``logits`` against their own detached confident
        predictions; returns (loss, labels, mask)."""
        probs = task.probabilities(logits.detach())
        labels = hard_labels(probs, task)
        mask = confidence(probs, task) >= self.threshold
        return masked_mean(target_loss(logits, labels, task), mask), labels, mask
