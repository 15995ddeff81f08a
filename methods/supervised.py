"""Supervised baseline: labeled images only (the lower bound the SRC-MT paper reports)."""

from __future__ import annotations

from ssl_bench.method import Batch, LossDict, Method, StepContext
from ssl_bench.registry import register_method


@register_method("supervised", aliases=("sup", "baseline"))
class Supervised(Method):
    summary = "labeled data only; the whole batch is labeled"
    views = 1

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        _, logits = ctx.student(batch.student_view)
        loss = ctx.task.supervised_loss(logits, batch.targets)
        return {"total": loss, "supervised": loss}
