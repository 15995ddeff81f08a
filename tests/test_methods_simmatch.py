"""SimMatch: label propagation by hand, the labeled bank after a known step, the projection
head's training, EPASS's averaged heads, exact resume and the multi-label refusal."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from torch import nn

from ssl_bench.core.errors import UserError
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.method import Batch, MethodInfo, StepContext
from ssl_bench.methods.simmatch import EPASS_HEADS, ProjectedModel, SimMatch, propagate
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer


class TinyBackbone(nn.Module):
    """Deterministic (no dropout, no batch norm) backbone: ``(features, logits)``."""

    num_features = 4

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(12, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images.flatten(1))
        return features, self.fc(features)


def _info(num_labeled: int = 5) -> MethodInfo:
    return MethodInfo("single", 2, num_labeled, 10, (3, 2), 10, 5, torch.device("cpu"))


def test_label_propagation_by_hand():
    """Bank of 3 entries (classes 0, 0, 1), similarity softmax (1/2, 1/4, 1/4), p = (.8, .2):
    unfolded = (.4, .2, .05) / .65; aggregated = (.75, .25); alpha .9 -> (.795, .205)."""
    probs = torch.tensor([[0.8, 0.2]])
    similarity = 0.1 * torch.tensor([[0.5, 0.25, 0.25]]).log()
    targets, unfolded = propagate(probs, similarity, torch.tensor([0, 0, 1]), 0.1, 0.9)
    torch.testing.assert_close(targets, torch.tensor([[0.795, 0.205]]))
    torch.testing.assert_close(unfolded, torch.tensor([[8 / 13, 4 / 13, 1 / 13]]))
    # the instance loss against a student with the teacher's similarities: 18/13 ln 2
    loss = -(unfolded * F.log_softmax(similarity / 0.1, dim=1)).sum()
    assert math.isclose(float(loss), 18 / 13 * math.log(2), rel_tol=1e-6)


def test_distribution_alignment_queue():
    method = SimMatch(da_len=2)
    method.setup(_info())
    first = torch.tensor([[0.9, 0.1], [0.5, 0.5]])  # mean (.7, .3)
    aligned = method.align(first)
    expected = first / torch.tensor([0.7, 0.3])  # queue mean (.35, .15): a common factor
    torch.testing.assert_close(aligned, expected / expected.sum(1, keepdim=True))
    method.align(torch.tensor([[0.3, 0.7]]))
    method.align(torch.tensor([[0.5, 0.5]]))  # overwrites the first slot (length 2)
    torch.testing.assert_close(method.da_queue, torch.tensor([[0.5, 0.5], [0.3, 0.7]]))
    assert int(method.da_pointer) == 1


def test_a_known_step_writes_the_bank_and_uses_only_written_entries():
    torch.manual_seed(0)
    method = SimMatch(proj_size=3, da_len=0, threshold=0.5)
    student = method.build_model(TinyBackbone())
    teacher = copy.deepcopy(student)
    method.setup(_info(num_labeled=5))
    weak, strong = torch.randn(5, 3, 2, 2), torch.randn(3, 3, 2, 2)
    batch = Batch({"weak": weak, "strong": strong}, torch.tensor([1, 0]), 2,
                  torch.tensor([4, 1]), torch.arange(3))
    output = method.train_step(batch, StepContext(student, teacher, Task("single", 2), 1.0, 0))

    with torch.no_grad():
        teacher_embeddings, teacher_logits = teacher(weak)
        embeddings, logits = student(torch.cat([weak[:2], strong]))
    torch.testing.assert_close(method.bank[[4, 1]], teacher_embeddings[:2])
    assert method.bank[[0, 2, 3]].abs().sum() == 0
    assert method.bank_labels.tolist() == [0, 0, 0, 0, 1]
    assert method.filled.tolist() == [False, True, False, False, True]

    # by hand over the two written entries only (index 4: class 1, index 1: class 0)
    entries, entry_labels = teacher_embeddings[:2], torch.tensor([1, 0])
    probs = teacher_logits[2:].softmax(dim=1)
    similarity = (teacher_embeddings[2:] @ entries.T / 0.1).softmax(dim=1)
    unfolded = similarity * probs[:, entry_labels]
    unfolded = unfolded / unfolded.sum(1, keepdim=True)
    targets = 0.9 * probs + 0.1 * similarity[:, [1, 0]]  # columns as classes 0, 1
    student_log = (embeddings[2:] @ entries.T / 0.1).log_softmax(dim=1)
    instance = -(unfolded * student_log).sum(1).mean()
    mask = targets.max(dim=1).values >= 0.5
    ce = -(targets * logits[2:].log_softmax(dim=1)).sum(1)
    losses = output.losses
    torch.testing.assert_close(losses["instance"], instance)
    torch.testing.assert_close(losses["unsupervised"], (ce * mask).mean())
    torch.testing.assert_close(losses["supervised"], F.cross_entropy(logits[:2], batch.targets))
    torch.testing.assert_close(
        losses["total"], losses["supervised"] + losses["unsupervised"] + losses["instance"])
    labels, used = output.pseudo_labels
    assert torch.equal(labels, targets.argmax(1)) and torch.equal(used, mask)


def test_the_projection_head_is_optimised_averaged_and_trained():
    trainer = Trainer(prepare(tiny_config(method="simmatch")))
    head = dict(trainer.student.head.named_parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in head.values()} <= optimised
    assert [n for n, _ in trainer.teacher.head.named_parameters()] == list(head)
    assert trainer.method.bank.shape == (len(trainer.p.parts["labeled"]), 128)
    before = {k: v.detach().clone() for k, v in head.items()}
    seen = []
    next_batch = trainer.next_batch
    trainer.next_batch = lambda: seen.append(next_batch()) or seen[-1]
    trainer.train_step()
    for name, value in head.items():
        assert not torch.equal(value, before[name]), f"head {name} did not change"
    index = seen[0].labeled_index
    assert bool(trainer.method.filled[index].all())
    assert int(trainer.method.filled.sum()) == index.unique().numel()
    assert torch.equal(trainer.method.bank_labels[index], seen[0].targets)


def test_epass_averages_three_projection_heads_before_normalising():
    """Issue 26, item 3: USB's SimMatch_Net with ``use_epass``:
    ``l2norm((mlp_proj(f) + mlp_proj_2(f) + mlp_proj_3(f)) / 3)``, written out by hand."""
    assert EPASS_HEADS == 3
    single = SimMatch().build_model(TinyBackbone())
    assert len(single.extra_heads) == 0 and {k.split(".")[0] for k, _ in
                                             single.named_parameters()} == {"backbone", "head"}
    torch.manual_seed(0)
    model = SimMatch(epass=True, proj_size=3).build_model(TinyBackbone())
    assert isinstance(model, ProjectedModel) and len(model.extra_heads) == 2
    images = torch.randn(5, 12)
    features, logits = model.backbone(images)
    heads = [model.head, *model.extra_heads]
    outputs = []
    for head in heads:  # Linear -> ReLU -> Linear, by hand
        first, last = head[0], head[2]
        hidden = (features @ first.weight.T + first.bias).clamp_min(0.0)
        outputs.append(hidden @ last.weight.T + last.bias)
    mean = sum(outputs) / 3
    expected = mean / mean.pow(2).sum(dim=1, keepdim=True).sqrt()
    embedding, got_logits = model(images)
    torch.testing.assert_close(embedding, expected)
    torch.testing.assert_close(got_logits, logits)
    assert not torch.allclose(outputs[0] / outputs[0].norm(dim=1, keepdim=True), expected)


def test_epass_heads_are_trained_and_followed_by_the_teacher():
    trainer = Trainer(prepare(tiny_config(method="simmatch", method_options={"epass": True})))
    heads = dict(trainer.student.extra_heads.named_parameters())
    assert len(heads) == 2 * 4  # two extra heads, two Linear layers each
    before = {k: v.detach().clone() for k, v in heads.items()}
    trainer.train_step()
    for name, value in heads.items():
        assert not torch.equal(value, before[name]), f"EPASS head {name} did not change"
    assert [n for n, _ in trainer.teacher.extra_heads.named_parameters()] == list(heads)


def test_state_survives_a_checkpoint_round_trip():
    def trainer() -> Trainer:
        return Trainer(prepare(tiny_config(method="simmatch", iterations=6, eval_every=2)))

    straight = trainer()
    straight.fit()
    interrupted = trainer()
    interrupted.fit(stop_after=2)
    state = interrupted.state_dict()
    assert {"bank", "bank_labels", "filled", "da_queue", "da_pointer"} <= set(state["method"])
    resumed = trainer()
    resumed.load_state_dict(state)
    assert int(resumed.method.da_pointer) == 2
    resumed.fit()
    for name, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[name]), name
    for name, value in straight.student.state_dict().items():
        assert torch.equal(value, resumed.student.state_dict()[name]), name


def test_multilabel_data_sets_are_refused_with_the_reason():
    with pytest.raises(UserError, match="multi-label.*softmax distribution over classes"):
        prepare(tiny_config(method="simmatch", dataset="digits-multilabel"))
