"""One process per run folder: locks, busy runs in concurrent sweeps, no orphaned workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_config
from test_sweep import _spec

from ssl_bench.core.errors import UserError
from ssl_bench.runs.locks import FolderLock, RunLocked, holder_of
from ssl_bench.sweeps.local import plan, remove_sweep, run_sweep
from ssl_bench.training.runner import run

ROOT = Path(__file__).resolve().parents[1]


def test_a_folder_lock_is_exclusive_and_names_its_holder(tmp_path):
    folder = tmp_path / "a" / "run"
    with FolderLock(folder):
        assert holder_of(folder) == os.getpid()
        with pytest.raises(RunLocked, match=rf"in use by another ssl-bench process \(pid "
                                            rf"{os.getpid()}\)"):
            FolderLock(folder).acquire()
        assert holder_of(folder) == os.getpid()  # asking did not release it
    assert holder_of(folder) is None
    FolderLock(folder).acquire().release()


def test_the_kernel_releases_the_lock_of_a_killed_process(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ssl_bench.runs.locks import FolderLock; "
         f"FolderLock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert holder_of(folder) == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert holder_of(folder) is None


def test_run_into_a_folder_in_use_is_refused_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    run(tiny_config(), out, quiet=True, stop_after=2)
    def state():
        return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}

    before = state()
    with FolderLock(out), pytest.raises(UserError, match="in use by another") as caught:
        run(tiny_config(), out, quiet=True, resume=True)
    assert "\n" not in str(caught.value)
    assert state() == before
    fresh = tmp_path / "fresh" / "nested"
    with FolderLock(fresh), pytest.raises(UserError, match="in use by another"):
        run(tiny_config(), fresh, quiet=True)
    assert sorted(p.name for p in fresh.iterdir()) == [".lock"]


def test_a_sweep_leaves_runs_another_process_holds_and_says_so(tmp_path, capsys):
    from rich.console import Console

    from ssl_bench.sweeps.local import print_summary

    spec = _spec(tmp_path)
    runs = plan(spec)
    with FolderLock(runs[1].output):
        result = run_sweep(spec, runs, quiet=True)
        assert result.busy == [runs[1].key] and result.count("done") == 1
        print_summary(result, Console(file=sys.stdout, width=200))
        with pytest.raises(UserError, match=r"cannot --overwrite sweep tiny: .*\(pid"):
            remove_sweep(spec)
    out = capsys.readouterr().out
    assert "busy" in out and f"pid {os.getpid()}" in out
    record = json.loads(result.record.read_text())
    assert record["runs"][runs[1].key]["status"] == "busy"
    again = run_sweep(spec, plan(spec), quiet=True)
    assert again.status[runs[0].key]["status"] == "skipped"
    assert again.status[runs[1].key]["status"] == "done"


def _sweep_command(results: Path, iterations: int, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "ssl_bench", "sweep", "--name", "t", "--methods",
            "supervised,mt", "--labeled", "0.1", "--seeds", "0", "--results", str(results),
            "--backbone", "test_resnet",
            "--image-size", "16", "--iterations", str(iterations), "--eval-every",
            str(iterations), "--batch-size", "16", "--labeled-batch-size", "4",
            "--eval-batch-size", "600", "--jobs", str(jobs), "--threads", "1"]


def test_two_identical_sweeps_at_once_train_every_run_once(tmp_path):
    command = _sweep_command(tmp_path / "results", iterations=150)
    env = {**os.environ, "SSL_BENCH_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trained = {}
    for _, err in outputs:
        for line in err.splitlines():
            if ": done (" in line:
                key = line.split(":")[0].split("] ", 1)[-1]  # "[1/2] key: done (...)"
                trained[key] = trained.get(key, 0) + 1
    assert trained == {"supervised/labeled=0.1/seed=0": 1, "mt/labeled=0.1/seed=0": 1}, outputs


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
def test_a_killed_parallel_sweep_leaves_no_process_behind(tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "SSL_BENCH_CACHE": str(tmp_path / "cache")}
    sweep = subprocess.Popen(_sweep_command(results, iterations=100000, jobs=2),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    folders = [results / "t" / "digits" / m / "labeled=0.1" / "seed=0"
               for m in ("supervised", "mt")]
    deadline = time.monotonic() + 120
    while not all((f / "config.json").is_file() for f in folders):
        assert time.monotonic() < deadline and sweep.poll() is None, "the sweep never started"
        time.sleep(0.2)
    family = _descendants(sweep.pid)
    assert len(family) >= 2 and all(holder_of(f) in family for f in folders)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(10)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in family if _alive(pid)]
    assert all(holder_of(f) is None for f in folders)
