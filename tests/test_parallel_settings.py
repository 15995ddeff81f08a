"""Issue 28, item 2: runs made on different process counts (or batch-norm scopes) are
different comparisons, in compare and in a sweep's fairness check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_compare import write_run

from ssl_bench.compare.groups import describe_differences
from ssl_bench.compare.runs import load_runs
from ssl_bench.compare.summary import summarize
from ssl_bench.config.run_config import parallel_settings
from ssl_bench.sweeps.plan import PlannedRun, check_same_parallelism


def _ran_on(path: Path, processes: int | None, sync_bn: bool = False) -> Path:
    """Record in the run's config.json how it ran (None: a record before schedule)."""
    document = json.loads((path / "config.json").read_text())
    if processes is not None:
        document["schedule"] = {"processes": processes}
    document["config"]["sync_bn"] = sync_bn
    (path / "config.json").write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(("document", "expected"), [
    ({"config": {}}, {"processes": 1, "batch_norm": "one process"}),
    ({"config": {"sync_bn": True}, "schedule": {"processes": 1}},
     {"processes": 1, "batch_norm": "one process"}),
    ({"config": {"sync_bn": False}, "schedule": {"processes": 2}},
     {"processes": 2, "batch_norm": "per process"}),
    ({"config": {"sync_bn": True}, "schedule": {"processes": 4}},
     {"processes": 4, "batch_norm": "synchronised"}),
    ({"config": {}, "schedule": {"processes": "two"}},
     {"processes": 1, "batch_norm": "one process"}),
])
def test_parallel_settings_of_a_record(document, expected):
    assert parallel_settings(document) == expected


def test_compare_keeps_runs_of_different_process_counts_apart(tmp_path):
    for seed in range(2):
        _ran_on(write_run(tmp_path / "one", method="mixmatch", seed=seed, auc=0.82), 1)
        _ran_on(write_run(tmp_path / "two", method="mixmatch", seed=seed, auc=0.77), 2)
        _ran_on(write_run(tmp_path / "old", method="mixmatch", seed=seed + 2, auc=0.82), None)
    df, _ = load_runs([tmp_path])
    assert df["settings"].nunique() == 2  # a record without schedule ran on one process
    summary = summarize(df)
    assert sorted(summary["n"]) == [2, 4] and sorted(summary["mean"].round(6)) == [0.77, 0.82]
    assert set(describe_differences(df).values()) == {
        "batch_norm=one process, processes=1", "batch_norm=per process, processes=2"}


def test_synchronised_batch_norm_is_another_comparison(tmp_path):
    _ran_on(write_run(tmp_path / "a", method="srcmt"), 2, sync_bn=False)
    _ran_on(write_run(tmp_path / "b", method="srcmt"), 2, sync_bn=True)
    df, _ = load_runs([tmp_path])
    assert df["settings"].nunique() == 2


def _planned(path: Path, method: str) -> PlannedRun:
    return PlannedRun(method, 0.2, 0, None, path, method)  # type: ignore[arg-type]


def test_the_sweep_fairness_check_names_mixed_process_counts(tmp_path):
    one = _ran_on(write_run(tmp_path, method="supervised"), 1)
    two = _ran_on(write_run(tmp_path, method="mt"), 2)
    never = tmp_path / "never-started"
    runs = [_planned(one, "supervised"), _planned(two, "mt"), _planned(never, "pi")]
    problems = check_same_parallelism(runs)
    assert len(problems) == 1
    assert "1 process(es), batch norm one process: 1 run(s)" in problems[0]
    assert "2 process(es), batch norm per process: 1 run(s)" in problems[0]
    assert check_same_parallelism(runs[:1] + runs[2:]) == []
