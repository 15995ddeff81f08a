"""Ctrl-C and SIGTERM stop a whole sweep: running runs keep a checkpoint, no run starts.

Before, a signal stopped the run a worker was training, and the worker then took the
next run of the sweep; these tests send real signals (to this process, or to a sweep
started as a command) and check what the sweep keeps and how it continues.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_FLAGS, TINY_RUN

from ssl_bench.core.interrupts import stop_requests
from ssl_bench.sweeps.execution import StepReporter
from ssl_bench.sweeps.local import SweepInterrupted, make_spec, plan, run_sweep
from ssl_bench.training.runner import run

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _metrics(folder: Path) -> dict:
    record = json.loads((folder / "metrics.json").read_text())
    record.pop("train_seconds")
    return record


def test_nested_blocks_share_the_first_signal_and_a_second_ctrl_c_stops_at_once():
    with stop_requests() as sweep:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert sweep.name == "Ctrl-C"
        with stop_requests() as run_request:  # a run that starts while the sweep stops
            assert run_request.name == "Ctrl-C"
            os.kill(os.getpid(), signal.SIGTERM)  # forwarded by the sweep: changes nothing
            time.sleep(0.01)
            assert run_request.name == sweep.name == "Ctrl-C"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
    with stop_requests() as later:  # a block after the sweep's starts clean
        assert not later


def test_a_signal_during_a_run_stops_the_sweep_and_the_same_sweep_continues(tmp_path,
                                                                            monkeypatch):
    spec = make_spec({
        "name": "stopped", "methods": ["supervised"], "labeled": [0.1], "seeds": [0, 1, 2],
        "run": {**TINY_RUN, "iterations": 6},
        "results": str(tmp_path / "results"), "keep_checkpoints": False}, "test spec")
    runs = plan(spec)
    target = runs[1]
    original = StepReporter.advance

    def signal_at_step_3(self, step):
        original(self, step)
        if self.key == target.key and step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(StepReporter, "advance", signal_at_step_3)
    with pytest.raises(SweepInterrupted) as caught:
        run_sweep(spec, runs, quiet=True)
    stopped = caught.value
    assert stopped.exit_code == 143 and stopped.reason == "SIGTERM"
    states = {key: outcome["status"] for key, outcome in stopped.result.status.items()}
    assert states == {runs[0].key: "done", target.key: "interrupted", runs[2].key: "pending"}
    assert stopped.result.status[target.key]["checkpoint_step"] == 3
    assert f"{target.key} (checkpoint of step 3/6)" in stopped.describe()
    assert "1 not started" in stopped.describe()
    record = json.loads(stopped.result.record.read_text())
    assert {k: v["status"] for k, v in record["runs"].items()} == states
    assert (target.output / "checkpoint.pt").is_file()
    assert not (target.output / "metrics.json").exists() and not runs[2].output.exists()

    monkeypatch.undo()
    result = run_sweep(spec, plan(spec), quiet=True)
    assert [result.status[p.key]["status"] for p in runs] == ["skipped", "resumed", "done"]
    straight = run(target.config, tmp_path / "straight", quiet=True)
    assert straight is not None
    assert _metrics(target.output) == _metrics(tmp_path / "straight")


def test_sigterm_to_a_parallel_sweep_stops_its_workers_with_checkpoints(tmp_path):
    """The real command with two worker processes; only the sweep's process is signalled."""
    results = tmp_path / "results"
    flags = [a for a in TINY_FLAGS]
    flags[flags.index("--iterations") + 1] = "100000"
    flags[flags.index("--eval-every") + 1] = "50000"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ssl_bench", "sweep", "--name", "long", "--methods",
         "supervised,mt", "--labeled", "0.1", "--seeds", "0,1", "--dataset", "digits",
         "--results", str(results), "--jobs", "2", "--threads", "1", *flags],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list(results.rglob("config.json"))) < 2:  # both workers are training
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 143, out + err
    assert "sweep stopped by SIGTERM: 2 run(s) stopped" in err and "2 not started" in err
    assert "Traceback" not in err
    record = json.loads((results / "long" / "sweep.json").read_text())
    states = sorted(v["status"] for v in record["runs"].values())
    assert states == ["interrupted", "interrupted", "pending", "pending"], record["runs"]
    for outcome in record["runs"].values():
        if outcome["status"] == "interrupted":
            assert outcome["reason"] == "SIGTERM" and outcome["checkpoint_step"] >= 1
            assert (Path(outcome["path"]) / "checkpoint.pt").is_file()
