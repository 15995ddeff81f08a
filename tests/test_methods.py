"""The same checks for every registered method (built-ins and the test plug-in)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import supports, tiny_config

from ssl_bench.engine import Trainer
from ssl_bench.method import Batch, Method, StepContext, StepOutput
from ssl_bench.prepare import prepare
from ssl_bench.registry import create_method, get_method_class, list_methods
from ssl_bench.schedules import ema_decay_at

METHODS = list_methods()
DATASETS = ["digits", "digits-multilabel"]


def test_registry_holds_builtins_and_plugin():
    assert {"supervised", "pi", "mt", "srcmt", "test-kl-teacher"} <= set(METHODS)


def _trainer(method: str, dataset: str, **overrides) -> Trainer:
    return Trainer(prepare(tiny_config(method=method, dataset=dataset, **overrides)))


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _losses(output) -> dict[str, torch.Tensor]:
    return output.losses if isinstance(output, StepOutput) else output


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", METHODS)
def test_method_contract(method: str, dataset: str):
    if not supports(method, dataset):
        pytest.skip(f"{method} does not support {dataset}")
    trainer = _trainer(method, dataset)
    method_obj = trainer.method
    assert isinstance(method_obj, Method)
    assert (trainer.teacher is not None) == method_obj.needs_teacher

    # Gradients reach every trainable student parameter; the teacher gets none. timm
    # zero-initialises the last BatchNorm scale of residual blocks, which blocks the
    # branch's gradient at step 0 only: give those scales a value first.
    with torch.no_grad():
        for model in trainer.models().values():
            for parameter in model.parameters():
                if parameter.ndim == 1 and not parameter.any():
                    parameter.fill_(0.5)
    batch = trainer.next_batch()
    ctx = StepContext(trainer.student, trainer.teacher, trainer.task, 1.0, 5)
    losses = _losses(method_obj.train_step(batch, ctx))
    assert "total" in losses and "supervised" in losses
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    trainable = [*trainer.student.named_parameters(),
                 *(("method." + n, p) for n, p in method_obj.named_parameters())]
    for name, parameter in trainable:
        assert parameter.requires_grad
        assert parameter.grad is not None, f"{method}: no gradient reaches {name}"
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{method}: zero gradient at {name}"
    if trainer.teacher is not None:
        for name, parameter in trainer.teacher.named_parameters():
            assert not parameter.requires_grad and parameter.grad is None, name

    # One training step changes the student; the teacher's parameters move by the EMA
    # formula, and the EMA update leaves its buffers (its own batch statistics) alone.
    trainer.student.zero_grad(set_to_none=True)
    method_obj.zero_grad(set_to_none=True)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert {id(p) for _, p in trainable} <= optimised, "a trainable parameter is not optimised"
    trainer.step = 5
    before_student = _params(trainer.student)
    before_teacher = _params(trainer.teacher) if trainer.teacher is not None else None
    teacher_buffers_before = ({k: v.clone() for k, v in trainer.teacher.named_buffers()}
                              if trainer.teacher is not None else {})
    buffers_before_ema: dict[str, torch.Tensor] = {}
    if trainer.ema is not None:
        real_ema = trainer.ema

        def recording_ema(decay: float) -> None:
            buffers_before_ema.update(
                {k: v.clone() for k, v in trainer.teacher.named_buffers()})
            real_ema(decay)

        trainer.ema = recording_ema
    trainer.train_step()
    after_student = _params(trainer.student)
    changed = [k for k in before_student if not torch.equal(before_student[k], after_student[k])]
    assert len(changed) == len(before_student), "every student parameter should move"
    if trainer.teacher is not None:
        decay = ema_decay_at(5, trainer.config.ema_decay)
        for name, value in trainer.teacher.named_parameters():
            expected = decay * before_teacher[name] + (1 - decay) * after_student[name]
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        buffers = trainer.config.teacher_buffers
        assert buffers in ("own", "copy")  # copy: an evaluation-only teacher (USB)
        student_buffers = dict(trainer.student.named_buffers())
        for name, t_buf in trainer.teacher.named_buffers():
            if buffers == "own":  # the EMA update leaves the teacher's own statistics
                assert torch.equal(t_buf, buffers_before_ema[name]), f"EMA changed {name}"
            else:  # the EMA update makes them the student's
                assert torch.equal(t_buf, student_buffers[name]), f"EMA did not copy {name}"
        # Either way the statistics follow training: a teacher that is only evaluated must
        # not keep ``own`` ones, which would stay at their initial values (issue 12).
        moved = [k for k, v in trainer.teacher.named_buffers()
                 if k.endswith("running_mean") and not torch.equal(v, teacher_buffers_before[k])]
        assert moved, f"{method}'s teacher kept its batch-norm statistics through a step"


VANISHING = [m for m in METHODS if get_method_class(m).identical_views_vanish]


def test_the_consistency_methods_opt_into_the_vanishing_property():
    assert {"pi", "mt", "srcmt", "test-kl-teacher"} <= set(VANISHING)
    assert "fixmatch" not in VANISHING  # a confident pseudo-label is not a consistency


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", VANISHING)
def test_unsupervised_terms_vanish_for_identical_views_and_models(method: str, dataset: str):
    if not supports(method, dataset):
        pytest.skip(f"{method} does not support {dataset}")
    trainer = _trainer(method, dataset, drop_rate=0.0)
    batch = trainer.next_batch()
    first = next(iter(batch.views.values()))
    same = Batch({name: first.clone() for name in batch.views}, batch.targets,
                 batch.num_labeled, batch.labeled_index, batch.unlabeled_index)
    teacher = copy.deepcopy(trainer.student) if trainer.method.needs_teacher else None
    ctx = StepContext(trainer.student, teacher, trainer.task, 1.0, 0)
    losses = _losses(trainer.method.train_step(same, ctx))
    unsupervised = {k: v for k, v in losses.items() if k not in {"total", "supervised"}}
    assert unsupervised, f"{method} uses unlabeled data but reports no unsupervised term"
    for name, value in unsupervised.items():
        assert abs(float(value.detach())) < 1e-6, f"{method}: {name} = {float(value.detach())}"
    torch.testing.assert_close(losses["total"], losses["supervised"], rtol=1e-5, atol=1e-6)


def test_method_options_are_declared_and_checked():
    srcmt = create_method("srcmt", relation_weight="2.5")
    assert srcmt.relation_weight == 2.5
    from ssl_bench.errors import UserError

    with pytest.raises(UserError, match="no option"):
        create_method("srcmt", relation_wieght=1.0)
    with pytest.raises(UserError, match="expects float"):
        create_method("srcmt", relation_weight="heavy")


def test_supervised_batches_are_fully_labeled():
    trainer = _trainer("supervised", "digits")
    batch = trainer.next_batch()
    assert batch.num_labeled == batch.size == trainer.config.batch_size
    trainer = _trainer("srcmt", "digits")
    batch = trainer.next_batch()
    assert batch.num_labeled == trainer.config.labeled_batch_size < batch.size


def test_supervised_two_stream_batch_is_the_ssl_batch_with_loss_on_labeled_rows():
    """--supervised-batch two-stream: the official baseline's 48 images, 12 of them labeled."""
    trainer = _trainer("supervised", "digits", supervised_batch="two-stream")
    ssl = _trainer("srcmt", "digits")
    assert torch.equal(torch.from_numpy(trainer.sampler.next()),
                       torch.from_numpy(ssl.sampler.next())), "the same two-stream indices"
    batch = trainer.next_batch()
    assert (batch.size, batch.num_labeled) == (ssl.config.batch_size,
                                               ssl.config.labeled_batch_size)
    assert batch.targets.shape[0] == batch.num_labeled
    ctx = StepContext(trainer.student, None, trainer.task, 1.0, 0)
    trainer.student.eval()  # no dropout: the loss must be the labeled rows' CE exactly
    losses = _losses(trainer.method.train_step(batch, ctx))
    _, logits = trainer.student(batch.student_view)
    expected = trainer.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
    torch.testing.assert_close(losses["supervised"], expected)


def test_built_in_methods_are_importable_as_modules():
    import importlib

    for name in ("supervised", "pi", "mt", "srcmt", "fixmatch"):
        module = importlib.import_module(f"methods.{name}")
        assert module.__doc__
