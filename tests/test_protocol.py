"""The official SRC-MT protocol switches: each one does what the official code does."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import tiny_config

from ssl_bench.config.resolve import resolve_config
from ssl_bench.core.errors import UserError
from ssl_bench.training.prepare import prepare
from ssl_bench.training.runner import run
from ssl_bench.training.trainer import Trainer


def _record_teacher_calls(trainer: Trainer) -> list[tuple[dict, torch.Tensor]]:
    """Wrap the teacher so every call records (its parameters then, its input)."""
    calls: list[tuple[dict, torch.Tensor]] = []
    teacher = trainer.teacher

    def recorder(x: torch.Tensor):
        params = {k: v.detach().clone() for k, v in teacher.named_parameters()}
        calls.append((params, x.detach().clone()))
        return teacher(x)

    trainer.teacher_call = recorder
    return calls


@pytest.mark.parametrize("method", ["mt", "srcmt"])
def test_teacher_statistics_are_those_of_its_own_forwards(method):
    """After N steps the teacher's running statistics equal a replay of its own forwards."""
    trainer = Trainer(prepare(tiny_config(method=method, iterations=6, drop_rate=0.2)))
    initial = copy.deepcopy(trainer.teacher)
    calls = _record_teacher_calls(trainer)
    for _ in range(6):
        trainer.train_step()
    assert len(calls) == 6
    replay = initial.train()
    with torch.no_grad(), trainer._autocast():  # bf16 on CUDA, as the training forwards
        for params, x in calls:  # the teacher's weights at that step, its own buffers
            for name, value in replay.named_parameters():
                value.copy_(params[name])
            replay(x)
    replayed = dict(replay.named_buffers())
    student = dict(trainer.student.named_buffers())
    differs_from_student = False
    for name, value in trainer.teacher.named_buffers():
        torch.testing.assert_close(value, replayed[name], rtol=1e-6, atol=1e-7,
                                   msg=f"{name} is not the teacher's own statistic")
        differs_from_student |= not torch.allclose(value, student[name], rtol=1e-3)
    assert differs_from_student, "the teacher's statistics must not be the student's"


def test_teacher_buffers_copy_and_ema_modes():
    copied = Trainer(prepare(tiny_config(method="mt", teacher_buffers="copy")))
    for _ in range(3):
        copied.train_step()
    for (name, t), (_, s) in zip(copied.teacher.named_buffers(),
                                 copied.student.named_buffers(), strict=True):
        assert torch.equal(t, s), name
    averaged = Trainer(prepare(tiny_config(method="mt", teacher_buffers="ema")))
    for _ in range(3):
        averaged.train_step()
    means = [(t, s) for (n, t), (_, s) in zip(averaged.teacher.named_buffers(),
                                              averaged.student.named_buffers(), strict=True)
             if n.endswith("running_mean")]
    assert means and any(not torch.equal(t, s) for t, s in means)


def test_official_epoch_is_labeled_images_over_labeled_batch():
    config = tiny_config(method="srcmt", iterations=None, epochs=2, epoch_length="labeled",
                         eval_every=0)
    prepared = prepare(config)
    labeled = len(prepared.parts["labeled"])
    assert prepared.steps_per_epoch == labeled // config.labeled_batch_size
    assert prepared.total_steps == 2 * prepared.steps_per_epoch
    assert prepared.eval_every == prepared.steps_per_epoch
    default = prepare(tiny_config(method="srcmt", iterations=None, epochs=2, eval_every=0))
    train = len(default.parts["labeled"]) + len(default.parts["unlabeled"])
    assert default.steps_per_epoch == -(-train // config.batch_size)


def test_warm_phase_and_per_epoch_rampup_in_the_trainer():
    config = tiny_config(method="mt", iterations=None, epochs=4, epoch_length="labeled",
                         unsupervised_start=2, rampup_per_epoch=True, rampup=0.5,
                         eval_every=0)
    trainer = Trainer(prepare(config))
    spe = trainer.p.steps_per_epoch
    weights = [trainer.consistency_weight(step) for step in range(4 * spe)]
    assert all(w == 0 for w in weights[: 2 * spe])
    assert weights[2 * spe] == pytest.approx(1.0)  # epoch 2 of a 2-epoch ramp-up
    assert len(set(weights[2 * spe : 3 * spe])) == 1


def test_exponential_lr_in_the_trainer_decays_per_epoch():
    config = tiny_config(method="supervised", iterations=None, epochs=3, eval_every=0,
                         lr_schedule="exponential", lr_decay=0.5, epoch_length="labeled")
    trainer = Trainer(prepare(config))
    spe = trainer.p.steps_per_epoch
    lrs = []
    for _ in range(3 * spe):
        lrs.append(trainer.scheduler.get_last_lr()[0])
        trainer.train_step()
    assert lrs[0] == pytest.approx(config.lr)
    assert lrs[spe] == pytest.approx(config.lr * 0.5)
    assert lrs[2 * spe] == pytest.approx(config.lr * 0.25)


def test_class_weights_are_counted_on_the_labeled_images():
    prepared = prepare(tiny_config(method="mt", class_weights="inverse_frequency",
                                   consistency_class_weights="balanced"))
    labels = prepared.dataset.labels[prepared.parts["labeled"]]
    counts = torch.bincount(torch.as_tensor(labels), minlength=10).float()
    torch.testing.assert_close(prepared.task.class_weights, len(labels) / counts)
    torch.testing.assert_close(prepared.task.consistency_weights,
                               len(labels) / (10 * counts))
    with pytest.raises(UserError, match="consistency-class-weights.*multi-label"):
        prepare(tiny_config(method="mt", dataset="digits-multilabel",
                            consistency_class_weights="inverse_frequency"))


@pytest.mark.parametrize("report", ["best", "student", "teacher"])
def test_reported_model(tmp_path, report):
    metrics = run(tiny_config(method="mt", report_model=report), tmp_path / report, quiet=True)
    expected = metrics["best"]["model"] if report == "best" else report
    assert metrics["reported"]["model"] == expected
    assert metrics["reported"]["rule"] == report
    assert metrics["reported"]["test"] == metrics[expected]["test"]
    stored = json.loads((tmp_path / report / "config.json").read_text())["config"]
    assert stored["report_model"] == report and stored["teacher_buffers"] == "own"
    supervised = run(tiny_config(method="supervised", report_model="teacher"),
                     tmp_path / "sup", quiet=True)
    assert supervised["reported"]["model"] == "student"  # no teacher: its only model


def test_paper_preset_is_the_official_protocol():
    config = resolve_config({}, {"preset": "paper"})
    assert config.backbone == "densenet121.tv_in1k"  # torchvision's weights, as official
    assert (config.epoch_length, config.epochs, config.lr_schedule, config.lr_decay) == (
        "labeled", 100, "exponential", 0.9)
    assert (config.class_weights, config.consistency_class_weights) == (
        "inverse_frequency", "inverse_frequency")
    assert (config.unsupervised_start, config.rampup_per_epoch, config.rampup) == (
        21, True, 0.3)
    assert (config.supervised_batch, config.report_model, config.teacher_buffers) == (
        "two-stream", "student", "own")
    cpu = resolve_config({}, {})
    # the same labeled stream as the SSL methods by default (issue 27: equal exposure)
    assert (cpu.supervised_batch, cpu.report_model, cpu.epoch_length) == (
        "two-stream", "best", "train")


@pytest.mark.parametrize("values, message", [
    ({"teacher_buffers": "average"}, "teacher_buffers"),
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"lr_decay": 0}, "lr_decay"),
    ({"unsupervised_start": -1}, "unsupervised_start"),
    ({"epoch_length": "all"}, "epoch_length"),
    ({"supervised_batch": "half"}, "supervised_batch"),
    ({"report_model": "ema"}, "report_model"),
    ({"consistency_class_weights": "yes"}, "consistency_class_weights"),
])
def test_protocol_settings_are_validated(values, message):
    with pytest.raises(UserError, match=message):
        resolve_config({}, values)
