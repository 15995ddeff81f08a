"""Several runs on one GPU (issue 32, item 3), the parts a CPU can check: the images held
on the training device give the same batches and the same run, a sweep of --jobs N on one
CUDA device gives each run a 1/N memory share, and the share reaches CUDA's allocator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_FLAGS
from fixtures import refused_in_one_line, write_isic

from ssl_bench.cli.main import main
from ssl_bench.config.run_config import RunConfig
from ssl_bench.data.images import ArrayImages, DeviceImages
from ssl_bench.sweeps.local import share_the_gpu
from ssl_bench.sweeps.plan import PlannedRun
from ssl_bench.training import prepare as prepare_module
from ssl_bench.training.contract import run_outcome


def test_images_on_the_device_give_the_same_batches():
    array = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    rows = np.array([3, 17, 3, 0, 11])
    on_device = DeviceImages(array, torch.device("cpu"))
    assert torch.equal(on_device.take(rows), ArrayImages(array).take(rows))
    assert len(on_device) == 20 and on_device.take(rows).dtype == torch.uint8


def test_a_run_with_its_images_on_the_device_equals_one_without(tmp_path):
    runs = {}
    for flag in ("false", "true"):
        runs[flag] = tmp_path / flag
        assert main(["run", "--method", "mt", "--dataset", "digits", *TINY_FLAGS,
                     "--images-on-device", flag, "-o", str(runs[flag]), "--quiet"]) == 0
    assert run_outcome(runs["false"]) == run_outcome(runs["true"])  # metrics and history
    images = json.loads((runs["true"] / "config.json").read_text())["dataset"]["images"]
    assert images["on_device"] == "cpu"


def test_images_decoded_at_every_step_cannot_be_on_the_device(tmp_path, capsys):
    root = write_isic(tmp_path / "isic", n_per_class=4, size=24).root
    refused_in_one_line(capsys, ["run", "--method", "supervised", "--dataset", "isic",
                                 "--data-root", str(root), *TINY_FLAGS, "--image-cache",
                                 "false", "--images-on-device", "true", "-o",
                                 str(tmp_path / "r")],
                        "--images-on-device true needs the image cache")
    assert not (tmp_path / "r" / "metrics.json").exists()


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_a_memory_share_outside_0_1_is_refused(tmp_path, capsys, value):
    refused_in_one_line(capsys, ["run", "--method", "supervised", *TINY_FLAGS,
                                 "--memory-share", value, "-o", str(tmp_path / "r")],
                        "memory", "[0, 1]")


def _planned(device: str, share: float = 0.0) -> PlannedRun:
    config = RunConfig(method="mt", device=device, memory_share=share)
    return PlannedRun("mt", 0.2, 0, config, Path("out"))


def test_a_sweep_of_n_jobs_on_one_cuda_device_gives_each_run_a_share():
    shared = share_the_gpu([_planned("cuda"), _planned("cuda")], 4)
    assert [p.config.memory_share for p in shared] == [0.25, 0.25]
    assert share_the_gpu([_planned("cuda")], 1)[0].config.memory_share == 0.0  # alone
    assert share_the_gpu([_planned("cpu")], 4)[0].config.memory_share == 0.0
    assert share_the_gpu([_planned("auto")], 4)[0].config.memory_share == 0.0
    assert share_the_gpu([_planned("cuda", 0.4)], 4)[0].config.memory_share == 0.4  # spec's


def test_the_share_reaches_cudas_allocator(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda share, device: calls.append((share, device)))
    cuda = torch.device("cuda", 0)
    prepare_module.apply_memory_share(RunConfig(memory_share=0.25), cuda)
    prepare_module.apply_memory_share(RunConfig(memory_share=0.25), torch.device("cpu"))
    prepare_module.apply_memory_share(RunConfig(), cuda)
    assert calls == [(0.25, cuda)]
