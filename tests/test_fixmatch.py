"""FixMatch against hand-computed examples (single- and multi-label)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config

from ssl_bench.method_kit.method import StepContext, StepOutput
from ssl_bench.plugins.registry import create_method
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer


def test_single_label_loss_by_hand():
    fixmatch = create_method("fixmatch")
    weak = torch.tensor([[10.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # p_max 0.99991 / 0.576
    strong = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    loss, labels, mask = fixmatch.single_label_loss(weak, strong)
    assert labels.tolist() == [0, 0] and mask.tolist() == [True, False]
    # row 0: CE of uniform logits against class 0 = log 3; row 1 masked; mean over 2 rows
    assert float(loss) == pytest.approx(math.log(3) / 2, rel=1e-6)


def test_no_confident_prediction_gives_zero_unlabeled_loss():
    fixmatch = create_method("fixmatch", threshold=0.99)
    weak = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    strong = torch.randn(2, 3, requires_grad=True)
    loss, _, mask = fixmatch.single_label_loss(weak, strong)
    assert not mask.any() and float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(strong.grad, torch.zeros_like(strong))


def test_soft_labels_by_hand():
    fixmatch = create_method("fixmatch", hard_label=False, temperature=0.5, threshold=0.0)
    weak = torch.tensor([[1.0, 0.0]])
    strong = torch.tensor([[0.0, 0.0]])
    loss, _, mask = fixmatch.single_label_loss(weak, strong)
    target = torch.softmax(torch.tensor([2.0, 0.0]), dim=0)  # logits / 0.5
    expected = -(target * torch.log(torch.tensor([0.5, 0.5]))).sum()
    assert mask.all() and float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_multilabel_loss_by_hand():
    fixmatch = create_method("fixmatch")  # positive >= 0.95, negative <= 0.05
    weak = torch.tensor([[5.0, -5.0, 0.0]])  # p = 0.9933, 0.0067, 0.5
    strong = torch.zeros(1, 3)
    loss, labels, mask = fixmatch.multilabel_loss(weak, strong)
    assert mask.tolist() == [[True, True, False]]
    assert labels[0, :2].tolist() == [1.0, 0.0]
    # two confident entries, BCE of logit 0 = log 2 each, divided by 3 entries
    assert float(loss) == pytest.approx(2 * math.log(2) / 3, rel=1e-6)
    negative_only = create_method("fixmatch", negative_threshold=0.001)
    _, _, mask = negative_only.multilabel_loss(weak, strong)
    assert mask.tolist() == [[True, False, False]]


@pytest.mark.parametrize("dataset", ["digits", "digits-multilabel"])
def test_a_step_reports_mask_ratio_and_pseudo_labels(dataset):
    trainer = Trainer(prepare(tiny_config(method="fixmatch", dataset=dataset)))
    assert trainer.config.rampup == 0.0  # the method's own default
    batch = trainer.next_batch()
    unlabeled = trainer.config.batch_size - trainer.config.labeled_batch_size
    assert batch.views["weak"].shape[0] == trainer.config.batch_size
    assert batch.views["strong"].shape[0] == unlabeled
    ctx = StepContext(trainer.student, trainer.teacher, trainer.task, 1.0, 0)
    output = trainer.method.train_step(batch, ctx)
    assert isinstance(output, StepOutput)
    ratio = float(output.logs["mask_ratio"])
    labels, mask = output.pseudo_labels
    assert ratio == pytest.approx(float(mask.float().mean()))
    assert labels.shape[0] == mask.shape[0] == unlabeled
    trainer.train_step()
    row = trainer.logs.flush()
    assert 0.0 <= row["log_mask_ratio"] <= 1.0
    assert "log_pseudo_label_accuracy" in row


def test_flags_override_the_method_default():
    from ssl_bench.config.resolve import resolve_config

    assert resolve_config({}, {"method": "fixmatch"}).rampup == 0.0
    assert resolve_config({}, {"method": "fixmatch", "rampup": 0.2}).rampup == 0.2
    assert resolve_config({"rampup": 0.1}, {"method": "fixmatch"}).rampup == 0.1
    assert resolve_config({}, {"method": "mt"}).rampup == 0.3
