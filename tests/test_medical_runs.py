"""Training on file-based medical data sets: fixtures in the official formats (unit) and the
real subsets in ../shared/data (integration, skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_FLAGS
from fixtures import corrupt_image, remove_image, write_chestxray14, write_isic

from ssl_bench.cli.main import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _run(tmp_path: Path, *argv: str) -> int:
    return main(["run", "--cache-dir", str(tmp_path / "cache"), "--quiet", *TINY_FLAGS, *argv])


@pytest.fixture
def isic_root(tmp_path):
    return write_isic(tmp_path / "isic", n_per_class=8, size=24).root


@pytest.fixture
def cxr_root(tmp_path):
    return write_chestxray14(tmp_path / "cxr", n_patients=24, size=24, nested=True).root


def test_isic_fixture_trains_end_to_end(tmp_path, isic_root):
    out = tmp_path / "run"
    assert _run(tmp_path, "--method", "srcmt", "--dataset", "isic", "--data-root",
                str(isic_root), "--labeled", "0.5", "--output", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["info"]["groups"].startswith("lesion_id")
    assert config["dataset"]["images"]["mode"] == "decoded-image cache"
    split = json.loads((out / "split.json").read_text())
    assert split["grouped"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["student"]["test"]["auc_per_class"]) == {
        "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"}


def test_chestxray14_fixture_trains_as_multilabel(tmp_path, cxr_root):
    out = tmp_path / "run"
    assert _run(tmp_path, "--method", "mt", "--dataset", "chestxray14", "--data-root",
                str(cxr_root), "--labeled", "0.5", "--output", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["kind"] == "multi"
    assert config["schedule"]["in_chans"] == 1  # grey, RGB and RGBA X-rays all load as grey
    assert len(config["dataset"]["classes"]) == 14


def test_decoding_every_step_gives_the_same_result_as_the_cache(tmp_path, isic_root):
    common = ["--method", "mt", "--dataset", "isic", "--data-root", str(isic_root),
              "--labeled", "0.5"]
    assert _run(tmp_path, *common, "--output", str(tmp_path / "a")) == 0
    assert _run(tmp_path, *common, "--image-cache", "false", "--output", str(tmp_path / "b")) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["student"] == b["student"] and a["teacher"] == b["teacher"]


def test_a_bad_image_is_an_error_naming_file_and_row_and_leaves_nothing(tmp_path, capsys):
    fixture = write_isic(tmp_path / "isic", n_per_class=8, size=24)
    victim = fixture.ids[5]
    corrupt_image(fixture.file_of(victim))
    out = tmp_path / "run"
    assert _run(tmp_path, "--dataset", "isic", "--data-root", str(fixture.root),
                "--labeled", "0.5", "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert victim in err and f"row {fixture.row_of(victim)}" in err and "unreadable" in err
    assert not out.exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_skip_bad_images_writes_a_report(tmp_path):
    fixture = write_isic(tmp_path / "isic", n_per_class=8, size=24)
    missing, corrupt = fixture.ids[3], fixture.ids[9]
    remove_image(fixture.file_of(missing))
    corrupt_image(fixture.file_of(corrupt))
    out = tmp_path / "run"
    assert _run(tmp_path, "--dataset", "isic", "--data-root", str(fixture.root),
                "--labeled", "0.5", "--skip-bad-images", "--output", str(out)) == 0
    report = json.loads((out / "skipped_images.json").read_text())
    assert report["count"] == 2
    assert {entry["id"] for entry in report["images"]} == {missing, corrupt}
    reasons = {entry["id"]: entry["reason"] for entry in report["images"]}
    assert reasons[missing] == "missing file" and "unreadable" in reasons[corrupt]
    split = json.loads((out / "split.json").read_text())
    used = set(split["train"]) | set(split["val"]) | set(split["test"])
    assert missing not in used and corrupt not in used


def test_split_command_and_reuse(tmp_path, isic_root, capsys):
    split_file = tmp_path / "split.json"
    assert main(["split", "--dataset", "isic", "--data-root", str(isic_root), "--seed", "3",
                 "--labeled", "0.5", "--output", str(split_file)]) == 0
    assert "MEL" in capsys.readouterr().out
    record = json.loads(split_file.read_text())
    assert record["seed"] == 3 and record["grouped"] is True
    assert main(["split", "--dataset", "isic", "--data-root", str(isic_root),
                 "--output", str(split_file)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    out = tmp_path / "run"
    assert _run(tmp_path, "--dataset", "isic", "--data-root", str(isic_root), "--split",
                str(split_file), "--output", str(out)) == 0
    used = json.loads((out / "split.json").read_text())
    assert used["labeled"] == record["labeled"] and used["test"] == record["test"]
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["labeled"] == 0.5 and config["split_file"] == str(split_file)


def test_a_split_for_another_data_set_version_is_refused(tmp_path, isic_root, capsys):
    split_file = tmp_path / "split.json"
    assert main(["split", "--dataset", "isic", "--data-root", str(isic_root),
                 "--labeled", "0.5", "--output", str(split_file)]) == 0
    other = write_isic(tmp_path / "other", n_per_class=9, size=24).root
    capsys.readouterr()
    assert _run(tmp_path, "--dataset", "isic", "--data-root", str(other), "--split",
                str(split_file), "--output", str(tmp_path / "run")) == 2
    assert "fingerprint" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_medical_data_set_without_root_explains_the_layout(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SSL_BENCH_DATA", raising=False)
    assert _run(tmp_path, "--dataset", "chestxray14") == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and "Data_Entry_2017.csv" in err


def test_split_mode_paper_ignores_groups(tmp_path, isic_root):
    out = tmp_path / "run"
    assert _run(tmp_path, "--dataset", "isic", "--data-root", str(isic_root), "--labeled",
                "0.5", "--split-mode", "paper", "--output", str(out)) == 0
    assert json.loads((out / "split.json").read_text())["grouped"] is False


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset,folder,method", [
    ("isic", "isic2018-mini", "srcmt"),
    ("chestxray14", "chestxray14-mini", "srcmt"),
])
def test_real_data_short_training_run(tmp_path, dataset, folder, method):
    root = SHARED / folder
    if not root.is_dir():
        pytest.skip(f"{root} is not available")
    out = tmp_path / "run"
    assert main(["run", "--method", method, "--dataset", dataset, "--data-root", str(root),
                 "--labeled", "0.2", "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--image-size", "16", "--iterations", "6", "--eval-every", "3",
                 "--output", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    split = json.loads((out / "split.json").read_text())
    expected = {"isic": 5984, "chestxray14": 1000}[dataset]
    assert config["dataset"]["size"] == expected
    assert sum(split["sizes"][p] for p in ("train", "val", "test")) == expected
    assert split["grouped"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best"]["test"]["auc"] is not None
