"""End-to-end tiny runs, run directories, resume and clean failure."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import supports, tiny_config

from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import get_method_class, list_methods
from ssl_bench.training.contract import RESUME_SETTINGS, check_resume
from ssl_bench.training.runner import run
from ssl_bench.training.trainer import Trainer

BUILTIN = ["supervised", "pi", "mt", "srcmt", "fixmatch"]
#: Every registered method: built-ins and the test plug-ins (conftest), present and future.
METHODS = list_methods()


def test_selection_uses_validation_only(tmp_path):
    """The reported step is the one with the best *validation* metric, whatever test says."""
    metrics = run(tiny_config(method="mt", iterations=6, eval_every=1, test_at="best"),
                  tmp_path / "r", quiet=True)
    with open(tmp_path / "r" / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    for model in ("student", "teacher"):
        values = [float(r[f"val_{model}_auc"]) for r in rows]
        best = rows[values.index(max(values))]
        assert metrics[model]["best_step"] == int(best["step"])
        assert metrics[model]["test"]["auc"] == pytest.approx(float(best[f"test_{model}_auc"]))


def _comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def test_scoring_test_only_at_best_steps_reports_the_same_numbers(tmp_path):
    """test_at = best skips the test part where no model improved and test_at = end scores
    it once with the best weights after training; nothing reported changes."""
    config = dict(method="mt", iterations=8, eval_every=1)
    every = run(tiny_config(**config, test_at="every"), tmp_path / "every", quiet=True)
    best = run(tiny_config(**config, test_at="best"), tmp_path / "best", quiet=True)
    end = run(tiny_config(**config, test_at="end"), tmp_path / "end", quiet=True)
    assert _comparable(best) == _comparable(every)
    # end: the best-validation weights put back after training score the test part alike
    assert _comparable(end) == _comparable(every)
    assert min(end[m]["best_step"] for m in ("student", "teacher")) < 8  # weights restored
    with open(tmp_path / "every" / "history.csv") as handle:
        every_rows = list(csv.DictReader(handle))
    with open(tmp_path / "best" / "history.csv") as handle:
        best_rows = list(csv.DictReader(handle))
    skipped = 0
    for model in ("student", "teacher"):
        top = -1.0
        for full, lean in zip(every_rows, best_rows, strict=True):
            assert lean[f"val_{model}_auc"] == full[f"val_{model}_auc"]
            value = float(full[f"val_{model}_auc"])
            if value > top:  # a new best: its test numbers are there, as in the full run
                top = value
                assert lean[f"test_{model}_auc"] == full[f"test_{model}_auc"]
            else:
                assert lean[f"test_{model}_auc"] == "" != full[f"test_{model}_auc"]
                skipped += 1
    assert skipped > 0  # 8 evaluations of a tiny run do not all improve


def _check_run_directory(out, metrics: dict, method: str) -> None:
    """A finished run's folder: its records, provenance and validation-only selection."""
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert not (out / "checkpoint.pt").exists(), "resume state is removed once finished"
    assert (out / "best.pt").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["method"] == method
    assert config["environment"]["versions"]["torch"]
    assert "commit" in config["environment"]["git"]
    from ssl_bench.core.provenance import code_digest

    assert config["environment"]["code"] == code_digest()  # the code that ran
    assert "processor" in config["environment"]
    split = json.loads((out / "split.json").read_text())
    assert split["fingerprint"] == config["dataset"]["fingerprint"]
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    evaluations = list(range(RESUME_SETTINGS["eval_every"], RESUME_SETTINGS["iterations"] + 1,
                             RESUME_SETTINGS["eval_every"]))
    assert [int(r["step"]) for r in rows] == evaluations == [2, 4, 6]
    models = ["student", "teacher"] if get_method_class(method).needs_teacher else ["student"]
    for model in models:
        record = metrics[model]
        assert record["best_step"] in evaluations
        assert 0.0 <= record["test"]["auc"] <= 1.0  # scored once, at the end (test_at=end)
        assert f"val_{model}_auc" in rows[0]
        assert all(not row.get(f"test_{model}_auc") for row in rows)
    assert metrics["best"]["model"] in models


@pytest.mark.parametrize("dataset", ["digits", "digits-multilabel"])
@pytest.mark.parametrize("method", METHODS)
def test_a_run_writes_a_complete_run_directory_and_resumes_to_the_same_result(
        tmp_path, method, dataset):
    """Every method, present and future, on both task kinds. An uninterrupted run writes a
    complete run folder; the same run stopped by SIGTERM at step 3, between two
    evaluations (issue 15, item 3), keeps a checkpoint of that step and continues to the
    same result, loss means and method logs included
    (ssl_bench.training.contract.check_resume); a finished run is not redone."""
    if not supports(method, dataset):  # refused at start-up, in one line, nothing written
        out = tmp_path / "run"
        with pytest.raises(UserError, match="does not support multi-label") as caught:
            run(tiny_config(method=method, dataset=dataset), out, quiet=True)
        assert "\n" not in str(caught.value) and not out.exists()
        return
    straight = check_resume(method, dataset, tmp_path)
    _check_run_directory(tmp_path / "straight", straight, method)
    with pytest.raises(UserError, match="finished"):
        run(tiny_config(method=method, dataset=dataset, **RESUME_SETTINGS),
            tmp_path / "resumed", quiet=True)


def test_resume_refuses_a_different_configuration(tmp_path):
    run(tiny_config(iterations=4), tmp_path / "r", quiet=True, stop_after=2)
    with pytest.raises(UserError, match="configuration differs.*lr"):
        run(tiny_config(iterations=4, lr=0.5), tmp_path / "r", quiet=True, resume=True)


def test_finished_run_is_not_overwritten_silently(tmp_path):
    run(tiny_config(), tmp_path / "r", quiet=True)
    before = (tmp_path / "r" / "metrics.json").read_text()
    with pytest.raises(UserError, match="finished run"):
        run(tiny_config(), tmp_path / "r", quiet=True)
    assert (tmp_path / "r" / "metrics.json").read_text() == before
    run(tiny_config(seed=1), tmp_path / "r", quiet=True, overwrite=True)
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["seed"] == 1


def test_a_crash_before_the_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    def explode(self):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(Trainer, "train_step", explode)
    with pytest.raises(RuntimeError, match="simulated"):
        run(tiny_config(), tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_user_errors_happen_before_any_file_is_written(tmp_path):
    with pytest.raises(UserError, match="misses class"):
        run(tiny_config(labeled=5), tmp_path / "r", quiet=True)
    with pytest.raises(UserError, match="more labeled images"):
        run(tiny_config(labeled=5000), tmp_path / "r2", quiet=True)
    assert not any(tmp_path.iterdir())


def test_divergence_is_reported(tmp_path):
    with pytest.raises(UserError, match="diverged"):
        run(tiny_config(method="supervised", lr=1e12, iterations=20, eval_every=10,
                        optimizer="sgd"), tmp_path / "r", quiet=True)


def test_every_registered_method_is_covered():
    assert set(BUILTIN) <= set(list_methods())


def test_own_statistics_for_a_teacher_that_never_runs_is_refused(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"teacher_buffers \(--teacher-buffers\) own leaves "
                                        r"the EMA teacher of fixmatch") as caught:
        run(tiny_config(method="fixmatch", teacher_buffers="own"), out, quiet=True)
    assert "\n" not in str(caught.value)
    assert not out.exists() or not any(out.iterdir())
