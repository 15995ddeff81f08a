"""Our loss terms and schedules against the official SRC-MT code, run side by side.

The ``official_*`` functions below are the official repository's own code
(github.com/liuquande/SRC-MT, ``code/utils/losses.py``, ``code/utils/ramps.py`` and
``code/train_SRC_MT.py``), copied with ``.cuda()`` removed so they run on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench.data.tasks import Task, class_weights
from ssl_bench.method_kit.losses import consistency_mse, relation_consistency
from ssl_bench.training.schedules import ConsistencySchedule, lr_factor

CLASS_NUM = [1113, 6705, 514, 327, 1099, 115, 142]
CLASS_WEIGHT = torch.Tensor([10000 / i for i in CLASS_NUM])


def official_relation_mse_loss(activations, ema_activations):
    activations = torch.reshape(activations, (activations.shape[0], -1))
    ema_activations = torch.reshape(ema_activations, (ema_activations.shape[0], -1))
    similarity = activations.mm(activations.t())
    norm = torch.reshape(torch.norm(similarity, 2, 1), (-1, 1))
    norm_similarity = similarity / norm
    ema_similarity = ema_activations.mm(ema_activations.t())
    ema_norm = torch.reshape(torch.norm(ema_similarity, 2, 1), (-1, 1))
    ema_norm_similarity = ema_similarity / ema_norm
    return (norm_similarity - ema_norm_similarity) ** 2


def official_softmax_mse_loss(input_logits, target_logits):
    input_softmax = F.softmax(input_logits, dim=1)
    target_softmax = F.softmax(target_logits, dim=1)
    return (input_softmax - target_softmax) ** 2 * CLASS_WEIGHT


def official_sigmoid_rampup(current, rampup_length):
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(48, 1024, generator=generator).relu(),
            torch.randn(48, 1024, generator=generator).relu(),
            torch.randn(48, 7, generator=generator), torch.randn(48, 7, generator=generator))


def test_relation_loss_is_bit_identical_to_the_official(batch):
    features, ema_features, _, _ = batch
    official = torch.sum(official_relation_mse_loss(features, ema_features)) / 48
    assert torch.equal(relation_consistency(features, ema_features), official)


def test_class_weighted_consistency_equals_the_official(batch):
    _, _, logits, ema_logits = batch
    labels = np.repeat(np.arange(7), CLASS_NUM)  # the official counts (all 10,015 images)
    weights = class_weights(labels, 7, "inverse_frequency")
    assert weights is not None
    # N / n_c with N = 10,015 against the official 10,000 / n_c: the same up to 10015/10000
    task = Task("single", 7, consistency_weights=weights * 10000 / 10015)
    official = torch.sum(official_softmax_mse_loss(logits, ema_logits)) / 48
    torch.testing.assert_close(consistency_mse(logits, ema_logits, task), official,
                               rtol=1e-6, atol=0)


def test_weighted_cross_entropy_equals_the_official_without_its_second_softmax(batch):
    _, _, logits, _ = batch
    targets = torch.arange(48) % 7
    official = torch.nn.CrossEntropyLoss(weight=CLASS_WEIGHT, reduction="mean")
    labels = np.repeat(np.arange(7), CLASS_NUM)
    ours = Task("single", 7, class_weights=class_weights(labels, 7, "balanced"))
    # Any positive scale of the weights gives the same weighted mean.
    torch.testing.assert_close(ours.supervised_loss(logits, targets),
                               official(logits, targets), rtol=1e-6, atol=1e-7)


def test_lambda_and_lr_follow_the_official_loop():
    """train_SRC_MT.py: lambda = rampup(epoch, 30) added when epoch > 20; lr *= 0.9/epoch."""
    steps_per_epoch = 1400 // 12  # len(TwoStreamBatchSampler) at 1,400 labeled images
    schedule = ConsistencySchedule(1.0, 0.3 * 100 * steps_per_epoch, steps_per_epoch,
                                   per_epoch=True, start_step=21 * steps_per_epoch)
    lr = 1e-4
    for epoch in range(100):
        official_lambda = official_sigmoid_rampup(epoch, 30) if epoch > 20 else 0.0
        for i in (0, steps_per_epoch // 2, steps_per_epoch - 1):
            step = epoch * steps_per_epoch + i
            assert schedule(step) == pytest.approx(official_lambda, abs=1e-12)
            assert 1e-4 * lr_factor("exponential", step, 100 * steps_per_epoch,
                                    steps_per_epoch, 0.9) == pytest.approx(lr, rel=1e-12)
        lr = lr * 0.9
