"""Checkpoint selection as one named, swappable rule (issue 29, item 4): each built-in
rule against its formula on a real run's history, a plug-in rule, resume, errors."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import TINY_FLAGS

from ssl_bench.cli.main import main
from ssl_bench.config.run_config import comparison_settings
from ssl_bench.training.selection import (
    WINDOW,
    SelectionRule,
    register_selection_rule,
    selection_registry,
    selection_rule,
)

#: A run with 6 evaluations: enough for ties, smoothing and a late best to matter.
RUN = ["run", "--method", "mt", "--dataset", "digits", *TINY_FLAGS, "--iterations", "12",
       "--eval-every", "2", "--quiet"]


def _expected_step(rows: list[dict[str, str]], rule: str) -> int:
    """The student's best step by the rule's formula, from history.csv alone."""
    values = [float(r["val_student_auc"]) for r in rows]
    steps = [int(r["step"]) for r in rows]
    if rule == "highest-mean-3":
        windows = [values[max(0, i - WINDOW + 1):i + 1] for i in range(len(values))]
        scores = [sum(window) / len(window) for window in windows]
    else:
        scores = values
    best = max(scores)
    ties = [s for s, v in zip(steps, scores, strict=True) if v == best]
    return ties[-1] if rule == "highest-latest" else ties[0]


@pytest.mark.parametrize("rule", ["highest", "highest-latest", "highest-mean-3"])
def test_each_builtin_rule_keeps_the_step_its_formula_names(tmp_path, rule):
    assert main([*RUN, "--selection-rule", rule, "-o", str(tmp_path / "run")]) == 0
    with open(tmp_path / "run" / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["student"]["best_step"] == _expected_step(rows, rule)
    assert metrics["selection"]["rule"] == selection_rule(rule).describe("auc")
    assert ("name" in metrics["selection"]) == (rule != "highest")  # default: as before


def _best_step(name: str, values: list[float | None]) -> int:
    """The evaluation a rule keeps, driven as the evaluator drives it."""
    rule, best = selection_rule(name), None
    for i in range(len(values)):
        score = rule.score(values[:i + 1])
        if rule.improves(score, best):
            best = {"score": score, "best_step": i}
    assert best is not None
    return best["best_step"]


def test_rules_on_hand_made_values():
    lucky = [0.5, 0.9, 0.6, 0.8, 0.8]  # one lucky evaluation, then steadily good
    assert [_best_step(n, lucky) for n in ("highest", "highest-latest", "highest-mean-3")] == [
        1, 1, 3]
    ties = [0.5, 0.7, 0.7, None]
    assert [_best_step(n, ties) for n in ("highest", "highest-latest")] == [1, 2]
    assert selection_rule("highest-mean-3").score([0.9, 0.6, None]) == pytest.approx(0.75)
    records = {"student": {"score": 0.8, "best_step": 4}, "teacher": {"score": 0.8, "best_step": 4}}
    assert SelectionRule().pick(records) == "student"  # same score, same step: the student


def test_a_registered_rule_chooses_the_checkpoint(tmp_path):
    @register_selection_rule("test-first")
    class First(SelectionRule):
        summary = "test rule: the first evaluation"

        def improves(self, score, best):
            return best is None

        def describe(self, metric):
            return f"the first evaluation ({metric} ignored)"

    try:
        assert main([*RUN, "--selection-rule", "test-first", "-o", str(tmp_path / "run")]) == 0
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["student"]["best_step"] == metrics["teacher"]["best_step"] == 2
        assert metrics["selection"]["name"] == "test-first"
    finally:
        selection_registry.unregister("test-first")


def test_a_smoothing_rule_resumes_as_if_never_stopped(tmp_path):
    from conftest import tiny_config

    from ssl_bench.training.runner import run

    config = tiny_config(method="mt", iterations=12, eval_every=2,
                         selection_rule="highest-mean-3")
    whole = run(config, tmp_path / "whole", quiet=True)
    run(config, tmp_path / "part", quiet=True, stop_after=6)
    resumed = run(config, tmp_path / "part", quiet=True, resume=True)
    for model in ("student", "teacher"):
        assert resumed[model]["best_step"] == whole[model]["best_step"]
        assert resumed[model]["test"] == whole[model]["test"]


def test_an_unknown_rule_is_one_line_and_the_rule_is_compared(tmp_path, capsys):
    assert main([*RUN, "--selection-rule", "hihgest", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ssl-bench: error: unknown selection rule 'hihgest'. Did you mean "
                   "'highest'? Known: highest, highest-latest, highest-mean-3")
    assert not (tmp_path / "run").exists()
    assert comparison_settings({"selection_rule": "highest-mean-3"})["selection_rule"] == (
        "highest-mean-3")
    assert comparison_settings({})["selection_rule"] == "highest"  # records before rules
