"""What only a CUDA device exercises: bf16 autocast, channels-last, pinned host batches,
torch.compile, and the same steps on CUDA and on the CPU.

Skipped without a GPU; ``benchmarks/gpu_check.sh`` runs them on one (``-m cuda``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_config

from ssl_bench.training.prepare import prepare
from ssl_bench.training.runner import run
from ssl_bench.training.trainer import Trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these)"),
]
#: No random augmentation or dropout: CPU and CUDA draw different random numbers, so
#: only with these off can their steps be compared.
NO_RANDOMNESS = dict(rotation=0.0, translate=0.0, hflip=False, noise_std=0.0, drop_rate=0.0)


def _trainer(**overrides) -> Trainer:
    return Trainer(prepare(tiny_config(**{"device": "cuda", **overrides}), quiet=True))


def test_amp_trains_in_bf16_without_a_loss_scaler():
    trainer = _trainer(method="mt")
    assert torch.cuda.is_bf16_supported() and trainer.amp_dtype == torch.bfloat16
    assert not trainer.scaler.is_enabled()  # loss scaling is for fp16 only
    losses = trainer.train_step()
    assert all(torch.isfinite(v).all() for v in losses.values())
    with trainer._autocast():
        features, logits = trainer.student(
            torch.randn(2, trainer.p.in_chans, 16, 16, device="cuda"))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(features).all()


def test_models_and_views_are_channels_last():
    trainer = _trainer(method="fixmatch")
    convs = [p for p in trainer.student.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    batch = trainer.next_batch()
    for name, view in batch.views.items():
        assert view.is_cuda and view.is_contiguous(memory_format=torch.channels_last), name


def test_host_batches_are_pinned_before_their_copy():
    trainer = _trainer(method="mt")
    seen = []
    maker = trainer.batches.view_maker

    def spy(images, *args):
        seen.append(images.is_pinned())
        return maker(images, *args)

    trainer.batches.view_maker = spy
    trainer.train_step()
    assert trainer.batches.pin and seen == [True]


def test_compiled_models_train_and_give_the_eager_outputs(tmp_path):
    metrics = run(tiny_config(method="srcmt", device="cuda", compile=True), tmp_path / "r",
                  quiet=True)
    assert metrics is not None and math.isfinite(metrics["student"]["test"]["auc"])
    trainer = _trainer(method="mt", compile=True, amp=False)
    images = torch.randn(4, trainer.p.in_chans, 16, 16, device="cuda").contiguous(
        memory_format=torch.channels_last)
    trainer.student.eval()
    with torch.no_grad():
        compiled, eager = trainer.student_call(images), trainer.student(images)
    for name, a, b in zip(("features", "logits"), compiled, eager, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name


@pytest.mark.parametrize("method", ["supervised", "srcmt"])
def test_a_few_cuda_steps_match_the_same_steps_on_the_cpu(method):
    """bf16 autocast on CUDA against fp32 on the CPU: three steps, every loss term."""
    losses = {}
    for device in ("cpu", "cuda"):
        trainer = _trainer(method=method, device=device, **NO_RANDOMNESS)
        losses[device] = [{k: float(v) for k, v in trainer.train_step().items()}
                          for _ in range(3)]
    for cpu, cuda in zip(losses["cpu"], losses["cuda"], strict=True):
        assert cpu.keys() == cuda.keys()
        for name in cpu:
            assert math.isclose(cpu[name], cuda[name], rel_tol=5e-2, abs_tol=5e-3), (
                name, cpu[name], cuda[name])


def test_images_on_the_device_train_as_host_batches_do():
    """--images-on-device: the pixels live on the GPU and the same steps follow."""
    prepared = prepare(tiny_config(device="cuda", images_on_device=True), quiet=True)
    assert prepared.images.array.is_cuda
    assert prepared.images.take(np.array([0, 1])).is_cuda
    losses = {}
    for on_device in (False, True):
        trainer = _trainer(method="mt", images_on_device=on_device, **NO_RANDOMNESS)
        losses[on_device] = [{k: float(v) for k, v in trainer.train_step().items()}
                             for _ in range(3)]
    for host, device in zip(losses[False], losses[True], strict=True):
        for name in host:
            assert math.isclose(host[name], device[name], rel_tol=1e-3, abs_tol=1e-5), name
