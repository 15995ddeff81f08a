"""Schedules of the self-ensembling family: sigmoid ramp-up and the EMA teacher."""

from __future__ import annotations

import math

import torch
from torch import nn


def sigmoid_rampup(step: float, length: float) -> float:
    """``exp(-5 (1 - t/T)^2)`` with ``t`` clipped to ``[0, T]``; 1 when ``T <= 0``."""
    if length <= 0:
        return 1.0
    phase = 1.0 - min(max(step, 0.0), length) / length
    return float(math.exp(-5.0 * phase * phase))


def ema_decay_at(step: int, ema_decay: float) -> float:
    """``min(1 - 1/(step+1), ema_decay)``: the teacher is a plain average early on."""
    return min(1.0 - 1.0 / (step + 1), ema_decay)


class EmaUpdater:
    """teacher <- decay * teacher + (1 - decay) * student for parameters; copy buffers.

    One fused multi-tensor ``lerp`` over all parameters (no Python loop of small
    kernels), then one multi-tensor copy of the buffers (BatchNorm statistics). The
    tensor lists are gathered once, not at every step.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module) -> None:
        self.t_params = [p.detach() for p in teacher.parameters()]
        self.s_params = [p.detach() for p in student.parameters()]
        self.t_bufs = [b for b in teacher.buffers()]
        self.s_bufs = [b for b in student.buffers()]
        if len(self.t_params) != len(self.s_params) or len(self.t_bufs) != len(self.s_bufs):
            raise ValueError("teacher and student must have the same parameters and buffers")

    @torch.no_grad()
    def __call__(self, decay: float) -> None:
        if self.t_params:
            torch._foreach_lerp_(self.t_params, self.s_params, 1.0 - decay)
        if self.t_bufs:
            torch._foreach_copy_(self.t_bufs, self.s_bufs)


def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """One EMA step of ``teacher`` towards ``student`` (see :class:`EmaUpdater`)."""
    EmaUpdater(teacher, student)(decay)
