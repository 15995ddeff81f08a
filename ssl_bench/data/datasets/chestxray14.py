"""NIH ChestX-ray14: 14 thoracic findings per frontal chest X-ray, multi-label.

Reads the NIH release::

    <root>/Data_Entry_2017.csv     Image Index,Finding Labels,...,Patient ID,... (others ignored)
    <root>/images/00000001_000.png ...            (all archives unpacked into one folder)
      or <root>/images_001/images/*.png, <root>/images_002/images/*.png, ...  (per archive)
    <root>/test_list.txt, <root>/train_val_list.txt   optional official patient-wise split

``Data_Entry_2017_v2020.csv`` is read when ``Data_Entry_2017.csv`` is absent. Findings
are joined by ``|``; ``No Finding`` means no positive label. Images are grouped by
patient. Only metadata is read here: images are decoded (and missing ones reported) by
the cache.
"""

from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets._tables import (
    BadRows,
    check_unique,
    listing,
    read_table,
    require_columns,
    require_root,
    sources,
    text_column,
)
from ssl_bench.data.datasets._unlabeled import UNLABELED_DIR_OPTION, add_unlabeled_folder
from ssl_bench.data.datasets.base import ImageDataset, dataset_card, dataset_options
from ssl_bench.plugins.registry import register_dataset

#: The 14 findings in their standard order (Wang et al., CVPR 2017).
FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
CSV_NAMES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
COLUMNS = ("Image Index", "Finding Labels", "Patient ID")

LAYOUT = (
    "expected the NIH ChestX-ray14 layout: DIR/Data_Entry_2017.csv (columns Image Index, "
    "Finding Labels, Patient ID, ...) and the PNG images in DIR/images/ or in "
    "DIR/images_001/images/, DIR/images_002/images/, ... (optionally DIR/test_list.txt and "
    "DIR/train_val_list.txt)"
)
SOURCE = (
    "the data set is distributed by the NIH Clinical Center at "
    "https://nihcc.app.box.com/v/ChestXray-NIHCC"
)


def _image_folders(root: Path) -> list[Path]:
    """``images/`` then ``images_NNN/images/`` (or ``images_NNN/`` itself), sorted."""
    folders = []
    if (root / "images").is_dir():
        folders.append(root / "images")
    with os.scandir(root) as entries:
        archives = sorted(
            entry.name for entry in entries if entry.name.startswith("images_") and entry.is_dir()
        )
    for name in archives:
        inner = root / name / "images"
        folders.append(inner if inner.is_dir() else root / name)
    return folders


def _index_images(folders: list[Path]) -> dict[str, int]:
    """File name -> index of the first folder holding it (names only: nothing is stat'ed)."""
    where: dict[str, int] = {}
    for position, folder in enumerate(folders):
        with os.scandir(folder) as entries:
            for entry in entries:
                where.setdefault(entry.name, position)
    return where


def _findings(table: pd.DataFrame, csv: Path) -> np.ndarray:
    """``Finding Labels`` -> float32 ``(N, 14)``, validating every name."""
    text = text_column(table, csv, "Finding Labels", f"'Finding Labels' (use {NO_FINDING!r})")
    text = text.str.replace(r"\s*\|\s*", "|", regex=True)
    empty_name = text.str.contains(r"^\||\|\||\|$", regex=True)
    if empty_name.any():
        rows = text.index[empty_name.to_numpy()]
        raise BadRows(
            f"{csv}: empty finding name (a stray '|') in "
            f"{listing([f'row {r} ({text.loc[r]!r})' for r in rows])}",
            csv, rows, "empty finding name (a stray '|')",
        )
    dummies = text.str.get_dummies(sep="|")
    unknown = [name for name in dummies.columns if name not in FINDINGS and name != NO_FINDING]
    if unknown:
        described = []
        names_in: dict[int, list[str]] = {}
        for name in unknown:
            rows = dummies.index[dummies[name].to_numpy() > 0]
            for row in rows:
                names_in.setdefault(int(row), []).append(repr(name))
            close = difflib.get_close_matches(name, [*FINDINGS, NO_FINDING], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            value = text.loc[rows[0]]
            described.append(
                f"row {rows[0]}: unknown finding {name!r}{hint} in {value!r}"
                + (f" (also in {len(rows) - 1} more rows)" if len(rows) > 1 else "")
            )
        raise BadRows(
            f"{csv}: 'Finding Labels' must be {NO_FINDING!r} or findings joined by '|' from "
            f"{', '.join(FINDINGS)}; {listing(described)}",
            csv, sorted(names_in),
            [f"unknown finding {', '.join(names_in[row])}" for row in sorted(names_in)],
        )
    labels = dummies.reindex(columns=list(FINDINGS), fill_value=0).to_numpy(dtype=np.float32)
    if NO_FINDING in dummies.columns:
        contradictory = (dummies[NO_FINDING].to_numpy() > 0) & (labels.sum(axis=1) > 0)
        if contradictory.any():
            rows = dummies.index[contradictory]
            raise BadRows(
                f"{csv}: {NO_FINDING!r} together with findings in "
                f"{listing([f'row {r} ({text.loc[r]!r})' for r in rows])}",
                csv, rows, f"{NO_FINDING!r} together with findings",
            )
    return labels


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read image list {path}: {exc}") from None
    return [line.strip() for line in lines if line.strip()]


@register_dataset("chestxray14", aliases=("chestx-ray14", "nih-chestxray14", "cxr14"))
@dataset_card(
    source="NIH Clinical Center, https://nihcc.app.box.com/v/ChestXray-NIHCC",
    licence="released by the NIH Clinical Center without restriction of use; cite the paper",
    citation="Wang, X. et al. ChestX-ray8: hospital-scale chest X-ray database and benchmarks. "
             "CVPR (2017)",
    task="multi-label, 14 findings (No Finding: none of them)",
    classes=", ".join(FINDINGS),
    splits="carved by --split-ratios (default 70/10/20), grouped by patient and stratified; "
           "the official test_list.txt (and train_val_list.txt) when present")
@dataset_options(UNLABELED_DIR_OPTION)
def chestxray14(root: Path | None, unlabeled_dir: str | None = None) -> ImageDataset:
    """NIH ChestX-ray14 frontal chest X-rays, 14 findings (multi-label), grouped by patient."""
    root = require_root(root, "chestxray14", "ChestX-ray14", LAYOUT, SOURCE)
    csv = next((root / name for name in CSV_NAMES if (root / name).is_file()), None)
    if csv is None:
        raise UserError(f"{root / CSV_NAMES[0]} does not exist; {LAYOUT}; {SOURCE}")
    table = read_table(csv, "ChestX-ray14 label file")
    require_columns(table, csv, COLUMNS)
    ids = text_column(table, csv, "Image Index")
    check_unique(ids, csv, "'Image Index' values")
    patients = text_column(table, csv, "Patient ID")
    labels = _findings(table, csv)

    folders = _image_folders(root)
    if not folders:
        raise UserError(f"no images folder under {root}; {LAYOUT}")
    where = _index_images(folders)
    default = len(folders)
    folders.append(root / "images")  # where unlisted images are expected (reported missing)
    positions = ids.map(where).fillna(default).astype(np.int64).to_numpy()
    id_list = ids.tolist()
    files = [folders[p] / name for p, name in zip(positions, id_list, strict=True)]
    not_found = int((positions == default).sum())

    info: dict = {
        "root": str(root),
        "files": {"labels": str(csv)},
        "image_folders": [str(folder.relative_to(root)) for folder in folders[:-1]],
        "groups": "Patient ID",
        "images_not_found": not_found,
        "eval_parts": {"val": "carved from training", "test": "carved from training"},
    }
    predefined: dict[str, list[str]] = {}
    test_list = root / "test_list.txt"
    train_val_list = root / "train_val_list.txt"
    listed_test: set[str] = set()
    if test_list.is_file():
        listed_test = set(_read_list(test_list))
        known = ids.isin(listed_test).to_numpy()
        test_ids = [name for name, keep in zip(id_list, known, strict=True) if keep]
        info["files"]["test_list"] = str(test_list)
        info["test_list"] = {"listed": len(listed_test), "in_labels": len(test_ids)}
        if test_ids:
            predefined["test"] = test_ids
            info["eval_parts"]["test"] = "official (test_list.txt)"
        else:
            warnings.warn(
                f"none of the {len(listed_test)} images in {test_list} is listed in {csv.name}; "
                "the test part will be carved from the training images",
                stacklevel=2,
            )
    if train_val_list.is_file():
        listed_train = set(_read_list(train_val_list))
        info["files"]["train_val_list"] = str(train_val_list)
        both = listed_train & listed_test
        if both:
            warnings.warn(
                f"{len(both)} images are in both {train_val_list.name} and {test_list.name} "
                f"(e.g. {sorted(both)[0]}); they are used as test images",
                stacklevel=2,
            )
        info["train_val_list"] = {
            "listed": len(listed_train),
            "in_labels": int(ids.isin(listed_train).sum()),
            "in_neither_list": int((~ids.isin(listed_train | listed_test)).sum()),
        }

    dataset = ImageDataset(
        name="chestxray14",
        ids=id_list,
        labels=labels,
        class_names=list(FINDINGS),
        kind="multi",
        channels=1,
        files=files,
        sources=sources(csv, table),
        groups=patients.to_numpy(dtype=object),
        predefined=predefined,
        recommended={"hflip": True},  # as in the SRC-MT paper (Liu et al., 2020)
        info=info,
        description="NIH ChestX-ray14 chest X-rays, 14 findings (multi-label), by patient",
    )
    return add_unlabeled_folder(dataset, unlabeled_dir, root)
