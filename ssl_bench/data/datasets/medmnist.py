"""``medmnist``: the 2D sets of MedMNIST v2 and MedMNIST+ (Yang et al., Sci. Data 2023).

Each set is one ``.npz`` file in MedMNIST's own layout -- ``{flag}.npz`` at 28 px,
``{flag}_{size}.npz`` at 64, 128 and 224 px -- holding ``train_images``,
``train_labels``, ``val_images``, ``val_labels``, ``test_images`` and ``test_labels``
(images ``uint8`` ``[N, H, W]`` grey or ``[N, H, W, 3]`` colour; labels ``[N, 1]`` class
indices, or ``[N, 14]`` 0/1 findings for ChestMNIST). The file's official train, val and
test parts are used as they are (``--official-splits false`` carves val and test from all
its images instead, as for the other data sets; ``split.json`` records which). Nothing is
downloaded at run time: a missing file is one line naming the expected path and where
the files come from; the optional ``medmnist`` package (``pip install
'ssl-bench[medmnist]'``) downloads them.

Deviation from MedMNIST's own evaluation: RetinaMNIST's ordinal grades are five classes
here (scored as any single-label task), and binary sets are two-class single-label tasks
(their macro AUC is the binary AUC).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ssl_bench.core.errors import UserError
from ssl_bench.data.card_details import package_info
from ssl_bench.data.datasets.base import ImageDataset, dataset_card, dataset_options
from ssl_bench.data.images import resize_uint8
from ssl_bench.plugins.options import Option
from ssl_bench.plugins.registry import register_dataset

PARTS = ("train", "val", "test")
SIZES = (28, 64, 128, 224)
#: Where the medmnist package keeps its files (the default folder without --data-root).
DEFAULT_ROOT = Path("~/.medmnist")
SOURCE = ("MedMNIST files (every size) come from https://zenodo.org/records/10519652, or "
          "with the medmnist package: pip install 'ssl-bench[medmnist]', then python -m "
          "medmnist download --size=SIZE --root=DIR")
CITATION = ("Yang, J. et al. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D "
            "biomedical image classification. Scientific Data 10, 41 (2023)")


class MedMNISTSet(NamedTuple):
    """What MedMNIST's ``INFO`` says of one 2D set (task, channels, licence, classes)."""

    task: str
    channels: int
    licence: str
    classes: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "multi" if self.task.startswith("multi-label") else "single"


ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
          "liver", "lung-left", "lung-right", "pancreas", "spleen")
#: The 2D sets (MedMNIST 3.0's INFO; the 3D ones are volumes, not images).
SETS: dict[str, MedMNISTSet] = {
    "pathmnist": MedMNISTSet("multi-class", 3, "CC BY 4.0", (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
        "normal colon mucosa", "cancer-associated stroma",
        "colorectal adenocarcinoma epithelium")),
    "chestmnist": MedMNISTSet("multi-label, binary-class", 1, "CC BY 4.0", (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
        "pneumonia", "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis",
        "pleural", "hernia")),
    "dermamnist": MedMNISTSet("multi-class", 3, "CC BY-NC 4.0", (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
        "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
        "vascular lesions")),
    "octmnist": MedMNISTSet("multi-class", 1, "CC BY 4.0", (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal")),
    "pneumoniamnist": MedMNISTSet("binary-class", 1, "CC BY 4.0", ("normal", "pneumonia")),
    "retinamnist": MedMNISTSet("ordinal-regression", 3, "CC BY 4.0",
                               ("0", "1", "2", "3", "4")),
    "breastmnist": MedMNISTSet("binary-class", 1, "CC BY 4.0", ("malignant", "normal, benign")),
    "bloodmnist": MedMNISTSet("multi-class", 3, "CC BY 4.0", (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte",
        "monocyte", "neutrophil", "platelet")),
    "tissuemnist": MedMNISTSet("multi-class", 1, "CC BY 4.0", (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
        "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes",
        "Podocytes", "Proximal Tubule Segments", "Thick Ascending Limb")),
    "organamnist": MedMNISTSet("multi-class", 1, "CC BY 4.0", ORGANS),
    "organcmnist": MedMNISTSet("multi-class", 1, "CC BY 4.0", ORGANS),
    "organsmnist": MedMNISTSet("multi-class", 1, "CC BY 4.0", ORGANS),
}


def medmnist_file(root: Path, flag: str, size: int) -> Path:
    """MedMNIST's own file name for ``flag`` at ``size`` px."""
    return root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")


def _labels(raw: np.ndarray, info: MedMNISTSet, path: Path, part: str) -> np.ndarray:
    """``[N]`` class indices or ``[N, K]`` 0/1 floats, checked (shape, NaN, range)."""
    where = f"{path}: {part}_labels"
    width = len(info.classes) if info.kind == "multi" else 1
    if raw.ndim == 1 and width == 1:
        raw = raw[:, None]
    if raw.ndim != 2 or raw.shape[1] != width:
        raise UserError(f"{where} has shape {raw.shape}, expected (N, {width}) for "
                        f"{info.task} labels")
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise UserError(f"{where} holds NaN or infinite values "
                        f"(row {int(np.flatnonzero(~np.isfinite(raw).all(1))[0])})")
    if raw.dtype.kind not in "iuf" or (raw != np.round(raw)).any():
        raise UserError(f"{where} must hold whole numbers, got dtype {raw.dtype}")
    high = 1 if info.kind == "multi" else len(info.classes) - 1
    bad = np.flatnonzero(((raw < 0) | (raw > high)).any(1))
    if len(bad):
        raise UserError(f"{where} row {int(bad[0])} holds {raw[bad[0]].tolist()}, outside "
                        f"0..{high} ({len(bad)} such row(s))")
    if info.kind == "multi":
        return raw.astype(np.float32)
    return raw[:, 0].astype(np.int64)


def _images(raw: np.ndarray, info: MedMNISTSet, size: int, path: Path, part: str,
            count: int) -> np.ndarray:
    where = f"{path}: {part}_images"
    expected = (count, size, size) + ((3,) if info.channels == 3 else ())
    if raw.shape != expected or raw.dtype != np.uint8:
        raise UserError(f"{where} is {raw.dtype} of shape {raw.shape}, expected uint8 of "
                        f"shape {expected} (as many images as labels, {size} px)")
    return raw


def read_medmnist(path: Path, flag: str, size: int) -> tuple[dict[str, np.ndarray],
                                                              dict[str, np.ndarray]]:
    """The images and labels of each part of a MedMNIST file, checked."""
    info = SETS[flag]
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read MedMNIST file {path}: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # (one array saved as .npy)
        raise UserError(f"{path} holds one array, not the arrays of a MedMNIST .npz file")
    with archive:
        missing = [f"{p}_{k}" for p in PARTS for k in ("images", "labels")
                   if f"{p}_{k}" not in archive.files]
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}: not a MedMNIST file "
                            f"(it holds {', '.join(archive.files) or 'nothing'})")
        labels = {p: _labels(archive[f"{p}_labels"], info, path, p) for p in PARTS}
        images = {p: _images(archive[f"{p}_images"], info, size, path, p, len(labels[p]))
                  for p in PARTS}
    return images, labels


def _check_sizes(path: Path, labels: dict[str, np.ndarray], known: dict | None) -> None:
    """A file whose parts differ from the official sizes (a partial or edited copy) is
    read as it is, with one warning line."""
    import warnings

    expected = (known or {}).get("n_samples", {})
    differ = [f"{part} {len(labels[part])} (MedMNIST: {expected[part]})"
              for part in PARTS if part in expected and expected[part] != len(labels[part])]
    if differ:
        warnings.warn(f"{path} is not the official file: its parts hold {', '.join(differ)} "
                      "images", stacklevel=3)


@register_dataset("medmnist")
@dataset_card(
    source="MedMNIST v2 and MedMNIST+ .npz files, https://zenodo.org/records/10519652",
    licence="CC BY 4.0 (DermaMNIST: CC BY-NC 4.0)", citation=CITATION,
    task="by --flag: " + "; ".join(f"{flag} {info.task}, {len(info.classes)}"
                                 for flag, info in SETS.items()),
    classes="by --flag (ssl-bench run --dataset medmnist --flag FLAG shows them in "
            "split.json's class counts)",
    splits="the file's official train, val and test parts; --official-splits false: "
           "carved by --split-ratios")
@dataset_options(
    Option("flag", str, None, "which MedMNIST 2D set (the 3D ones are volumes: not offered)",
           choices=tuple(SETS)),
    Option("size", int, 28, "the file's image size: 28 ({flag}.npz, default) or 64, 128, "
           "224 ({flag}_{size}.npz, MedMNIST+)", choices=SIZES),
    Option("official_splits", bool, True, "use the file's train/val/test parts (default); "
           "false carves val and test from all its images by --split-ratios"),
)
def medmnist(root: Path | None, flag: str | None = None, size: int = 28,
             official_splits: bool = True) -> ImageDataset:
    """A MedMNIST 2D set from its ``.npz`` file (``--flag``, ``--size``)."""
    if flag is None:
        raise UserError("data set 'medmnist' needs --flag, one of " + ", ".join(SETS))
    info = SETS[flag]
    folder = Path(root if root is not None else DEFAULT_ROOT).expanduser().resolve()
    path = medmnist_file(folder, flag, size)
    if not path.is_file():
        raise UserError(f"MedMNIST file {path} does not exist (--data-root is the folder "
                        f"holding it); {SOURCE}")
    images, labels = read_medmnist(path, flag, size)
    known = package_info(flag)
    _check_sizes(path, labels, known)
    ids = [f"{part}_{row:06d}" for part in PARTS for row in range(len(labels[part]))]
    pixels = np.concatenate([images[part] for part in PARTS])
    predefined = ({part: [i for i in ids if i.startswith(part + "_")] for part in PARTS}
                  if official_splits else {})
    return ImageDataset(
        name="medmnist",
        ids=ids,
        labels=np.concatenate([labels[part] for part in PARTS]),
        class_names=list(info.classes),
        kind=info.kind,  # type: ignore[arg-type]
        channels=info.channels,
        load=lambda size, channels: resize_uint8(pixels, size, channels),
        predefined=predefined,
        info={"root": str(folder), "files": {"npz": str(path)}, "flag": flag, "size": size,
              "task": info.task, "licence": info.licence, "citation": CITATION,
              "medmnist_package": known,
              "eval_parts": ({"val": "official", "test": "official"} if official_splits
                             else {"val": "carved from all images",
                                   "test": "carved from all images"})},
        card={**medmnist.card, "task": f"{flag}: {info.task}, {len(info.classes)} classes, "  # type: ignore[attr-defined]
              f"{'colour' if info.channels == 3 else 'grey'}, {size} px",
              "classes": ", ".join(info.classes),
              "licence": info.licence},
        description=f"MedMNIST {flag} ({info.task}, {len(info.classes)} classes, "
                    f"{'colour' if info.channels == 3 else 'grey'}, {size} px)",
    )

