"""File-based data set loaders: ISIC 2018, ChestX-ray14 and bring-your-own CSV."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FLAGS
from fixtures import (
    CXR_FINDINGS,
    ISIC_CLASSES,
    append_csv_row,
    drop_csv_column,
    duplicate_csv_row,
    edit_csv_cell,
    empty_csv,
    remove_image,
    rename_csv_column,
    write_chestxray14,
    write_csv_dataset,
    write_isic,
)

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets._tables import BadRows, skip_bad_rows
from ssl_bench.data.datasets.chestxray14 import FINDINGS
from ssl_bench.data.datasets.isic import CLASSES
from ssl_bench.plugins.registry import create_dataset, list_datasets

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN_CSV = "ISIC2018_Task3_Training_GroundTruth.csv"


def test_registered():
    names = list_datasets()
    assert {"isic", "chestxray14", "csv"} <= set(names)
    assert CLASSES == ISIC_CLASSES and FINDINGS == CXR_FINDINGS


# -- ISIC ---------------------------------------------------------------------------------------
def test_isic_loads_official_format(tmp_path):
    fx = write_isic(tmp_path, n_per_class=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = create_dataset("isic", tmp_path)
    assert ds.name == "isic" and ds.kind == "single" and ds.channels == 3
    assert ds.class_names == list(CLASSES)
    assert ds.ids == fx.ids and len(ds) == 21
    np.testing.assert_array_equal(ds.labels, fx.labels)
    assert ds.labels.dtype == np.int64
    assert ds.load is None and ds.predefined == {}
    assert ds.files == [f.resolve() for f in fx.files]
    assert all(f.is_absolute() and f.is_file() for f in ds.files)
    assert ds.sources[0] == f"{TRAIN_CSV} row 2"
    assert ds.sources[-1] == f"{TRAIN_CSV} row 22"
    assert list(ds.groups) == fx.groups
    assert ds.groups.dtype == object
    assert len(set(ds.groups)) == 21 - 7  # two images of each class share a lesion
    assert "HAM10000_metadata.csv" in ds.info["groups"]
    assert ds.info["eval_parts"] == {"val": "carved from training", "test": "carved from training"}
    assert ds.recommended == {"hflip": True}
    assert ds.class_counts() == {c: 3 for c in CLASSES}


def test_isic_alias_and_relative_root(tmp_path, monkeypatch):
    write_isic(tmp_path / "data", n_per_class=1, metadata=False)
    monkeypatch.chdir(tmp_path)
    ds = create_dataset("isic2018", Path("data"))
    assert ds.files[0].is_absolute() and ds.files[0].is_file()
    assert ds.groups is None and ds.info["groups"] is None


@pytest.mark.parametrize("int_onehot", [False, True])
def test_isic_shuffled_int_columns_and_extra_columns(tmp_path, int_onehot):
    order = ["VASC", "BKL", "MEL", "DF", "NV", "AKIEC", "BCC"]
    fx = write_isic(tmp_path, n_per_class=2, column_order=order, int_onehot=int_onehot,
                    extra_columns=["UNK", "score"])
    header = fx.csv.read_text().splitlines()[0]
    assert header == "image," + ",".join(order) + ",UNK,score"
    ds = create_dataset("isic", tmp_path)
    assert ds.class_names == list(CLASSES)
    np.testing.assert_array_equal(ds.labels, fx.labels)


def test_isic_csv_in_unzipped_folder(tmp_path):
    fx = write_isic(tmp_path, n_per_class=1, nested_csv=True)
    ds = create_dataset("isic", tmp_path)
    assert ds.ids == fx.ids


def test_isic_official_eval_both(tmp_path):
    fx = write_isic(tmp_path, n_per_class=2, official_eval=True, n_eval_per_class=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # val/test images are not in HAM10000: own groups, no warning (only training counts)
        ds = create_dataset("isic", tmp_path, eval_split="official")
    assert ds.ids == fx.ids
    assert ds.predefined == {"val": fx.parts["val"], "test": fx.parts["test"]}
    assert ds.info["eval_parts"] == {"val": "official", "test": "official"}
    assert set(ds.info["files"]) == {"train", "val", "test", "metadata"}
    val_row = ds.ids.index(fx.parts["val"][0])
    assert ds.sources[val_row] == "ISIC2018_Task3_Validation_GroundTruth.csv row 2"
    assert "ISIC2018_Task3_Validation_Input" in str(ds.files[val_row])
    np.testing.assert_array_equal(ds.labels, fx.labels)
    assert ds.groups[val_row] == fx.parts["val"][0]
    # random ignores the official parts
    plain = create_dataset("isic", tmp_path)
    assert plain.predefined == {} and plain.ids == fx.parts["train"]


@pytest.mark.parametrize("present", ["val", "test"])
def test_isic_official_eval_one_part(tmp_path, present):
    write_isic(tmp_path, n_per_class=1, official_eval=[present])
    ds = create_dataset("isic", tmp_path, eval_split="official")
    absent = "test" if present == "val" else "val"
    assert set(ds.predefined) == {present}
    assert ds.info["eval_parts"] == {present: "official", absent: "carved from training"}


def test_isic_official_eval_none_present_warns(tmp_path):
    write_isic(tmp_path, n_per_class=1)
    with pytest.warns(UserWarning, match="carved from the training"):
        ds = create_dataset("isic", tmp_path, eval_split="official")
    assert ds.predefined == {}
    assert set(ds.info["eval_parts"].values()) == {"carved from training"}


def test_isic_bad_eval_split_option(tmp_path):
    with pytest.raises(UserError, match="official"):
        create_dataset("isic", tmp_path, eval_split="challenge")


def test_isic_metadata_option_and_unlisted_images(tmp_path):
    fx = write_isic(tmp_path / "data", n_per_class=1, unlisted_in_metadata=2)
    moved = tmp_path / "lesions.csv"
    shutil.move(fx.extra["metadata"], moved)
    assert create_dataset("isic", tmp_path / "data").groups is None
    with pytest.warns(UserWarning, match="2 of 7 training images"):
        ds = create_dataset("isic", tmp_path / "data", metadata=str(moved))
    assert list(ds.groups[-2:]) == fx.ids[-2:]  # own groups
    assert str(moved) in ds.info["groups"]
    with pytest.raises(UserError, match="nowhere.csv"):
        create_dataset("isic", tmp_path / "data", metadata=str(tmp_path / "nowhere.csv"))


def test_isic_metadata_missing_column(tmp_path):
    fx = write_isic(tmp_path, n_per_class=1)
    drop_csv_column(fx.extra["metadata"], "lesion_id")
    with pytest.raises(UserError, match=r"HAM10000_metadata\.csv.*'lesion_id'"):
        create_dataset("isic", tmp_path)


def test_isic_root_none_message():
    with pytest.raises(UserError) as info:
        create_dataset("isic", None)
    message = str(info.value)
    for part in ("--data-root", "SSL_BENCH_DATA", "ISIC2018_Task3_Training_Input",
                 TRAIN_CSV, "challenge.isic-archive.com", "Dataverse"):
        assert part in message


def test_isic_root_or_csv_or_folder_missing(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        create_dataset("isic", tmp_path / "absent")
    with pytest.raises(UserError, match=TRAIN_CSV):
        create_dataset("isic", tmp_path)
    write_isic(tmp_path, n_per_class=1)
    shutil.rmtree(tmp_path / "ISIC2018_Task3_Training_Input")
    with pytest.raises(UserError, match="ISIC2018_Task3_Training_Input"):
        create_dataset("isic", tmp_path)


def _isic_error(tmp_path, edit) -> str:
    fx = write_isic(tmp_path, n_per_class=2, metadata=False)
    edit(fx)
    with pytest.raises(UserError) as info:
        create_dataset("isic", tmp_path)
    message = str(info.value)
    assert TRAIN_CSV in message
    return message


def test_isic_empty_csv(tmp_path):
    message = _isic_error(tmp_path, lambda fx: empty_csv(fx.csv))
    assert "no data rows" in message
    fx_csv = tmp_path / TRAIN_CSV
    fx_csv.write_text("")
    with pytest.raises(UserError, match=f"{TRAIN_CSV} is empty"):
        create_dataset("isic", tmp_path)


def test_isic_missing_image_column(tmp_path):
    message = _isic_error(tmp_path, lambda fx: rename_csv_column(fx.csv, "image", "img"))
    assert "'image'" in message


def test_isic_missing_class_columns(tmp_path):
    def edit(fx):
        drop_csv_column(fx.csv, "DF")
        drop_csv_column(fx.csv, "VASC")

    message = _isic_error(tmp_path, edit)
    assert "'DF'" in message and "'VASC'" in message


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("MEL", "1.0", "2 classes set"),  # row 3 is NV: now two ones
        ("NV", "0.0", "0 classes set"),
        ("NV", "2", "'NV' is '2'"),
        ("NV", "0.5", "'NV' is '0.5'"),
        ("BCC", "yes", "not a number ('yes')"),
        ("BCC", "", "'BCC' is empty"),
    ],
)
def test_isic_row_not_one_hot(tmp_path, column, value, expected):
    holder = {}

    def edit(fx):
        holder["id"] = fx.ids[1]
        edit_csv_cell(fx.csv, 3, column, value)

    message = _isic_error(tmp_path, edit)
    assert "row 3" in message and holder["id"] in message and expected in message


def test_isic_duplicate_ids(tmp_path):
    holder = {}

    def edit(fx):
        holder["row"] = duplicate_csv_row(fx.csv, 4)
        holder["id"] = fx.ids[2]

    message = _isic_error(tmp_path, edit)
    assert "duplicate" in message and holder["id"] in message
    assert f"rows 4, {holder['row']}" in message


def test_isic_id_in_train_and_official_val(tmp_path):
    fx = write_isic(tmp_path, n_per_class=1, official_eval=["val"])
    append_csv_row(fx.extra["csvs"]["val"], [fx.ids[0], *(["1.0"] + ["0.0"] * 6)])
    with pytest.raises(UserError, match=f"{fx.ids[0]}.*{TRAIN_CSV} row 2.*Validation"):
        create_dataset("isic", tmp_path, eval_split="official")


def test_isic_bad_official_csv_is_named(tmp_path):
    fx = write_isic(tmp_path, n_per_class=1, official_eval=True)
    drop_csv_column(fx.extra["csvs"]["test"], "MEL")
    with pytest.raises(UserError, match="ISIC2018_Task3_Test_GroundTruth.csv"):
        create_dataset("isic", tmp_path, eval_split="official")


# -- ChestX-ray14 -------------------------------------------------------------------------------
def test_chestxray14_loads(tmp_path):
    fx = write_chestxray14(tmp_path, n_patients=6)
    header = fx.csv.read_text().splitlines()[0]
    assert header.startswith("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age")
    ds = create_dataset("chestxray14", tmp_path)
    assert ds.kind == "multi" and ds.channels == 1 and ds.class_names == list(FINDINGS)
    assert ds.ids == fx.ids and ds.labels.dtype == np.float32
    assert ds.labels.shape == (len(fx.ids), 14)
    np.testing.assert_array_equal(ds.labels, fx.labels)
    assert list(ds.groups) == fx.groups and len(set(ds.groups)) == 6
    assert ds.files == [f.resolve() for f in fx.files] and all(f.is_file() for f in ds.files)
    assert ds.sources[3] == "Data_Entry_2017.csv row 5"
    assert {"L", "RGB", "RGBA"} <= set(fx.extra["modes"])
    assert ds.predefined == {}
    assert ds.recommended == {"hflip": True}
    # No Finding -> all zeros; multiple findings parsed
    no_finding = fx.extra["findings"].index("No Finding")
    assert ds.labels[no_finding].sum() == 0
    multi = fx.extra["findings"].index("Pneumonia|Pneumothorax|Consolidation")
    positives = [FINDINGS[k] for k in np.flatnonzero(ds.labels[multi])]
    assert positives == ["Pneumonia", "Pneumothorax", "Consolidation"]
    assert ds.labels.sum(axis=0).min() >= 1  # every finding appears


@pytest.mark.parametrize("alias", ["chestx-ray14", "nih-chestxray14", "cxr14"])
def test_chestxray14_aliases(tmp_path, alias):
    write_chestxray14(tmp_path, n_patients=1)
    assert create_dataset(alias, tmp_path).name == "chestxray14"


def test_chestxray14_nested_layout_and_missing_image(tmp_path):
    fx = write_chestxray14(tmp_path, n_patients=4, nested=True)
    remove_image(fx.files[-1])
    ds = create_dataset("chestxray14", tmp_path)
    assert ds.files[:-1] == [f.resolve() for f in fx.files[:-1]]
    assert {f.parent.parent.name for f in ds.files[:-1]} == {"images_001", "images_002"}
    # a listed image found nowhere still gets the expected path and its row, for the cache
    assert ds.files[-1] == tmp_path.resolve() / "images" / fx.ids[-1]
    assert ds.sources[-1] == f"Data_Entry_2017.csv row {len(fx.ids) + 1}"
    assert ds.info["images_not_found"] == 1
    assert ds.info["image_folders"] == ["images_001/images", "images_002/images"]


def test_chestxray14_official_test_list(tmp_path):
    fx = write_chestxray14(tmp_path, n_patients=6, lists=True)
    ds = create_dataset("chestxray14", tmp_path)
    assert ds.predefined == {"test": fx.parts["test"]}
    assert ds.info["eval_parts"]["test"].startswith("official")
    assert ds.info["test_list"]["in_labels"] == len(fx.parts["test"])
    assert ds.info["train_val_list"]["in_neither_list"] == 0
    assert "test_list" in ds.info["files"] and "train_val_list" in ds.info["files"]


def test_chestxray14_root_none_message():
    with pytest.raises(UserError) as info:
        create_dataset("chestxray14", None)
    message = str(info.value)
    for part in ("--data-root", "SSL_BENCH_DATA", "Data_Entry_2017.csv", "images_001",
                 "nihcc.app.box.com/v/ChestXray-NIHCC"):
        assert part in message


def _cxr_error(tmp_path, edit) -> str:
    fx = write_chestxray14(tmp_path, n_patients=3)
    edit(fx)
    with pytest.raises(UserError) as info:
        create_dataset("chestxray14", tmp_path)
    message = str(info.value)
    assert "Data_Entry_2017.csv" in message
    return message


def test_chestxray14_unknown_finding(tmp_path):
    message = _cxr_error(
        tmp_path, lambda fx: edit_csv_cell(fx.csv, 4, "Finding Labels", "Effusion|Pneumonitis")
    )
    assert "row 4" in message and "'Pneumonitis'" in message


def test_chestxray14_misspelt_finding_hint(tmp_path):
    message = _cxr_error(
        tmp_path, lambda fx: edit_csv_cell(fx.csv, 2, "Finding Labels", "Pleural Thickening")
    )
    assert "row 2" in message and "did you mean 'Pleural_Thickening'" in message


def test_chestxray14_no_finding_with_findings(tmp_path):
    message = _cxr_error(
        tmp_path, lambda fx: edit_csv_cell(fx.csv, 3, "Finding Labels", "No Finding|Mass")
    )
    assert "row 3" in message


@pytest.mark.parametrize("value", ["", "|", "Effusion||Mass", "Mass|"])
def test_chestxray14_empty_findings(tmp_path, value):
    message = _cxr_error(tmp_path, lambda fx: edit_csv_cell(fx.csv, 5, "Finding Labels", value))
    assert "row 5" in message


def test_chestxray14_spaces_around_separator(tmp_path):
    fx = write_chestxray14(tmp_path, n_patients=2)
    edit_csv_cell(fx.csv, 2, "Finding Labels", " Mass | Nodule ")
    ds = create_dataset("chestxray14", tmp_path)
    assert [FINDINGS[k] for k in np.flatnonzero(ds.labels[0])] == ["Mass", "Nodule"]


def test_chestxray14_missing_columns(tmp_path):
    def edit(fx):
        drop_csv_column(fx.csv, "Patient ID")
        drop_csv_column(fx.csv, "Finding Labels")

    message = _cxr_error(tmp_path, edit)
    assert "'Patient ID'" in message and "'Finding Labels'" in message


def test_chestxray14_duplicates_and_empty(tmp_path):
    message = _cxr_error(tmp_path, lambda fx: duplicate_csv_row(fx.csv, 2))
    assert "duplicate" in message and "00000001_000.png" in message and "rows 2," in message
    empty_csv(tmp_path / "Data_Entry_2017.csv")
    with pytest.raises(UserError, match="Data_Entry_2017.csv has a header but no data rows"):
        create_dataset("chestxray14", tmp_path)


def test_chestxray14_no_images_folder(tmp_path):
    write_chestxray14(tmp_path, n_patients=1)
    shutil.rmtree(tmp_path / "images")
    with pytest.raises(UserError, match="no images folder"):
        create_dataset("chestxray14", tmp_path)


# -- bring-your-own CSV -------------------------------------------------------------------------
def test_csv_single_label_natural_order(tmp_path):
    fx = write_csv_dataset(tmp_path, classes=("10", "2", "1", "b", "a"))
    ds = create_dataset("csv", tmp_path, label_column="label", group_column="patient")
    assert ds.class_names == ["1", "2", "10", "a", "b"] == fx.class_names
    assert ds.kind == "single" and ds.channels == 3
    assert ds.ids == fx.ids and ds.ids[0] == "imgs/img_00.png"
    np.testing.assert_array_equal(ds.labels, fx.labels)
    assert list(ds.groups) == fx.groups
    assert ds.files == [f.resolve() for f in fx.files] and all(f.is_file() for f in ds.files)
    assert ds.sources[1] == "labels.csv row 3"


def test_csv_multi_label_explicit_and_star(tmp_path):
    fx = write_csv_dataset(tmp_path, multilabel=True, classes=("a", "b", "c"))
    ds = create_dataset("csv", tmp_path, label_columns="c, a", group_column="patient")
    assert ds.kind == "multi" and ds.class_names == ["c", "a"]
    np.testing.assert_array_equal(ds.labels, fx.labels[:, [2, 0]])
    star = create_dataset("csv", tmp_path, label_columns="*", group_column="patient", channels=1)
    assert star.class_names == ["a", "b", "c"] and star.channels == 1
    np.testing.assert_array_equal(star.labels, fx.labels)
    # without group_column, '*' takes the patient column too: its values are not 0/1
    with pytest.raises(UserError, match=r"labels\.csv.*row 2.*'patient'"):
        create_dataset("csv", tmp_path, label_columns="*")


def test_csv_absolute_path_without_root(tmp_path):
    fx = write_csv_dataset(tmp_path, csv_name="meta/list.csv")
    # image paths are relative to the CSV's folder when no root is given
    ds = create_dataset("csv", None, csv=str(fx.csv), label_column="label")
    assert ds.files[0] == tmp_path.resolve() / "meta" / "imgs/img_00.png"
    with pytest.raises(UserError, match="--data-root"):
        create_dataset("csv", None, label_column="label")


@pytest.mark.parametrize(
    "options",
    [{}, {"label_column": "label", "label_columns": "a,b"}],
)
def test_csv_needs_exactly_one_label_option(tmp_path, options):
    write_csv_dataset(tmp_path)
    with pytest.raises(UserError, match="exactly one of label_column"):
        create_dataset("csv", tmp_path, **options)


def test_csv_bad_channels(tmp_path):
    with pytest.raises(UserError, match="channels"):
        create_dataset("csv", tmp_path, label_column="label", channels=2)


def _csv_error(tmp_path, edit, multilabel=False, **options) -> str:
    fx = write_csv_dataset(tmp_path, multilabel=multilabel, classes=("a", "b", "c"))
    edit(fx)
    options.setdefault("label_columns" if multilabel else "label_column",
                       "a,b,c" if multilabel else "label")
    with pytest.raises(UserError) as info:
        create_dataset("csv", tmp_path, **options)
    message = str(info.value)
    assert "labels.csv" in message
    return message


def test_csv_errors(tmp_path):
    # (an empty label is an image nobody labeled unless empty_labels=error; issue 15)
    message = _csv_error(tmp_path / "1", lambda fx: edit_csv_cell(fx.csv, 4, "label", ""),
                         empty_labels="error")
    assert "row 4" in message
    message = _csv_error(tmp_path / "2", lambda fx: edit_csv_cell(fx.csv, 5, "b", "2"),
                         multilabel=True)
    assert "row 5" in message and "'b' is '2'" in message
    message = _csv_error(tmp_path / "3", lambda fx: edit_csv_cell(fx.csv, 6, "a", "NaN"),
                         multilabel=True)
    assert "row 6" in message
    message = _csv_error(tmp_path / "4", lambda fx: duplicate_csv_row(fx.csv, 3))
    assert "duplicate" in message and "imgs/img_01.png" in message
    message = _csv_error(tmp_path / "5", lambda fx: None, label_column="diagnosis")
    assert "'diagnosis'" in message
    message = _csv_error(tmp_path / "6", lambda fx: None, image_column="path")
    assert "'path'" in message
    message = _csv_error(tmp_path / "7", lambda fx: empty_csv(fx.csv))
    assert "no data rows" in message
    message = _csv_error(tmp_path / "8", lambda fx: None, multilabel=True, label_columns="a,z")
    assert "'z'" in message
    message = _csv_error(tmp_path / "9", lambda fx: edit_csv_cell(fx.csv, 3, "patient", ""),
                         group_column="patient")
    assert "row 3" in message


@pytest.mark.parametrize("marker", ["NaN", "nan", "NA", "n/a", "None", "null", "?"])
def test_csv_missing_labels_are_errors_not_classes(tmp_path, marker):
    """A 'NaN' label used to become a class of its own (issue 9, item 4)."""
    def edit(fx):
        edit_csv_cell(fx.csv, 4, "label", marker)
        edit_csv_cell(fx.csv, 7, "label", marker)

    message = _csv_error(tmp_path, edit)
    assert "missing" in message and repr(marker) in message
    assert "rows 4, 7" in message


def test_csv_single_class_is_an_error(tmp_path):
    write_csv_dataset(tmp_path, classes=("only",))
    with pytest.raises(UserError, match="single class"):
        create_dataset("csv", tmp_path, label_column="label")


# -- --skip-bad-rows (issue 9, item 4) ----------------------------------------------------------
def _load_skipping(name, root, **options):
    """What ``--skip-bad-rows`` does: the data set, and the rows left out of it."""
    return skip_bad_rows(lambda: create_dataset(name, root, **options))


def _bad_rows_error(name, root, **options) -> str:
    with pytest.raises(BadRows) as info:
        create_dataset(name, root, **options)
    message = str(info.value)
    assert message.endswith("pass --skip-bad-rows to leave such rows out")
    return message


def _kept(fx, skipped_rows):
    return [i for i, row in zip(fx.ids, fx.rows, strict=True) if row not in skipped_rows]


def test_skip_bad_rows_csv_single_label(tmp_path):
    fx = write_csv_dataset(tmp_path, n=12, classes=("a", "b", "c"))  # (empty: an error here)
    for row, value in ((3, "NaN"), (5, "nan"), (8, "")):
        edit_csv_cell(fx.csv, row, "label", value)
    message = _bad_rows_error("csv", tmp_path, label_column="label", empty_labels="error")
    assert "labels.csv" in message and "row 8" in message and "is empty" in message
    edit_csv_cell(fx.csv, 8, "label", "a")
    message = _bad_rows_error("csv", tmp_path, label_column="label", empty_labels="error")
    assert "rows 3, 5" in message and "'NaN'" in message and "'nan'" in message
    edit_csv_cell(fx.csv, 8, "label", "")

    ds, skipped = _load_skipping("csv", tmp_path, label_column="label",
                                 empty_labels="error")
    assert ds.ids == _kept(fx, {3, 5, 8}) and len(ds) == 9
    assert ds.class_names == ["a", "b", "c"]  # no 'NaN' or 'nan' class
    assert ds.sources[:3] == ["labels.csv row 2", "labels.csv row 4", "labels.csv row 6"]
    assert [(s["file"], s["row"]) for s in skipped] == [(str(fx.csv.resolve()), r)
                                                         for r in (3, 5, 8)]
    assert "missing ('NaN')" in skipped[0]["reason"]
    assert "missing ('nan')" in skipped[1]["reason"]
    assert "empty" in skipped[2]["reason"]


def test_skip_bad_rows_through_the_run_config(tmp_path):
    from ssl_bench.config.run_config import RunConfig
    from ssl_bench.training.prepare import load_dataset, load_dataset_with_bad_rows

    fx = write_csv_dataset(tmp_path, n=9, classes=("a", "b", "c"))
    edit_csv_cell(fx.csv, 4, "label", "NA")
    config = RunConfig(dataset="csv", data_root=str(tmp_path),
                       dataset_options={"label_column": "label"})
    with pytest.raises(UserError, match=r"row 4.*--skip-bad-rows"):
        load_dataset(config)
    config.skip_bad_rows = True
    ds, skipped = load_dataset_with_bad_rows(config)
    assert len(ds) == 8 and [s["row"] for s in skipped] == [4]
    assert load_dataset(config).ids == ds.ids


def test_skip_bad_rows_csv_multi_label(tmp_path):
    fx = write_csv_dataset(tmp_path, multilabel=True, n=12, classes=("a", "b", "c"))
    edit_csv_cell(fx.csv, 5, "b", "2")
    edit_csv_cell(fx.csv, 9, "a", "x")
    edit_csv_cell(fx.csv, 9, "c", "")
    message = _bad_rows_error("csv", tmp_path, label_columns="a,b,c")
    assert "labels.csv" in message and "row 5" in message and "row 9" in message
    assert "'b' is '2'" in message and "not a number ('x')" in message

    ds, skipped = _load_skipping("csv", tmp_path, label_columns="a,b,c")
    assert ds.ids == _kept(fx, {5, 9}) and ds.class_names == ["a", "b", "c"]
    keep = [i for i, row in enumerate(fx.rows) if row not in {5, 9}]
    np.testing.assert_array_equal(ds.labels, fx.labels[keep])
    assert [s["row"] for s in skipped] == [5, 9]
    assert "'b' is '2'" in skipped[0]["reason"]
    assert "'a' is not a number ('x')" in skipped[1]["reason"]
    assert "'c' is empty" in skipped[1]["reason"]


def test_skip_bad_rows_isic_not_one_hot(tmp_path):
    fx = write_isic(tmp_path, n_per_class=2, metadata=False)
    edit_csv_cell(fx.csv, 3, "MEL", "1.0")  # row 3 is NV: now two classes set
    edit_csv_cell(fx.csv, 6, "BCC", "nan")
    message = _bad_rows_error("isic", tmp_path)
    assert TRAIN_CSV in message and "row 6" in message and fx.row_of(fx.ids[4]) == 6

    ds, skipped = _load_skipping("isic", tmp_path)
    assert ds.ids == _kept(fx, {3, 6}) and len(ds) == len(fx.ids) - 2
    assert ds.class_names == list(CLASSES)
    assert [(Path(s["file"]).name, s["row"]) for s in skipped] == [(TRAIN_CSV, 3),
                                                                   (TRAIN_CSV, 6)]
    assert "2 classes set" in skipped[0]["reason"]
    assert "not a number ('nan')" in skipped[1]["reason"]


def test_skip_bad_rows_chestxray14_unknown_finding(tmp_path):
    fx = write_chestxray14(tmp_path, n_patients=3)
    edit_csv_cell(fx.csv, 4, "Finding Labels", "Effusion|Pneumonitis")
    edit_csv_cell(fx.csv, 6, "Finding Labels", "Pneumonitis")
    edit_csv_cell(fx.csv, 3, "Finding Labels", "No Finding|Mass")
    message = _bad_rows_error("chestxray14", tmp_path)
    assert "Data_Entry_2017.csv" in message and "row 4" in message
    assert "'Pneumonitis'" in message

    ds, skipped = _load_skipping("chestxray14", tmp_path)
    assert ds.ids == _kept(fx, {3, 4, 6}) and ds.class_names == list(FINDINGS)
    assert [s["row"] for s in skipped] == [3, 4, 6]
    assert all(Path(s["file"]).name == "Data_Entry_2017.csv" for s in skipped)
    assert "No Finding" in skipped[0]["reason"]
    assert skipped[1]["reason"] == skipped[2]["reason"] == "unknown finding 'Pneumonitis'"


def test_skip_bad_rows_leaves_whole_file_problems_errors(tmp_path):
    fx = write_csv_dataset(tmp_path / "dup", n=6)
    duplicate_csv_row(fx.csv, 3)
    with pytest.raises(UserError) as info:
        _load_skipping("csv", tmp_path / "dup", label_column="label")
    assert not isinstance(info.value, BadRows) and "duplicate" in str(info.value)
    assert "--skip-bad-rows" not in str(info.value)

    fx = write_csv_dataset(tmp_path / "all", n=3)
    for row in (2, 3, 4):
        edit_csv_cell(fx.csv, row, "label", "NaN")
    with pytest.raises(UserError, match="no data rows left"):
        _load_skipping("csv", tmp_path / "all", label_column="label")


def test_skip_bad_rows_needs_rows_read_by_read_table(tmp_path):
    def factory():  # a plug-in that checks a file it does not read with read_table
        raise BadRows(f"{tmp_path / 'x.csv'}: bad label in row 2", tmp_path / "x.csv", [2],
                      "bad label")

    with pytest.raises(UserError, match="could not leave these rows out") as info:
        skip_bad_rows(factory)
    assert not isinstance(info.value, BadRows)


def test_run_and_split_with_skip_bad_rows(tmp_path, capsys):
    from ssl_bench.cli.main import main

    fx = write_csv_dataset(tmp_path / "data", n=33, classes=("a", "b", "c"), groups=False)
    for row, value in ((3, "NaN"), (10, "nan"), (17, "")):
        edit_csv_cell(fx.csv, row, "label", value)
    common = ["--dataset", "csv", "--data-root", str(fx.root), "--label-column", "label",
              "--empty-labels", "error"]  # (else row 17 is an image nobody labeled)
    flags = ["--cache-dir", str(tmp_path / "cache"), "--quiet", *TINY_FLAGS, "--iterations", "2",
             "--eval-every", "1", "--backbone", "resnet10t", "--method", "supervised",
             "--labeled", "0.5"]
    out = tmp_path / "run"
    assert main(["run", *common, *flags, "--output", str(out)]) == 2
    assert "--skip-bad-rows" in capsys.readouterr().err and not out.exists()
    assert main(["run", *common, *flags, "--skip-bad-rows", "--output", str(out)]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["skip_bad_rows"] is True
    assert record["dataset"]["classes"] == ["a", "b", "c"] and record["dataset"]["size"] == 30
    assert record["dataset"]["skipped_rows"] == 3
    listed = json.loads((out / "skipped_rows.json").read_text())
    assert listed["count"] == 3 and [r["row"] for r in listed["rows"]] == [3, 10, 17]
    assert all(r["file"] == str(fx.csv.resolve()) for r in listed["rows"])
    split = tmp_path / "split.json"
    assert main(["split", *common, "--skip-bad-rows", "--output", str(split)]) == 0
    used = json.loads(split.read_text())
    ids = set(used["train"]) | set(used["val"]) | set(used["test"])
    assert len(ids) == 30 and fx.ids[1] not in ids


# -- real data (../shared/data) -----------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "isic2018-mini").is_dir(), reason="no ../shared/data")
def test_real_isic2018_mini():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = create_dataset("isic", SHARED / "isic2018-mini")
    assert len(ds) == 5984
    assert ds.class_counts() == {
        "MEL": 491, "NV": 4323, "BCC": 264, "AKIEC": 183, "BKL": 583, "DF": 60, "VASC": 80,
    }
    assert all(f.is_file() for f in ds.files)
    assert ds.groups is not None and all(str(g).startswith("HAM_") for g in ds.groups)
    assert "HAM10000_metadata.csv" in ds.info["groups"]


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "chestxray14-mini").is_dir(), reason="no ../shared/data")
def test_real_chestxray14_mini():
    ds = create_dataset("chestxray14", SHARED / "chestxray14-mini")
    assert len(ds) == 1000 and len(set(ds.groups)) == 264
    counts = ds.class_counts()
    assert counts["Effusion"] == 170 and counts["Infiltration"] == 162
    assert counts["Hernia"] == 9 and counts["Pneumonia"] == 9
    assert int((ds.labels.sum(axis=1) == 0).sum()) == 500  # No Finding
    assert all(f.is_file() for f in ds.files)
    assert ds.info["images_not_found"] == 0
