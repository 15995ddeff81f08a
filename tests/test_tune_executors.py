"""``ssl-bench tune`` through the executors: ``--jobs`` worker processes and submitit
jobs give every method the same budget and the very choices of one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_tune import _spec

from ssl_bench.cli.main import main
from ssl_bench.runs.locks import FolderLock
from ssl_bench.tuning import TUNED_TOML, TUNING_JSON

TWO_TRIALS = ["--trials", "2", "--quiet"]


def _trials(root: Path) -> dict[str, list[tuple[dict, float | None, str]]]:
    record = json.loads((root / "results/tt/tuning" / TUNING_JSON).read_text())
    assert record["complete"], record
    return {label: [(t["params"], t["value"], t["outcome"]) for t in entry["trials"]]
            for label, entry in record["methods"].items()}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The study of mt and supervised run in this process: what every executor must give."""
    root = tmp_path_factory.mktemp("one")
    assert main(["tune", str(_spec(root)), *TWO_TRIALS]) == 0
    return _trials(root)


def test_worker_processes_choose_what_one_process_chooses(tmp_path, one_process, capsys):
    assert main(["tune", str(_spec(tmp_path)), *TWO_TRIALS, "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "supervised: trial 2/2" in out and "mt: trial 2/2" in out  # lines from workers
    assert _trials(tmp_path) == one_process
    assert (tmp_path / "results/tt/tuning" / TUNED_TOML).is_file()


def test_submitit_jobs_choose_what_one_process_chooses(tmp_path, one_process, capsys):
    pytest.importorskip("submitit")
    assert main(["tune", str(_spec(tmp_path)), *TWO_TRIALS, "--executor", "submitit-local",
                 "--gpus-per-run", "0", "--cpus-per-run", "1", "--time", "10"]) == 0
    assert "as submitit-local jobs" in capsys.readouterr().out
    assert _trials(tmp_path) == one_process
    logs = list((tmp_path / "results/tt/tuning/submitit").glob("*_log.out"))
    assert len(logs) == 2 and any("mt: trial 2/2" in p.read_text() for p in logs)
    # Run again: every budget is spent, nothing is submitted.
    assert main(["tune", str(_spec(tmp_path)), *TWO_TRIALS, "--executor", "submitit-local",
                 "--gpus-per-run", "0"]) == 0
    assert "nothing to submit" in capsys.readouterr().out


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_study_another_process_runs_is_left_to_it(tmp_path, capsys, jobs):
    spec = _spec(tmp_path)
    with FolderLock(tmp_path / "results/tt/tuning/mt"):
        assert main(["tune", str(spec), *TWO_TRIALS, "--jobs", jobs]) == 1
    out = capsys.readouterr().out
    assert "the mt study is being run by another process" in out
    assert f"no {TUNED_TOML}" in out and not (tmp_path / "results/tt/tuning" / TUNED_TOML).exists()
    record = json.loads((tmp_path / "results/tt/tuning" / TUNING_JSON).read_text())
    assert record["methods"]["supervised"]["counted"] == 2
    assert record["methods"]["mt"]["counted"] == 0 and not record["complete"]


def test_a_study_job_runs_on_one_gpu(tmp_path, capsys):
    pytest.importorskip("submitit")
    code = main(["tune", str(_spec(tmp_path)), *TWO_TRIALS, "--executor", "submitit-local",
                 "--gpus-per-run", "2"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gpus-per-run 2" in err


def test_jobs_must_be_positive(tmp_path, capsys):
    assert main(["tune", str(_spec(tmp_path)), "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
