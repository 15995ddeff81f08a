"""``--log tensorboard,mlflow``: the trackers hold what the run directory holds.

Read back for real: TensorBoard's own event reader and MLflow's client API (against a
local file store) must give every ``history.csv`` value at its step, the configuration
as hyper-parameters/parameters, the final metrics, and (MLflow) the run's records.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from conftest import TINY_FLAGS, TINY_RUN, tiny_config

from ssl_bench.cli.main import main
from ssl_bench.core.errors import UserError
from ssl_bench.sweeps.local import make_spec, plan, run_sweep
from ssl_bench.training.runner import run

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


def _history(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every numeric history.csv column as (step, value) pairs."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(folder / "history.csv") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    series.setdefault(key, []).append((int(row["step"]), float(value)))
    return series


def _close(a: list[tuple[int, float]], b: list[tuple[int, float]], rel: float) -> bool:
    return [s for s, _ in a] == [s for s, _ in b] and all(
        math.isclose(x, y, rel_tol=rel, abs_tol=1e-7) for (_, x), (_, y) in zip(a, b, strict=True))


def _tensorboard(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    return events


def test_a_sweep_logs_every_run_to_tensorboard_and_one_mlflow_experiment(tmp_path,
                                                                          mlflow_store):
    spec = make_spec({
        "name": "tracked", "methods": ["supervised", "fixmatch"], "labeled": [0.1], "seeds": [0],
        "run": {**TINY_RUN, "iterations": 6,
                "test_at": "every", "log": "tensorboard,mlflow"},
        "results": str(tmp_path / "results"), "keep_checkpoints": False}, "test spec")
    runs = plan(spec)
    run_sweep(spec, runs, quiet=True)
    experiment = mlflow_store.get_experiment_by_name("tracked")
    found = {r.info.run_name: r for r in mlflow_store.search_runs([experiment.experiment_id])}
    assert set(found) == {p.key for p in runs}
    for planned in runs:
        history = _history(planned.output)
        metrics = json.loads((planned.output / "metrics.json").read_text())
        assert "test_student_auc" in history and "loss_total" in history
        if planned.method == "fixmatch":  # the method's logs (mask ratio, ...) too
            assert "log_mask_ratio" in history
        # TensorBoard: every column at its steps (float32 in event files)
        events = _tensorboard(planned.output)
        for key, expected in history.items():
            logged = [(e.step, e.value) for e in events.Scalars(key)]
            assert _close(logged, expected, 1e-6), key
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
        best = events.Scalars("final/student/test/auc")[-1]
        assert best.step == 6 and math.isclose(best.value, metrics["student"]["test"]["auc"],
                                                rel_tol=1e-6)
        assert {e.step for e in events.Scalars("train/total")} == {1, 2, 4, 6}
        # MLflow: the same values (float64), tags, parameters, records, state
        mlflow_run = found[planned.key]
        run_id = mlflow_run.info.run_id
        assert mlflow_run.info.status == "FINISHED"
        assert mlflow_run.data.tags["method"] == planned.method
        assert mlflow_run.data.tags["seed"] == "0" and mlflow_run.data.tags["labeled"] == "0.1"
        assert mlflow_run.data.params["lr"] == str(planned.config.lr)
        assert mlflow_run.data.params["iterations"] == "6"
        for key, expected in history.items():
            logged = sorted((m.step, m.value) for m in mlflow_store.get_metric_history(
                run_id, key))
            assert _close(logged, expected, 1e-12), key
        assert math.isclose(mlflow_run.data.metrics["final/student/test/auc"],
                            metrics["student"]["test"]["auc"], rel_tol=1e-12)
        artifacts = {a.path for a in mlflow_store.list_artifacts(run_id)}
        assert artifacts == {"metrics.json", "config.json", "split.json"}


def test_a_resumed_run_continues_its_mlflow_run_without_repeating_steps(tmp_path,
                                                                        mlflow_store):
    config = tiny_config(method="mt", iterations=6, eval_every=2, log="tensorboard,mlflow",
                         experiment="resume")
    out = tmp_path / "run"
    assert run(config, out, quiet=True, stop_after=4) is None  # a killed run
    first = json.loads((out / "tracking.json").read_text())["mlflow"]["run_id"]
    assert mlflow_store.get_run(first).info.status == "KILLED"
    run(config, out, quiet=True, resume=True)
    experiment = mlflow_store.get_experiment_by_name("resume")
    assert [r.info.run_id for r in mlflow_store.search_runs([experiment.experiment_id])] == [
        first]
    assert mlflow_store.get_run(first).info.status == "FINISHED"
    history = _history(out)
    logged = sorted((m.step, m.value) for m in mlflow_store.get_metric_history(
        first, "val_student_auc"))
    assert _close(logged, history["val_student_auc"], 1e-12)
    events = _tensorboard(out)
    assert _close([(e.step, e.value) for e in events.Scalars("loss_total")],
                  history["loss_total"], 1e-6)


def test_a_missing_tracker_package_is_a_one_line_error_naming_the_extra(tmp_path, capsys,
                                                                        monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    out = tmp_path / "run"
    assert main(["run", "--method", "mt", "--dataset", "digits", *TINY_FLAGS,
                 "--log", "tensorboard,mlflow", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ssl-bench: error: --log mlflow needs the mlflow package: "
                   "pip install 'ssl-bench[mlflow]'")
    assert not out.exists()


def test_an_unknown_tracker_is_refused():
    with pytest.raises(UserError, match=r"log \(--log\) knows mlflow, tensorboard; got wandb"):
        tiny_config(log="tensorboard,wandb")
