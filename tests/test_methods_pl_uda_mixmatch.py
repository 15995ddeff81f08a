"""Pseudo-Label, UDA and MixMatch against hand-computed examples (single- and multi-label),
and the shared pieces of ``ssl_bench.method_kit.mixing``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from ssl_bench.core.errors import UserError
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.method import StepContext, StepOutput
from ssl_bench.method_kit.mixing import (
    frozen_batchnorm_stats,
    mixup,
    probability_mse,
    soft_supervised_loss,
    targets_as_probabilities,
    tsa_threshold,
)
from ssl_bench.plugins.registry import create_method
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer

SINGLE, MULTI = Task("single", 3), Task("multi", 3)
DATASETS = ["digits", "digits-multilabel"]


def _step(method: str, dataset: str, weight: float = 1.0, **options):
    overrides = {"method_options": options} if options else {}
    trainer = Trainer(prepare(tiny_config(method=method, dataset=dataset, **overrides)))
    batch = trainer.next_batch()
    ctx = StepContext(trainer.student, trainer.teacher, trainer.task, weight, 0)
    return trainer, batch, ctx


# ---------------------------------------------------------------- pseudo-label

def test_pseudo_label_single_label_loss_by_hand():
    method = create_method("pseudo-label")
    logits = torch.tensor([[4.0, 0.0, 0.0], [1.0, 0.0, 0.0]], requires_grad=True)
    loss, labels, mask = method.unlabeled_loss(logits, SINGLE)  # p_max 0.965 / 0.576
    assert labels.tolist() == [0, 0] and mask.tolist() == [True, False]
    p0 = torch.softmax(logits.detach()[0], 0)
    assert float(loss) == pytest.approx(math.log(1 + 2 * math.exp(-4)) / 2, rel=1e-5)
    loss.backward()  # the target is detached: the gradient is (p - onehot) / 2 on row 0
    expected = torch.zeros(2, 3)
    expected[0] = (p0 - torch.tensor([1.0, 0.0, 0.0])) / 2
    assert torch.allclose(logits.grad, expected, atol=1e-7)


def test_pseudo_label_threshold_zero_labels_every_row_as_the_paper():
    method = create_method("pseudo-label", threshold=0.0)
    logits = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.0, 0.1]])
    loss, labels, mask = method.unlabeled_loss(logits, SINGLE)
    assert mask.all() and labels.tolist() == [1, 0]
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)


def test_pseudo_label_multilabel_loss_by_hand():
    method = create_method("pseudo-label")
    logits = torch.tensor([[5.0, -5.0, 0.0]])  # p = 0.9933, 0.0067, 0.5
    loss, labels, mask = method.unlabeled_loss(logits, MULTI)
    assert mask.tolist() == [[True, True, False]] and labels[0, :2].tolist() == [1.0, 0.0]
    bce = F.binary_cross_entropy_with_logits(torch.tensor(5.0), torch.tensor(1.0))
    assert float(loss) == pytest.approx(2 * float(bce) / 3, rel=1e-5)


@pytest.mark.parametrize("dataset", DATASETS)
def test_pseudo_label_one_pass_over_one_weak_view(dataset):
    trainer, batch, ctx = _step("pseudo-label", dataset, weight=0.5)
    assert set(batch.views) == {"weak"} and batch.views["weak"].shape[0] == batch.size
    assert trainer.config.rampup == 0.3  # the engine's ramp-up (USB ramps lambda_u)
    calls = []
    handle = trainer.student.register_forward_hook(lambda *a: calls.append(1))
    torch.manual_seed(0)
    output = trainer.method.train_step(batch, ctx)
    handle.remove()
    assert len(calls) == 1
    losses = output.losses
    expected = losses["supervised"] + 0.5 * losses["unsupervised"]
    assert torch.allclose(losses["total"], expected)
    labels, mask = output.pseudo_labels
    assert labels.shape[0] == mask.shape[0] == batch.size - batch.num_labeled
    assert float(output.logs["mask_ratio"]) == pytest.approx(float(mask.float().mean()))


# ------------------------------------------------------------------------ UDA

def test_tsa_thresholds():
    assert tsa_threshold("none", 5, 10, 4) == 1.0
    assert tsa_threshold("linear", 5, 10, 4) == pytest.approx(0.5 * 0.75 + 0.25)
    assert tsa_threshold("log", 5, 10, 4) == pytest.approx((1 - math.exp(-2.5)) * 0.75 + 0.25)
    assert tsa_threshold("exp", 5, 10, 4) == pytest.approx(math.exp(-2.5) * 0.75 + 0.25)
    for schedule in ("linear", "exp"):
        assert tsa_threshold(schedule, 10, 10, 4) == pytest.approx(1.0)
    assert tsa_threshold("log", 10, 10, 4) == pytest.approx((1 - math.exp(-5)) * 0.75 + 0.25)
    assert tsa_threshold("linear", 0, 10, 4) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        tsa_threshold("cosine", 0, 10, 4)


def test_uda_unlabeled_loss_by_hand():
    uda = create_method("uda")  # T = 0.4, threshold 0.8
    weak = torch.tensor([[3.0, 0.0, 0.0], [0.5, 0.0, 0.0]])  # p_max 0.909 / 0.45
    strong = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    loss, labels, mask = uda.unlabeled_loss(weak, strong, SINGLE)
    assert mask.tolist() == [True, False] and labels.tolist() == [0, 0]
    target = torch.softmax(weak[0] / 0.4, 0)
    sharpened = torch.softmax(weak[0], 0).pow(2.5)
    assert torch.allclose(target, sharpened / sharpened.sum())  # softmax(l / T) = sharpen
    ce = -(target * torch.log_softmax(strong[0], 0)).sum()
    assert float(loss) == pytest.approx(float(ce) / 2, rel=1e-6)


def test_uda_targets_at_the_papers_temperature_and_at_usbs_current_one():
    """Issue 26, item 2: T = 0.4 sharpens (the official code, USB <= 0.2); T = 1 leaves the
    weak-view probabilities as they are (USB >= 0.3 passes them with softmax=False)."""
    weak = torch.tensor([[2.0, 0.0, 0.0]])  # p = (e^2, 1, 1) / (e^2 + 2) = (.787, .107, .107)
    strong = torch.tensor([[0.0, 1.0, 0.0]])
    log_p_strong = [-math.log(2 + math.e), 1 - math.log(2 + math.e), -math.log(2 + math.e)]
    for temperature, power in ((0.4, 2.5), (1.0, 1.0)):
        uda = create_method("uda", temperature=temperature, threshold=0.5)
        loss, _, mask = uda.unlabeled_loss(weak, strong, SINGLE)
        sharpened = [math.exp(2.0 * power), 1.0, 1.0]  # p^(1/T), normalised below
        target = [v / sum(sharpened) for v in sharpened]
        assert mask.tolist() == [True]
        expected = -sum(t * lp for t, lp in zip(target, log_p_strong, strict=True))
        assert float(loss) == pytest.approx(expected, rel=1e-6)
        # by hand: 1.5448 sharpened (target (.986, .007, .007)), 1.4449 with T = 1
        assert expected == pytest.approx({0.4: 1.5447964, 1.0: 1.4449377}[temperature])
    # T = 1: the target is the weak probabilities themselves
    p0 = math.exp(2) / (math.exp(2) + 2)
    assert expected == pytest.approx(-(p0 * log_p_strong[0] + (1 - p0) / 2 * (
        log_p_strong[1] + log_p_strong[2])), rel=1e-9)


def test_uda_multilabel_per_entry_targets_and_masks():
    uda = create_method("uda")
    weak = torch.tensor([[2.0, -2.0, 0.5]])  # p = 0.881, 0.119, 0.622
    strong = torch.zeros(1, 3)
    loss, labels, mask = uda.unlabeled_loss(weak, strong, MULTI)
    assert mask.tolist() == [[True, True, False]] and labels.tolist() == [[1.0, 0.0, 1.0]]
    targets = torch.sigmoid(weak[0, :2] / 0.4)
    bce = F.binary_cross_entropy_with_logits(torch.zeros(2), targets, reduction="sum")
    assert float(loss) == pytest.approx(float(bce) / 3, rel=1e-6)


def test_uda_tsa_drops_confident_labeled_examples():
    uda = create_method("uda", tsa="linear")
    uda.total_steps = 10
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]],
                          requires_grad=True)
    targets = torch.tensor([0, 1, 0])  # correct-class p: 0.96, 0.33, 0.045
    # step 5 of 10, K = 3: eta = 0.5 * 2/3 + 1/3 = 0.667 -> row 0 dropped
    loss, kept = uda.supervised_loss(logits, targets, SINGLE, step=5)
    assert float(kept) == pytest.approx(2 / 3)
    expected = F.cross_entropy(logits.detach()[1:], targets[1:])
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    # at step 0, eta = 1/3: every row above it is dropped; the loss stays in the graph
    loss, kept = uda.supervised_loss(logits[:1], targets[:1], SINGLE, step=0)
    assert float(kept) == 0.0 and float(loss) == 0.0
    loss.backward()
    # none: the plain supervised loss
    plain, kept = create_method("uda").supervised_loss(logits.detach(), targets, SINGLE, 0)
    assert float(kept) == 1.0
    assert float(plain) == pytest.approx(float(F.cross_entropy(logits.detach(), targets)))


def test_uda_tsa_multilabel_uses_the_correct_side_per_entry():
    uda = create_method("uda", tsa="linear")
    uda.total_steps = 10
    logits = torch.tensor([[3.0, 3.0, -3.0]])  # p = 0.95, 0.95, 0.047
    targets = torch.tensor([[1.0, 0.0, 0.0]])  # correct side 0.95, 0.047, 0.953
    loss, kept = uda.supervised_loss(logits, targets, MULTI, step=5)  # eta = 0.75
    assert float(kept) == pytest.approx(1 / 3)
    expected = F.binary_cross_entropy_with_logits(logits[0, 1], targets[0, 1])
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("dataset", DATASETS)
def test_uda_step(dataset):
    trainer, batch, ctx = _step("uda", dataset, weight=1.0, tsa="log")
    assert trainer.config.rampup == 0.0 and trainer.method.total_steps == 4
    unlabeled = batch.size - batch.num_labeled
    assert batch.views["strong"].shape[0] == unlabeled
    output = trainer.method.train_step(batch, ctx)
    assert isinstance(output, StepOutput)
    assert {"mask_ratio", "tsa_kept"} <= set(output.logs)
    labels, mask = output.pseudo_labels
    assert labels.shape[0] == mask.shape[0] == unlabeled
    trainer.train_step()
    row = trainer.logs.flush()
    assert 0.0 <= row["log_tsa_kept"] <= 1.0 and "log_pseudo_label_accuracy" in row


# ------------------------------------------------------------------- MixMatch

def test_mixmatch_guess_is_the_sharpened_mean():
    mixmatch = create_method("mixmatch")  # T = 0.5
    a, b = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    mean = (torch.softmax(a, 1) + torch.softmax(b, 1)) / 2
    expected = mean.pow(2) / mean.pow(2).sum()
    assert torch.allclose(mixmatch.guess_labels([a, b], SINGLE), expected)
    guess = mixmatch.guess_labels([a, b], MULTI)
    mean = (torch.sigmoid(a) + torch.sigmoid(b)) / 2
    assert torch.allclose(guess, mean.pow(2) / (mean.pow(2) + (1 - mean).pow(2)))


def test_mixup_keeps_rows_closer_to_themselves():
    torch.manual_seed(0)
    inputs = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 2, 2).contiguous()
    targets = torch.eye(8)
    mixed, mixed_targets, lam = mixup(inputs, targets, 0.5)
    assert (lam >= 0.5).all() and (lam <= 1).all()
    assert torch.allclose(mixed_targets.sum(1), torch.ones(8))
    assert torch.allclose(mixed_targets.diagonal(), torch.where(
        mixed_targets.max(1).values == 1, torch.ones(8), lam))
    own = (mixed_targets * torch.arange(8.0)).sum(1)  # inputs mixed like the targets
    assert torch.allclose(mixed[:, 0, 0, 0], own)


def test_soft_supervised_loss_reduces_to_the_weighted_cross_entropy():
    weights = torch.tensor([1.0, 3.0, 0.5])
    task = Task("single", 3, class_weights=weights)
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1, 0])
    one_hot = targets_as_probabilities(labels, task)
    assert float(soft_supervised_loss(logits, one_hot, task)) == pytest.approx(
        float(F.cross_entropy(logits, labels, weight=weights)), rel=1e-6)
    assert float(soft_supervised_loss(logits, one_hot, SINGLE)) == pytest.approx(
        float(F.cross_entropy(logits, labels)), rel=1e-6)
    multi = torch.tensor([[1.0, 0.0, 1.0]])
    assert float(soft_supervised_loss(logits[:1], multi, MULTI)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits[:1], multi)), rel=1e-6)


def test_probability_mse_averages_over_rows_and_classes():
    logits = torch.zeros(2, 4)
    targets = torch.tensor([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    expected = ((0.75 ** 2 + 3 * 0.25 ** 2) + 0) / 8
    assert float(probability_mse(logits, targets, Task("single", 4))) == pytest.approx(expected)
    assert float(probability_mse(torch.zeros(1, 2), torch.ones(1, 2), MULTI)) == pytest.approx(
        0.25)


def test_frozen_batchnorm_stats_restores_running_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with frozen_batchnorm_stats(model):
        out = model(torch.randn(4, 1, 3, 3) * 5 + 2)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(2), atol=1e-5)  # batch stats used
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    model(torch.randn(4, 1, 3, 3) + 2)
    assert not torch.equal(model[1].running_mean, before["1.running_mean"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_mixmatch_step_by_hand(dataset):
    trainer, batch, ctx = _step("mixmatch", dataset, weight=0.3)
    method, task, student = trainer.method, trainer.task, trainer.student
    labeled, unlabeled = batch.num_labeled, batch.size - batch.num_labeled
    assert batch.views["weak"].shape[0] == batch.size
    assert batch.views["weak2"].shape[0] == unlabeled
    assert method.unlabeled_weight == 100.0
    state = {k: v.clone() for k, v in student.state_dict().items()}
    torch.manual_seed(7)
    output = method.train_step(batch, ctx)
    after = {k: v.clone() for k, v in student.state_dict().items()}

    # By hand, from the same state and random draws.
    student.load_state_dict(state)
    torch.manual_seed(7)
    weak = batch.views["weak"]
    with torch.no_grad():  # one guessing pass over both unlabeled views
        _, guess_logits = student(torch.cat([weak[labeled:], batch.views["weak2"]]))
    guess_a, guess_b = guess_logits.chunk(2)
    student.load_state_dict(state)  # the guessing pass leaves BN's running stats alone
    mean = (task.probabilities(guess_a) + task.probabilities(guess_b)) / 2
    if task.multilabel:
        guess = mean.pow(2) / (mean.pow(2) + (1 - mean).pow(2))
        one_hot = batch.targets.float()
    else:
        guess = mean.pow(2) / mean.pow(2).sum(1, keepdim=True)
        one_hot = F.one_hot(batch.targets.long(), task.num_classes).float()
    inputs = torch.cat([weak[:labeled], weak[labeled:], batch.views["weak2"]])
    targets = torch.cat([one_hot, guess, guess])
    mixed, mixed_targets, _ = mixup(inputs, targets, 0.5)
    _, logits = student(mixed)
    if task.multilabel:
        supervised = F.binary_cross_entropy_with_logits(logits[:labeled],
                                                        mixed_targets[:labeled])
        unsupervised = (torch.sigmoid(logits[labeled:]) - mixed_targets[labeled:]).pow(2).mean()
    else:
        supervised = -(mixed_targets[:labeled] * logits[:labeled].log_softmax(1)).sum(1).mean()
        unsupervised = (logits[labeled:].softmax(1) - mixed_targets[labeled:]).pow(2).mean()
    losses = output.losses
    assert float(losses["supervised"]) == pytest.approx(float(supervised), rel=1e-4, abs=1e-6)
    assert float(losses["unsupervised"]) == pytest.approx(float(unsupervised), rel=1e-4,
                                                          abs=1e-7)
    assert float(losses["total"]) == pytest.approx(
        float(supervised + 100 * 0.3 * unsupervised), rel=1e-4)
    for key, value in student.state_dict().items():  # one BN update, from the mixed pass
        assert torch.allclose(value.float(), after[key].float(), atol=1e-6), key
    labels, mask = output.pseudo_labels
    assert labels.shape[0] == mask.shape[0] == unlabeled and mask.all()


# ------------------------------------------------------------------- options

@pytest.mark.parametrize("method, options", [
    ("pseudo-label", {"threshold": 1.5}), ("uda", {"temperature": 0.0}),
    ("uda", {"tsa": "cosine"}), ("uda", {"threshold": -0.1}),
    ("mixmatch", {"alpha": 0.0}), ("mixmatch", {"unlabeled_weight": -1.0}),
])
def test_bad_options_are_one_line_user_errors(method, options):
    with pytest.raises(UserError) as caught:
        create_method(method, **options)
    assert "\n" not in str(caught.value) and next(iter(options)) in str(caught.value)


def test_defaults():
    assert create_method("uda").tsa == "none"
    assert type(create_method("uda")).defaults == {"rampup": 0.0, "teacher_buffers": "copy"}
    assert type(create_method("pseudo-label")).defaults == {"teacher_buffers": "copy"}
    assert type(create_method("mixmatch")).defaults == {"teacher_buffers": "copy"}
