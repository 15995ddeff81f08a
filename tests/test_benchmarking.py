"""Speed measurement helpers: phase timings add up and go to the right phases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config
from fixtures import write_isic

from ssl_bench.data.cache import load_images
from ssl_bench.data.images import ArrayImages, DecodingImages
from ssl_bench.plugins.registry import create_dataset
from ssl_bench.training.benchmarking import PHASES, data_path_throughput, step_timings
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer


@pytest.mark.parametrize("method", ["supervised", "mt", "srcmt"])
def test_step_timings_split_a_step_into_phases(method):
    trainer = Trainer(prepare(tiny_config(method=method)))
    before = trainer.step
    result = step_timings(trainer, steps=3, warmup=1)
    assert trainer.step == before + 7  # warm-up + median repeats + phase-timed steps
    assert trainer.timer is None
    phases = result["phases_ms"]
    assert set(phases) == set(PHASES)
    assert phases["student_forward"] > 0 and phases["backward"] > 0 and phases["data"] > 0
    assert (phases["teacher_forward"] > 0) == (method != "supervised")
    assert (phases["ema"] > 0) == (method != "supervised")
    assert result["images_per_s"] == pytest.approx(16 / (result["ms_per_step"] / 1000))
    # (How much of a step the phases cover is a timing: reported by benchmarks/speed.py,
    # never asserted -- it varies with machine load.)
    assert all(value >= 0 for value in phases.values())


def test_data_path_throughput_compares_cache_and_decoding(tmp_path):
    fixture = write_isic(tmp_path / "isic", n_per_class=4, size=24)
    dataset = create_dataset("isic", root=fixture.root)
    cached = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    result = data_path_throughput(ArrayImages(cached.array),
                                  DecodingImages(dataset.files, 16, 3), len(dataset), 8, 3)
    # Which path is faster is a timing, reported by benchmarks/speed.py and never asserted.
    assert result["cache_images_per_s"] > 0 and result["decode_images_per_s"] > 0
    assert result["ratio"] == pytest.approx(
        result["cache_images_per_s"] / result["decode_images_per_s"])
    assert np.isfinite(result["ratio"])


def test_interleaved_timings_and_phase_split_cover_every_method():
    from ssl_bench.training.benchmarking import interleaved_step_times, phase_split

    trainers = {m: Trainer(prepare(tiny_config(method=m))) for m in ("supervised", "srcmt")}
    seconds = interleaved_step_times(trainers, rounds=2, steps=1, warmup=1)
    assert set(seconds) == {"supervised", "srcmt"} and all(s > 0 for s in seconds.values())
    split = phase_split(trainers["srcmt"], steps=2)
    assert split["teacher_forward"] > 0 and split["ema"] > 0
    assert trainers["srcmt"].timer is None


def test_compile_flag_routes_forwards_through_compiled_wrappers(monkeypatch, tmp_path):
    """--compile on a machine where compiling is not wanted in tests: the wrappers are used
    for forward passes while EMA and checkpoints keep the plain modules."""
    import torch

    from ssl_bench.training.runner import run

    compiled = []

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.module(x)

    def fake_compile(module, **kwargs):
        wrapper = Wrapper(module)
        compiled.append(wrapper)
        return wrapper

    monkeypatch.setattr(torch, "compile", fake_compile)
    metrics = run(tiny_config(method="srcmt", compile=True), tmp_path / "r", quiet=True)
    assert len(compiled) == 2 and all(w.calls >= 4 for w in compiled)
    assert metrics["teacher"]["test"]["auc"] is not None


def test_compile_warns_on_cuda_only_where_it_failed_the_gpu_check(recwarn):
    import torch

    from ssl_bench.training.build import COMPILE_ON_CUDA, warn_if_compile_unverified

    warn_if_compile_unverified(torch.device("cpu"))
    assert len(recwarn) == 0
    with pytest.warns(UserWarning, match="compiled features were 4x the eager ones"):
        warn_if_compile_unverified(torch.device("cuda"))
    assert "compare with a run without --compile" in COMPILE_ON_CUDA


def test_cpu_fallbacks_of_the_gpu_path():
    from ssl_bench.core.errors import UserError
    from ssl_bench.training.prepare import resolve_device

    trainer = Trainer(prepare(tiny_config(method="mt", amp=True, channels_last=True)))
    assert trainer.amp_dtype is None and not trainer.batches.pin  # AMP and pinning only on CUDA
    assert trainer.optimizer.defaults.get("fused") in (True, None, False)
    if not torch_cuda_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
