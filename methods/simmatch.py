"""SimMatch (Zheng et al., CVPR 2022): pseudo-labels calibrated by similarity to a labeled
memory bank, plus an instance-similarity consistency.

A projection head (``Linear(F, F)``-ReLU-``Linear(F, proj_size)``, L2-normalised) gives
every image an embedding. A memory bank holds the EMA teacher's embedding and the label
of every labeled image (indexed by ``batch.labeled_index``). For each unlabeled image,
with ``p`` the teacher's weak-view class probabilities (distribution-aligned towards a
uniform prior over a queue of ``da_len`` batch means) and ``q = softmax(sim(weak,
bank) / T)`` its similarities to the bank:

- *unfolding*: ``q_hat = normalise(q * p[label of each bank entry])`` (instance targets);
- *aggregation*: ``p_hat = alpha * p + (1 - alpha) * sum of q over each class's entries``
  (class targets, ``alpha = smoothing_alpha``);
- loss = CE(labeled) + lambda(t) * (``unlabeled_weight`` x soft CE(strong logits,
  ``p_hat``) masked by ``max p_hat >= threshold``, averaged over all unlabeled rows +
  ``instance_weight`` x CE(``q_hat``, ``softmax(sim(strong, bank) / T)``)).

Follows USB (``semilearn/algorithms/simmatch``, ``config/classic_cv/simmatch``) in its
numbers: p_cutoff 0.95, T = 0.1 for teacher and student similarities, proj_size 128,
in_loss_ratio 1, ulb_loss_ratio 1, smoothing_alpha 0.9, da_len 32 (uniform target), K =
the labeled set size, soft pseudo-labels, bank entries *replaced* by the EMA model's
embeddings of the labeled weak view (USB's ``use_ema_teacher`` path); no ramp-up
(``defaults``).

The teacher is USB's EMA model: averaged parameters with the student's batch-norm
statistics copied at every step (``defaults``: ``teacher_buffers = copy``, as every
method whose teacher is an EMA model). Its training forward runs in train mode and
normalises with the batch's own statistics, so the buffers matter only when the teacher
is evaluated; with ``own`` it would be evaluated with running statistics of weak views
alone while its weights were trained (as the student's) under batches of mostly strong
views, which left it 0.08-0.09 test AUC below its student on isic2018-mini on average
(0.06-0.12 per seed; issue 26).

Projection heads: ``epass false`` (default) is the paper's and the official code's
single head. ``epass true`` is EPASS (ensemble projectors, added to USB in #201), set by
all 13 ``config/classic_cv/simmatch`` files: three heads of the same shape whose outputs
are averaged before the L2 normalisation. The default follows the paper because EPASS is
a later addition of its own, not part of SimMatch; pass ``--epass true`` to match USB's
configurations.

Deliberate differences:
- the teacher's weak-view forward gives the unlabeled probabilities and embeddings, as the
  original SimMatch code (``self.ema(im_k)`` over labeled and unlabeled weak views). USB
  takes the unlabeled weak probabilities and embeddings from the student's forward on
  both of its paths; only the labeled bank embeddings come from the EMA model, and only
  with ``use_ema_teacher`` (otherwise from the student too, blended into the bank with
  momentum 0.7). The student sees labeled weak + unlabeled strong rows;
- no first-epoch warm-up with a random bank: entries not yet written are left out of every
  softmax (masked), and the batch's labeled embeddings enter the bank *before* the
  propagation, so the bank is never random and the instance term is live from step 0;
- the unlabeled ratio is the run's shared batch (CPU preset: 12 labeled + 36 unlabeled)
  instead of mu = 7; the bank holds the labeled *pool* (size from ``setup``); optimiser,
  schedule and EMA decay are the run's; weak view = SRC-MT affine + flip, strong view =
  ``strong`` (RandAugment + Cutout);
- distribution alignment uses the shared ``distribution_alignment`` (model mean clamped at
  1e-6 where USB adds 1e-6 to both means); its queue starts at zeros as USB's, which only
  rescales the ratio until it is full;
- single-label only (see ``unsupported_reason``);
- several processes (torchrun): the bank is written with every rank's labeled rows
  (gathered, as USB's ``concat_all_gather``) and the alignment queue takes the global
  batch's mean, so every rank holds the same bank and queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.core.distributed import gather_rows, mean_over_ranks
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.method import (
    EMA_MODEL_DEFAULTS,
    Batch,
    Method,
    MethodInfo,
    Option,
    StepContext,
    StepOutput,
    View,
)
from ssl_bench.method_kit.pseudo_labels import (
    confidence,
    distribution_alignment,
    hard_labels,
    masked_mean,
    target_loss,
)
from ssl_bench.method_kit.search_space import THRESHOLD, UNLABELED_WEIGHT, Float
from ssl_bench.plugins.registry import register_method

SINGLE = Task("single", 2)  # kind only: the pieces below need no class weights


#: Projection heads averaged by EPASS (USB's ``SimMatch_Net`` with ``epass``).
EPASS_HEADS = 3


def projection_head(width: int, proj_size: int) -> nn.Module:
    """SimMatch's head: ``Linear(F, F)``-ReLU-``Linear(F, proj_size)``."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, proj_size))


class ProjectedModel(nn.Module):
    """Backbone + SimMatch's projection head(s); returns ``(embedding, logits)``.

    With several heads (EPASS) the embedding is the L2-normalised mean of their outputs.
    """

    def __init__(self, backbone: nn.Module, proj_size: int, heads: int = 1) -> None:
        super().__init__()
        self.backbone = backbone
        width = backbone.num_features
        self.head = projection_head(width, proj_size)
        #: EPASS's further heads (empty for one head, so a one-head state dict is unchanged).
        self.extra_heads = nn.ModuleList(projection_head(width, proj_size)
                                         for _ in range(heads - 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.backbone(images)
        heads = (self.head, *self.extra_heads)
        projected = sum(head(features) for head in heads) / len(heads)
        return F.normalize(projected, dim=1), logits


def propagate(probs: torch.Tensor, similarity: torch.Tensor, bank_labels: torch.Tensor,
              temperature: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Labeled-unlabeled interaction: (aggregated class targets, unfolded instance targets)
    from class probabilities ``U x C`` and similarities to the bank ``U x K``."""
    instance = F.softmax(similarity / temperature, dim=1)
    unfolded = instance * probs[:, bank_labels]
    unfolded = unfolded / unfolded.sum(dim=1, keepdim=True).clamp_min(1e-12)
    aggregated = instance @ F.one_hot(bank_labels, probs.shape[1]).to(instance.dtype)
    return alpha * probs + (1 - alpha) * aggregated, unfolded


@register_method("simmatch")
class SimMatch(Method):
    summary = ("SimMatch: pseudo-labels propagated through a labeled embedding bank "
               "(Zheng et al., CVPR 2022)")
    needs_teacher = True
    uses_unlabeled = True
    data_parallel = "global"
    views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}
    defaults = {"rampup": 0.0, **EMA_MODEL_DEFAULTS}  # buffers: as USB's EMA model
    task_kinds = ("single",)
    unsupported_reason = ("label propagation unfolds one softmax distribution over classes "
                          "onto bank entries of one class each and aggregates it back; a "
                          "multi-hot label has no single class to propagate")
    search_space = {"threshold": THRESHOLD, "temperature": Float(0.05, 0.2),
                    "unlabeled_weight": UNLABELED_WEIGHT}
    options = (
        Option("threshold", float, 0.95, "confidence a propagated pseudo-label needs"),
        Option("temperature", float, 0.1, "temperature of the similarities to the bank"),
        Option("proj_size", int, 128, "width of the projection head's embedding"),
        Option("smoothing_alpha", float, 0.9, "weight of the class prediction against the "
               "bank's aggregated similarity in the pseudo-label"),
        Option("da_len", int, 32, "batches in the distribution-alignment queue (0: off)"),
        Option("unlabeled_weight", float, 1.0, "weight of the pseudo-label loss"),
        Option("instance_weight", float, 1.0, "weight of the instance-similarity loss"),
        Option("epass", bool, False, f"average {EPASS_HEADS} projection heads (EPASS, as "
               "USB's classic_cv configurations); false: the paper's single head"),
    )

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        for name, dtype in (("bank", torch.float), ("bank_labels", torch.long),
                            ("filled", torch.bool), ("da_queue", torch.float)):
            self.register_buffer(name, torch.zeros(0, dtype=dtype))
        self.register_buffer("da_pointer", torch.zeros((), dtype=torch.long))

    def build_model(self, backbone: nn.Module) -> nn.Module:
        return ProjectedModel(backbone, self.proj_size, EPASS_HEADS if self.epass else 1)

    def setup(self, info: MethodInfo) -> None:
        size, device = info.num_labeled, info.device
        self.bank = torch.zeros(size, self.proj_size, device=device)
        self.bank_labels = torch.zeros(size, dtype=torch.long, device=device)
        self.filled = torch.zeros(size, dtype=torch.bool, device=device)
        self.da_queue = torch.zeros(max(self.da_len, 1), info.num_classes, device=device)

    def similarity(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarities to the bank in float32; entries never written get -1e4."""
        with torch.autocast(self.bank.device.type, enabled=False):
            return (embeddings.float() @ self.bank.T).masked_fill(~self.filled, -1e4)

    @torch.no_grad()
    def align(self, probs: torch.Tensor) -> torch.Tensor:
        """USB's queue distribution alignment towards a uniform class prior."""
        if self.da_len <= 0:
            return probs
        self.da_queue[self.da_pointer] = mean_over_ranks(probs.mean(dim=0))
        self.da_pointer.copy_((self.da_pointer + 1) % self.da_len)
        uniform = torch.full_like(probs[0], 1.0 / probs.shape[1])
        return distribution_alignment(probs, self.da_queue.mean(dim=0), uniform, SINGLE)

    def train_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        labeled = batch.num_labeled
        weak = batch.views["weak"]
        embeddings, logits = ctx.student(torch.cat([weak[:labeled], batch.views["strong"]]))
        with torch.no_grad():
            teacher_embeddings, teacher_logits = ctx.teacher(weak)
            # replace the labeled rows' entries (every rank's) before use
            index, written, labels = (gather_rows(t) for t in (
                batch.labeled_index, teacher_embeddings[:labeled].float(), batch.targets))
            self.bank[index] = written
            self.bank_labels[index], self.filled[index] = labels, True
            probs = self.align(ctx.task.probabilities(teacher_logits[labeled:].float()))
            targets, instance_targets = propagate(
                probs, self.similarity(teacher_embeddings[labeled:]), self.bank_labels,
                self.temperature, self.smoothing_alpha)
        log_instance = F.log_softmax(self.similarity(embeddings[labeled:]) / self.temperature,
                                     dim=1)
        instance = -(instance_targets * log_instance).sum(dim=1).mean()
        mask = confidence(targets, SINGLE) >= self.threshold
        unsupervised = masked_mean(target_loss(logits[labeled:], targets, SINGLE), mask)
        supervised = ctx.task.supervised_loss(logits[:labeled], batch.targets)
        total = supervised + ctx.consistency_weight * (
            self.unlabeled_weight * unsupervised + self.instance_weight * instance)
        return StepOutput(
            losses={"total": total, "supervised": supervised, "unsupervised": unsupervised,
                    "instance": instance},
            logs={"mask_ratio": mask.float().mean()},
            pseudo_labels=(hard_labels(targets, SINGLE), mask),
        )
