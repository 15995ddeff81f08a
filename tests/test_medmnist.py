"""The ``medmnist`` data set family on small ``.npz`` fixtures in MedMNIST's exact key
layout, one per task kind (no MedMNIST file can be downloaded here): multi-class colour,
multi-label grey (ChestMNIST), binary grey, and a MedMNIST+ size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FLAGS

from ssl_bench.cli.main import main
from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import dataset_card
from ssl_bench.data.datasets.medmnist import SETS, medmnist, medmnist_file
from ssl_bench.plugins.index import CARD_FIELDS
from ssl_bench.plugins.registry import dataset_registry, list_datasets

COUNTS = {"train": 60, "val": 16, "test": 16}


def write_fixture(root: Path, flag: str, size: int = 28, seed: int = 0, **replace) -> Path:
    """A MedMNIST-shaped file: uint8 images whose mean brightness follows the label."""
    info, rng = SETS[flag], np.random.default_rng(seed)
    arrays = {}
    for part, count in COUNTS.items():
        if info.kind == "multi":
            labels = (rng.random((count, len(info.classes))) < 0.3).astype(np.uint8)
            level = labels[:, 0]
        else:
            labels = (np.arange(count) % len(info.classes)).astype(np.uint8)[:, None]
            level = labels[:, 0] / max(len(info.classes) - 1, 1)
        shape = (count, size, size) + ((3,) if info.channels == 3 else ())
        noise = rng.integers(0, 60, shape)
        bright = (level * 180).reshape((count,) + (1,) * (len(shape) - 1))
        arrays[f"{part}_images"] = (noise + bright).clip(0, 255).astype(np.uint8)
        arrays[f"{part}_labels"] = labels
    arrays.update(replace)
    root.mkdir(parents=True, exist_ok=True)
    path = medmnist_file(root, flag, size)
    np.savez_compressed(path, **arrays)
    return path


@pytest.mark.parametrize("flag, kind, channels", [
    ("dermamnist", "single", 3), ("chestmnist", "multi", 1), ("pneumoniamnist", "single", 1)])
def test_each_task_kind_loads_with_its_official_parts(tmp_path, flag, kind, channels):
    write_fixture(tmp_path, flag)
    data = medmnist(tmp_path, flag=flag)
    assert (data.kind, data.channels, data.class_names) == (kind, channels,
                                                            list(SETS[flag].classes))
    assert {part: len(ids) for part, ids in data.predefined.items()} == COUNTS
    assert data.load(32, 3).shape == (sum(COUNTS.values()), 32, 32, 3)
    assert data.info["licence"] == SETS[flag].licence and "Scientific Data" in \
        data.info["citation"]


@pytest.mark.parametrize("flag", ["dermamnist", "chestmnist", "pneumoniamnist"])
def test_a_short_run_on_each_task_kind_uses_the_official_split(tmp_path, flag):
    write_fixture(tmp_path / "data", flag)
    out = tmp_path / "run"
    assert main(["run", "--method", "mt", "--dataset", "medmnist", "--flag", flag,
                 "--data-root", str(tmp_path / "data"), "--labeled", "0.5", *TINY_FLAGS,
                 "--quiet", "-o", str(out)]) == 0
    split = json.loads((out / "split.json").read_text())
    assert split["eval_parts"] == {"val": "official", "test": "official"}
    assert split["card"]["classes"] == ", ".join(SETS[flag].classes)  # (this flag's card)
    assert split["card"]["task"].startswith(f"{flag}: {SETS[flag].task}")
    assert (split["sizes"]["val"], split["sizes"]["test"]) == (16, 16)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["student"]["test"]["auc"] <= 1


def test_carving_instead_of_the_official_parts_is_recorded(tmp_path):
    write_fixture(tmp_path, "dermamnist")
    data = medmnist(tmp_path, flag="dermamnist", official_splits=False)
    assert data.predefined == {} and data.info["eval_parts"]["val"] == "carved from all images"


def test_medmnist_plus_sizes_read_their_own_file(tmp_path):
    write_fixture(tmp_path, "bloodmnist", size=64)
    assert medmnist(tmp_path, flag="bloodmnist", size=64).load(64, 3).shape[1] == 64
    with pytest.raises(UserError, match=r"bloodmnist.npz does not exist .*zenodo"):
        medmnist(tmp_path, flag="bloodmnist")  # (28 px: another file)


@pytest.mark.parametrize("replace, message", [
    ({"val_labels": np.full((16, 1), np.nan)}, "val_labels holds NaN"),
    ({"train_labels": np.full((60, 1), 7, dtype=np.uint8)}, r"train_labels row 0 holds \[7\], "
                                                            r"outside 0..6 \(60 such"),
    ({"test_labels": np.zeros((16, 2), dtype=np.uint8)}, r"test_labels has shape \(16, 2\), "
                                                         r"expected \(N, 1\)"),
    ({"val_images": np.zeros((15, 28, 28, 3), dtype=np.uint8)}, r"val_images is uint8 of "
                                                                r"shape \(15, 28, 28, 3\)"),
    ({"train_labels": np.full((60, 1), 0.5)}, "must hold whole numbers"),
])
def test_bad_labels_and_images_are_one_line_errors_naming_the_file(tmp_path, replace, message):
    path = write_fixture(tmp_path, "dermamnist", **replace)
    with pytest.raises(UserError, match=message) as caught:
        medmnist(tmp_path, flag="dermamnist")
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_or_key_or_flag_is_one_line(tmp_path, capsys):
    with pytest.raises(UserError, match=r"dermamnist.npz does not exist .* python -m medmnist "
                                        r"download --size=SIZE --root=DIR"):
        medmnist(tmp_path, flag="dermamnist")
    np.savez(tmp_path / "dermamnist.npz", images=np.zeros(3))
    with pytest.raises(UserError, match=r"lacks train_images, train_labels, .* not a MedMNIST "
                                        r"file \(it holds images\)"):
        medmnist(tmp_path, flag="dermamnist")
    with open(tmp_path / "dermamnist.npz", "wb") as handle:  # one array, npy format
        np.save(handle, np.zeros(3))
    with pytest.raises(UserError, match="holds one array, not the arrays of a MedMNIST"):
        medmnist(tmp_path, flag="dermamnist")
    (tmp_path / "dermamnist.npz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read MedMNIST file"):
        medmnist(tmp_path, flag="dermamnist")
    with pytest.raises(UserError, match="needs --flag, one of pathmnist, chestmnist"):
        medmnist(tmp_path)
    assert main(["run", "--dataset", "medmnist", "--flag", "organmnist3d", "--data-root",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err  # (the 3D sets are volumes: not offered)
    assert err.count("\n") == 1 and "option 'flag' of data set 'medmnist' must be one of" in err
    assert "got 'organmnist3d'" in err


BUILT_IN = [name for name in list_datasets()
            if dataset_registry.get(name).__module__.startswith("ssl_bench.data.datasets.")]


def test_a_run_records_its_data_sets_card_in_split_json(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--method", "supervised", "--dataset", "digits", "--labeled", "0.1",
                 *TINY_FLAGS, "--quiet", "-o", str(out)]) == 0
    split = json.loads((out / "split.json").read_text())
    assert split["card"] == dataset_registry.get("digits").card


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_data_set_has_a_card_that_list_shows(name, capsys):
    card = dataset_registry.get(name).card
    assert list(card) == list(CARD_FIELDS) and all(len(text) > 3 for text in card.values())
    assert main(["list", "--datasets", name]) == 0
    out = " ".join(capsys.readouterr().out.split())  # (rich may wrap long lines)
    for field, text in card.items():
        assert f"{field}: {' '.join(text.split())}" in out


def test_a_card_declares_every_field_and_a_misspelt_name_gets_a_hint(capsys):
    with pytest.raises(ValueError, match=r"missing \['citation'"):
        dataset_card(source="s", licence="l", task="t", classes="c", splits="x")
    assert main(["list", "--datasets", "medmnsit"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'medmnist'?" in err


def test_the_installed_medmnist_package_describes_the_set_and_checks_its_sizes(
        tmp_path, monkeypatch, capsys):
    """With the medmnist package (its INFO), the data set records its description and
    warns, in one line, when the file's parts are not the official sizes."""
    import sys
    import types

    info = types.ModuleType("medmnist.info")
    info.__version__ = "3.0.2"
    info.INFO = {"dermamnist": {"description": "The DermaMNIST is based on HAM10000.",
                                "license": "CC BY-NC 4.0",
                                "n_samples": {"train": 7007, "val": 1003, "test": 2005}}}
    package = types.ModuleType("medmnist")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "medmnist", package)
    monkeypatch.setitem(sys.modules, "medmnist.info", info)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    path = write_fixture(tmp_path, "dermamnist")
    with pytest.warns(UserWarning, match=r"is not the official file: its parts hold train 60 "
                                         r"\(MedMNIST: 7007\), val 16 \(MedMNIST: 1003\)"):
        data = medmnist(tmp_path, flag="dermamnist")
    assert str(path) in str(data.info["files"]["npz"])
    assert data.info["medmnist_package"]["description"].startswith("The DermaMNIST")
    assert main(["list", "--datasets", "medmnist"]) == 0
    shown = capsys.readouterr().out
    assert ("dermamnist (medmnist 3.0.2 INFO; CC BY-NC 4.0; train 7007, val 1003, test 2005): "
            "The DermaMNIST is based on HAM10000.") in shown


def test_without_the_medmnist_package_list_says_how_to_get_its_info(capsys, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert main(["list", "--datasets", "medmnist"]) == 0
    assert "pip install 'ssl-bench[medmnist]'" in capsys.readouterr().out
