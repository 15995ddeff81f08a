"""Shared test fixtures: a tiny CPU configuration and the test plug-in method."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

#: Test folders go to this memory file system when it has room: the runs' many fsync()
#: calls (every record is written atomically and durably) then cost nothing.
MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_MIN_FREE = 4 * 2**30


def _use_memory_for_temporaries() -> None:
    """Point tempfile (pytest's ``tmp_path``, and every child process) at ``/dev/shm``
    when it is a writable folder with at least 4 GiB free; ``TMPDIR`` set by the caller
    wins."""
    if os.environ.get("TMPDIR") or not MEMORY_TMP.is_dir() or not os.access(MEMORY_TMP,
                                                                             os.W_OK):
        return
    if shutil.disk_usage(MEMORY_TMP).free >= MEMORY_TMP_MIN_FREE:
        os.environ["TMPDIR"] = str(MEMORY_TMP)
        tempfile.tempdir = None  # re-read TMPDIR on the next gettempdir()


os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n: one torch thread per worker process
    os.environ.setdefault("OMP_NUM_THREADS", "1")
_use_memory_for_temporaries()
torch.set_num_threads(min(int(os.environ.get("OMP_NUM_THREADS") or 2), 2,
                          torch.get_num_threads()))

from ssl_bench.config.run_config import SETTINGS, RunConfig  # noqa: E402
from ssl_bench.config.settings import flag_of  # noqa: E402
from ssl_bench.plugins.registry import load_plugin  # noqa: E402
from ssl_bench.training.contract import CHECK_SETTINGS  # noqa: E402

PLUGIN = Path(__file__).parent / "plugins" / "kl_teacher.py"
HEAD_PLUGIN = Path(__file__).parent / "plugins" / "projection_head.py"
for _plugin in (PLUGIN, HEAD_PLUGIN):
    load_plugin(_plugin)  # registered before the registry is parametrized over

#: Settings of a run that takes a couple of seconds on 2 CPU cores (the contract checks',
#: without the labeled amount, which sweeps vary): ``{**TINY_RUN, ...}`` in sweep specs.
TINY_RUN: dict[str, object] = {k: v for k, v in CHECK_SETTINGS.items() if k != "labeled"}
#: The same run as command-line flags.
TINY_FLAGS: list[str] = [part for name, value in TINY_RUN.items()
                         for part in (flag_of(name, SETTINGS[name]), str(value))]


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
