"""Sweeps through submitit without a cluster: its local executor (real subprocesses, the
Slurm code path except ``sbatch``) against ``--executor local``, a preempted run that is
requeued and resumes, a two-task (DDP) run, and the ``sbatch`` script a Slurm submission
writes (with stand-in ``sbatch``/``srun`` programs that record it)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import TINY_RUN

from ssl_bench.cli.main import main
from ssl_bench.sweeps.cluster import ClusterOptions, submit_sweep
from ssl_bench.sweeps.local import make_spec, plan, run_sweep
from ssl_bench.training.runner import run

pytest.importorskip("submitit")

TINY = {**TINY_RUN, "dataset": "digits"}
LOCAL = ClusterOptions(executor="submitit-local", gpus_per_run=0, cpus_per_run=1, time_min=10)
#: The only field of metrics.json that measures the machine rather than the run.
WALL_CLOCK = "train_seconds"


def _spec(tmp_path: Path, name: str, methods: list[str], seeds: list[int], **run_values):
    return make_spec({"name": name, "results": str(tmp_path), "methods": methods,
                      "labeled": [0.1], "seeds": seeds, "run": {**TINY, **run_values}}, "test")


def _without_wall_clock(path: Path) -> str:
    record = json.loads(path.read_text())
    record.pop(WALL_CLOCK)
    return json.dumps(record, sort_keys=True)


def test_submitit_local_sweep_equals_the_local_executor(tmp_path):
    # (two runs, one job each: a job given another run's settings shows as other bytes)
    spec = _spec(tmp_path, "submitit", ["supervised", "mt"], [1])
    jobs = submit_sweep(spec, plan(spec), LOCAL, threads=1)
    assert len(jobs) == 2
    for job in jobs.values():
        job.result()
    record = json.loads((tmp_path / "submitit" / "sweep.json").read_text())
    assert record["executor"] == "submitit-local"
    assert {r["status"] for r in record["runs"].values()} == {"queued"}
    local = _spec(tmp_path, "local", ["supervised", "mt"], [1])
    run_sweep(local, plan(local), jobs=1, threads=1, quiet=True)
    mine = sorted((tmp_path / "submitit").rglob("metrics.json"))
    assert len(mine) == 2
    for path in mine:  # identical bytes once the wall-clock time is left out
        other = tmp_path / "local" / path.relative_to(tmp_path / "submitit")
        assert _without_wall_clock(path) == _without_wall_clock(other), path
    again = submit_sweep(spec, plan(spec), LOCAL, threads=1)
    assert again == {}, "finished runs are not submitted again"


def _task_pid(controller: int, timeout: float = 60) -> int:
    """The training process that submitit's local controller started (Linux /proc)."""
    children = Path(f"/proc/{controller}/task/{controller}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children.read_text().split() if children.exists() else []
        if pids:
            return int(pids[0])
        time.sleep(0.05)
    raise AssertionError("the job's task never started")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_preempted_run_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    settings = dict(iterations=60, eval_every=10)
    spec = _spec(tmp_path, "preempted", ["mt"], [0], **settings)
    planned = plan(spec)[0]
    job = next(iter(submit_sweep(spec, [planned], LOCAL, threads=1).values()))
    task = _task_pid(int(job.job_id))
    checkpoint = planned.output / "checkpoint.pt"
    while not checkpoint.exists():
        time.sleep(0.05)
    os.kill(task, signal.SIGUSR2)  # what Slurm sends before preempting or timing out
    preempted = job.result()
    log = Path(job.paths.stdout).read_text() + Path(job.paths.stderr).read_text()
    assert "Requeued job" in log and "resuming" in log, log[-2000:]
    # (the same threads as the job: float reductions, hence a run, depend on their number)
    straight = run(dataclasses.replace(planned.config, threads=1), tmp_path / "straight",
                   quiet=True)
    assert {k: v for k, v in preempted.items() if k != WALL_CLOCK} == {
        k: v for k, v in straight.items() if k != WALL_CLOCK}
    rows = (planned.output / "history.csv").read_text().splitlines()[1:]
    steps = [line.split(",")[0] for line in rows]  # every evaluation once: none lost or twice
    assert steps == [str(s) for s in range(10, 61, 10)]


def test_a_run_with_several_gpus_is_one_ddp_job_with_a_task_per_gpu(tmp_path):
    # On this CPU-only machine the local executor drops the GPUs but keeps one task per
    # requested GPU: two gloo ranks, exactly the path of a two-GPU Slurm job.
    spec = _spec(tmp_path, "ddp", ["srcmt"], [0], backbone="test_convnext", image_size=32)
    options = ClusterOptions(executor="submitit-local", gpus_per_run=2, cpus_per_run=1,
                             time_min=10)
    job = next(iter(submit_sweep(spec, plan(spec), options, threads=1).values()))
    metrics = job.results()[0]
    assert metrics["steps"] == TINY["iterations"]
    config = json.loads((plan(spec)[0].output / "config.json").read_text())
    assert config["schedule"]["processes"] == 2


def test_a_slurm_submission_is_one_job_array_with_the_requested_resources(
        tmp_path, monkeypatch, capsys):
    bin_dir, script = tmp_path / "bin", tmp_path / "sbatch-script.sh"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncat "$@" > {script}\n'
                                    'echo "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    argv = ["sweep", "--name", "slurm", "--results", str(tmp_path), "--methods",
            "supervised,mt", "--seeds", "0,1", "--labeled", "0.1", "--dataset", "digits",
            "--backbone", "test_resnet",
            "--image-size", "16", "--iterations", "4", "--executor", "slurm",
            "--partition", "gpu", "--account", "lab", "--time", "90", "--gpus-per-run", "2",
            "--cpus-per-run", "6", "--mem-gb", "32", "--array-parallelism", "2",
            "--sbatch", "qos=high,constraint=a100"]
    assert main(argv) == 0
    text = script.read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --array=0-3%2",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --mem=32GB", "#SBATCH --time=90",
                 "#SBATCH --qos=high", "#SBATCH --constraint=a100",
                 "#SBATCH --signal=USR2@120", "#SBATCH --job-name=ssl-bench-slurm"):
        assert line in text, line
    assert "-m submitit.core._submit" in text and text.lstrip().startswith("#!/bin/bash")
    assert "srun --unbuffered" in text and "--kill-on-bad-exit=1" in text  # ranks end together
    record = json.loads((tmp_path / "slurm" / "sweep.json").read_text())
    assert [r["job_id"] for r in record["runs"].values()] == [f"4242_{i}" for i in range(4)]
    assert record["cluster"]["partition"] == "gpu"
    capsys.readouterr()
    assert main([*argv, "--status"]) == 0  # no sacct here: the state is unknown, not guessed
    out = capsys.readouterr().out
    assert "4242_3" in out and "4 unknown" in out
