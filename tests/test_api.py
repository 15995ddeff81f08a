"""The Python API (``ssl_bench.api``): run, sweep, compare and a loaded model, end to end;
the documentation's example runs as written."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures import write_csv_dataset

from ssl_bench import api
from ssl_bench.core.errors import UserError
from ssl_bench.training.metrics import compute_metrics

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "python_api.py"
CSV_OPTIONS = {"csv": "labels.csv", "label_column": "label", "group_column": "patient"}
TINY = dict(backbone="test_resnet",
            image_size=16, iterations=20, eval_every=10, batch_size=16, labeled_batch_size=4,
            threads=1)


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "supervised: test AUC" in out and "mt: test AUC" in out
    assert "labeled_seen" in out and "predicted [" in out


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A finished mt run on image files (so the predictor decodes them as the run did)."""
    root = tmp_path_factory.mktemp("api")
    fixture = write_csv_dataset(root / "csv", n=40, size=16)
    metrics = api.run(root / "run", method="mt", dataset="csv", data_root=str(fixture.root),
                      dataset_options=CSV_OPTIONS, labeled=0.5, cache_dir=str(root / "cache"),
                      report_model="teacher", **TINY)
    return fixture, root / "run", metrics


@pytest.mark.parametrize("model", ["reported", "student", "teacher"])
def test_a_loaded_model_predicts_what_its_run_evaluated(csv_run, model):
    fixture, folder, metrics = csv_run
    predictor = api.load_model(folder, model)
    name = "teacher" if model == "reported" else model
    assert predictor.model == name and predictor.classes == fixture.class_names
    test_ids = json.loads((folder / "split.json").read_text())["test"]
    files = [fixture.root / image_id for image_id in test_ids]
    targets = np.array([fixture.labels[fixture.ids.index(i)] for i in test_ids])
    probabilities = predictor.predict(files)
    assert probabilities.shape == (len(files), 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    again = compute_metrics(probabilities, targets, "single", predictor.classes)
    recorded = metrics[name]["test"]
    assert predictor.step == metrics[name]["best_step"]
    for key in ("auc", "accuracy", "balanced_accuracy"):
        assert again[key] == pytest.approx(recorded[key], abs=1e-6), key
    # A PIL image and an array of the same file give the same probabilities.
    from PIL import Image

    with Image.open(files[0]) as image:
        assert np.allclose(predictor.predict([image.copy()]), probabilities[:1], atol=1e-6)
        assert np.allclose(predictor.predict([np.asarray(image)]), probabilities[:1],
                           atol=1e-6)


def test_load_model_says_what_is_missing(tmp_path, csv_run):
    _, folder, _ = csv_run
    with pytest.raises(UserError, match="is not a run folder: no config.json") as caught:
        api.load_model(tmp_path)
    assert "\n" not in str(caught.value)
    import shutil

    kept = shutil.copytree(folder, tmp_path / "no-weights", ignore=shutil.ignore_patterns("*.pt"))
    with pytest.raises(UserError, match="kept no weights .*: no best.pt"):
        api.load_model(kept)
    with pytest.raises(UserError, match="no 'ema' network; it has student, teacher"):
        api.load_model(folder, "ema")
    with pytest.raises(UserError, match="uint8"):
        api.load_model(folder).predict([np.zeros((4, 4), dtype=np.float32)])


def test_sweep_and_compare_return_python_objects(tmp_path):
    spec = {"name": "api", "methods": ["supervised"], "labeled": [0.1], "seeds": [0, 1],
            "results": str(tmp_path), "run": {"dataset": "digits", **TINY}}
    outcomes = api.sweep(spec)
    assert [o["status"] for o in outcomes.values()] == ["done", "done"]
    assert {o["status"] for o in api.sweep(spec).values()} == {"skipped"}  # resumable
    table = api.compare(tmp_path / "api")
    row = table.iloc[0]
    assert (row["method"], row["n"]) == ("supervised", 2) and 0.5 < row["mean"] <= 1.0
    (tmp_path / "nothing-here").mkdir()
    with pytest.raises(UserError, match="no finished run"):
        api.compare(tmp_path / "nothing-here")
