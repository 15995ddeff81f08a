"""What a :class:`~ssl_bench.training.trainer.Trainer` is built from: seeded models, the
optimiser and schedule, mixed precision, and the callables a method trains through.

Kept apart from the loop so that each piece can be read, and tested, on its own; the
trainer calls these once, in this order, when it is created.
"""

from __future__ import annotations

import copy
import random
import warnings

import numpy as np
import torch
from torch import nn

from ssl_bench.config.run_config import RunConfig
from ssl_bench.core import distributed
from ssl_bench.core.distributed import World
from ssl_bench.core.errors import UserError
from ssl_bench.method_kit.faults import guarded
from ssl_bench.models.backbones import Backbone, create_backbone
from ssl_bench.training.prepare import PreparedRun
from ssl_bench.training.schedules import lr_factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_models(prepared: PreparedRun) -> tuple[Backbone, nn.Module, nn.Module | None]:
    """The backbone, the student (the method's model around it, trainable) and, if the
    method needs one, its EMA teacher (a deep copy of the student, no gradients)."""
    config = prepared.config
    backbone = create_backbone(
        config.backbone, num_classes=prepared.task.num_classes, in_chans=prepared.in_chans,
        pretrained=config.pretrained, drop_rate=config.drop_rate, weights=config.weights,
        img_size=config.image_size, frozen_groups=config.frozen_groups,
    )
    with guarded(prepared.method, config.method, "build_model"):
        student = prepared.method.build_model(backbone)
    student = student.to(prepared.device)
    if config.sync_bn and distributed.current().distributed:
        if prepared.device.type != "cuda":
            raise UserError("--sync-bn: synchronised batch norm needs CUDA (torch's "
                            "SyncBatchNorm); on CPU processes each normalises its own shard")
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
    if config.channels_last:  # faster on CPUs too: 1.3-1.6x per step, benchmarks/speed.py
        student = student.to(memory_format=torch.channels_last)
    teacher = None
    if prepared.method.needs_teacher:
        teacher = copy.deepcopy(student)
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        teacher.train()  # as the official code: dropout and batch statistics, no grads
    return backbone, student, teacher


def build_optimizer(config: RunConfig, *modules: nn.Module) -> torch.optim.Optimizer:
    """The configured optimiser, in its fused (one-kernel) form where torch has one.

    Fused Adam/AdamW/SGD do the same update as the per-parameter loop up to float
    rounding, and on 2 CPU cores take 2.5 ms instead of 17 ms for resnet10t's 5M
    parameters (benchmarks/speed.py); older torch versions fall back to the loop. Every
    trainable parameter of ``modules`` (the student, and the method's own modules) is
    optimised, each once.
    """
    params = list({id(p): p for module in modules for p in module.parameters()
                   if p.requires_grad}.values())
    if config.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, dict(lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "adamw":
        cls, kwargs = torch.optim.AdamW, dict(lr=config.lr, weight_decay=config.weight_decay)
    else:
        cls, kwargs = torch.optim.SGD, dict(lr=config.lr, momentum=config.momentum,
                                            nesterov=True, weight_decay=config.weight_decay)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this torch/device
        return cls(params, **kwargs)


def build_scheduler(config: RunConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule, stepped once per training step (see ``lr_factor``)."""
    def factor(step: int) -> float:
        return lr_factor(config.lr_schedule, step, total_steps, steps_per_epoch,
                         config.lr_decay)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def amp_dtype(config: RunConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where supported, else fp16 (with a scaler)."""
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


#: The GPU check of 2026-11-27 (H100, torch 2.11+cu130) found compiled student outputs
#: 4.0x the eager ones (tests/test_cuda.py); not reproduced on the CPU. Until that is
#: understood, a compiled CUDA run says so.
COMPILE_ON_CUDA = (
    "--compile on CUDA failed the GPU check's compiled-equals-eager test (compiled features "
    "were 4x the eager ones; README, 'The GPU check'): compare with a run without --compile "
    "before reporting its results")


def warn_if_compile_unverified(device: torch.device) -> None:
    """Warn that ``--compile`` is unverified on ``device`` (CUDA; see COMPILE_ON_CUDA)."""
    if device.type == "cuda":
        warnings.warn(COMPILE_ON_CUDA, stacklevel=3)


def step_callables(student: nn.Module, teacher: nn.Module | None, config: RunConfig,
                   world: World, device: torch.device) -> tuple[nn.Module, nn.Module | None]:
    """What the method calls: the models themselves, or their DDP and ``torch.compile``
    wrappers (which share parameters, so EMA and checkpoints keep using the plain
    modules)."""
    student_call: nn.Module = student
    teacher_call = teacher
    if world.distributed:  # gradients averaged over ranks in backward
        student_call = distributed.data_parallel(student, device)
    if config.compile:
        warn_if_compile_unverified(device)
        student_call = torch.compile(student_call)
        if teacher is not None:
            teacher_call = torch.compile(teacher)
    return student_call, teacher_call
