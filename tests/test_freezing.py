"""Partial fine-tuning: the first layer groups stay exactly as loaded, the rest train."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from ssl_bench.core.errors import UserError
from ssl_bench.models.backbones import create_backbone
from ssl_bench.models.freezing import layer_groups
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer


def _train_one_step(backbone, size: int = 32) -> None:
    optimizer = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.1)
    backbone.train()
    _, logits = backbone(torch.randn(6, 3, size, size))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("arch", ["resnet10t", "tf_efficientnet_lite0"])
def test_frozen_groups_keep_weights_and_statistics_while_the_rest_trains(arch):
    torch.manual_seed(0)
    backbone = create_backbone(arch, num_classes=3, frozen_groups=2)
    groups = layer_groups(backbone.model)
    frozen = tuple(groups[0] + groups[1])
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    _train_one_step(backbone)
    after = backbone.state_dict()
    for key, value in before.items():
        module = key.removeprefix("model.").rsplit(".", 1)[0]
        in_frozen = any(module == m or module.startswith(m + ".") for m in frozen)
        if in_frozen:  # weights and running statistics alike
            assert torch.equal(after[key], value), key
    changed = [k for k, v in before.items() if not torch.equal(after[k], v)]
    assert changed, "the trainable groups must train"
    for name, parameter in backbone.named_parameters():
        module = name.removeprefix("model.").rsplit(".", 1)[0]
        assert parameter.requires_grad != any(
            module == m or module.startswith(m + ".") for m in frozen), name
        if not parameter.requires_grad:
            assert parameter.grad is None  # backward stopped before the frozen layers
    assert any(type(m).__name__.startswith("FrozenBatchNorm") for m in backbone.modules())


def test_zero_frozen_groups_is_the_plain_model():
    torch.manual_seed(0)
    plain = create_backbone("resnet10t", num_classes=3)
    torch.manual_seed(0)
    zero = create_backbone("resnet10t", num_classes=3, frozen_groups=0)
    assert all(p.requires_grad for p in zero.parameters())
    assert [type(m) for m in plain.modules()] == [type(m) for m in zero.modules()]


def test_the_classifier_group_can_never_be_frozen():
    count = len(layer_groups(create_backbone("resnet10t", num_classes=3).model))
    create_backbone("resnet10t", num_classes=3, frozen_groups=count - 1)  # a linear probe
    with pytest.raises(UserError, match=rf"frozen_groups \(--frozen-groups\) must be below "
                                        rf"{count}.*resnet10t.*got {count}$"):
        create_backbone("resnet10t", num_classes=3, frozen_groups=count)


def test_frozen_groups_through_the_engine_keep_teacher_and_student_equal_there(tmp_path):
    """An EMA-teacher method trains with frozen groups; the frozen part of both models is
    still the initial one after training, and the optimiser holds only trainable tensors."""
    config = tiny_config(method="mt", frozen_groups=3)
    trainer = Trainer(prepare(config))
    frozen = tuple(m for group in layer_groups(trainer.backbone.model)[:3] for m in group)
    initial = {k: v.clone() for k, v in trainer.student.state_dict().items()}
    trainer.fit()
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    for name, parameter in trainer.student.named_parameters():
        assert (id(parameter) in optimised) == parameter.requires_grad, name
    student, teacher = trainer.student.state_dict(), trainer.teacher.state_dict()
    for key in initial:
        module = key.split("model.", 1)[-1].rsplit(".", 1)[0]
        if any(module == m or module.startswith(m + ".") for m in frozen):
            assert torch.equal(student[key], initial[key]), key
            assert torch.equal(teacher[key], initial[key]), key


def test_runs_recorded_before_the_setting_existed_compare_as_unfrozen():
    from ssl_bench.config.run_config import comparison_settings

    current = tiny_config().to_dict()
    older = {k: v for k, v in current.items() if k != "frozen_groups"}
    assert comparison_settings(older) == comparison_settings(current)
    assert comparison_settings(older) != comparison_settings(tiny_config(frozen_groups=1).to_dict())
