"""MixMatch (Berthelot et al., NeurIPS 2019): guessed labels of augmented unlabeled
images, sharpened, then MixUp across labeled and unlabeled images.

Per step: the unlabeled images get K = 2 weak views; the model's predictions on both are
averaged and sharpened (``temperature`` 0.5) into a guessed label, shared by the two
views. Labeled images (one weak view, one-hot targets) and both unlabeled views (guessed
targets) are concatenated and each row is mixed with a random partner of the whole
concatenation (``ssl_bench.method_kit.pseudo_labels.mixup``: ``lam ~ Beta(0.5, 0.5)``,
``lam' = max(lam, 1 - lam)``). Loss = soft CE on the mixed labeled rows (returned as
``"supervised"``) + ``unlabeled_weight * lambda(t)`` x the squared difference between
probabilities and mixed targets on the mixed unlabeled rows (``"unsupervised"``).

The weight: the paper's and USB's ``lambda_u = 100`` is ``unlabeled_weight`` (100), and
the engine's lambda(t) (``--consistency-weight``, 1 by default, times the ramp-up)
multiplies it, so ``--consistency-weight`` scales the paper's weight and ramps it up:
the unlabeled term's weight is ``100 x --consistency-weight x ramp(t)``.

Follows the paper, its official code (``google-research/mixmatch``) and USB
(``semilearn/algorithms/mixmatch``):
- labels guessed without gradient, from both unlabeled views, averaged, sharpened
  ``p^(1/T)`` renormalised; the guessing pass normalises with batch statistics but
  leaves BatchNorm's running statistics untouched (USB's ``freeze_bn``; the official
  code drops that pass's update ops). It is one pass over both views (batch statistics
  of 2 x the unlabeled rows) where the official code and USB run one pass per view;
- MixUp with one partner permutation over labeled + unlabeled rows and per-row ``lam``
  (the official code; USB draws one ``lam`` per batch), inputs and targets mixed alike;
- ``L_X`` = soft cross-entropy of the mixed labeled rows, averaged over rows; ``L_U`` =
  ``mean((p - q)^2)`` over the mixed unlabeled rows *and* classes (the paper's
  ``1 / (L |U'|)``, the official ``reduce_mean``, USB's ``mse``);
- the unlabeled weight ramps up (the official code: linearly over training, USB: over
  0.4 of it), here by the engine's ramp-up.

Deliberate differences:
- ``"supervised"`` is MixMatch's ``L_X``: the loss on *mixed* labeled inputs against
  mixed targets, not a loss on clean labeled images; its scale differs from the other
  methods' supervised term (soft targets keep it above zero);
- BatchNorm: one forward pass over the whole mixed concatenation, so batch statistics
  are those of every mixed row and the running statistics get one update from it; the
  official code's interleaving (swapping rows between the labeled and unlabeled
  batches so the one batch whose statistics are kept is representative) exists only
  because it runs separate passes, and is not needed here;
- the ramp-up is the engine's sigmoid ramp over ``--rampup`` (0.3 of training by
  default), shared by every ramped method of a comparison;
- with class weights (``--class-weights``), each mixed labeled row weighs ``sum_c w_c
  t_c`` (``ssl_bench.method_kit.mixing.soft_supervised_loss``), which for unmixed one-hot rows is
  the weighted cross-entropy of the other methods; the paper has none;
- the run's optimiser (the paper: Adam, weight decay 0.02 x lr per step) and batch
  composition (the paper: 64 labeled + 64 unlabeled), shared by every method of a
  comparison; the EMA model (``--ema-decay``, 0.99 by default; the paper's 0.999) is
  kept for evaluation only, as the paper and USB evaluate it, and the run reports the
  model chosen on validation (``--report-model``);
- multi-label tasks (no reference implementation): per-class guessed probabilities,
  averaged and sharpened per entry (``sigmoid(logit(p) / T)``); MixUp of multi-hot and
  guessed targets; BCE with the mixed targets on the labeled rows (averaged over
  entries); ``L_U`` the squared difference of sigmoid probabilities, averaged over
  entries.
- several processes (torchrun): each process mixes its own shard (labeled and unlabeled
  rows of that process only), as USB does under DDP; the partner of a row is drawn from
  1 / (number of processes) of the batch. Losses are means over rows (the class-weighted
  ``L_X`` with the global denominator), so DDP's gradient average is the mean over the
  global batch of the per-process mixed rows; the guessing pass is per row.

The pseudo-labels logged (accuracy against the hidden labels) are the arg-max (0/1 per
entry) of the guessed labels, all rows counted.
"""

from __future__ import annotations

import torch

from ssl_bench.core.errors import UserError
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
from ssl_bench.method_kit.mixing import (
    frozen_batchnorm_stats,
    mixup,
    probability_mse,
    soft_supervised_loss,
    targets_as_probabilities,
)
from ssl_bench.method_kit.pseudo_labels import confidence, hard_labels, sharpen
from ssl_bench.method_kit.search_space import Float
from ssl_bench.plugins.registry import register_method


@register_method("mixmatch")
class MixMatch(Method):
    summary = ("MixMatch: sharpened label guesses over K=2 weak views, MixUp of labeled and "
               "unlabeled images (Berthelot et al., 2019)")
    needs_teacher = True  # the EMA model, for evaluation only (as USB); not in the loss
    defaults = dict(EMA_MODEL_DEFAULTS)  # its batch-norm statistics: as USB's EMA model
    uses_unlabeled = True
    data_parallel = "per-process"  # MixUp partners within each process (docstring)
    # The first weak view covers every row: its labeled rows are the labeled inputs, its
    # unlabeled rows the first unlabeled view (the same draw as every method's first weak
    # view); the second weak view is of the unlabeled rows only.
    views = {"weak": "weak", "weak2": View("weak", rows="unlabeled")}
    search_space = {"temperature": Float(0.25, 1.0), "alpha": Float(0.1, 1.0),
                    "unlabeled_weight": Float(10.0, 300.0, log=True)}
    options = (
        Option("temperature", float, 0.5, "sharpening temperature of the guessed labels"),
        Option("alpha", float, 0.5, "MixUp's Beta(alpha, alpha) parameter"),
        Option("unlabeled_weight", float, 100.0, "weight of the unlabeled loss, the paper's "
               "lambda_u (times lambda(t) = --consistency-weight x ramp-up)"),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        for name in ("temperature", "alpha"):
            if not getattr(self, name) > 0:
                raise UserError(f"option {name!r} of method 'mixmatch' must be > 0; "
                                f"got {getattr(self, name)}")
        if self.unlabeled_weight < 0:
            raise UserError("option 'unlabeled_weight' of method 'mixmatch' must be >= 0; "
                            f"got {self.unlabeled_weight}")

    def guess_labels(self, logits_views: list[torch.Tensor], task: Task) -> torch.Tensor:
        """Mean of the views' probabilities, sharpened (per entry for multi-label)."""
        mean = torch.stack([task.probabilities(logits) for logits in logits_views]).mean(0)
        return sharpen(mean, self.temperature, task)

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        labeled = batch.num_labeled
        weak = batch.views["weak"]
        inputs_labeled, unlabeled_a = weak[:labeled], weak[labeled:]
        unlabeled_b = batch.views["weak2"]
        with torch.no_grad(), frozen_batchnorm_stats(ctx.student):
            _, logits_guess = ctx.student(torch.cat([unlabeled_a, unlabeled_b]))
            guess = self.guess_labels(list(logits_guess.chunk(2)), ctx.task)
        targets = torch.cat([targets_as_probabilities(batch.targets, ctx.task), guess, guess])
        inputs = torch.cat([inputs_labeled, unlabeled_a, unlabeled_b])
        mixed, mixed_targets, _ = mixup(inputs, targets, self.alpha)
        _, logits = ctx.student(mixed)
        supervised = soft_supervised_loss(logits[:labeled], mixed_targets[:labeled], ctx.task)
        unsupervised = probability_mse(logits[labeled:], mixed_targets[labeled:], ctx.task)
        total = supervised + self.unlabeled_weight * ctx.consistency_weight * unsupervised
        labels = hard_labels(guess, ctx.task)
        mask = torch.ones_like(labels, dtype=torch.bool)
        return StepOutput(
            losses={"total": total, "supervised": supervised, "unsupervised": unsupervised},
            logs={"guess_confidence": confidence(guess, ctx.task).mean()},
            pseudo_labels=(labels, mask),
        )
