"""Issue 15, item 3: logs a cluster job can read; Ctrl-C and SIGTERM keep a checkpoint.

A signal only asks the run to stop: the step finishes, a checkpoint of that step is
saved and the run resumes from it exactly as if never stopped (for every method, present
and future: ``test_engine.test_resume_gives_the_same_result_as_an_uninterrupted_run``).
Without a terminal a run prints a start line, lines with steps/s and an ETA, and its
evaluations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_FLAGS, tiny_config

import ssl_bench.training.runner as runner
from ssl_bench.cli.main import main, resume_command
from ssl_bench.core.interrupts import RunInterrupted
from ssl_bench.core.progress import duration
from ssl_bench.training.contract import signal_at

REPO = Path(__file__).resolve().parent.parent


def test_a_stop_at_an_evaluation_keeps_that_evaluation_s_checkpoint(tmp_path):
    with pytest.raises(RunInterrupted) as caught, signal_at(4, signal.SIGINT) as progress:
        runner.run(tiny_config(iterations=6, eval_every=2), tmp_path / "r", quiet=True,
                   progress=progress)
    assert (caught.value.checkpoint_step, caught.value.exit_code) == (4, 130)
    assert "Ctrl-C at step 4/6; checkpoint of step 4" in caught.value.describe()


def test_the_resume_command_continues_the_same_run():
    assert resume_command(["--method", "mt", "--overwrite"], Path("runs/x")) == (
        "ssl-bench run --method mt --output runs/x --resume")
    assert resume_command(["-o", "my run", "--resume"], Path("my run")) == (
        "ssl-bench run -o 'my run' --resume")


def test_without_a_terminal_a_run_logs_start_progress_and_evaluations(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr("ssl_bench.core.progress.HEARTBEAT_SECONDS", (0.0, 120.0))
    out = tmp_path / "run"
    assert main(["run", "--method", "mt", "--dataset", "digits", *TINY_FLAGS,
                 "--iterations", "40", "--eval-every", "20", "--threads", "1",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    start = next(line for line in err.splitlines() if line.startswith("starting mt on digits"))
    for part in ("labeled ", "unlabeled ", "val ", "test ", "40 steps", "evaluation every 20",
                 "device cpu", "1 thread;", f"output {out}"):
        assert part in start, (part, start)
    beats = [line for line in err.splitlines() if "steps/s, ETA" in line]
    assert 10 <= len(beats) <= 39 and "step 2/40 (5%)" in beats[0]  # every 5% of 40 steps
    assert sum("step 20/40: " in line or "step 40/40: " in line for line in err.splitlines()) == 2


def test_duration_reads_like_a_person_wrote_it():
    assert [duration(s) for s in (0.4, 45, 127, 11100)] == [
        "0 s", "45 s", "2 min 07 s", "3 h 05 min"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    """The real signal, in a real process: exit 143, one checkpoint, a resume line."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["--method", "supervised", "--dataset", "digits", *TINY_FLAGS,
            "--iterations", "100000", "--eval-every", "50000", "--threads", "1", "-o", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "ssl_bench", "run", *args], env=env,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    log = []
    assert process.stderr is not None
    for line in process.stderr:  # the start line: training is about to start
        log.append(line)
        if line.startswith("starting supervised"):
            break
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    log += process.stderr.readlines()
    assert process.wait(timeout=600) == 143, "".join(log)
    text = "".join(log)
    assert "stopped by SIGTERM at step" in text and "Traceback" not in text
    resume = next(line for line in log if "continue it with:" in line)
    assert resume.strip().endswith(f"-o {out} --resume") and "--iterations 100000" in resume
    assert (out / "checkpoint.pt").is_file() and not (out / "metrics.json").exists()
