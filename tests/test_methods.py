"""The same checks for every registered method (built-ins and the test plug-in)."""

from __future__ import annotations

import pytest
import torch
from conftest import supports, tiny_config

from ssl_bench.method_kit.method import StepContext, StepOutput
from ssl_bench.plugins.registry import create_method, get_method_class, list_methods
from ssl_bench.training.contract import (
    ContractError,
    check_gradients,
    check_teacher,
    check_vanishing,
)
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer

METHODS = list_methods()
DATASETS = ["digits", "digits-multilabel"]


def test_registry_holds_builtins_and_plugin():
    assert {"supervised", "pi", "mt", "srcmt", "test-kl-teacher"} <= set(METHODS)


def _trainer(method: str, dataset: str, **overrides) -> Trainer:
    return Trainer(prepare(tiny_config(method=method, dataset=dataset, **overrides)))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", METHODS)
def test_method_contract(method: str, dataset: str):
    """Losses, gradients, optimiser step and teacher EMA (ssl_bench.training.contract)."""
    if not supports(method, dataset):
        pytest.skip(f"{method} does not support {dataset}")
    check_gradients(method, dataset)


def _losses(output) -> dict[str, torch.Tensor]:
    return output.losses if isinstance(output, StepOutput) else output


VANISHING = [m for m in METHODS if get_method_class(m).identical_views_vanish]


def test_the_consistency_methods_opt_into_the_vanishing_property():
    assert {"pi", "mt", "srcmt", "test-kl-teacher"} <= set(VANISHING)
    assert "fixmatch" not in VANISHING  # a confident pseudo-label is not a consistency


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", VANISHING)
def test_unsupervised_terms_vanish_for_identical_views_and_models(method: str, dataset: str):
    if not supports(method, dataset):
        pytest.skip(f"{method} does not support {dataset}")
    check_vanishing(method, dataset)


TEACHERS = [m for m in METHODS if get_method_class(m).needs_teacher]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", TEACHERS)
def test_a_teacher_with_the_students_weights_predicts_as_the_student(method: str,
                                                                    dataset: str):
    """Issue 26, item 4: every teacher method's teacher is evaluated with the batch-norm
    statistics its weights were trained under (ssl_bench.training.contract.check_teacher)."""
    if not supports(method, dataset):
        pytest.skip(f"{method} does not support {dataset}")
    check_teacher(method, dataset)


def test_the_teacher_check_catches_an_ema_model_with_statistics_of_weak_views():
    """SimMatch's teacher before issue 26 (``own`` statistics: weak views only, while its
    weights were trained under mostly strong views) fails the check."""
    assert get_method_class("simmatch").defaults["teacher_buffers"] == "copy"
    with pytest.raises(ContractError, match=r"teacher_buffers own\) of other inputs"):
        check_teacher("simmatch", "digits", teacher_buffers="own")  # the old default


def test_method_options_are_declared_and_checked():
    srcmt = create_method("srcmt", relation_weight="2.5")
    assert srcmt.relation_weight == 2.5
    from ssl_bench.core.errors import UserError

    with pytest.raises(UserError, match="no option"):
        create_method("srcmt", relation_wieght=1.0)
    with pytest.raises(UserError, match="expects float"):
        create_method("srcmt", relation_weight="heavy")


def test_supervised_batches_are_fully_labeled_on_the_labeled_batch():
    trainer = _trainer("supervised", "digits", supervised_batch="labeled")
    batch = trainer.next_batch()
    assert batch.num_labeled == batch.size == trainer.config.batch_size
    trainer = _trainer("srcmt", "digits")
    batch = trainer.next_batch()
    assert batch.num_labeled == trainer.config.labeled_batch_size < batch.size


def test_supervised_two_stream_batch_is_the_ssl_batch_with_loss_on_labeled_rows():
    """--supervised-batch two-stream (the default): the official baseline's 48 images, 12
    of them labeled."""
    trainer = _trainer("supervised", "digits")
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
        module = importlib.import_module(f"ssl_bench.methods.{name}")
        assert module.__doc__
