"""Threads of a run: OMP_NUM_THREADS, CPU affinity and cgroup quotas, and --threads."""

from __future__ import annotations

import json

import torch
from conftest import tiny_config

from ssl_bench.core import threads
from ssl_bench.training.runner import run


def test_cgroup_v2_and_v1_quotas_are_read(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(v2) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(tmp_path / "v1") == 2.0
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert threads.cgroup_cpu_limit(tmp_path / "v1") is None
    assert threads.cgroup_cpu_limit(tmp_path / "nowhere") is None


def test_available_cores_honour_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert threads.available_cores(tmp_path) == 4  # no quota file
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.available_cores(tmp_path) == 2  # 1.5 cores of quota: 2 threads
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert threads.available_cores(tmp_path) == 1


def test_default_threads_prefer_omp_num_threads_then_divide_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda root=None: 8)
    assert threads.default_threads(1, {"OMP_NUM_THREADS": "3"}) == 3
    assert threads.default_threads(1, {"OMP_NUM_THREADS": "junk"}) == 8
    assert threads.default_threads(1, {}) == 8
    assert threads.default_threads(3, {}) == 2
    assert threads.default_threads(16, {}) == 1


def test_a_run_uses_and_records_its_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        run(tiny_config(threads=1), tmp_path / "run", quiet=True)
        assert torch.get_num_threads() == 1
        record = json.loads((tmp_path / "run" / "config.json").read_text())
        assert record["config"]["threads"] == 1
        assert record["environment"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)
