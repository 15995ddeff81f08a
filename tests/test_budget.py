"""Fair budgets (issue 27): labeled exposure, both supervised baselines, early stopping,
convergence flags, reporting fixed in advance."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_RUN, tiny_config

from ssl_bench.config.budget import (
    evaluations_since,
    exposure,
    method_label,
    peaked_late,
    should_stop,
    watched_step,
)
from ssl_bench.config.resolve import resolve_config
from ssl_bench.core.errors import UserError
from ssl_bench.sweeps.local import make_spec, plan
from ssl_bench.sweeps.plan import exposure_notes
from ssl_bench.training.prepare import prepare
from ssl_bench.training.runner import run


def _spec(tmp_path, **overrides):
    values = {"name": "tiny", "methods": ["supervised", "mt"], "labeled": [0.1], "seeds": [0],
              "run": dict(TINY_RUN), "results": str(tmp_path / "results")}
    values.update(overrides)
    return make_spec(values, "test spec")


# -- early stopping on a hand-made history ------------------------------------------------

def _online(scores: list[float], patience: int, report_model: str = "student") -> int | None:
    """Replay evaluations at steps 10, 20, ...; the step early stopping ends at."""
    best: dict[str, int] = {}
    best_score = -1.0
    steps: list[int] = []
    for i, score in enumerate(scores):
        step = 10 * (i + 1)
        steps.append(step)
        if score > best_score:  # strictly higher: the earliest step keeps a tie
            best_score, best["student"] = score, step
        if should_stop(patience, steps, best, report_model):
            return step
    return None


def test_early_stopping_stops_at_the_right_evaluation():
    # best 0.72 at step 30; 0.72 again at 50 is a tie (no improvement); 3 evaluations
    # after step 30 -> stop at step 60
    scores = [0.60, 0.70, 0.72, 0.71, 0.72, 0.69, 0.90, 0.95]
    assert _online(scores, patience=3) == 60
    assert _online(scores, patience=4) == 70 or _online(scores, patience=4) is None
    assert _online(scores, patience=4) is None  # 0.90 at step 70 renews the patience
    assert _online(scores, patience=0) is None  # off
    assert _online([0.5, 0.4], patience=1) == 20


def test_patience_is_read_from_the_records_so_a_resumed_run_keeps_it():
    assert evaluations_since([10, 20, 30, 40], 20) == 2
    assert should_stop(2, [10, 20, 30, 40], {"student": 20}, "student")
    assert not should_stop(3, [10, 20, 30, 40], {"student": 20}, "student")
    # best waits for both models; student/teacher watch their own
    best = {"student": 40, "teacher": 10}
    assert watched_step(best, "best") == 40 and watched_step(best, "teacher") == 10
    assert should_stop(3, [10, 20, 30, 40], best, "teacher")
    assert not should_stop(3, [10, 20, 30, 40], best, "best")
    assert watched_step({"student": 30}, "teacher") == 30  # no teacher: the student


def _early_config(**overrides):
    # resnet10t: on the tests' smaller test_resnet validation AUC still rises at step 80
    return tiny_config(backbone="resnet10t", iterations=80, eval_every=2, patience=2,
                       lr=0.01, **overrides)


def test_a_run_stops_early_and_a_resumed_run_ends_identically(tmp_path):
    whole = run(_early_config(), tmp_path / "whole", quiet=True)
    budget = whole["budget"]
    assert budget["stopped"] == "patience" and budget["steps"] < budget["max_steps"] == 80
    with open(tmp_path / "whole" / "history.csv", encoding="utf-8") as handle:
        steps = [int(line.split(",")[0]) for line in handle.readlines()[1:]]
    assert steps[-1] == whole["steps"]
    best_step = watched_step({m: whole[m]["best_step"] for m in ("student", "teacher")
                              if m in whole}, "best")  # (srcmt, reporting the better)
    assert evaluations_since(steps, best_step) == 2  # exactly the patience
    assert evaluations_since(steps[:-1], best_step) == 1  # and not one evaluation earlier
    # interrupted one evaluation before the end, with one evaluation of patience used
    stop_at = steps[-2]
    assert run(_early_config(), tmp_path / "resumed", quiet=True, stop_after=stop_at) is None
    resumed = run(_early_config(), tmp_path / "resumed", quiet=True, resume=True)
    for record in (whole, resumed):
        record.pop("train_seconds")
    assert resumed == whole


# -- labeled exposure -------------------------------------------------------------------

def test_labeled_epochs_give_every_method_the_same_labeled_exposure():
    def steps(method, batch):
        config = resolve_config({}, {**TINY_RUN, "method": method, "iterations": None,
                                     "labeled_epochs": 2.0, "supervised_batch": batch,
                                     "dataset": "digits", "labeled": 0.1})
        prepared = prepare(config, quiet=True)
        return prepared.total_steps, len(prepared.parts["labeled"])

    (mt, num_labeled), (stream, _), (full, _) = (
        steps("mt", "two-stream"), steps("supervised", "two-stream"),
        steps("supervised", "labeled"))
    assert mt == stream == -(-2 * num_labeled // 4)  # ceil(2 * N / 4 labeled per step)
    assert full == -(-2 * num_labeled // 16)  # 16 labeled per step: 4x fewer steps
    assert exposure(4, mt, num_labeled)["labeled_epochs_seen"] >= 2.0


def test_both_baselines_are_planned_and_named(tmp_path):
    runs = plan(_spec(tmp_path, baselines=["two-stream", "labeled"]))
    assert sorted(r.label for r in runs) == ["mt", "supervised", "supervised-labeled-batch"]
    assert {r.output.parent.parent.name for r in runs} == {r.label for r in runs}
    assert method_label("supervised", False, "labeled") == "supervised-labeled-batch"
    assert method_label("mt", True, "labeled") == "mt"  # one batch for SSL methods


def test_unequal_labeled_exposure_is_said_when_the_sweep_is_planned(tmp_path):
    notes = exposure_notes(plan(_spec(tmp_path, baselines=["two-stream", "labeled"])))
    assert len(notes) == 1
    assert "supervised-labeled-batch 16 per step x 4 steps (4.0x)" in notes[0]
    assert "mt 4 per step x 4 steps (1.0x)" in notes[0]
    assert exposure_notes(plan(_spec(tmp_path))) == []  # the default: one stream
    by_epochs = {**TINY_RUN, "iterations": None, "labeled_epochs": 1.0}
    assert exposure_notes(plan(_spec(tmp_path, run=by_epochs,
                                     baselines=["two-stream", "labeled"]))) == []


def test_the_cli_warns_about_unequal_exposure(tmp_path, capsys):
    from ssl_bench.cli.main import main

    spec = tmp_path / "s.toml"
    spec.write_text(f'methods = ["supervised", "mt"]\nlabeled = [0.1]\nseeds = [0]\n'
                    f'baselines = ["two-stream", "labeled"]\nresults = "{tmp_path}"\n'
                    '[run]\nbackbone = "test_resnet"\nimage_size = 16\niterations = 4\n'
                    'batch_size = 16\n'
                    'labeled_batch_size = 4\n')
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "unequal labeled exposure" in out and "3 methods" in out


def test_method_run_tables_are_recorded_as_own_settings(tmp_path):
    runs = plan(_spec(tmp_path, method_run={"mt": {"lr": 0.003}}))
    mt = next(r for r in runs if r.method == "mt")
    supervised = next(r for r in runs if r.method == "supervised")
    assert (mt.config.lr, mt.config.own_settings) == (0.003, ["lr"])
    assert supervised.config.own_settings == [] and supervised.config.lr != 0.003
    with pytest.raises(UserError, match=r"\[method_run.mt\] may set engine settings only"):
        _spec(tmp_path, method_run={"mt": {"seed": 3}})
    with pytest.raises(UserError, match="method_run for fixmatch"):
        _spec(tmp_path, method_run={"fixmatch": {"lr": 0.1}})


# -- reporting fixed in advance -----------------------------------------------------------

def test_a_reference_sweep_names_its_reported_model_and_tests_every_evaluation(tmp_path):
    with pytest.raises(UserError, match="names the model it reports before it runs"):
        _spec(tmp_path, reference=True)
    spec = _spec(tmp_path, reference=True, run={**TINY_RUN, "report_model": "teacher"})
    assert spec.run["test_at"] == "every"
    with pytest.raises(UserError, match="test_at = 'end' must be 'every'"):
        _spec(tmp_path, reference=True,
              run={**TINY_RUN, "report_model": "best", "test_at": "end"})


def test_peaked_late_is_the_last_tenth_of_the_budget():
    assert peaked_late(400, 400) and peaked_late(361, 400)
    assert not peaked_late(360, 400) and peaked_late(None, 400) is None


def test_metrics_record_exposure_and_budget(tmp_path):
    metrics = run(tiny_config(iterations=4, eval_every=2), tmp_path / "r", quiet=True)
    assert metrics["budget"] == {"max_steps": 4, "steps": 4, "stopped": "budget",
                                 "patience": 0, "eval_every": 2}
    per_step = json.loads((tmp_path / "r" / "config.json").read_text())[
        "schedule"]["num_labeled_per_batch"]
    assert metrics["exposure"]["labeled_images_seen"] == 4 * per_step
