"""Issue 28, items 8 and 13: a full disk while a checkpoint is written, a second Ctrl-C in
``torch.save``, and a run killed before its first checkpoint."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_FLAGS

from ssl_bench.cli.main import main
from ssl_bench.core import atomic

RUN = ["run", "--method", "mt", "--dataset", "digits", "--labeled", "0.1", *TINY_FLAGS,
       "--quiet", "--threads", "1"]


class _FailingHandle:
    """A file handle whose writes fail with ``error`` once ``limit`` bytes are written."""

    def __init__(self, handle, error: BaseException, limit: int) -> None:
        self.handle, self.error, self.limit, self.written = handle, error, limit, 0

    def write(self, data) -> int:
        self.written += len(data)
        if self.written > self.limit:
            raise self.error
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _failing_writes(monkeypatch, error: BaseException) -> None:
    real = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen",
                        lambda fd, mode: _FailingHandle(real(fd, mode), error, 4096))


@pytest.mark.parametrize("error, raised", [
    (OSError(errno.ENOSPC, "No space left on device"), OSError),
    (KeyboardInterrupt(), KeyboardInterrupt),  # a second Ctrl-C inside torch.save
])
def test_a_failed_checkpoint_write_raises_its_cause_not_torchs_runtime_error(
        tmp_path, monkeypatch, error, raised):
    target = tmp_path / "checkpoint.pt"
    atomic.atomic_torch_save(target, {"w": torch.ones(3)})
    _failing_writes(monkeypatch, error)
    with pytest.raises(raised) as caught:
        atomic.atomic_torch_save(target, {"w": torch.zeros(100_000)})
    assert not isinstance(caught.value, RuntimeError)
    if raised is OSError:
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    monkeypatch.undo()
    assert torch.load(target)["w"].tolist() == [1.0, 1.0, 1.0]  # the old one, intact
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def _limit_file_size(size: int):
    def limit() -> None:  # in the child: writes beyond ``size`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def test_a_full_disk_during_a_run_is_one_line_and_the_run_can_be_run_again(tmp_path):
    """A file-size limit makes the checkpoint write fail as a full disk does (EFBIG)."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "ssl_bench", *RUN, "--output", str(out),
               "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command[:3] + ["list"], env=env, capture_output=True, check=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size(8 * 2**20))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "inline_container" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ssl-bench: error: ") and str(out) in last
    assert "File too large" in last
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*")) if out.exists() else True
    # (the file-size limit was the child's own: the run again is run in this process)
    assert main([*RUN, "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--resume"]) == 0
    assert (out / "metrics.json").is_file()


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_resume(tmp_path, capsys):
    """SIGTERM (or kill -9) while the start records are written leaves config.json and no
    checkpoint; --resume (what a requeued job passes) and a plain run both start it again."""
    finished = tmp_path / "finished"
    assert main([*RUN, "--output", str(finished)]) == 0
    for flags in (["--resume"], []):
        killed = tmp_path / f"killed{len(flags)}"
        killed.mkdir()
        for name in ("config.json", "split.json"):
            shutil.copy(finished / name, killed / name)
        capsys.readouterr()
        loud = [a for a in RUN if a != "--quiet"]
        assert main([*loud, "--output", str(killed), *flags]) == 0
        printed = " ".join("".join(capsys.readouterr()).split())  # rich wraps long lines
        assert "stopped before its first checkpoint; starting it from step 0" in printed
        assert (Path(killed) / "metrics.json").is_file()


def test_a_folder_of_other_files_is_still_not_cleared(tmp_path):
    """Only an ssl-bench run's own start records are started again, never other files."""
    other = tmp_path / "mine"
    other.mkdir()
    (other / "config.json").write_text('{"my": "settings"}\n')
    assert main([*RUN, "--output", str(other), "--resume"]) == 2
    assert (other / "config.json").read_text() == '{"my": "settings"}\n'
