"""A third-party method with its own modules and state (contract v2), loaded by the tests.

``build_model`` wraps the backbone with a projection head (as SimMatch/CoMatch do); the
method itself owns a learnable temperature and buffers sized in ``setup`` (a per-class
running confidence and a step counter), so the engine must optimise, EMA-average and
checkpoint all of them for the tests to pass.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.method_kit.method import Batch, Method, MethodInfo, StepContext, StepOutput
from ssl_bench.plugins.registry import register_method


class WithHead(nn.Module):
    """Backbone + projection head; still returns ``(features, logits)``."""

    def __init__(self, backbone: nn.Module, dim: int = 16) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(backbone.num_features, dim), nn.ReLU(),
                                  nn.Linear(dim, dim))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.backbone(images)
        return self.head(features), logits


@register_method("test-projection-head")
class ProjectionHead(Method):
    summary = "test plug-in: projection-head consistency with learnable temperature and state"
    needs_teacher = True
    uses_unlabeled = True

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("class_confidence", torch.zeros(0))

    def build_model(self, backbone: nn.Module) -> nn.Module:
        return WithHead(backbone)

    def setup(self, info: MethodInfo) -> None:
        self.class_confidence = torch.full((info.num_classes,), 1.0 / info.num_classes,
                                           device=info.device)

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        projection, logits = ctx.student(batch.views["student"])
        with torch.no_grad():
            teacher_projection, teacher_logits = ctx.teacher(batch.views["teacher"])
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        temperature = self.log_temperature.exp()
        similarity = F.normalize(projection, dim=1) @ F.normalize(teacher_projection, dim=1).T
        contrast = F.cross_entropy(similarity / temperature,
                                   torch.arange(len(similarity), device=similarity.device))
        with torch.no_grad():
            probs = ctx.task.probabilities(teacher_logits.float())
            self.class_confidence.mul_(0.9).add_(0.1 * probs.mean(dim=0))
            self.steps_seen += 1
        total = supervised + ctx.consistency_weight * contrast
        return StepOutput({"total": total, "supervised": supervised, "contrast": contrast},
                          logs={"temperature": temperature.detach()})
