"""Tiny data sets written in the exact formats of the real ones, for tests of any module.

Every ``write_*`` function writes real image files (decodable by PIL, with varied
content) and the label files of the original release into ``root`` and returns a
:class:`Fixture` describing what it wrote (ids, labels, groups, files, CSV path and the
CSV row of each image). The ``corrupt_*``/``edit_*`` helpers then break a fixture in one
precise way, so loader and cache tests can check the resulting error messages.

Import from a test module with ``from fixtures import write_isic`` (``tests/`` is on
``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ISIC_CLASSES: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC_DX: dict[str, str] = {
    "MEL": "mel", "NV": "nv", "BCC": "bcc", "AKIEC": "akiec", "BKL": "bkl", "DF": "df",
    "VASC": "vasc",
}
ISIC_PARTS: dict[str, tuple[str, str]] = {
    "train": ("ISIC2018_Task3_Training_Input", "ISIC2018_Task3_Training_GroundTruth.csv"),
    "val": ("ISIC2018_Task3_Validation_Input", "ISIC2018_Task3_Validation_GroundTruth.csv"),
    "test": ("ISIC2018_Task3_Test_Input", "ISIC2018_Task3_Test_GroundTruth.csv"),
}
#: First image number of each ISIC part (the real ids are ISIC_0024306.. / 0034321.. / 0034524..).
ISIC_FIRST_ID: dict[str, int] = {"train": 24306, "val": 34321, "test": 34524}

CXR_FINDINGS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia",
)
#: ``Finding Labels`` cycled over the images: No Finding, single and multiple findings,
#: every one of the 14 findings at least once.
CXR_PATTERNS: tuple[str, ...] = (
    "No Finding",
    "Atelectasis",
    "Cardiomegaly|Effusion",
    "No Finding",
    "Infiltration",
    "Mass|Nodule",
    "Pneumonia|Pneumothorax|Consolidation",
    "Edema",
    "Emphysema|Fibrosis",
    "No Finding",
    "Pleural_Thickening|Hernia",
    "Effusion|Infiltration",
)
#: Header of the original Data_Entry_2017.csv, trailing comma included: pandas reads the
#: unquoted bracketed names as columns ``OriginalImage[Width``, ``Height]``, ... and an
#: ``Unnamed: 11`` column, while data rows have 11 fields.
CXR_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)


@dataclass
class Fixture:
    """What a ``write_*`` function wrote.

    ``labels`` are int class indices (single-label) or a float32 ``(N, K)`` 0/1 array
    (multi-label), in ``ids`` order. ``rows[i]`` is the human CSV row of ``ids[i]``
    (header = row 1) in the CSV it is listed in; ``parts`` maps part name -> ids
    (``train`` plus any official ``val``/``test``).
    """

    root: Path
    csv: Path
    ids: list[str]
    labels: np.ndarray
    class_names: list[str]
    files: list[Path]
    rows: list[int]
    groups: list[str] | None = None
    parts: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    def file_of(self, image_id: str) -> Path:
        return self.files[self.ids.index(image_id)]

    def row_of(self, image_id: str) -> int:
        return self.rows[self.ids.index(image_id)]


# -- images ---------------------------------------------------------------------------------
def make_image(seed: int, size: int = 32, mode: str = "RGB") -> Image.Image:
    """A deterministic image with varied content (gradient, blob and noise) in ``mode``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    cy, cx = rng.uniform(0.25, 0.75, size=2)
    radius = rng.uniform(0.1, 0.35)
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, size=3)
        base = 0.5 + 0.25 * (a * x + b * y) + 0.35 * c * blob
        channels.append(base + rng.normal(0, 0.05, size=(size, size)))
    rgb = (np.clip(np.stack(channels, axis=-1), 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode == "L":
        return image.convert("L")
    if mode == "RGBA":
        grey = np.asarray(image.convert("L"))
        alpha = np.full_like(grey, 255)
        return Image.fromarray(np.stack([grey, grey, grey, alpha], axis=-1), "RGBA")
    if mode == "RGB_GREY":  # grey content stored as RGB, as in the ChestX-ray14 mini set
        return image.convert("L").convert("RGB")
    return image.convert(mode)


def _csv_write(path: Path, header: Sequence[str] | str, rows: Iterable[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if isinstance(header, str):  # written verbatim (e.g. a trailing comma)
            handle.write(header + "\n")
            writer = csv.writer(handle, lineterminator="\n")
        else:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
        writer.writerows(rows)


# -- ISIC 2018 Task 3 -------------------------------------------------------------------------
def write_isic(
    root: Path,
    n_per_class: int = 3,
    size: int = 32,
    official_eval: bool | Sequence[str] = False,
    metadata: bool = True,
    *,
    column_order: Sequence[str] | None = None,
    int_onehot: bool = False,
    extra_columns: Sequence[str] = (),
    n_eval_per_class: int = 1,
    unlisted_in_metadata: int = 0,
    nested_csv: bool = False,
) -> Fixture:
    """Write an ISIC 2018 Task 3 folder: ``n_per_class`` training images per class.

    - ``ISIC2018_Task3_Training_Input/ISIC_00243xx.jpg`` (JPEG) and
      ``ISIC2018_Task3_Training_GroundTruth.csv`` with the official header
      ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` and ``0.0``/``1.0`` values (``0``/``1`` with
      ``int_onehot``; class columns in ``column_order`` if given; ``extra_columns`` of 0s
      appended, as later releases' CSVs may have).
    - ``official_eval``: ``True`` (both) or a subset of ``("val", "test")``: also the
      official ``ISIC2018_Task3_{Validation,Test}_Input``/``..._GroundTruth.csv`` with
      ``n_eval_per_class`` images per class.
    - ``metadata``: ``HAM10000_metadata.csv`` (``lesion_id,image_id,dx,dx_type,age,sex,
      localization``) for the training images, the first two images of each class sharing
      a lesion, plus two rows for images not in the folder (as the real file lists more
      images); the last ``unlisted_in_metadata`` training images are left out of it.
    - ``nested_csv``: CSVs inside the folder their zip unpacks to
      (``ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv``).

    Returns a :class:`Fixture` over all parts (train first); ``groups`` are lesion ids
    (an image's own id where the metadata does not list it); ``csv`` is the training CSV;
    ``extra["csvs"]`` maps part -> CSV path and ``extra["metadata"]`` the metadata path.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if official_eval is True:
        eval_parts: tuple[str, ...] = ("val", "test")
    elif official_eval is False:
        eval_parts = ()
    else:
        eval_parts = tuple(official_eval)
    order = list(column_order) if column_order is not None else list(ISIC_CLASSES)
    assert sorted(order) == sorted(ISIC_CLASSES), "column_order must permute the 7 classes"
    one, zero = ("1", "0") if int_onehot else ("1.0", "0.0")

    ids: list[str] = []
    labels: list[int] = []
    files: list[Path] = []
    rows: list[int] = []
    parts: dict[str, list[str]] = {}
    csvs: dict[str, Path] = {}
    for part in ("train", *eval_parts):
        folder_name, csv_name = ISIC_PARTS[part]
        folder = root / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        per_class = n_per_class if part == "train" else n_eval_per_class
        number = ISIC_FIRST_ID[part]
        table = []
        part_ids = []
        for _ in range(per_class):  # interleave classes, as the real CSV mixes them
            for label, name in enumerate(ISIC_CLASSES):
                image_id = f"ISIC_{number:07d}"
                number += 1
                make_image(number, size).save(folder / f"{image_id}.jpg", quality=90)
                values = {c: (one if c == name else zero) for c in ISIC_CLASSES}
                extra = [zero] * len(extra_columns)
                table.append([image_id, *(values[c] for c in order), *extra])
                ids.append(image_id)
                part_ids.append(image_id)
                labels.append(label)
                files.append(folder / f"{image_id}.jpg")
                rows.append(len(table) + 1)
        stem = csv_name[: -len(".csv")]
        path = root / stem / csv_name if nested_csv else root / csv_name
        _csv_write(path, ["image", *order, *extra_columns], table)
        parts[part] = part_ids
        csvs[part] = path

    groups = list(ids)
    metadata_path = None
    if metadata:
        metadata_path = root / "HAM10000_metadata.csv"
        train = parts["train"]
        listed = set(train[: len(train) - unlisted_in_metadata])
        meta_rows = []
        lesion_of: dict[str, str] = {}
        seen: dict[int, int] = {}
        for i, image_id in enumerate(train):
            label = int(labels[i])
            k = seen[label] = seen.get(label, -1) + 1
            # images 0 and 1 of each class share a lesion, the others have one each
            lesion_of[image_id] = f"HAM_{label}{max(k - 1, 0):06d}"
        for i, image_id in enumerate(train):
            if image_id in listed:
                dx = ISIC_DX[ISIC_CLASSES[labels[i]]]
                meta_rows.append(
                    [lesion_of[image_id], image_id, dx, "histo", f"{40 + i % 40}.0",
                     ("male", "female")[i % 2], ("back", "face", "scalp")[i % 3]]
                )
                groups[i] = lesion_of[image_id]
        meta_rows += [
            ["HAM_9999998", "ISIC_9999998", "nv", "follow_up", "55.0", "female", "trunk"],
            ["HAM_9999999", "ISIC_9999999", "mel", "histo", "", "unknown", "unknown"],
        ]
        meta_rows.sort(key=lambda r: r[0])  # the real file is sorted by lesion_id
        _csv_write(
            metadata_path,
            ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"],
            meta_rows,
        )
    return Fixture(
        root=root,
        csv=csvs["train"],
        ids=ids,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=list(ISIC_CLASSES),
        files=files,
        rows=rows,
        groups=groups,
        parts=parts,
        extra={"csvs": csvs, "metadata": metadata_path},
    )


# -- NIH ChestX-ray14 -------------------------------------------------------------------------
def write_chestxray14(
    root: Path,
    n_patients: int = 6,
    size: int = 32,
    nested: bool = False,
    rgba_every: int = 4,
    rgb_every: int = 3,
    lists: bool = False,
    *,
    patterns: Sequence[str] = CXR_PATTERNS,
    images_per_patient: Sequence[int] = (2, 1, 3),
) -> Fixture:
    """Write a ChestX-ray14 folder in the NIH release format.

    - Patient ``p`` (1-based) gets ``images_per_patient[(p - 1) % len]`` images named
      ``{p:08d}_{k:03d}.png``; their ``Finding Labels`` cycle through ``patterns``
      (default: No Finding, single and multiple findings covering all 14).
    - PNG modes mixed: every ``rgba_every``-th image RGBA, every ``rgb_every``-th other one
      grey stored as RGB, the rest 8-bit grey ``L`` (0 disables either).
    - ``Data_Entry_2017.csv`` with every original column and the original header (its
      trailing comma and unquoted ``OriginalImage[Width,Height]`` included).
    - ``nested``: images split between ``images_001/images/`` and ``images_002/images/``
      (the per-archive layout) instead of ``images/``.
    - ``lists``: ``train_val_list.txt`` and ``test_list.txt``, the last third of the
      patients (at least one) being the test patients.

    Returns a :class:`Fixture` with multi-label float32 labels ``(N, 14)``, ``groups`` =
    patient ids as written (``"1"``, ``"2"``, ...), ``extra["modes"]`` (PNG mode per image)
    and, with ``lists``, ``parts["test"]`` / ``parts["train_val"]``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    groups: list[str] = []
    findings: list[str] = []
    for p in range(1, n_patients + 1):
        for k in range(images_per_patient[(p - 1) % len(images_per_patient)]):
            ids.append(f"{p:08d}_{k:03d}.png")
            groups.append(str(p))
            findings.append(patterns[(len(ids) - 1) % len(patterns)])
    if nested:
        half = (len(ids) + 1) // 2
        folders = [root / "images_001" / "images"] * half
        folders += [root / "images_002" / "images"] * (len(ids) - half)
    else:
        folders = [root / "images"] * len(ids)
    files, modes, table = [], [], []
    for i, (image_id, folder) in enumerate(zip(ids, folders, strict=True)):
        if rgba_every and i % rgba_every == rgba_every - 1:
            mode = "RGBA"
        elif rgb_every and i % rgb_every == rgb_every - 1:
            mode = "RGB_GREY"
        else:
            mode = "L"
        folder.mkdir(parents=True, exist_ok=True)
        make_image(1000 + i, size, mode).save(folder / image_id)
        files.append(folder / image_id)
        modes.append("RGB" if mode == "RGB_GREY" else mode)
        patient = int(groups[i])
        table.append([
            image_id, findings[i], image_id[9:12].lstrip("0") or "0", patient,
            30 + patient % 50, ("M", "F")[patient % 2], ("PA", "AP")[i % 2],
            2500 + i, 2048, "0.143", "0.143",
        ])
    csv_path = root / "Data_Entry_2017.csv"
    _csv_write(csv_path, CXR_HEADER, table)
    labels = np.zeros((len(ids), len(CXR_FINDINGS)), dtype=np.float32)
    for i, text in enumerate(findings):
        for name in text.split("|"):
            if name != "No Finding":
                labels[i, CXR_FINDINGS.index(name)] = 1.0
    parts: dict[str, list[str]] = {"train": list(ids)}
    if lists:
        n_test = max(1, n_patients // 3)
        test_patients = {str(p) for p in range(n_patients - n_test + 1, n_patients + 1)}
        parts["test"] = [i for i, g in zip(ids, groups, strict=True) if g in test_patients]
        parts["train_val"] = [i for i, g in zip(ids, groups, strict=True) if g not in test_patients]
        (root / "test_list.txt").write_text("".join(f"{i}\n" for i in parts["test"]))
        (root / "train_val_list.txt").write_text("".join(f"{i}\n" for i in parts["train_val"]))
    return Fixture(
        root=root,
        csv=csv_path,
        ids=ids,
        labels=labels,
        class_names=list(CXR_FINDINGS),
        files=files,
        rows=list(range(2, len(ids) + 2)),
        groups=groups,
        parts=parts,
        extra={"modes": modes, "findings": findings},
    )


# -- bring-your-own CSV -----------------------------------------------------------------------
def write_csv_dataset(
    root: Path,
    multilabel: bool = False,
    n: int = 12,
    size: int = 16,
    *,
    classes: Sequence[str] = ("normal", "benign", "malignant"),
    csv_name: str = "labels.csv",
    image_dir: str = "imgs",
    mode: str = "RGB",
    groups: bool = True,
) -> Fixture:
    """Write images ``<root>/<image_dir>/img_NN.png`` and a CSV for the ``csv`` data set.

    Single-label: columns ``image,label[,patient]`` with class names from ``classes``
    (cycled). Multi-label: columns ``image,<class...>[,patient]`` of 0/1 ints (image ``i``
    has class ``j`` when bit ``j`` of ``i`` is set). ``patient`` groups images in pairs.
    ``labels`` follow the loader's conventions: for single-label, indices into the
    naturally sorted class names (``class_names``).
    """
    from ssl_bench.data.datasets._tables import natural_sorted

    root = Path(root)
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    ids, files, table, label_rows, group_ids = [], [], [], [], []
    for i in range(n):
        image_id = f"{image_dir}/img_{i:02d}.png"
        make_image(2000 + i, size, mode).save(root / image_id)
        ids.append(image_id)
        files.append(root / image_id)
        group = f"p{i // 2:02d}"
        group_ids.append(group)
        if multilabel:
            bits = [(i >> j) & 1 for j in range(len(classes))]
            label_rows.append(bits)
            row = [image_id, *bits]
        else:
            label_rows.append(classes[i % len(classes)])
            row = [image_id, classes[i % len(classes)]]
        table.append(row + ([group] if groups else []))
    if multilabel:
        header = ["image", *classes]
        class_names = list(classes)
        labels = np.asarray(label_rows, dtype=np.float32)
    else:
        header = ["image", "label"]
        class_names = natural_sorted(set(classes))
        labels = np.asarray([class_names.index(c) for c in label_rows], dtype=np.int64)
    if groups:
        header.append("patient")
    csv_path = root / csv_name
    _csv_write(csv_path, header, table)
    return Fixture(
        root=root,
        csv=csv_path,
        ids=ids,
        labels=labels,
        class_names=class_names,
        files=files,
        rows=list(range(2, n + 2)),
        groups=group_ids if groups else None,
    )


# -- breaking a fixture -----------------------------------------------------------------------
def corrupt_image(path: Path, data: bytes = b"this is not an image\x00\xff" * 8) -> Path:
    """Overwrite an image file with bytes no decoder accepts."""
    Path(path).write_bytes(data)
    return Path(path)


def truncate_image(path: Path, keep: float = 0.5) -> Path:
    """Cut an image file to its first ``keep`` fraction (header intact, data missing)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * keep))])
    return Path(path)


def remove_image(path: Path) -> Path:
    """Delete an image file (it stays listed in the CSV)."""
    Path(path).unlink()
    return Path(path)


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) of a CSV file as raw text fields."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_csv_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a CSV file from a header and rows (the inverse of :func:`read_csv_rows`)."""
    _csv_write(Path(path), list(header), rows)
    return Path(path)


def edit_csv_cell(path: Path, row: int, column: str, value: object) -> Path:
    """Set the cell of human row ``row`` (header = 1, first data row = 2) in ``column``."""
    header, rows = read_csv_rows(path)
    position = header.index(column)
    cells = rows[row - 2]
    cells.extend([""] * (position + 1 - len(cells)))
    cells[position] = str(value)
    _csv_write(Path(path), header, rows)
    return Path(path)


def drop_csv_column(path: Path, column: str) -> Path:
    """Remove ``column`` from the header and every row."""
    header, rows = read_csv_rows(path)
    position = header.index(column)
    _csv_write(
        Path(path),
        [h for i, h in enumerate(header) if i != position],
        [[c for i, c in enumerate(r) if i != position] for r in rows],
    )
    return Path(path)


def rename_csv_column(path: Path, old: str, new: str) -> Path:
    header, rows = read_csv_rows(path)
    header[header.index(old)] = new
    _csv_write(Path(path), header, rows)
    return Path(path)


def append_csv_row(path: Path, values: Sequence[object]) -> int:
    """Append a data row; returns its human row number."""
    header, rows = read_csv_rows(path)
    rows.append([str(v) for v in values])
    _csv_write(Path(path), header, rows)
    return len(rows) + 1


def duplicate_csv_row(path: Path, row: int) -> int:
    """Append a copy of human row ``row``; returns the new row's number."""
    _, rows = read_csv_rows(path)
    return append_csv_row(path, rows[row - 2])


def empty_csv(path: Path, keep_header: bool = True) -> Path:
    """Keep only the header line (or write an empty file)."""
    text = Path(path).read_text(encoding="utf-8")
    Path(path).write_text(text.splitlines(keepends=True)[0] if keep_header and text else "")
    return Path(path)


def refused_in_one_line(capsys, argv, *text) -> None:
    """Run ``ssl-bench ARGV``: it must exit 2 with one error line holding every ``text``."""
    from ssl_bench.cli.main import EXIT_USER_ERROR, main

    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssl-bench: error: "), captured.err
    for part in text:
        assert part in lines[0], lines[0]
