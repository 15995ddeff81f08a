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


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student for parameters; copy buffers.

    One fused multi-tensor ``lerp`` over all floating parameters (no Python loop of
    small kernels), then one multi-tensor copy of the buffers (BatchNorm statistics).
    """
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    if t_params:
        torch._foreach_lerp_(t_params, s_params, 1.0 - decay)
    t_bufs = list(teacher.buffers())
    s_bufs = list(student.buffers())
    if t_bufs:
        torch._foreach_copy_(t_bufs, s_bufs)
