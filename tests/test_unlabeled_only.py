"""Issue 15, item 4: images nobody labeled join the unlabeled pool, and only it.

CSV rows without a label and ``--unlabeled-dir`` folders (csv, isic, chestxray14) become
unlabeled training images: never labeled, validated, tested or counted, covered by the
fingerprint and the split file, and the split of the labeled images is exactly the one
made without them.
"""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_config
from fixtures import make_image, write_chestxray14, write_csv_dataset, write_isic

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets._unlabeled import ID_PREFIX
from ssl_bench.data.splits import check_split, load_split, make_split, save_split
from ssl_bench.method_kit.method import StepOutput
from ssl_bench.plugins.registry import create_dataset
from ssl_bench.training.method_logs import StepLogs
from ssl_bench.training.runner import run


def _add_unlabeled_rows(data, count: int, multilabel: bool = False) -> list[str]:
    """Append ``count`` rows with an empty label (and their images) to the fixture's CSV."""
    with open(data.csv, newline="") as handle:
        rows = list(csv.reader(handle))
    header, width = rows[0], len(rows[0])
    added = []
    for i in range(count):
        image_id = f"imgs/extra_{i:02d}.png"
        make_image(9000 + i, 16).save(data.root / image_id)
        row = [""] * width
        row[0] = image_id
        if "patient" in header:
            row[header.index("patient")] = f"x{i}"
        rows.append(row)
        added.append(image_id)
    with open(data.csv, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return added


def _parts(split) -> dict[str, list[str]]:
    return {part: getattr(split, part) for part in ("train", "val", "test", "labeled")}


@pytest.mark.parametrize("multilabel", [False, True], ids=["single", "multi"])
def test_csv_rows_without_a_label_are_unlabeled_training_images_only(tmp_path, multilabel):
    data = write_csv_dataset(tmp_path, multilabel=multilabel, n=40)
    options = {"label_columns": "normal,benign,malignant"} if multilabel else {
        "label_column": "label"}
    options["group_column"] = "patient"
    plain = create_dataset("csv", tmp_path, **options)
    extras = _add_unlabeled_rows(data, 7)
    dataset = create_dataset("csv", tmp_path, **options)

    assert dataset.unlabeled_only is not None and int(dataset.unlabeled_only.sum()) == 7
    assert dataset.class_counts() == plain.class_counts()
    assert dataset.fingerprint() != plain.fingerprint()
    for labeled in (0.25, 5):
        split, before = make_split(dataset, 3, labeled), make_split(plain, 3, labeled)
        assert _parts(split) == _parts(before)  # the labeled images split as before
        assert split.unlabeled_only == extras
        assert split.unlabeled[-7:] == extras and not set(extras) & {
            i for part in _parts(split).values() for i in part}
        assert split.sizes()["unlabeled"] == len(before.unlabeled) + 7
        assert split.digest != before.digest
    save_split(split, tmp_path / "split.json")
    record = json.loads((tmp_path / "split.json").read_text())
    assert record["unlabeled_only"] == extras and record["sizes"]["unlabeled_only"] == 7
    check_split(load_split(tmp_path / "split.json"), dataset)
    with pytest.raises(UserError, match="another version of the data set"):
        check_split(before, dataset)


def test_empty_labels_error_refuses_them(tmp_path):
    data = write_csv_dataset(tmp_path, n=12)
    _add_unlabeled_rows(data, 2)
    with pytest.raises(UserError, match=r"label \(column 'label'\) is empty in rows 14, 15"):
        create_dataset("csv", tmp_path, label_column="label", empty_labels="error")


def test_a_partly_empty_multi_label_row_is_still_an_error(tmp_path):
    data = write_csv_dataset(tmp_path, multilabel=True, n=8)
    text = data.csv.read_text().splitlines()
    cells = text[3].split(",")
    cells[1] = ""  # one of three label cells empty: a broken row, not an unlabeled image
    text[3] = ",".join(cells)
    data.csv.write_text("\n".join(text) + "\n")
    with pytest.raises(UserError, match="row 4.*'normal' is empty"):
        create_dataset("csv", tmp_path, label_columns="*")


def test_an_unlabeled_folder_joins_isic_without_its_duplicates(tmp_path):
    data = write_isic(tmp_path / "isic", n_per_class=4)
    extra = tmp_path / "isic2019"
    (extra / "sub").mkdir(parents=True)
    for i in range(3):
        make_image(7000 + i, 32).save(extra / "sub" / f"ISIC_90000{i:02d}.jpg")
    make_image(1, 32).save(extra / f"{data.ids[0]}.jpg")  # also in ISIC 2018: leaves
    (extra / "notes.txt").write_text("not an image")
    plain = create_dataset("isic", data.root)
    with pytest.warns(UserWarning, match="1 of the 4 images .* already in the data set"):
        dataset = create_dataset("isic", data.root, unlabeled_dir=str(extra))
    assert dataset.ids[len(plain):] == [f"{ID_PREFIX}sub/ISIC_90000{i:02d}.jpg" for i in range(3)]
    assert dataset.info["unlabeled_dir"]["left_out_already_in_data_set"] == 1
    assert list(dataset.groups[len(plain):]) == [None] * 3
    split, before = make_split(dataset, 0, 0.5), make_split(plain, 0, 0.5)
    assert _parts(split) == _parts(before) and len(split.unlabeled_only) == 3


def test_an_unlabeled_folder_joins_chestxray14(tmp_path):
    data = write_chestxray14(tmp_path / "cxr")
    extra = tmp_path / "more"
    extra.mkdir()
    make_image(5, 32, "L").save(extra / "xray.png")
    dataset = create_dataset("chestxray14", data.root, unlabeled_dir=str(extra))
    assert dataset.ids[-1] == f"{ID_PREFIX}xray.png" and dataset.labels[-1].sum() == 0
    assert dataset.unlabeled_only[-1] and not dataset.unlabeled_only[:-1].any()


@pytest.mark.parametrize("folder, message", [
    ("missing", "no such folder"), ("empty", "holds no image files")])
def test_a_bad_unlabeled_folder_is_a_one_line_error(tmp_path, folder, message):
    data = write_isic(tmp_path / "isic", n_per_class=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=f"--unlabeled-dir .*{message}"):
        create_dataset("isic", data.root, unlabeled_dir=str(tmp_path / folder))


def test_a_run_trains_on_them_and_never_scores_their_placeholder_labels(tmp_path):
    data = write_csv_dataset(tmp_path / "data", n=40, size=16)
    extras = _add_unlabeled_rows(data, 10)
    config = tiny_config(method="fixmatch", dataset="csv", data_root=str(data.root),
                         dataset_options={"label_column": "label", "group_column": "patient"},
                         labeled=0.5, iterations=4, eval_every=2, image_cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny parts: fine here
        metrics = run(config, tmp_path / "run", quiet=True)
    assert metrics is not None
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["unlabeled_only"] == extras
    assert split["sizes"]["unlabeled"] == len(split["train"]) - len(split["labeled"]) + 10


def test_pseudo_label_accuracy_leaves_out_images_without_a_label():
    logs = StepLogs("single")
    labels = torch.tensor([0, 1, 2, 0])  # row 3: a placeholder (nobody labeled it)
    scorable = torch.tensor([True, True, True, False])
    output = StepOutput(losses={"total": torch.tensor(0.0)}, pseudo_labels=(
        torch.tensor([1, 2, 1]), torch.tensor([True, True, True])))
    logs.add(output, labels, np.array([1, 2, 3]), scorable)
    assert logs.flush()["log_pseudo_label_accuracy"] == 1.0  # rows 1 and 2 right; 3 unscored
