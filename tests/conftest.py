"""Shared test fixtures: a tiny CPU configuration and the test plug-in method."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything
torch.set_num_threads(min(2, torch.get_num_threads()))

from ssl_bench.config.run_config import RunConfig  # noqa: E402
from ssl_bench.plugins.registry import load_plugin  # noqa: E402

PLUGIN = Path(__file__).parent / "plugins" / "kl_teacher.py"
HEAD_PLUGIN = Path(__file__).parent / "plugins" / "projection_head.py"
for _plugin in (PLUGIN, HEAD_PLUGIN):
    load_plugin(_plugin)  # registered before the registry is parametrized over

#: Flags of a run that takes a couple of seconds on 2 CPU cores.
TINY_FLAGS = [
    "--image-size", "16", "--iterations", "4", "--eval-every", "2", "--batch-size", "16",
    "--labeled-batch-size", "4", "--eval-batch-size", "600", "--drop-rate", "0",
]


def tiny_config(**overrides) -> RunConfig:
    """A run of seconds (the settings of the contract checks), as the CLI resolves it."""
    from ssl_bench.training.contract import check_config

    return check_config(**overrides)


def supports(method: str, dataset: str) -> bool:
    """Whether ``method`` supports the task kind of the test data set ``dataset``."""
    from ssl_bench.plugins.registry import get_method_class

    kind = "multi" if dataset.endswith("multilabel") else "single"
    return kind in get_method_class(method).task_kinds


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A local MLflow file store (MLflow 3 asks for the opt-in to use one)."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture
def offline_env(monkeypatch, tmp_path):
    """An empty Hugging Face cache and offline mode: only packaged weights are there."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"
