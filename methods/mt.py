"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017).

The student matches the EMA teacher's probabilities on a differently perturbed view of
every image (labeled and unlabeled); the teacher runs without gradients.
"""

from __future__ import annotations

import torch

from ssl_bench.method_kit.losses import consistency_mse
from ssl_bench.method_kit.method import Batch, LossDict, Method, StepContext
from ssl_bench.method_kit.search_space import CONSISTENCY_WEIGHT
from ssl_bench.plugins.registry import register_method


@register_method("mt", aliases=("mean-teacher", "meanteacher"))
class MeanTeacher(Method):
    summary = "Mean Teacher: probability consistency with an EMA teacher"
    data_parallel = "global"
    needs_teacher = True
    uses_unlabeled = True
    views = {"student": "weak", "teacher": "weak"}
    identical_views_vanish = True
    search_space = {"consistency_weight": CONSISTENCY_WEIGHT}

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        features, logits = ctx.student(batch.student_view)
        with torch.no_grad():
            teacher_features, teacher_logits = ctx.teacher(batch.teacher_view)
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        consistency = consistency_mse(logits, teacher_logits, ctx.task)
        extra = self.extra_terms(features, teacher_features)
        unsupervised = consistency
        for term, weight in extra.values():
            unsupervised = unsupervised + weight * term
        total = supervised + ctx.consistency_weight * unsupervised
        return {"total": total, "supervised": supervised, "consistency": consistency,
                **{name: term for name, (term, _) in extra.items()}}

    def extra_terms(self, features: torch.Tensor, teacher_features: torch.Tensor
                    ) -> dict[str, tuple[torch.Tensor, float]]:
        """Consistency terms beside the probability consistency, by name: (term, weight),
        each added to it before lambda(t) scales them (SRC-MT's relation term). None here."""
        return {}
