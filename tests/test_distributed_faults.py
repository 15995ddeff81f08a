"""Issue 28, item 9: a torchrun run whose other process ends is one line per surviving
rank (which rank, at which step, the last checkpoint) and says how to continue it,
through torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssl_bench.cli.main import resume_command
from ssl_bench.core.distributed import launcher
from ssl_bench.core.rank_faults import PeerLost, peer_lost, short_cause

HERE = Path(__file__).parent
#: A method whose rank 1 is killed (SIGKILL, as the kernel's OOM killer does) at step 5,
#: after the checkpoint of step 4.
DIES = '''
import os
import signal

from ssl_bench.core import distributed
from ssl_bench.method_kit.method import Method
from ssl_bench.plugins.registry import register_method


@register_method("dies-on-rank-1")
class DiesOnRank1(Method):
    summary = "test plug-in: rank 1 gets a signal (SSL_BENCH_TEST_SIGNAL) at step 5"
    data_parallel = "global"
    views = {"student": "weak"}

    def train_step(self, batch, ctx):
        if distributed.current().rank == 1 and ctx.step == 5:
            os.kill(os.getpid(), getattr(signal, os.environ["SSL_BENCH_TEST_SIGNAL"]))
        _, logits = ctx.student(batch.views["student"])
        loss = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        return {"total": loss, "supervised": loss}
'''
TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def _torchrun_run(tmp_path: Path, signal_name: str) -> subprocess.CompletedProcess:
    """``ssl-bench run`` of the plug-in above on two CPU processes under torchrun."""
    plugin = tmp_path / "dies.py"
    plugin.write_text(DIES)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSL_BENCH_TEST_SIGNAL": signal_name,
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", "-m", "ssl_bench", "run", "--plugin", str(plugin), "--method",
         "dies-on-rank-1", "--dataset", "digits", "--backbone", "test_convnext",
         "--image-size", "32", "--iterations", "8", "--eval-every", "2", "--batch-size",
         "16", "--labeled-batch-size", "4", "--eval-batch-size", "600", "--drop-rate", "0",
         "-o", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)


def _no_rank_traceback(done: subprocess.CompletedProcess) -> list[str]:
    """Our lines of a failed launch, after checking no rank printed a traceback."""
    assert done.returncode != 0
    assert not any(line.startswith("[rank") for line in done.stderr.splitlines()), (
        done.stderr[-3000:])
    return [line for line in done.stderr.splitlines() if line.startswith("ssl-bench:")]


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_rank_that_ends_leaves_one_line_on_the_other(tmp_path, signal_name):
    """Rank 1 killed, or SIGTERM reaching rank 1 alone (a non-first rank ends at once;
    the first saves and says what it kept): rank 0 says it in one line."""
    ours = _no_rank_traceback(_torchrun_run(tmp_path, signal_name))
    assert len(ours) == 1, ours
    line = ours[0]
    assert line.startswith("ssl-bench: error: rank 0 of 2: another process of this "
                           "torchrun run ended (")
    assert "while this one was at step 5; the last checkpoint is of step 4 in" in line
    assert "; continue it with: torchrun --nproc_per_node 2 -m ssl_bench run " in line
    assert line.endswith(" --resume") and (tmp_path / "out" / "checkpoint.pt").is_file()


def test_the_resume_command_of_a_rank_goes_through_torchrun():
    argv = ["--method", "mt", "-o", "out", "--overwrite"]
    assert resume_command(argv, Path("out"), environ={}) == (
        "ssl-bench run --method mt -o out --resume")
    assert resume_command(argv, Path("out"), environ=TORCHRUN) == (
        "torchrun --nproc_per_node 2 -m ssl_bench run --method mt -o out --resume")
    two_nodes = {**TORCHRUN, "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}
    assert launcher(two_nodes) == "torchrun --nproc_per_node 4 --nnodes 2 -m ssl_bench run"


@pytest.mark.parametrize(("message", "cause"), [
    ("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer "
     "[127.0.0.1]:41563", "Connection closed by peer"),
    ("Read error: Connection reset by peer. This is typically caused by a remote worker "
     "hanging. GLHF!", "Read error: Connection reset by peer"),
    ("[../gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 1800000ms for recv "
     "operation to complete", "Timed out waiting 1800000ms for recv operation to complete"),
])
def test_a_lost_peer_is_recognised_and_said_briefly(message, cause):
    assert peer_lost(RuntimeError(message)) == cause == short_cause(message)


def test_other_errors_are_not_a_lost_peer():
    assert peer_lost(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    assert peer_lost(ValueError("Connection closed by peer")) is None  # not a collective's
    error = PeerLost(1, 2, 7, "Connection closed by peer", None, None)
    assert str(error) == ("rank 1 of 2: another process of this torchrun run ended "
                          "(Connection closed by peer) while this one was at step 7; no "
                          "checkpoint yet")
