"""Relation loss against a hand-computed example; ramp-up and EMA schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssl_bench.losses import consistency_mse, relation_consistency, relation_matrix
from ssl_bench.schedules import ema_decay_at, ema_update, sigmoid_rampup
from ssl_bench.tasks import Task, balanced_class_weights


def test_relation_matrix_by_hand():
    features = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    # Gram: [[1,1,0],[1,2,2],[0,2,4]]; row norms sqrt(2), 3, sqrt(20).
    expected = torch.tensor(
        [
            [1 / math.sqrt(2), 1 / math.sqrt(2), 0.0],
            [1 / 3, 2 / 3, 2 / 3],
            [0.0, 2 / math.sqrt(20), 4 / math.sqrt(20)],
        ]
    )
    torch.testing.assert_close(relation_matrix(features), expected)


def test_relation_consistency_by_hand():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # Gram = I -> rows already unit
    teacher = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # Gram = 2s -> rows (1/sqrt2, 1/sqrt2)
    r = 1 / math.sqrt(2)
    # Squared differences: (1-r)^2 + r^2 per row, two rows, divided by B = 2.
    expected = 2 * ((1 - r) ** 2 + r**2) / 2
    assert relation_consistency(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    assert relation_consistency(student, student).item() == 0.0


def test_relation_loss_flattens_spatial_features_and_is_scale_invariant():
    features = torch.randn(5, 3, 2, 2)
    assert relation_consistency(features, 7.0 * features).item() == pytest.approx(0, abs=1e-6)


def test_consistency_mse_single_and_multi_label():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    p = torch.softmax(a, dim=1)
    expected = ((p - 0.5) ** 2).sum().item()
    assert consistency_mse(a, b, Task("single", 2)).item() == pytest.approx(expected)
    s = torch.sigmoid(a)
    expected_multi = ((s - 0.5) ** 2).sum().item()
    assert consistency_mse(a, b, Task("multi", 2)).item() == pytest.approx(expected_multi)


def test_sigmoid_rampup_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(500, 100) == 1.0
    assert sigmoid_rampup(-3, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(10, 0) == 1.0
    values = [sigmoid_rampup(t, 30) for t in range(31)]
    assert values == sorted(values)


def test_ema_decay_schedule():
    assert ema_decay_at(0, 0.99) == 0.0
    assert ema_decay_at(1, 0.99) == 0.5
    assert ema_decay_at(9, 0.99) == pytest.approx(0.9)
    assert ema_decay_at(10_000, 0.99) == 0.99


def test_ema_update_averages_parameters_and_copies_buffers():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    teacher = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    student(torch.randn(8, 3))  # moves the student's running statistics
    old = [p.detach().clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.75)
    for t, s, o in zip(teacher.parameters(), student.parameters(), old, strict=True):
        torch.testing.assert_close(t, 0.75 * o + 0.25 * s)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        assert torch.equal(t, s)


def test_task_losses():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    targets = torch.tensor([0, 2])
    single = Task("single", 3)
    expected = torch.nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(single.supervised_loss(logits, targets), expected)
    assert torch.allclose(single.probabilities(logits).sum(1), torch.ones(2))
    multi = Task("multi", 3)
    multi_targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, multi_targets)
    torch.testing.assert_close(multi.supervised_loss(logits, multi_targets), expected)


def test_balanced_class_weights_match_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0, 0, 0, 1, 2, 2])
    ours = balanced_class_weights(labels, 3).numpy()
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert balanced_class_weights(np.array([0, 0, 2]), 3)[1] == 0
