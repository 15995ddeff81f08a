"""``ssl-bench predict`` (issue 31, item 4): a finished run's probabilities on new images,
with the run's own preprocessing; every refusal is one line, exit code 2, no file left."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from fixtures import corrupt_image, refused_in_one_line, write_csv_dataset

from ssl_bench import api
from ssl_bench.cli.main import main
from ssl_bench.runs.predictions import read_predictions
from ssl_bench.runs.run_dir import BEST, FAILED, METRICS
from ssl_bench.training.metrics import compute_metrics

CSV_OPTIONS = {"csv": "labels.csv", "label_column": "label", "group_column": "patient"}
TINY = dict(backbone="test_resnet", image_size=16, iterations=20, eval_every=10,
            batch_size=16, labeled_batch_size=4, threads=1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished mt run (reporting its teacher) trained on image files."""
    root = tmp_path_factory.mktemp("predict")
    fixture = write_csv_dataset(root / "csv", n=40, size=16)
    metrics = api.run(root / "run", method="mt", dataset="csv", data_root=str(fixture.root),
                      dataset_options=CSV_OPTIONS, labeled=0.5, cache_dir=str(root / "cache"),
                      report_model="teacher", **TINY)
    return fixture, root / "run", metrics


def _read(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], [row[0] for row in rows[1:]], np.array(rows[1:])[:, 1:].astype(float)


@pytest.mark.parametrize("model", ["reported", "student"])
def test_predict_writes_what_the_run_evaluated(tmp_path, capsys, finished, model):
    fixture, folder, metrics = finished
    test_ids = json.loads((folder / "split.json").read_text())["test"]
    files = [fixture.root / image_id for image_id in test_ids]
    listing = tmp_path / "test.csv"
    listing.write_text("image\n" + "".join(f"{f}\n" for f in files))
    output = tmp_path / "out" / "probs.csv"
    assert main(["predict", str(folder), str(listing), "--model", model, "--device", "cpu",
                 "--batch-size", "3", "-o", str(output)]) == 0
    summary = capsys.readouterr().out.strip()
    name = "teacher" if model == "reported" else model
    assert summary.startswith(f"predicted {len(files)} images with the {name} of {folder}")
    assert "softmax over 3 classes) on cpu" in summary and str(output) in summary
    header, images, probs = _read(output)
    assert header == ["image", *fixture.class_names] and images == [str(f) for f in files]
    expected = api.load_model(folder, model).predict(files)  # (batches of 3 vs all at once)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    # ... which are the run's own test predictions: the same metrics, to the last digit.
    targets = np.array([fixture.labels[fixture.ids.index(i)] for i in test_ids])
    again = compute_metrics(probs, targets, "single", fixture.class_names)
    for key in ("auc", "accuracy", "balanced_accuracy"):
        assert again[key] == pytest.approx(metrics[name]["test"][key], abs=1e-6), key
    saved = read_predictions(folder, metrics["predictions"])  # (the run's own test ones)
    np.testing.assert_allclose(probs, saved[f"probs_{name}"], atol=1e-6)


def test_a_folder_an_image_and_stdout(capsys, finished):
    fixture, folder, _ = finished
    assert main(["predict", str(folder), str(fixture.root / "imgs"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 41 and lines[0] == "image,benign,malignant,normal"
    assert lines[1].startswith(f"{fixture.root / 'imgs' / 'img_00.png'},")
    assert captured.err.strip().endswith("on cpu -> standard output")
    one = fixture.files[5]
    assert main(["predict", str(folder), str(one), "--device", "cpu"]) == 0
    single = capsys.readouterr().out.splitlines()
    assert len(single) == 2 and single[1].split(",")[0] == str(one) == lines[6].split(",")[0]
    np.testing.assert_allclose([float(v) for v in single[1].split(",")[1:]],
                               [float(v) for v in lines[6].split(",")[1:]], atol=1e-6)


def test_csv_paths_relative_to_the_csv_or_an_image_root(tmp_path, capsys, finished):
    fixture, folder, _ = finished
    (tmp_path / "lists").mkdir()
    shutil.copytree(fixture.root / "imgs", tmp_path / "imgs")
    relative = tmp_path / "lists" / "rel.csv"
    relative.write_text("id,path\na,../imgs/img_03.png\nb,../imgs/img_07.png\n")
    out = tmp_path / "rel-probs.csv"
    assert main(["predict", str(folder), str(relative), "--image-column", "path",
                 "--device", "cpu", "-o", str(out)]) == 0
    _, images, probs = _read(out)
    assert images == ["../imgs/img_03.png", "../imgs/img_07.png"]
    expected = api.load_model(folder).predict([fixture.files[3], fixture.files[7]])
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    rooted = tmp_path / "lists" / "rooted.csv"
    rooted.write_text("image\nimg_03.png\nimg_07.png\n")
    out2 = tmp_path / "rooted-probs.csv"
    assert main(["predict", str(folder), str(rooted), "--image-root", str(tmp_path / "imgs"),
                 "--device", "cpu", "-o", str(out2)]) == 0
    np.testing.assert_allclose(_read(out2)[2], probs, atol=0)
    capsys.readouterr()


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, finished):
    fixture, folder, _ = finished
    image = str(fixture.files[0])
    out = tmp_path / "never.csv"
    unfinished = shutil.copytree(folder, tmp_path / "unfinished")
    (unfinished / METRICS).unlink()
    failed = shutil.copytree(unfinished, tmp_path / "failed")
    (failed / FAILED).write_text("{}")
    no_weights = shutil.copytree(folder, tmp_path / "no-weights")
    (no_weights / BEST).unlink()
    listing = tmp_path / "list.csv"
    listing.write_text(f"path\n{image}\n")
    missing_row = tmp_path / "missing.csv"
    missing_row.write_text(f"image\n{image}\nnot-there.png\n")
    bad = corrupt_image(tmp_path / "bad.png")
    cases = [
        ([str(unfinished), image], "is not a finished run: no metrics.json", str(unfinished)),
        ([str(failed), image], "is a failed run (failed.json)", str(failed)),
        ([str(no_weights), image], "kept no weights", "no best.pt"),
        ([str(tmp_path), image], "is not a run folder: no config.json"),
        ([str(folder), str(tmp_path / "nothing.png")], "nothing.png: no such file or folder"),
        ([str(folder), str(listing)], "no column 'image'", "columns: path", "--image-column"),
        ([str(folder), str(missing_row)], "missing.csv, line 3: image not-there.png: missing"),
        ([str(folder), str(bad)], f"{bad}: unreadable image"),
        ([str(folder), image, "--batch-size", "0"], "--batch-size must be at least 1"),
        ([str(folder), image, "--model", "ema"], "--model: invalid choice: 'ema'"),
    ]
    for argv, *text in cases:
        refused_in_one_line(capsys, ["predict", *argv, "-o", str(out)], *text)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys, monkeypatch, finished):
    fixture, folder, _ = finished
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "p.csv"
    refused_in_one_line(capsys, ["predict", str(folder), str(fixture.files[0]), "--device", "cuda",
                      "-o", str(out)], "--device cuda", "no CUDA GPU")
    assert not out.exists()
