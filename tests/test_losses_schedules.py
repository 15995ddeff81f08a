"""Relation loss against a hand-computed example; ramp-up and EMA schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssl_bench.data.tasks import Task, class_weights
from ssl_bench.method_kit.losses import consistency_mse, relation_consistency, relation_matrix
from ssl_bench.training.schedules import (
    ConsistencySchedule,
    ema_decay_at,
    ema_update,
    lr_factor,
    sigmoid_rampup,
)


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


@pytest.mark.parametrize("buffers", ["own", "ema", "copy"])
def test_ema_update_averages_parameters_and_treats_buffers_as_asked(buffers):
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    teacher = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(8, 3)
    student(x)  # moves the student's running statistics
    with torch.no_grad():
        teacher(x + 1.0)  # the teacher's own train-mode forward moves its own
    # By hand: BatchNorm's running mean after one forward is 0.9 * 0 + 0.1 * batch mean.
    own_mean = 0.1 * teacher[0](x + 1.0).mean(0)
    torch.testing.assert_close(teacher[1].running_mean, own_mean.detach())
    old = [p.detach().clone() for p in teacher.parameters()]
    old_bufs = [b.clone() for b in teacher.buffers()]
    ema_update(teacher, student, 0.75, buffers)
    for t, s, o in zip(teacher.parameters(), student.parameters(), old, strict=True):
        torch.testing.assert_close(t, 0.75 * o + 0.25 * s)
    for t, s, o in zip(teacher.buffers(), student.buffers(), old_bufs, strict=True):
        if buffers == "own":
            assert torch.equal(t, o)
        elif buffers == "copy" or not t.is_floating_point():  # num_batches_tracked
            assert torch.equal(t, s)
        else:
            torch.testing.assert_close(t, 0.75 * o + 0.25 * s)
    with pytest.raises(ValueError, match="buffers"):
        ema_update(teacher, student, 0.75, "average")


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


def test_class_weights_match_sklearn_and_the_official_scale():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0, 0, 0, 1, 2, 2])
    ours = class_weights(labels, 3, "balanced").numpy()
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert class_weights(np.array([0, 0, 2]), 3, "balanced")[1] == 0
    # N / n_c: 6/3, 6/1, 6/2 -- the official code's 10000 / n_c over ~10,000 images.
    np.testing.assert_allclose(class_weights(labels, 3, "inverse_frequency").numpy(),
                               [2.0, 6.0, 3.0])
    assert class_weights(labels, 3, "none") is None
    official = np.repeat(np.arange(7), [1113, 6705, 514, 327, 1099, 115, 142])
    np.testing.assert_allclose(class_weights(official, 7, "inverse_frequency").numpy(),
                               [10015 / n for n in (1113, 6705, 514, 327, 1099, 115, 142)],
                               rtol=1e-6)


def test_class_weighted_consistency_by_hand():
    """SRC-MT's softmax_mse_loss: sum_c w_c (p_c - q_c)^2, summed over rows, / B."""
    student = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    teacher = torch.log(torch.tensor([[0.4, 0.4, 0.2], [0.1, 0.3, 0.6]]))
    weights = torch.tensor([1.0, 10.0, 100.0])
    task = Task("single", 3, consistency_weights=weights)
    by_hand = (1 * 0.01 + 10 * 0.01 + 0 + 0 + 10 * 0.04 + 100 * 0.04) / 2
    assert consistency_mse(student, teacher, task).item() == pytest.approx(by_hand, rel=1e-5)
    plain = (0.01 + 0.01 + 0.04 + 0.04) / 2
    assert consistency_mse(student, teacher, Task("single", 3)).item() == pytest.approx(
        plain, rel=1e-5)
    with pytest.raises(ValueError, match="single-label"):
        Task("multi", 3, consistency_weights=weights)


def test_consistency_schedule_follows_the_official_epochs():
    """Official: lambda = sigmoid_rampup(epoch, 30), added only when epoch > 20."""
    spe = 116  # 1,400 labeled images // 12 per batch
    schedule = ConsistencySchedule(1.0, 30 * spe, spe, per_epoch=True, start_step=21 * spe)
    assert schedule(0) == 0.0 and schedule(21 * spe - 1) == 0.0
    assert schedule(21 * spe) == pytest.approx(math.exp(-5 * (1 - 21 / 30) ** 2))
    assert schedule(21 * spe) == pytest.approx(0.6376, abs=1e-4)
    assert schedule(21 * spe + spe - 1) == schedule(21 * spe), "constant within an epoch"
    assert schedule(30 * spe) == 1.0 and schedule(99 * spe) == 1.0
    smooth = ConsistencySchedule(2.0, 100)
    assert smooth(0) == pytest.approx(2 * math.exp(-5)) and smooth(50) == pytest.approx(
        2 * sigmoid_rampup(50, 100))


def test_exponential_lr_matches_torch_exponential_lr_stepped_per_epoch():
    spe, decay = 7, 0.9
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    reference = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
    for step in range(5 * spe):
        assert lr_factor("exponential", step, 5 * spe, spe, decay) == pytest.approx(
            reference.get_last_lr()[0])
        if (step + 1) % spe == 0:
            optimizer.step()
            reference.step()
    assert lr_factor("constant", 3, 10, 2, decay) == 1.0
    assert lr_factor("cosine", 10, 10, 2, decay) == pytest.approx(0.0)
