"""A third-party method, loaded as a plug-in by the tests (never part of the package).

Mean Teacher with a KL-divergence consistency instead of the squared difference.
"""

import torch
import torch.nn.functional as F

from ssl_bench.method_kit.method import Batch, LossDict, Method, Option, StepContext
from ssl_bench.plugins.registry import register_method


@register_method("test-kl-teacher")
class KLTeacher(Method):
    summary = "test plug-in: Mean Teacher with a KL consistency"
    needs_teacher = True
    uses_unlabeled = True
    identical_views_vanish = True
    options = (Option("temperature", float, 1.0, "softening temperature"),)

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        _, logits = ctx.student(batch.student_view)
        with torch.no_grad():
            _, teacher_logits = ctx.teacher(batch.teacher_view)
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        t = self.temperature
        if ctx.task.multilabel:
            # Bernoulli KL(p_t || p_s) = BCE(p_s; p_t) - H(p_t), both in the autocast-safe
            # with-logits form (plain binary_cross_entropy is refused under CUDA autocast).
            p_t = torch.sigmoid(teacher_logits.float() / t)
            consistency = F.binary_cross_entropy_with_logits(logits.float() / t, p_t) - (
                F.binary_cross_entropy_with_logits(teacher_logits.float() / t, p_t)
            )
        else:
            consistency = F.kl_div(
                F.log_softmax(logits.float() / t, dim=1),
                F.log_softmax(teacher_logits.float() / t, dim=1),
                log_target=True,
                reduction="batchmean",
            )
        total = supervised + ctx.consistency_weight * consistency
        return {"total": total, "supervised": supervised, "consistency": consistency}
