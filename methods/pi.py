"""Pi-model (Laine & Aila, ICLR 2017): two perturbed student passes must agree.

Both passes carry gradients, as in the original formulation; the consistency term is the
squared difference of probabilities over labeled and unlabeled images, weighted by the
ramped-up ``lambda(t)``.
"""

from __future__ import annotations

import torch

from ssl_bench.method_kit.losses import consistency_mse
from ssl_bench.method_kit.method import Batch, LossDict, Method, StepContext
from ssl_bench.method_kit.search_space import CONSISTENCY_WEIGHT
from ssl_bench.plugins.registry import register_method


@register_method("pi", aliases=("pi-model", "pimodel"))
class PiModel(Method):
    summary = "Pi-model: consistency between two perturbed student passes"
    data_parallel = "global"
    uses_unlabeled = True
    views = {"student": "weak", "teacher": "weak"}
    identical_views_vanish = True
    search_space = {"consistency_weight": CONSISTENCY_WEIGHT}

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        # Both views in one forward pass (BatchNorm statistics are shared by the two
        # views): one large batch is cheaper than two half-size passes.
        size = batch.size
        _, logits = ctx.student(torch.cat([batch.student_view, batch.teacher_view]))
        logits_a, logits_b = logits[:size], logits[size:]
        supervised = ctx.task.supervised_loss(logits_a[: batch.num_labeled], batch.targets)
        consistency = consistency_mse(logits_a, logits_b, ctx.task)
        total = supervised + ctx.consistency_weight * consistency
        return {"total": total, "supervised": supervised, "consistency": consistency}
