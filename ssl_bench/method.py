"""The method contract: a method is its losses and nothing else.

The engine owns data, perturbations, optimisation, the EMA teacher, ramp-up, evaluation
and files. A method subclasses :class:`Method`, declares its :class:`Option` s and
implements :meth:`Method.train_step`, which turns one :class:`Batch` into named loss
terms. Register it with ``@register_method("name")`` in ``methods/<name>.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .options import Option, coerce_options
from .tasks import Task

__all__ = ["Batch", "LossDict", "Method", "Option", "StepContext"]


@dataclass
class Batch:
    """One training batch, labeled images first.

    ``student_view`` and ``teacher_view`` are two independent perturbations of the same
    images (shape ``B x C x H x W``); ``targets`` holds labels for the first
    ``num_labeled`` rows only (class indices, or 0/1 floats for multi-label).
    """

    student_view: torch.Tensor
    teacher_view: torch.Tensor
    targets: torch.Tensor
    num_labeled: int

    @property
    def size(self) -> int:
        return int(self.student_view.shape[0])


@dataclass
class StepContext:
    """What the engine hands a method at each step besides the batch.

    Models return ``(features, logits)``: pooled post-dropout features and class logits.
    ``consistency_weight`` is the ramped-up weight ``lambda(t)`` of unsupervised terms.
    """

    student: nn.Module
    teacher: nn.Module | None
    task: Task
    consistency_weight: float
    step: int


LossDict = dict[str, torch.Tensor]


class Method:
    """Base class of every SSL method (see module docstring)."""

    #: Registry name, set by ``@register_method``.
    registry_name: ClassVar[str] = ""
    #: One-line description for ``ssl-bench list``.
    summary: ClassVar[str] = ""
    #: Whether the engine must keep an EMA teacher and pass it as ``ctx.teacher``.
    needs_teacher: ClassVar[bool] = False
    #: Whether batches contain unlabeled images; if not, the whole batch is labeled.
    uses_unlabeled: ClassVar[bool] = False
    #: 2 if the method uses the second (teacher) view; 1 lets the engine skip making it.
    views: ClassVar[int] = 2
    #: Options the CLI and config files may set.
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, **options: Any) -> None:
        values = coerce_options(self.options, options, f"method {self.registry_name!r}")
        for name, value in values.items():
            setattr(self, name, value)

    @property
    def option_values(self) -> dict[str, Any]:
        return {option.name: getattr(self, option.name) for option in self.options}

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        """Return named loss terms; ``"total"`` is optimised, the others are logged.

        Convention: ``"supervised"`` is the labeled loss; every other term except
        ``"total"`` is an unsupervised term (reported unweighted).
        """
        raise NotImplementedError
