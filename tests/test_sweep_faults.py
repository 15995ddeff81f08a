"""Sweep faults of issue 28: ``--plugin`` in worker processes and cluster jobs, the
``--status`` of submitit jobs (unknown states, busy runs, every submission's job ids) and
a garbled ``sweep.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import TINY_FLAGS, TINY_RUN

from ssl_bench.cli.main import main
from ssl_bench.runs.locks import FolderLock
from ssl_bench.sweeps.local import make_spec, plan

#: A plug-in method the test process has not loaded (conftest loads tests/plugins/ only):
#: a worker or a job knows it only if the sweep hands it the file.
PLUGIN_SOURCE = '''
import torch

from ssl_bench.method_kit.method import Batch, LossDict, Method, StepContext
from ssl_bench.plugins.registry import register_method


@register_method("{name}")
class WorkerOnly(Method):
    summary = "test plug-in: supervised loss plus a zero consistency"
    uses_unlabeled = True

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict:
        _, logits = ctx.student(batch.student_view)
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        consistency = torch.zeros((), device=logits.device)
        return {{"total": supervised, "supervised": supervised, "consistency": consistency}}
'''
#: The submitit-local flags of a CPU run with one task.
SUBMITIT_LOCAL = ["--executor", "submitit-local", "--gpus-per-run", "0", "--cpus-per-run",
                  "1", "--time", "10"]


@pytest.fixture
def fresh_plugin(tmp_path):
    """A plug-in file with a method name of its own; unregistered again afterwards."""
    from ssl_bench.plugins.registry import method_registry

    name = f"test-worker-only-{tmp_path.name.lower().replace('_', '-')}"
    path = tmp_path / "worker_only.py"
    path.write_text(PLUGIN_SOURCE.format(name=name))
    yield path, name
    if name in method_registry.names():
        method_registry.unregister(name)
    for module in [m for m, v in sys.modules.items()
                   if str(getattr(v, "__file__", "")) == str(path)]:
        del sys.modules[module]


def _argv(tmp_path: Path, name: str, methods: str, seeds: str = "0") -> list[str]:
    return ["sweep", "--name", name, "--results", str(tmp_path), "--methods", methods,
            "--labeled", "0.1", "--seeds", seeds, "--dataset", "digits", *TINY_FLAGS]


def _record(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / name / "sweep.json").read_text())


def _output(tmp_path: Path, name: str, method: str) -> Path:
    """The run folder of ``method``, seed 0, 10% labeled in sweep ``name``."""
    return plan(_spec(tmp_path, name, method))[0].output


def _spec(tmp_path: Path, name: str, method: str):
    """The spec of ``_argv(tmp_path, name, method)``."""
    tiny = dict(TINY_RUN)
    return make_spec({"name": name, "results": str(tmp_path), "methods": [method],
                      "labeled": [0.1], "seeds": [0], "run": {"dataset": "digits", **tiny}},
                     "test")


# -- item 5: --plugin reaches worker processes and jobs ------------------------------------
def test_plugin_methods_run_in_worker_processes(tmp_path, fresh_plugin):
    path, name = fresh_plugin
    assert main([*_argv(tmp_path, "jobs", name, "0,1"), "--plugin", str(path),
                 "--jobs", "2"]) == 0
    runs = _record(tmp_path, "jobs")["runs"]
    assert {run["status"] for run in runs.values()} == {"done"}, runs


def test_plugin_methods_run_in_submitit_jobs(tmp_path, fresh_plugin):
    pytest.importorskip("submitit")
    path, name = fresh_plugin
    assert main([*_argv(tmp_path, "jobs", name), "--plugin", str(path),
                 *SUBMITIT_LOCAL]) == 0
    assert (_output(tmp_path, "jobs", name) / "metrics.json").is_file()


def test_workers_load_only_plugin_files_whose_methods_are_still_registered(tmp_path):
    """Two files registering one name, the first unregistered since: a worker loading
    both would fail on the clash, so only the file in force travels (as CI once showed)."""
    from ssl_bench.plugins.registry import load_plugin, method_registry
    from ssl_bench.plugins.sources import loaded_plugin_files

    name = "test-reused-name"
    first, second = tmp_path / "a" / "reused.py", tmp_path / "b" / "reused.py"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(PLUGIN_SOURCE.format(name=name))
    try:
        load_plugin(first)
        assert str(first.resolve()) in loaded_plugin_files()
        method_registry.unregister(name)
        load_plugin(second)
        files = loaded_plugin_files()
        assert str(second.resolve()) in files and str(first.resolve()) not in files
    finally:
        method_registry.unregister(name)


# -- item 6: the status of submitit jobs ---------------------------------------------------
@pytest.mark.parametrize(("raw", "state"), [
    ("NO PROCESS AND NO RESULT", "unknown"), ("UNKNOWN", "unknown"), ("", "unknown"),
    ("SUSPENDED", "unknown"), ("RUNNING", "running"), ("PENDING", "queued"),
    ("CANCELLED by 1234", "failed"), ("FINISHED", "failed")])
def test_scheduler_states_map_to_sweep_states(raw, state):
    from ssl_bench.sweeps.cluster import scheduler_state

    assert scheduler_state(raw) == state


def test_a_job_this_process_did_not_start_is_unknown_not_no(tmp_path):
    """What --status shows for a submitit-local job after a kill -9 of the sweep."""
    pytest.importorskip("submitit")
    from ssl_bench.sweeps.cluster import cluster_status

    folder = tmp_path / "submitit"
    folder.mkdir()
    record = {"executor": "submitit-local", "submitit_folder": str(folder),
              "runs": {"mt/seed=0": {"path": str(tmp_path / "run"), "status": "queued",
                                     "job_id": "999999"}}}
    assert cluster_status(record) == {"mt/seed=0": "unknown"}


def test_a_locked_run_is_busy_under_submitit_as_under_the_local_executor(tmp_path, capsys):
    pytest.importorskip("submitit")
    from ssl_bench.sweeps.cluster import cluster_status

    codes = {}
    for name, flags in (("local", []), ("submitit", SUBMITIT_LOCAL)):
        with FolderLock(_output(tmp_path, name, "supervised")):  # another sweep trains it
            codes[name] = main([*_argv(tmp_path, name, "supervised"), *flags])
    out = capsys.readouterr().out
    assert codes == {"local": 0, "submitit": 0}, out
    assert [run["status"] for run in _record(tmp_path, "local")["runs"].values()] == ["busy"]
    assert list(cluster_status(_record(tmp_path, "submitit")).values()) == ["busy"]
    assert out.rstrip().endswith("1 busy"), out  # the --status count printed after waiting


def test_every_submission_keeps_its_job_ids(tmp_path):
    pytest.importorskip("submitit")
    from ssl_bench.sweeps.cluster import ClusterOptions, cluster_status, submit_sweep

    options = ClusterOptions(executor="submitit-local", gpus_per_run=0, cpus_per_run=1,
                             time_min=10)
    spec = _spec(tmp_path, "twice", "supervised")
    runs = plan(spec)
    ids = []
    with FolderLock(runs[0].output):  # both jobs find the run busy and end at once
        for _ in range(2):
            job = next(iter(submit_sweep(spec, runs, options, threads=1).values()))
            assert job.result()["status"] == "busy"
            ids.append(str(job.job_id))
        record = _record(tmp_path, "twice")
        run = record["runs"][runs[0].key]
        assert run["job_ids"] == ids and run["job_id"] == ids[-1]
        assert cluster_status(record) == {runs[0].key: "busy"}


# -- item 10: a garbled sweep.json ---------------------------------------------------------
@pytest.mark.parametrize("text", [
    "null", "[1, 2]", '{"runs": 3}', '{"runs": {"mt": 3}}', '{"runs": {"mt": {"path": 3}}}',
    '{"runs": {"mt": {"path": "x", "job_ids": [null]}}}', "{not json"])
def test_a_garbled_sweep_record_is_one_line_naming_it(tmp_path, capsys, text):
    record = tmp_path / "garbled" / "sweep.json"
    record.parent.mkdir()
    record.write_text(text)
    assert main([*_argv(tmp_path, "garbled", "supervised"), "--status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(record) in err and "Traceback" not in err, err


def test_submissions_update_the_sweep_record_one_after_the_other(tmp_path):
    """The lock two submissions at once take around their update of sweep.json."""
    import os

    from ssl_bench.runs.locks import _try_lock, waiting_lock

    path = tmp_path / "sweep.json.lock"
    with waiting_lock(path):
        fd = os.open(path, os.O_RDWR)
        try:
            assert not _try_lock(fd), "a second submission waits here"
        finally:
            os.close(fd)
    fd = os.open(path, os.O_RDWR)
    try:
        assert _try_lock(fd), "released once the update is written"
    finally:
        os.close(fd)
