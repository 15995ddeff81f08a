"""Bring-your-own data set: image files listed in a CSV file.

Single-label: one column of class names or numbers (``label_column``)::

    image,diagnosis,patient
    scans/a.png,benign,p01

Multi-label: 0/1 columns (``label_columns=a,b,c`` or ``*`` for every column other than
the image and group columns). A row with an empty label (every label column empty) is an
image nobody labeled: an unlabeled training image only (``empty_labels=error`` refuses
it). Image paths are relative to the data root (or absolute); image ids are the paths as
written in the CSV. Only the CSV is read here: images are decoded (and missing ones
reported) by the cache.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets._tables import (
    binary_matrix,
    check_not_missing,
    check_unique,
    natural_sorted,
    read_table,
    require_columns,
    sources,
    text_column,
)
from ssl_bench.data.datasets._unlabeled import UNLABELED_DIR_OPTION, add_unlabeled_folder
from ssl_bench.data.datasets.base import ImageDataset, dataset_card, dataset_options
from ssl_bench.plugins.options import Option
from ssl_bench.plugins.registry import register_dataset

EXAMPLE = (
    "e.g. a CSV with columns image,label (image paths relative to the data root) and "
    "label_column=label, or columns image,a,b,c of 0/1 values and label_columns=a,b,c"
)


def _resolve(root: Path | None, csv: str) -> tuple[Path, Path]:
    path = Path(csv).expanduser()
    if root is None:
        if not path.is_absolute():
            raise UserError(
                "data set 'csv' needs its folder: pass --data-root DIR or set SSL_BENCH_DATA "
                f"(the CSV file {csv!r} and the image paths in it are relative to DIR), or "
                f"give the csv option (--csv) as an absolute path; {EXAMPLE}"
            )
        root = path.parent
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"data folder {root} of data set 'csv' does not exist")
    path = path if path.is_absolute() else root / path
    return root, path


def _label_columns(
    spec: str, columns: list[str], exclude: set[str], csv: Path
) -> list[str]:
    if spec.strip() == "*":
        chosen = [
            c for c in columns if c not in exclude and not c.startswith("Unnamed: ")
        ]
        if not chosen:
            raise UserError(f"{csv}: label_columns='*' but there is no column besides "
                            f"{', '.join(sorted(exclude))}")
        return chosen
    chosen = [name.strip() for name in spec.split(",") if name.strip()]
    if not chosen:
        raise UserError(f"label_columns {spec!r} names no column; {EXAMPLE}")
    repeated = sorted({c for c in chosen if chosen.count(c) > 1})
    if repeated:
        raise UserError(f"label_columns names {', '.join(repeated)} more than once")
    clash = sorted(set(chosen) & exclude)
    if clash:
        raise UserError(
            f"label_columns includes {', '.join(clash)}, which is the image or group column"
        )
    return chosen


@register_dataset("csv")
@dataset_card(
    source="your CSV file (--csv) of image paths and labels", licence="yours",
    citation="yours", task="single-label (--label-column) or multi-label (--label-columns)",
    classes="the label column's values, or the label columns' names",
    splits="carved by --split-ratios (default 70/10/20), grouped by --group-column and "
           "stratified")
@dataset_options(
    Option("csv", str, "labels.csv", "CSV file listing the images (relative to the data root, "
           "or absolute)"),
    Option("image_column", str, "image", "column of image paths (relative to the data root)"),
    Option("label_column", str, None, "column of class names or numbers (single-label)"),
    Option("label_columns", str, None, "comma-separated columns of 0/1 values, or '*' for "
           "every column but the image and group columns (multi-label)"),
    Option("group_column", str, None, "column of group ids (e.g. patients): a group's "
           "images stay in one split part"),
    Option("channels", int, 3, "channels of the images: 1 (grey) or 3 (colour)",
           choices=(1, 3)),
    Option("empty_labels", str, "unlabeled", "rows whose label is empty (every label column "
           "empty, multi-label): unlabeled = images nobody labeled, used as unlabeled "
           "training images only; error = refuse them", choices=("unlabeled", "error")),
    UNLABELED_DIR_OPTION,
)
def csv_dataset(
    root: Path | None,
    csv: str = "labels.csv",
    image_column: str = "image",
    label_column: str | None = None,
    label_columns: str | None = None,
    group_column: str | None = None,
    channels: int = 3,
    empty_labels: str = "unlabeled",
    unlabeled_dir: str | None = None,
) -> ImageDataset:
    """Images listed in a CSV file, single-label (``label_column``) or multi-label.

    Rows without a label are images nobody labeled (unlabeled training images only)."""
    label_column = label_column.strip() if label_column and label_column.strip() else None
    label_columns = label_columns if label_columns and label_columns.strip() else None
    if (label_column is None) == (label_columns is None):
        given = "both" if label_column is not None else "neither"
        raise UserError(
            "data set 'csv' needs exactly one of label_column (--label-column: one column of "
            "class names, single-label) and label_columns (--label-columns: 0/1 columns, "
            f"multi-label), got {given}; "
            f"{EXAMPLE}"
        )
    root, path = _resolve(root, csv)
    table = read_table(path, "CSV file")
    group_column = group_column.strip() if group_column and group_column.strip() else None
    exclude = {image_column} | ({group_column} if group_column else set())
    if label_column is not None:
        if label_column in exclude:
            raise UserError(f"label_column {label_column!r} is also the image or group column")
        chosen = [label_column]
    else:
        chosen = _label_columns(label_columns, list(table.columns), exclude, path)
    require_columns(table, path, [image_column, *([group_column] if group_column else []),
                                  *chosen])

    ids = text_column(table, path, image_column, f"image path (column {image_column!r})")
    check_unique(ids, path, f"image paths (column {image_column!r})")
    empty = (table[chosen].apply(lambda column: column.str.strip()) == "").all(axis=1)
    if empty_labels == "error" or not empty.any():
        empty[:] = False
    known = table[~empty]
    if known.empty:
        raise UserError(f"{path}: no row has a label (columns {', '.join(chosen)}); a "
                        "classifier needs labeled images")
    if label_column is not None:
        values = text_column(known, path, label_column, f"label (column {label_column!r})")
        check_not_missing(values, path, f"the label (column {label_column!r})")
        class_names = natural_sorted(values.unique())
        if len(class_names) < 2:
            raise UserError(
                f"{path}: column {label_column!r} holds a single class {class_names[0]!r}; "
                "a classifier needs at least 2"
            )
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.zeros(len(table), dtype=np.int64)  # (placeholders where empty)
        labels[~empty.to_numpy()] = values.map(index).to_numpy(dtype=np.int64)
        kind = "single"
    else:
        class_names = chosen
        labels = np.zeros((len(table), len(chosen)), dtype=np.float32)
        labels[~empty.to_numpy()] = binary_matrix(known, path, class_names, ids[~empty])
        kind = "multi"
    groups = None
    if not group_column:
        warnings.warn(
            f"{path.name}: no --group-column, so the images of one patient (or lesion) may "
            "land in two split parts, e.g. train and test, which inflates test metrics; give "
            "the column of patient ids with --group-column (ignore this if every patient has "
            "one image)", stacklevel=2)
    if group_column:
        groups = text_column(table, path, group_column, f"group (column {group_column!r})")
        groups = groups.to_numpy(dtype=object)
    id_list = ids.tolist()
    dataset = ImageDataset(
        name="csv",
        ids=id_list,
        labels=labels,
        class_names=list(class_names),
        kind=kind,
        channels=channels,
        files=[root / image for image in id_list],
        sources=sources(path, table),
        groups=groups,
        info={
            "root": str(root),
            "files": {"labels": str(path)},
            "image_column": image_column,
            "label_columns": list(class_names) if kind == "multi" else [label_column],
            "groups": None if group_column is None else f"column {group_column!r}",
            "rows_without_label": int(empty.sum()),
        },
        description=f"images listed in {path.name} ({kind}-label, {len(class_names)} classes)",
        unlabeled_only=empty.to_numpy(),
    )
    return add_unlabeled_folder(dataset, unlabeled_dir, root)
