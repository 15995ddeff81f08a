"""Divergence: a blown-up run stops as failed with the likely cause, never as a result."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_config
from test_sweep import _spec

from ssl_bench.compare import load_runs
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import list_methods
from ssl_bench.sweeps.local import plan, run_sweep
from ssl_bench.training.divergence import (
    LR,
    WEIGHT,
    DivergenceMonitor,
    TrainingDiverged,
    parameter_norm,
)
from ssl_bench.training.runner import run


def _monitor() -> DivergenceMonitor:
    return DivergenceMonitor(lr=1e-3, consistency_weight=1.0)


def test_healthy_losses_pass():
    monitor = _monitor()
    for step, (sup, total) in enumerate([(2.0, 2.01), (1.5, 1.7), (0.4, 1.4), (0.05, 0.9)]):
        monitor.check_losses(step + 1, {"total": total, "supervised": sup, "consistency": 0.1})
    assert monitor.first_supervised == 2.0


def test_exploding_supervised_loss_blames_the_learning_rate():
    monitor = _monitor()
    monitor.check_losses(1, {"total": 2.0, "supervised": 2.0})
    monitor.check_losses(10, {"total": 150.0, "supervised": 150.0})  # 75x: still allowed
    with pytest.raises(TrainingDiverged, match=r"supervised loss reached 3e\+12.*--lr") as caught:
        monitor.check_losses(20, {"total": 3e12, "supervised": 3e12})
    assert caught.value.cause == LR and caught.value.step == 20


def test_huge_weighted_unsupervised_terms_blame_the_loss_weight():
    monitor = DivergenceMonitor(lr=1e-4, consistency_weight=1e30)
    with pytest.raises(TrainingDiverged, match="--consistency-weight 1e\\+30") as caught:
        monitor.check_losses(1, {"total": 1e27, "supervised": 2.0, "consistency": 1e-3})
    assert caught.value.cause == WEIGHT
    assert "--lr" not in str(caught.value)


@pytest.mark.parametrize("means,cause", [
    ({"total": math.nan, "supervised": math.nan}, LR),
    ({"total": math.inf, "supervised": 1.0, "consistency": math.inf}, WEIGHT),
    ({"total": math.nan}, LR),  # a method without a supervised term
])
def test_non_finite_losses(means, cause):
    with pytest.raises(TrainingDiverged, match="not finite") as caught:
        _monitor().check_losses(3, means)
    assert caught.value.cause == cause


def test_parameters_and_gradients():
    model = torch.nn.Linear(4, 3)
    monitor = _monitor()
    monitor.start(model)
    expected = math.sqrt(sum(float((p.detach() ** 2).sum()) for p in model.parameters()))
    assert parameter_norm(model) == pytest.approx(expected, rel=1e-5)
    monitor.check_parameters(1, model)
    with torch.no_grad():
        model.weight.mul_(50)  # a big but plausible change passes
    monitor.check_parameters(2, model)
    with torch.no_grad():
        model.weight.mul_(1e3)
    with pytest.raises(TrainingDiverged, match="parameter norm"):
        monitor.check_parameters(3, model)
    model = torch.nn.Linear(4, 3)
    monitor = _monitor()
    monitor.start(model)
    model.weight.grad = torch.full_like(model.weight, math.nan)
    with pytest.raises(TrainingDiverged, match="gradients are not finite"):
        monitor.check_parameters(4, model)
    monitor.check_parameters(4, model, gradients=False)
    with torch.no_grad():
        model.bias[0] = math.inf
    with pytest.raises(TrainingDiverged, match="parameters are not finite"):
        monitor.check_parameters(5, model, gradients=False)


def test_predictions():
    monitor = _monitor()
    confident = np.array([[0.999, 0.001], [0.998, 0.002], [0.9, 0.1]], dtype=np.float32)
    monitor.check_predictions(1, "student", "val", confident, "single")  # one class, not saturated
    saturated = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    with pytest.raises(TrainingDiverged, match="same class"):
        monitor.check_predictions(1, "teacher", "val", saturated, "single")
    mixed = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    monitor.check_predictions(1, "student", "val", mixed, "single")  # saturated, two classes
    with pytest.raises(TrainingDiverged, match="not finite"):
        monitor.check_predictions(1, "student", "test", np.array([[math.nan, 1.0]]), "single")
    multi = np.array([[1.0, 0.0, 1.0]] * 4, dtype=np.float32)
    with pytest.raises(TrainingDiverged, match="saturated 0/1"):
        monitor.check_predictions(1, "student", "val", multi, "multi")
    monitor.check_predictions(1, "student", "val", multi * 0.5, "multi")


@pytest.mark.parametrize("method", list_methods())
def test_every_method_that_diverges_is_marked_failed(method, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="--lr"):
        run(tiny_config(method=method, lr=1e6, iterations=20, eval_every=10), out, quiet=True)
    record = json.loads((out / "failed.json").read_text())
    assert record["failed"] and record["cause"] == LR and record["method"] == method
    assert not (out / "metrics.json").exists() and not (out / "checkpoint.pt").exists()
    with pytest.raises(UserError, match="holds a run that failed"):
        run(tiny_config(method=method, lr=1e6), out, quiet=True, resume=True)
    with pytest.raises(UserError, match="holds a run that failed"):
        run(tiny_config(method=method, lr=1e6), out, quiet=True)


def test_a_sane_run_after_overwrite_finishes(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="--consistency-weight"):
        run(tiny_config(method="mt", consistency_weight=1e30), out, quiet=True)
    metrics = run(tiny_config(method="mt"), out, quiet=True, overwrite=True)
    assert metrics["finished"] and not (out / "failed.json").exists()


def test_sweep_records_divergence_as_failed_and_compare_skips_it(tmp_path):
    spec = _spec(tmp_path, run={**_spec(tmp_path).run, "consistency_weight": 1e30})
    runs = plan(spec)
    result = run_sweep(spec, runs, quiet=True)
    assert result.failed == ["mt/labeled=0.1/seed=0"]
    assert "consistency-weight" in result.status["mt/labeled=0.1/seed=0"]["error"]
    assert result.status["supervised/labeled=0.1/seed=0"]["status"] == "done"
    again = run_sweep(spec, plan(spec), quiet=True)  # not trained again: recorded as failed
    assert again.failed == ["mt/labeled=0.1/seed=0"]
    assert "earlier sweep" in again.status["mt/labeled=0.1/seed=0"]["error"]
    frame, warnings = load_runs([tmp_path / "results"])
    assert set(frame["method"]) == {"supervised"}
    assert any("1 failed run" in w and "diverged" in w for w in warnings)
