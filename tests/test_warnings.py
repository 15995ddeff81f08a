"""Issue 15, item 5: the warnings a careful researcher wants, and a stated tie rule."""

from __future__ import annotations

import types
import warnings

import pytest
from fixtures import write_csv_dataset

from ssl_bench.cli.main import main
from ssl_bench.data.splits import make_split
from ssl_bench.plugins.registry import create_dataset
from ssl_bench.training.evaluation import Evaluator
from ssl_bench.training.selection import SelectionRule


def test_a_csv_without_a_group_column_warns_about_patients_in_two_parts(tmp_path):
    write_csv_dataset(tmp_path, n=12)
    with pytest.warns(UserWarning, match="no --group-column.*two split parts"):
        create_dataset("csv", tmp_path, label_column="label")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_dataset("csv", tmp_path, label_column="label", group_column="patient")


def test_small_evaluation_parts_and_absent_classes_warn(tmp_path):
    write_csv_dataset(tmp_path, n=30, classes=("a", "b", "c", "d", "e", "f", "g", "h"))
    dataset = create_dataset("csv", tmp_path, label_column="label", group_column="patient")
    with pytest.warns(UserWarning) as caught:
        make_split(dataset, 0, 0.5)
    messages = [str(w.message) for w in caught]
    assert any("part holds only" in m and "fewer than 20" in m for m in messages)
    assert any("part has no image of class(es)" in m for m in messages)


def test_the_command_line_shows_a_warning_as_one_line(tmp_path, capsys):
    write_csv_dataset(tmp_path / "data", n=40)
    assert main(["split", "--dataset", "csv", "--data-root", str(tmp_path / "data"),
                 "--label-column", "label", "--output", str(tmp_path / "s.json")]) == 0
    err = capsys.readouterr().err
    assert "ssl-bench: warning: labels.csv: no --group-column" in err
    assert "warnings.warn(" not in err and "UserWarning" not in err


@pytest.mark.parametrize("student, teacher, picked", [
    ((0.8, 10), (0.9, 10), "teacher"),  # higher validation metric
    ((0.9, 10), (0.8, 4), "student"),
    ((0.9, 10), (0.9, 4), "teacher"),   # tie: the earlier step
    ((0.9, 4), (0.9, 10), "student"),
    ((0.9, 6), (0.9, 6), "student"),    # tie at the same step: the student
])
def test_student_teacher_ties_follow_the_stated_rule(student, teacher, picked):
    fake = types.SimpleNamespace(
        config=types.SimpleNamespace(selection_metric="auc", report_model="best",
                                     selection_rule="highest"), rule=SelectionRule(),
        best={name: {"score": score, "best_step": step, "test": {}}
              for name, (score, step) in (("student", student), ("teacher", teacher))})
    summary = Evaluator.summary(fake)
    assert summary["best"]["model"] == picked
    assert summary["selection"]["model_rule"] == SelectionRule.model_rule
