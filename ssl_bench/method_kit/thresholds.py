"""Bookkeeping the threshold-family methods share (FlexMatch, FreeMatch, SoftMatch).

The three methods keep statistics of the model's confidence on unlabeled weak views and
turn them into per-class thresholds or weights. To serve single- and multi-label tasks
with one code path, predictions are seen as ``G`` independent *groups* of ``C``
mutually exclusive outcomes:

* single-label: one group over the ``K`` classes (``G = 1, C = K``);
* multi-label: one binary group per class (``G = K, C = 2``; outcome 1 = positive), so
  every class is its own two-class problem, as :mod:`ssl_bench.method_kit.pseudo_labels` treats
  each (image, class) entry.

Statistics are then ``G``-vectors or ``G x C`` tables (buffers of the methods), updated
in place on the device without host syncs.
"""

from __future__ import annotations

import torch

from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.pseudo_labels import confidence, hard_labels


def groups(task: Task) -> tuple[int, int]:
    """``(G, C)``: independent groups and outcomes per group (see module docstring)."""
    return (task.num_classes, 2) if task.multilabel else (1, task.num_classes)


def grouped_probs(probs: torch.Tensor, task: Task) -> torch.Tensor:
    """Probabilities as ``B x G x C``: softmax rows, or ``(1 - p, p)`` per class."""
    if task.multilabel:
        return torch.stack([1.0 - probs, probs], dim=-1)
    return probs.unsqueeze(1)


def grouped_labels(probs: torch.Tensor, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence and hard label per (row, group), both ``B x G`` (labels long)."""
    conf, labels = confidence(probs, task), hard_labels(probs, task)
    if task.multilabel:
        return conf, labels.long()
    return conf.unsqueeze(1), labels.unsqueeze(1)


def ungroup(values: torch.Tensor, task: Task) -> torch.Tensor:
    """``B x G`` back to the task's shape: ``B`` (single-label) or ``B x K``."""
    return values if task.multilabel else values[:, 0]


def pseudo_targets(labels: torch.Tensor, task: Task) -> torch.Tensor:
    """Grouped hard labels as :func:`~ssl_bench.method_kit.pseudo_labels.target_loss` targets."""
    return labels.float() if task.multilabel else labels[:, 0]


def ema_(state: torch.Tensor, value: torch.Tensor, momentum: float) -> None:
    """In place: ``state <- momentum * state + (1 - momentum) * value``."""
    state.mul_(momentum).add_(value.to(state.dtype), alpha=1.0 - momentum)


def max_norm(values: torch.Tensor) -> torch.Tensor:
    """Each row divided by its maximum (FreeMatch's MaxNorm), over the last dim."""
    return values / values.max(dim=-1, keepdim=True).values.clamp_min(1e-12)


def pick(table: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``table[g, labels[b, g]]`` for a ``G x C`` table and ``B x G`` labels: ``B x G``."""
    expanded = table.unsqueeze(0).expand(labels.shape[0], -1, -1)
    return expanded.gather(2, labels.unsqueeze(2)).squeeze(2)
