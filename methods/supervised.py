"""Supervised baseline: labeled images only (the lower bound the SRC-MT paper reports).

The batch is either fully labeled (``--supervised-batch labeled``: as many labeled
images per step as the SSL methods see images) or the SSL methods' two-stream batch
(``two-stream``: the official SRC-MT baseline, ``--ema_consistency 0``, where the
unlabeled images only pass through the network -- they shape its batch-norm
statistics -- and the loss covers the labeled rows).
"""

from __future__ import annotations

from ssl_bench.method_kit.method import Batch, LossDict, Method, StepContext
from ssl_bench.plugins.registry import register_method


@register_method("supervised", aliases=("sup", "baseline"))
class Supervised(Method):
    summary = "labeled data only (the loss covers the batch's labeled rows)"
    data_parallel = "global"
    views = {"student": "weak"}

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        _, logits = ctx.student(batch.student_view)
        loss = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        return {"total": loss, "supervised": loss}
