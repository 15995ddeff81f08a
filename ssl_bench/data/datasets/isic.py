"""ISIC 2018 Task 3 (HAM10000) skin lesion classification: 7 classes, single-label.

Reads the official layout (the zip files unpacked into one folder)::

    <root>/ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...
    <root>/ISIC2018_Task3_Training_GroundTruth.csv   image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
    <root>/HAM10000_metadata.csv                       optional: lesion_id,image_id,...
    <root>/ISIC2018_Task3_Validation_Input/ + ..._Validation_GroundTruth.csv  optional
    <root>/ISIC2018_Task3_Test_Input/ + ..._Test_GroundTruth.csv              optional

A ground-truth CSV may also sit in the folder its zip unpacks to
(``<root>/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv``).
Only metadata is read here: images are decoded (and missing ones reported) by the cache.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets._tables import (
    BadRows,
    binary_matrix,
    check_unique,
    listing,
    read_table,
    require_columns,
    require_root,
    rows_text,
    sources,
    text_column,
)
from ssl_bench.data.datasets._unlabeled import UNLABELED_DIR_OPTION, add_unlabeled_folder
from ssl_bench.data.datasets.base import ImageDataset, dataset_card, dataset_options
from ssl_bench.plugins.options import Option
from ssl_bench.plugins.registry import register_dataset

#: Class columns, in the order of the official CSV (and of this data set's classes).
CLASSES: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")

#: part -> (images folder, ground-truth CSV stem) of the official release.
PARTS: dict[str, tuple[str, str]] = {
    "train": ("ISIC2018_Task3_Training_Input", "ISIC2018_Task3_Training_GroundTruth"),
    "val": ("ISIC2018_Task3_Validation_Input", "ISIC2018_Task3_Validation_GroundTruth"),
    "test": ("ISIC2018_Task3_Test_Input", "ISIC2018_Task3_Test_GroundTruth"),
}
METADATA = "HAM10000_metadata.csv"
CARVED = "carved from training"

LAYOUT = (
    "expected the ISIC 2018 Task 3 layout: DIR/ISIC2018_Task3_Training_Input/<image>.jpg and "
    "DIR/ISIC2018_Task3_Training_GroundTruth.csv (columns image,MEL,NV,BCC,AKIEC,BKL,DF,VASC), "
    "optionally DIR/HAM10000_metadata.csv for lesion ids and the official "
    "ISIC2018_Task3_Validation_*/ISIC2018_Task3_Test_* parts"
)
SOURCE = (
    "the images and ground truth come from the ISIC 2018 challenge "
    "(https://challenge.isic-archive.com/data/#2018, Task 3) or, with "
    "HAM10000_metadata.csv, from HAM10000 on Harvard Dataverse "
    "(https://doi.org/10.7910/DVN/DBW86T)"
)


@dataclass
class _Part:
    csv: Path
    ids: list[str]
    labels: np.ndarray
    files: list[Path]
    sources: list[str]


def _ground_truth_csv(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.csv", root / stem / f"{stem}.csv"):
        if candidate.is_file():
            return candidate
    return None


def _read_part(root: Path, part: str, csv: Path) -> _Part:
    table = read_table(csv, "ISIC ground-truth CSV")
    require_columns(table, csv, ["image", *CLASSES])
    ids = text_column(table, csv, "image", "image id (column 'image')")
    check_unique(ids, csv, "image ids")
    onehot = binary_matrix(table, csv, CLASSES, ids)
    ones = onehot.sum(axis=1)
    bad = np.flatnonzero(ones != 1)
    if bad.size:
        described = [
            f"row {table.index[i]} (image {ids.iat[i]!r}) has {int(ones[i])} classes set"
            for i in bad
        ]
        raise BadRows(
            f"{csv}: every row must be one-hot (exactly one of {', '.join(CLASSES)} is 1); "
            f"{listing(described)}",
            csv, table.index[bad], [f"{int(ones[i])} classes set (not one-hot)" for i in bad],
        )
    folder = root / PARTS[part][0]
    if not folder.is_dir():
        raise UserError(
            f"images folder {folder} for {csv.name} does not exist; {LAYOUT}"
        )
    id_list = ids.tolist()
    return _Part(
        csv=csv,
        ids=id_list,
        labels=onehot.argmax(axis=1).astype(np.int64),
        files=[folder / f"{image}.jpg" for image in id_list],
        sources=sources(csv, table),
    )


def _resolve_metadata(root: Path, metadata: str | None) -> Path | None:
    if metadata is None:
        default = root / METADATA
        return default if default.is_file() else None
    path = Path(metadata).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    if not path.is_file():
        raise UserError(
            f"metadata file {metadata} does not exist (looked for {path.resolve()}); "
            f"pass the path of {METADATA} (lesion_id,image_id,...) or leave the option out"
        )
    return path.resolve()


def _lesion_groups(path: Path, ids: list[str], n_train: int) -> np.ndarray:
    """lesion_id per image; images the metadata does not list are their own group."""
    table = read_table(path, "HAM10000 metadata file")
    require_columns(table, path, ["lesion_id", "image_id"])
    pairs = pd.DataFrame(
        {"image": table["image_id"].str.strip(), "lesion": table["lesion_id"].str.strip()},
        index=table.index,
    )
    pairs = pairs[(pairs["image"] != "") & (pairs["lesion"] != "")].drop_duplicates()
    conflicting = pairs["image"].duplicated(keep=False)
    if conflicting.any():
        clash = pairs[conflicting]
        described = [
            f"{image!r} ({rows_text(list(rows))})"
            for image, rows in clash.groupby("image", sort=False).groups.items()
        ]
        raise UserError(
            f"{path}: images listed with different lesion_id values: {listing(described)}"
        )
    mapping = pd.Series(pairs["lesion"].to_numpy(), index=pairs["image"].to_numpy())
    image_ids = pd.Series(ids, dtype=object)
    groups = image_ids.map(mapping)
    unknown = groups.isna().to_numpy()
    groups = groups.where(~unknown, image_ids)
    missing_train = int(unknown[:n_train].sum())
    if missing_train:
        warnings.warn(
            f"{missing_train} of {n_train} training images are not listed in {path}; "
            "each of them is put in a group of its own (lesion unknown)",
            stacklevel=3,
        )
    return groups.to_numpy(dtype=object)


@register_dataset("isic", aliases=("isic2018",))
@dataset_card(
    source="ISIC 2018 Task 3 (HAM10000) from the ISIC archive, "
           "https://challenge.isic-archive.com/data/#2018",
    licence="CC BY-NC 4.0",
    citation="Tschandl, P. et al. The HAM10000 dataset. Scientific Data 5, 180161 (2018); "
             "Codella, N. et al. Skin lesion analysis toward melanoma detection 2018. "
             "arXiv:1902.03368 (2019)",
    task="single-label, 7 diagnoses", classes="MEL, NV, BCC, AKIEC, BKL, DF, VASC",
    splits="carved by --split-ratios (default 70/10/20), grouped by lesion "
           "(HAM10000_metadata.csv) and stratified; --eval-split official: the ISIC 2018 "
           "validation and test images")
@dataset_options(
    Option(
        "eval_split",
        str,
        "random",
        "random: carve val/test from the training images (grouped by lesion); official: use "
        "the ISIC 2018 validation/test images and ground truth where present under the root",
        choices=("random", "official"),
    ),
    Option(
        "metadata",
        str,
        None,
        "HAM10000_metadata.csv for lesion groups "
        "(default: <root>/HAM10000_metadata.csv when present)",
    ),
    UNLABELED_DIR_OPTION,
)
def isic(
    root: Path | None, eval_split: str = "random", metadata: str | None = None,
    unlabeled_dir: str | None = None,
) -> ImageDataset:
    """ISIC 2018 Task 3 / HAM10000 dermoscopy images, 7 diagnoses (single-label)."""
    root = require_root(root, "isic", "ISIC", LAYOUT, SOURCE)
    train_csv = _ground_truth_csv(root, PARTS["train"][1])
    if train_csv is None:
        raise UserError(
            f"ground-truth CSV {root / (PARTS['train'][1] + '.csv')} does not exist; "
            f"{LAYOUT}; {SOURCE}"
        )
    parts = {"train": _read_part(root, "train", train_csv)}
    eval_parts = {"val": CARVED, "test": CARVED}
    if eval_split == "official":
        for part in ("val", "test"):
            folder, stem = PARTS[part]
            csv = _ground_truth_csv(root, stem)
            if csv is None:
                if (root / folder).is_dir():
                    warnings.warn(
                        f"{root / folder} exists but {stem}.csv does not; the {part} part "
                        "will be carved from the training images",
                        stacklevel=2,
                    )
                continue
            parts[part] = _read_part(root, part, csv)
            eval_parts[part] = "official"
        if len(parts) == 1:
            warnings.warn(
                f"eval_split 'official': no official ISIC 2018 validation or test ground truth "
                f"under {root} ({PARTS['val'][1]}.csv, {PARTS['test'][1]}.csv); validation "
                "and test images will be carved from the training images",
                stacklevel=2,
            )
    ids = [image for p in parts.values() for image in p.ids]
    if len(set(ids)) != len(ids):
        seen: dict[str, str] = {}
        clashes = []
        for part in parts.values():
            for image, source in zip(part.ids, part.sources, strict=True):
                if image in seen:
                    clashes.append(f"{image!r} ({seen[image]} and {source})")
                else:
                    seen[image] = source
        raise UserError(
            f"images listed in more than one ground-truth CSV under {root}: {listing(clashes)}"
        )
    files_read = {part: str(p.csv) for part, p in parts.items()}
    metadata_path = _resolve_metadata(root, metadata)
    groups = None
    if metadata_path is not None:
        groups = _lesion_groups(metadata_path, ids, len(parts["train"].ids))
        files_read["metadata"] = str(metadata_path)
    predefined = {part: p.ids for part, p in parts.items() if part != "train"}
    dataset = ImageDataset(
        name="isic",
        ids=ids,
        labels=np.concatenate([p.labels for p in parts.values()]),
        class_names=list(CLASSES),
        kind="single",
        channels=3,
        files=[f for p in parts.values() for f in p.files],
        sources=[s for p in parts.values() for s in p.sources],
        groups=groups,
        predefined=predefined,
        recommended={"hflip": True},
        info={
            "root": str(root),
            "eval_split": eval_split,
            "eval_parts": eval_parts,
            "files": files_read,
            "groups": None if metadata_path is None else f"lesion_id from {metadata_path}",
            "images": {part: len(p.ids) for part, p in parts.items()},
        },
        description="ISIC 2018 Task 3 / HAM10000 dermoscopy, 7 diagnoses (single-label)",
    )
    return add_unlabeled_folder(dataset, unlabeled_dir, root)
