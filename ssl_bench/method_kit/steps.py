"""The pieces of a training step that weak/strong pseudo-labelling methods share.

FixMatch, UDA, FlexMatch, FreeMatch and SoftMatch forward the labeled weak, unlabeled
weak and unlabeled strong views in one pass (as USB does) and report the same losses and
logs; they take both from here rather than repeat them.
"""

from __future__ import annotations

import torch

from ssl_bench.method_kit.method import Batch, StepContext, StepOutput


def forward_views(batch: Batch, ctx: StepContext
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass over labeled weak + unlabeled weak + unlabeled strong (as USB).

    Returns the labeled logits, the *detached* unlabeled weak logits and the strong
    logits.
    """
    labeled = batch.num_labeled
    weak, strong = batch.views["weak"], batch.views["strong"]
    _, logits = ctx.student(torch.cat([weak, strong]))
    return logits[:labeled], logits[labeled: weak.shape[0]].detach(), logits[weak.shape[0]:]


def forward_weak_strong(batch: Batch, ctx: StepContext
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`forward_views` with the task's supervised loss of the labeled logits:
    returns (supervised loss, detached unlabeled weak logits, strong logits)."""
    logits_labeled, logits_weak, logits_strong = forward_views(batch, ctx)
    return ctx.task.supervised_loss(logits_labeled, batch.targets), logits_weak, logits_strong


def step_output(supervised: torch.Tensor, unsupervised: dict[str, torch.Tensor],
                weights: dict[str, float], labels: torch.Tensor, mask: torch.Tensor,
                threshold: torch.Tensor) -> StepOutput:
    """``total = supervised + sum(weights[name] * term)``; logs mask ratio and threshold.

    ``mask`` may be a soft weight (SoftMatch): its mean is logged as the mask ratio.
    """
    total = supervised + sum(weights[name] * term for name, term in unsupervised.items())
    return StepOutput(
        losses={"total": total, "supervised": supervised, **unsupervised},
        logs={"mask_ratio": mask.float().mean(), "threshold": threshold.float().mean()},
        pseudo_labels=(labels, mask),
    )
