"""Schedules of the self-ensembling family: lambda(t), the learning rate, the EMA teacher."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ssl_bench.config.run_config import TEACHER_BUFFERS
from ssl_bench.core.errors import UserError


def sigmoid_rampup(step: float, length: float) -> float:
    """``exp(-5 (1 - t/T)^2)`` with ``t`` clipped to ``[0, T]``; 1 when ``T <= 0``."""
    if length <= 0:
        return 1.0
    phase = 1.0 - min(max(step, 0.0), length) / length
    return float(math.exp(-5.0 * phase * phase))


@dataclass(frozen=True)
class ConsistencySchedule:
    """lambda(t): the weight of the unsupervised terms at a training step.

    ``maximum * sigmoid_rampup(t, rampup_steps)``, and 0 before ``start_step``. With
    ``per_epoch`` the ramp-up is evaluated at the start of the step's epoch, so lambda is
    constant within an epoch (the official SRC-MT code calls it with the epoch number);
    its warm phase (``epoch > 20``) is ``start_step = 21 * steps_per_epoch``, where
    lambda jumps from 0 to ``exp(-5 (1 - 21/30)^2) = 0.638``.
    """

    maximum: float
    rampup_steps: float
    steps_per_epoch: int = 1
    per_epoch: bool = False
    start_step: int = 0

    def __call__(self, step: int) -> float:
        if step < self.start_step:
            return 0.0
        at = (step // self.steps_per_epoch) * self.steps_per_epoch if self.per_epoch else step
        return self.maximum * sigmoid_rampup(at, self.rampup_steps)


def lr_factor(schedule: str, step: int, total_steps: int, steps_per_epoch: int,
              decay: float) -> float:
    """Learning-rate multiplier at ``step``: constant, cosine, or ``decay ** epoch``.

    ``exponential`` is the official SRC-MT schedule (``lr *= 0.9`` after every epoch).
    """
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule == "exponential":
        return decay ** (step // steps_per_epoch)
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def ema_decay_at(step: int, ema_decay: float) -> float:
    """``min(1 - 1/(step+1), ema_decay)``: the teacher is a plain average early on."""
    return min(1.0 - 1.0 / (step + 1), ema_decay)


class EmaUpdater:
    """teacher <- decay * teacher + (1 - decay) * student for parameters.

    Buffers (batch-norm running statistics) follow ``buffers``:

    * ``own`` (default): left alone, so the teacher -- which runs forward in train mode --
      keeps the statistics of its own forwards, which match its own weights. This is what
      the official SRC-MT and Mean Teacher code do (they average parameters only).
    * ``ema``: floating-point buffers are averaged like parameters, integer ones
      (``num_batches_tracked``) copied, as timm's ``ModelEmaV3``.
    * ``copy``: copied from the student, as USB's EMA model (``EMAHook``): the default of
      methods whose teacher is only evaluated and never runs in training
      (``method.EMA_MODEL_DEFAULTS``); for a teacher that does run, it normalises the
      teacher with statistics of other weights (ssl-bench before v0.2).

    One fused multi-tensor ``lerp`` over all parameters (no Python loop of small
    kernels); the tensor lists are gathered once, not at every step.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, buffers: str = "own") -> None:
        if buffers not in TEACHER_BUFFERS:
            raise ValueError(f"buffers must be one of {TEACHER_BUFFERS}, got {buffers!r}")
        self.buffers = buffers
        self.t_params = [p.detach() for p in teacher.parameters()]
        self.s_params = [p.detach() for p in student.parameters()]
        t_bufs, s_bufs = list(teacher.buffers()), list(student.buffers())
        if len(self.t_params) != len(self.s_params) or len(t_bufs) != len(s_bufs):
            raise ValueError("teacher and student must have the same parameters and buffers")
        pairs = list(zip(t_bufs, s_bufs, strict=True)) if buffers != "own" else []
        lerp = [buffers == "ema" and t.is_floating_point() for t, _ in pairs]
        self.lerp_t = [t for (t, _), avg in zip(pairs, lerp, strict=True) if avg]
        self.lerp_s = [s for (_, s), avg in zip(pairs, lerp, strict=True) if avg]
        self.copy_t = [t for (t, _), avg in zip(pairs, lerp, strict=True) if not avg]
        self.copy_s = [s for (_, s), avg in zip(pairs, lerp, strict=True) if not avg]

    @torch.no_grad()
    def __call__(self, decay: float) -> None:
        if self.t_params:
            torch._foreach_lerp_(self.t_params, self.s_params, 1.0 - decay)
        if self.lerp_t:
            torch._foreach_lerp_(self.lerp_t, self.lerp_s, 1.0 - decay)
        if self.copy_t:
            torch._foreach_copy_(self.copy_t, self.copy_s)


def frozen_statistics(teacher: nn.Module, student: nn.Module) -> bool:
    """Whether the teacher's batch norms have never updated their running statistics
    while the student's have (a teacher that is not run in train mode)."""
    def counts(model: nn.Module) -> list[int]:
        return [int(b) for n, b in model.named_buffers() if n.endswith("num_batches_tracked")]

    teacher_counts, student_counts = counts(teacher), counts(student)
    return bool(teacher_counts) and max(teacher_counts) == 0 and max(student_counts) > 0


def check_teacher_statistics(teacher: nn.Module, student: nn.Module, method: str) -> None:
    """``own`` batch-norm statistics need a teacher that runs in training; one that is
    only evaluated (an EMA model) would keep its initial statistics for good: a one-line
    :class:`UserError` after the first step."""
    if frozen_statistics(teacher, student):
        raise UserError(
            f"teacher_buffers (--teacher-buffers) own leaves the EMA teacher of {method} with "
            f"its initial batch-norm statistics, because {method} never runs its teacher in "
            "training; use copy (the student's, as USB's EMA model) or ema")


def ema_update(teacher: nn.Module, student: nn.Module, decay: float,
               buffers: str = "own") -> None:
    """One EMA step of ``teacher`` towards ``student`` (see :class:`EmaUpdater`)."""
    EmaUpdater(teacher, student, buffers)(decay)
