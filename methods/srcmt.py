"""SRC-MT: Mean Teacher plus sample relation consistency.

Liu, Yu, Chen, Heng, Dou, "Semi-supervised Medical Image Classification with
Relation-driven Self-ensembling Model", IEEE TMI 39(11), 2020.

For the batch's pooled features ``A`` (B x D), the relation matrix is ``G = A A^T`` with
each row L2-normalised. The student's relation matrix on its view must match the
teacher's on the other view::

    total = supervised + lambda(t) * (consistency + relation_weight * relation)
    relation = sum((G_student - G_teacher)^2) / B

Following the official code (github.com/liuquande/SRC-MT):
- features are the pooled backbone features *after* the classifier's dropout (the
  official DenseNet-121 wrapper stores them post-dropout; our backbones return the same);
- consistency is the squared difference of probabilities summed over classes / B, on all
  (labeled + unlabeled) images, and the relation matrix spans the whole batch;
- ``lambda(t)`` is the sigmoid ramp-up ``exp(-5 (1 - t/T)^2)`` (engine), T = 30 of 100
  epochs in the paper preset; EMA decay ``min(1 - 1/(step+1), 0.99)`` (engine);
- Adam, learning rate 1e-4, betas (0.9, 0.999), weight decay 5e-4 (``paper`` preset);
- the teacher runs in training mode (dropout and batch statistics), without gradients.

Where we deliberately differ:
- the official code applies softmax before a loss that applies it again (double
  softmax); we apply cross-entropy to raw logits once (``Task.supervised_loss``);
- the official evaluation uses a fixed 0.18 threshold for its F1/accuracy; we report
  threshold-free AUC plus argmax metrics (single-label) and select checkpoints on the
  validation set only;
- the official ISIC data loader silently drops a CSV column; our loaders select class
  columns by name and fail loudly on anything missing.
"""

from __future__ import annotations

import torch

from ssl_bench.losses import consistency_mse, relation_consistency
from ssl_bench.method import Batch, LossDict, Method, Option, StepContext
from ssl_bench.registry import register_method


@register_method("srcmt", aliases=("src-mt",))
class SRCMT(Method):
    summary = "SRC-MT: Mean Teacher + sample relation consistency (Liu et al., TMI 2020)"
    needs_teacher = True
    uses_unlabeled = True
    options = (
        Option("relation_weight", float, 1.0, "weight of the relation consistency term"),
    )

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        features, logits = ctx.student(batch.student_view)
        with torch.no_grad():
            teacher_features, teacher_logits = ctx.teacher(batch.teacher_view)
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        consistency = consistency_mse(logits, teacher_logits, ctx.task)
        relation = relation_consistency(features, teacher_features)
        unsupervised = consistency + self.relation_weight * relation
        total = supervised + ctx.consistency_weight * unsupervised
        return {
            "total": total,
            "supervised": supervised,
            "consistency": consistency,
            "relation": relation,
        }
