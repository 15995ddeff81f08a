"""Contract v2: a method's own modules are optimised, EMA-averaged and checkpointed; its
state resumes exactly; views it asks for are given or refused at start-up."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from ssl_bench.core.errors import UserError
from ssl_bench.method_kit.method import Method, View
from ssl_bench.plugins.registry import method_registry
from ssl_bench.training.prepare import prepare
from ssl_bench.training.schedules import ema_decay_at
from ssl_bench.training.trainer import Trainer


def _trainer(**overrides) -> Trainer:
    return Trainer(prepare(tiny_config(**{"method": "test-projection-head", **overrides})))


def test_a_projection_head_is_trained_averaged_and_saved():
    trainer = _trainer()
    head = dict(trainer.student.head.named_parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in head.values()} <= optimised
    assert id(trainer.method.log_temperature) in optimised
    before = {k: v.detach().clone() for k, v in head.items()}
    teacher_before = {k: v.detach().clone() for k, v in trainer.teacher.head.named_parameters()}
    temperature_before = trainer.method.log_temperature.detach().clone()
    trainer.train_step()
    for name, value in head.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, name
        assert not torch.equal(value, before[name]), f"head {name} did not change"
    assert not torch.equal(trainer.method.log_temperature, temperature_before)
    decay = ema_decay_at(0, trainer.config.ema_decay)
    for name, value in trainer.teacher.head.named_parameters():
        expected = decay * teacher_before[name] + (1 - decay) * head[name].detach()
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    state = trainer.state_dict()
    assert any(k.startswith("head.") for k in state["student"])
    assert any(k.startswith("head.") for k in state["teacher"])
    assert set(state["method"]) == {"log_temperature", "steps_seen", "class_confidence"}


def test_method_state_resumes_exactly():
    straight = _trainer(iterations=6, eval_every=2)
    straight.fit()
    interrupted = _trainer(iterations=6, eval_every=2)
    interrupted.fit(stop_after=2)
    state = interrupted.state_dict()
    resumed = _trainer(iterations=6, eval_every=2)
    resumed.load_state_dict(state)
    assert int(resumed.method.steps_seen) == 2
    resumed.fit()
    for name, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[name]), name
    for name, value in straight.student.state_dict().items():
        assert torch.equal(value, resumed.student.state_dict()[name]), name


def test_setup_sees_the_run():
    trainer = _trainer()
    assert trainer.method.class_confidence.shape == (trainer.task.num_classes,)


class _Asks(Method):
    registry_name = "test-asks"
    uses_unlabeled = True


@pytest.mark.parametrize("views,message", [
    ({"a": "sharpest"}, "sharpest"),
    (3, "views = 3"),
    ({}, "declares no views"),
])
def test_views_the_engine_cannot_give_are_refused_at_start_up(views, message, monkeypatch):
    monkeypatch.setattr(_Asks, "views", views)
    monkeypatch.setitem(method_registry._entries, "test-asks", _Asks)
    with pytest.raises(UserError, match=message):
        _trainer(method="test-asks")


def test_unlabeled_views_need_unlabeled_rows(monkeypatch):
    """A labeled-only method on fully labeled batches has no unlabeled rows to view."""
    monkeypatch.setattr(_Asks, "views", {"s": View("strong", rows="unlabeled")})
    monkeypatch.setattr(_Asks, "uses_unlabeled", False)
    monkeypatch.setitem(method_registry._entries, "test-asks", _Asks)
    with pytest.raises(UserError, match="unlabeled rows"):
        _trainer(method="test-asks", supervised_batch="labeled")


def test_view_rows_are_checked():
    with pytest.raises(ValueError, match="rows"):
        View("weak", rows="some")
