"""``ssl-bench export`` (issue 31, item 4): ONNX and TorchScript files that give torch's
probabilities (within 1e-4) for any batch size, their preprocessing recorded beside them."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import refused_in_one_line, write_csv_dataset

from ssl_bench import api
from ssl_bench.cli.main import main
from ssl_bench.inference import export
from ssl_bench.inference.export import TOLERANCE, export_model
from ssl_bench.runs.run_dir import FAILED, METRICS

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "onnx_predict.py"
TINY = dict(backbone="test_resnet", image_size=16, iterations=10, eval_every=5,
            batch_size=16, labeled_batch_size=4, threads=1)


@pytest.fixture(scope="module", params=["single", "multi"])
def finished(request, tmp_path_factory):
    """A finished supervised run on a single-label and on a multi-label CSV data set."""
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    multi = request.param == "multi"
    fixture = write_csv_dataset(root / "csv", multilabel=multi, n=40, size=16)
    options = {"csv": "labels.csv", "group_column": "patient",
               **({"label_columns": ",".join(fixture.class_names)} if multi
                  else {"label_column": "label"})}
    api.run(root / "run", method="supervised", dataset="csv", data_root=str(fixture.root),
            dataset_options=options, labeled=0.5, cache_dir=str(root / "cache"), **TINY)
    return fixture, root / "run", multi


def test_onnx_gives_torchs_probabilities_for_any_batch(tmp_path, capsys, finished):
    onnxruntime = pytest.importorskip("onnxruntime")
    fixture, folder, multi = finished
    output = tmp_path / "m.onnx"
    assert main(["export", str(folder), "--format", "onnx", "-o", str(output)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"exported the student of {folder} (step ")
    assert f"as onnx -> {output}; preprocessing in {output}.json" in line
    record = json.loads((tmp_path / "m.onnx.json").read_text())
    assert record["check"]["max_abs_difference"] <= TOLERANCE
    assert record["activation"] == ("sigmoid" if multi else "softmax")
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (given,), (made,) = session.get_inputs(), session.get_outputs()
    assert (given.name, made.name) == ("images", "probabilities")
    assert given.shape == ["batch", 3, 16, 16] == record["input"]["shape"]
    predictor = api.load_model(folder)
    for files in (fixture.files[:1], fixture.files[1:4]):  # batches of 1 and of 3
        batch = predictor.transform(files).numpy()  # (the preprocessing the sidecar states)
        got = session.run(["probabilities"], {"images": batch})[0]
        assert got.shape == (len(files), len(fixture.class_names))
        np.testing.assert_allclose(got, predictor.predict(files), atol=TOLERANCE, rtol=0)


def test_the_documented_onnxruntime_example_gives_predicts_numbers(tmp_path, capsys,
                                                                    monkeypatch, finished):
    """docs/examples/onnx_predict.py: the sidecar's preprocessing in NumPy and Pillow."""
    pytest.importorskip("onnxruntime")
    fixture, folder, _ = finished
    model = tmp_path / "m.onnx"
    export_model(api.load_model(folder), "onnx", model)
    files = [str(f) for f in fixture.files[:3]]
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(model), *files])
    capsys.readouterr()
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == files
    printed = [[float(part.split("=")[1]) for part in line.split("  ")[1].split()]
               for line in lines]
    expected = api.load_model(folder).predict(files)
    np.testing.assert_allclose(printed, expected, atol=TOLERANCE, rtol=0)


def test_the_sidecar_says_how_to_feed_the_model(tmp_path, finished):
    pytest.importorskip("onnxruntime")
    fixture, folder, multi = finished
    predictor = api.load_model(folder)
    path, record = export_model(predictor, "onnx", tmp_path / "m.onnx", opset=18)
    assert json.loads((tmp_path / "m.onnx.json").read_text()) == record
    config = json.loads((folder / "config.json").read_text())
    prep = record["preprocessing"]
    assert (prep["image_size"], prep["channels"]) == (16, 3)
    assert prep["mean"] == pytest.approx(config["schedule"]["normalisation"]["mean"])
    assert prep["std"] == pytest.approx(config["schedule"]["normalisation"]["std"])
    assert prep["resize"].startswith("bilinear (PIL, antialiased), straight to 16x16")
    assert prep["color"] == "RGB" and "Image.draft('RGB', (16, 16))" in prep["decode"]
    assert prep["scale"] == "pixel / 255, to [0, 1]"
    assert record["classes"] == fixture.class_names and record["multilabel"] is multi
    assert record["output"] == {"name": "probabilities", "shape": ["batch", 3],
                                "dtype": "float32",
                                "activation": "sigmoid" if multi else "softmax"}
    assert record["run"] == {"folder": str(folder), "method": "supervised",
                             "backbone": "test_resnet", "model": "student",
                             "step": predictor.step}
    assert record["opset"] == 18 and record["exporter"] == "torch.onnx.export (dynamo=True)"
    assert record["versions"]["torch"] == torch.__version__
    assert record["versions"]["ssl-bench"] and record["versions"]["onnx"]
    assert record["check"]["batch_sizes"] == [1, 3]
    assert record["check"]["runtime"].startswith("onnxruntime ")
    # Scaling by hand as the sidecar says gives the batch Predictor.transform makes.
    from PIL import Image

    with Image.open(fixture.files[0]) as image:
        pixels = np.asarray(image.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
    by_hand = (pixels / 255.0 - np.array(prep["mean"])) / np.array(prep["std"])
    np.testing.assert_allclose(by_hand.transpose(2, 0, 1)[None],
                               predictor.transform([fixture.files[0]]).numpy(), atol=1e-5)


def test_torchscript_gives_torchs_probabilities(tmp_path, capsys, finished):
    fixture, folder, multi = finished
    output = tmp_path / "m.pt"
    assert main(["export", str(folder), "--format", "torchscript", "-o", str(output)]) == 0
    capsys.readouterr()
    record = json.loads((tmp_path / "m.pt.json").read_text())
    assert record["format"] == "torchscript" and record["opset"] is None
    loaded = torch.jit.load(str(output))
    predictor = api.load_model(folder)
    for files in (fixture.files[:1], fixture.files[1:4]):
        with torch.no_grad():
            got = loaded(predictor.transform(files)).numpy()
        np.testing.assert_allclose(got, predictor.predict(files), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("finished", ["single"], indirect=True)  # (same for multi-label)
def test_export_refusals_are_one_line(tmp_path, capsys, monkeypatch, finished):
    _, folder, _ = finished
    unfinished = shutil.copytree(folder, tmp_path / "unfinished")
    (unfinished / METRICS).unlink()
    failed = shutil.copytree(unfinished, tmp_path / "failed")
    (failed / FAILED).write_text("{}")
    out = tmp_path / "never.onnx"
    cases = [
        ([str(unfinished), "--format", "onnx"], "is not a finished run: no metrics.json"),
        ([str(failed), "--format", "torchscript"], "is a failed run (failed.json)"),
        ([str(folder), "--format", "tflite"], "--format: invalid choice: 'tflite'"),
        ([str(folder), "--format", "torchscript", "--opset", "17"], "--opset applies to"),
        ([str(folder)], "the following arguments are required: --format"),
    ]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    cases.append(([str(folder), "--format", "onnx"],
                  "--format onnx needs onnxruntime: pip install 'ssl-bench[export]'"))
    for argv, text in cases:
        refused_in_one_line(capsys, ["export", *argv, "-o", str(out)], text)
        assert not out.exists() and not (tmp_path / "never.onnx.json").exists()
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # any difference, even 0, is too large
    refused_in_one_line(capsys, ["export", str(folder), "--format", "torchscript", "-o", str(out)],
             "the exported torchscript model differs from torch by", "nothing written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed", "unfinished"]


