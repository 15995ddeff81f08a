"""``ssl-bench tune``: the same budget for every method, validation only, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from ssl_bench.cli.main import main
from ssl_bench.core.errors import UserError
from ssl_bench.method_kit.search_space import ENGINE_SPACE, Float, space_of, space_problems
from ssl_bench.plugins.registry import get_method_class, list_methods
from ssl_bench.sweeps.plan import make_spec
from ssl_bench.tuning import TUNED_TOML, TUNING_JSON
from ssl_bench.tuning.settings import tune_settings
from ssl_bench.tuning.trials import PruningReports, watched_value

SPEC = """
name = "tt"
methods = ["supervised", "mt"]
labeled = [0.1]
seeds = [0, 1]
results = "{results}"
[run]
dataset = "digits"
backbone = "test_resnet"
image_size = 16
iterations = 30
eval_every = 10
threads = 1
[tune]
trials = 3
"""


def _spec(tmp_path: Path, name: str = "spec.toml", **replace: str) -> Path:
    text = SPEC.format(results=tmp_path / "results")
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "results/tt/tuning" / TUNING_JSON).read_text())


@pytest.mark.parametrize("method", list_methods())
def test_every_method_has_a_valid_space_over_the_shared_engine_space(method):
    cls = get_method_class(method)
    assert space_problems(cls) == []
    space = space_of(cls)
    assert list(space)[:len(ENGINE_SPACE)] == list(ENGINE_SPACE)
    for name, param in space.items():  # every default the method runs with is searchable
        default = {o.name: o.default for o in cls.options}.get(name)
        if isinstance(param, Float) and isinstance(default, float) and name != "lr":
            assert param.low <= default <= param.high, (method, name, default)


def test_a_bad_space_is_named(monkeypatch):
    cls = get_method_class("fixmatch")
    monkeypatch.setattr(cls, "search_space", {"lr": Float(1e-4, 1e-2)})
    assert "re-declares 'lr'" in space_problems(cls)[0]
    monkeypatch.setattr(cls, "search_space", {"thresold": Float(0.5, 0.9)})
    assert "'thresold'" in space_problems(cls)[0]
    monkeypatch.setattr(cls, "search_space", {"threshold": Float(0.9, 0.5)})
    assert "low < high" in space_problems(cls)[0]


def test_a_reported_seed_cannot_be_the_tuning_seed():
    spec = make_spec({"name": "x", "methods": ["mt"], "labeled": [0.1], "seeds": [0, 1, 2]},
                     "spec")
    assert tune_settings(spec, {}, {}, "spec").seed == 3
    with pytest.raises(UserError, match="tuning seed 1 is one of the reported seeds"):
        tune_settings(spec, {"seed": 1}, {}, "spec")
    with pytest.raises(UserError, match="not labeled"):
        tune_settings(spec, {"run": {"labeled": 5}}, {}, "spec")
    with pytest.raises(UserError, match="name the one to tune at"):
        two = make_spec({"name": "x", "methods": ["mt"], "labeled": [0.1, 0.2], "seeds": [0]},
                        "spec")
        tune_settings(two, {}, {}, "spec")


def test_the_watched_value_is_the_reported_models_validation_metric():
    row = {"val_student_auc": "0.7", "val_teacher_auc": "0.8", "test_student_auc": "0.99"}
    assert watched_value(row, "auc", "best") == 0.8
    assert watched_value(row, "auc", "student") == 0.7
    assert watched_value(row, "auc", "teacher") == 0.8
    assert watched_value({"val_student_auc": "0.6"}, "auc", "teacher") == 0.6


def test_a_resumed_trial_replays_its_history_before_it_continues(tmp_path):
    (tmp_path / "history.csv").write_text("step,val_student_auc\n10,0.5\n20,0.6\n30,0.7\n")

    class Trial:
        reports: list = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return False

    trial = Trial()
    reports = PruningReports(trial, "auc", "student", True, tmp_path)
    reports(30, {"val_student_auc": 0.7})
    reports(40, {"val_student_auc": 0.75})
    assert trial.reports == [(10, 0.5), (20, 0.6), (30, 0.7), (40, 0.75)]


def test_every_method_gets_the_same_budget_on_validation_only(tmp_path, capsys):
    assert main(["tune", str(_spec(tmp_path)), "--quiet"]) == 0
    record = _record(tmp_path)
    assert record["complete"] and record["tuning_seed"] == 2 and record["test_at"] == "never"
    for label, entry in record["methods"].items():
        assert entry["counted"] == 3 and len(entry["trials"]) == 3, label
        finished = [t for t in entry["trials"] if t["state"] == "COMPLETE"]
        assert entry["best"]["value"] == max(t["value"] for t in finished)
        for trial in entry["trials"]:
            run = tmp_path / "results/tt/tuning" / trial["run"]
            config = json.loads((run / "config.json").read_text())["config"]
            assert config["seed"] == 2 and config["test_at"] == "never"
            if trial["state"] == "COMPLETE":  # the objective is validation, test never ran
                metrics = json.loads((run / "metrics.json").read_text())
                assert trial["value"] == metrics["reported"]["val"]["auc"]
                assert metrics["reported"]["test"] == {}
    assert set(record["methods"]["mt"]["trials"][0]["params"]) == {
        "lr", "weight_decay", "consistency_weight"}
    tuned = tomllib.loads((tmp_path / "results/tt/tuning" / TUNED_TOML).read_text())
    best_mt = record["methods"]["mt"]["best"]["params"]
    assert tuned["name"] == "tt-tuned" and tuned["seeds"] == [0, 1]
    assert tuned["method_run"]["mt"] == best_mt  # mt's weight is an engine setting
    assert "method_options" not in tuned
    # The tuned spec plans a fair sweep: the chosen settings are each method's own.
    assert main(["sweep", str(tmp_path / "results/tt/tuning" / TUNED_TOML), "--dry-run"]) == 0
    # compare never mistakes trials for results
    assert main(["compare", str(tmp_path / "results")]) == 2
    assert "no finished run" in capsys.readouterr().err
    # The tuned sweep's report shows the study behind it.
    tuned_path = tmp_path / "results/tt/tuning" / TUNED_TOML
    assert main(["sweep", str(tuned_path), "--keep-checkpoints", "false"]) == 0
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "results/tt-tuned"), "-o", str(page)]) == 0
    text = page.read_text()
    assert "<h2>Tuning</h2>" in text and "3 trials per method (complete) on seed 2" in text
    # Run again: the budget is spent, nothing new runs.
    assert main(["tune", str(_spec(tmp_path)), "--quiet"]) == 0
    assert _record(tmp_path)["methods"]["mt"]["counted"] == 3


def test_a_killed_study_resumes_to_what_an_uninterrupted_one_chose(tmp_path, monkeypatch):
    import ssl_bench.training.runner as runner

    whole = tmp_path / "whole"
    killed = tmp_path / "killed"
    assert main(["tune", str(_spec(whole)), "--quiet", "--methods", "mt"]) == 0
    real_run = runner.run
    calls = []

    def run_then_die(config, output, **kwargs):
        calls.append(output)
        if len(calls) == 2:  # the second trial: a checkpoint at step 20, then killed
            real_run(config, output, stop_after=20, **kwargs)
            raise KeyboardInterrupt
        return real_run(config, output, **kwargs)

    monkeypatch.setattr(runner, "run", run_then_die)
    assert main(["tune", str(_spec(killed)), "--quiet", "--methods", "mt"]) == 130
    assert (killed / "results/tt/tuning/mt/trial=001/checkpoint.pt").is_file()
    assert main(["tune", str(_spec(killed)), "--quiet", "--methods", "mt"]) == 0
    trials = _record(killed)["methods"]["mt"]["trials"]
    assert [t["outcome"] for t in trials] == ["finished", "interrupted", "finished", "finished"]
    assert trials[2]["resumes"] == 1 and trials[2]["run"] == "mt/trial=001"
    expected = [t for t in _record(whole)["methods"]["mt"]["trials"]]
    kept = [t for t in trials if t["outcome"] != "interrupted"]
    assert [(t["params"], t["value"]) for t in kept] == [
        (t["params"], t["value"]) for t in expected]


def test_a_changed_spec_does_not_continue_an_old_study(tmp_path):
    assert main(["tune", str(_spec(tmp_path)), "--quiet", "--trials", "1",
                 "--methods", "supervised"]) == 0
    changed = _spec(tmp_path, "changed.toml", **{"iterations = 30": "iterations = 40"})
    assert main(["tune", str(changed), "--quiet", "--trials", "1",
                 "--methods", "supervised"]) == 2


def test_pruned_trials_count_and_keep_no_checkpoint(tmp_path, monkeypatch):
    from ssl_bench.tuning import trials as trials_module

    monkeypatch.setattr(trials_module, "WARMUP_EVALUATIONS", 0)
    calls = []

    def prune_from_the_third(self):
        calls.append(1)
        return len(calls) > 6  # trials 1-2 run 3 evaluations each, trial 3 is pruned

    import optuna

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", prune_from_the_third)
    assert main(["tune", str(_spec(tmp_path)), "--quiet", "--methods", "supervised"]) == 0
    entry = _record(tmp_path)["methods"]["supervised"]
    assert [t["outcome"] for t in entry["trials"]] == ["finished", "finished", "pruned"]
    assert entry["counted"] == 3 and entry["trials"][2]["last_step"] == 10
    pruned = tmp_path / "results/tt/tuning" / entry["trials"][2]["run"]
    assert not (pruned / "checkpoint.pt").exists() and not (pruned / "metrics.json").exists()


def test_a_reference_spec_is_tuned_from_committed_code_only(tmp_path, monkeypatch, capsys):
    """Trials of a reference spec come from one clean commit, as its sweep's runs do:
    uncommitted engine or method files refuse the study in one line, unless allowed."""
    from ssl_bench.core import provenance

    monkeypatch.setattr(provenance, "uncommitted_code", lambda path=None: ["methods/mt.py"])
    spec = _spec(tmp_path, **{'results = "': 'reference = true\nresults = "',
                              "[run]\n": '[run]\nreport_model = "best"\n'})
    assert main(["tune", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reference sweep (reference = true)" in err, err
    assert "methods/mt.py" in err and "--allow-uncommitted" in err
    assert main(["tune", str(spec), "--dry-run", "--allow-uncommitted"]) == 0
    assert main(["tune", str(_spec(tmp_path, "plain.toml")), "--dry-run"]) == 0
