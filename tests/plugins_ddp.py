"""A test plug-in for tests/test_distributed.py (not in tests/plugins/, which every
registry-parametrized test trains): a method that declares data_parallel but keeps a
statistic of its own shard only, which the engine must catch."""

from __future__ import annotations

import torch

from ssl_bench.method_kit.method import Method, MethodInfo
from ssl_bench.plugins.registry import register_method


@register_method("keeps-unshared-state")
class KeepsUnsharedState(Method):
    summary = "test plug-in: a per-rank running mean, never shared"
    data_parallel = "global"
    views = {"student": "weak"}

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.register_buffer("local_mean", torch.zeros(0))

    def setup(self, info: MethodInfo) -> None:
        self.local_mean = torch.zeros(info.num_classes, device=info.device)

    def train_step(self, batch, ctx):
        _, logits = ctx.student(batch.views["student"])
        with torch.no_grad():
            self.local_mean.mul_(0.9).add_(0.1 * logits.float().mean(dim=0))
        loss = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        return {"total": loss, "supervised": loss}
