"""Split files: self-describing JSON records, validated on load and checked against a
data set."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import atomic_write_json
from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.packs import is_pack, read_pack_split
from ssl_bench.data.splits.record import (
    EVAL_ORIGINS,
    EVAL_PARTS,
    FORMAT_VERSION,
    PART_NAMES,
    Split,
    check_ratios,
    labeled_count,
    missing_classes,
)

# ---------------------------------------------------------------------------------------
# split files


def save_split(split: Split, path: str | os.PathLike) -> Path:
    """Write ``split`` as a self-describing JSON file (atomically)."""
    return atomic_write_json(path, split.to_dict())


class _Invalid(Exception):
    """A problem in a split record (turned into a UserError naming the file)."""


def _need(record: dict[str, Any], key: str, kinds: type | tuple[type, ...], what: str) -> Any:
    if key not in record:
        raise _Invalid(f"missing key {key!r}")
    value = record[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise _Invalid(f"{key!r} must be {what}, got {value!r}")
    if not isinstance(value, kinds):
        raise _Invalid(f"{key!r} must be {what}, got {type(value).__name__}")
    return value


def _validate_record(record: Any) -> Split:
    if not isinstance(record, dict):
        raise _Invalid(f"expected a JSON object, got {type(record).__name__}")
    version = _need(record, "format_version", int, "an integer")
    if version != FORMAT_VERSION:
        raise _Invalid(
            f"format version {version} is not supported (this ssl-bench reads version "
            f"{FORMAT_VERSION})"
        )
    _need(record, "dataset", str, "a data set name")
    _need(record, "fingerprint", str, "a fingerprint string")
    _need(record, "seed", int, "an integer")
    ratios = _need(record, "ratios", list, "a list of three numbers")
    if len(ratios) != 3 or not all(
        isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratios
    ):
        raise _Invalid(f"'ratios' must be a list of three numbers, got {ratios!r}")
    try:
        check_ratios(ratios)
    except UserError as exc:
        raise _Invalid(str(exc)) from None
    _need(record, "grouped", bool, "true or false")
    spec = _need(record, "labeled_spec", (int, float), "a fraction or a count")
    kind = _need(record, "labeled_kind", str, '"fraction" or "count"')
    if kind not in ("fraction", "count"):
        raise _Invalid(f"'labeled_kind' must be \"fraction\" or \"count\", got {kind!r}")
    if kind == "fraction" and not 0 < spec <= 1:
        raise _Invalid(f"labeled fraction must lie in (0, 1], got {spec!r}")
    if kind == "count" and (not float(spec).is_integer() or spec < 1):
        raise _Invalid(f"labeled count must be a whole number >= 1, got {spec!r}")
    eval_parts = _need(record, "eval_parts", dict, "an object")
    for part in EVAL_PARTS:
        if eval_parts.get(part) not in EVAL_ORIGINS:
            raise _Invalid(
                f"eval_parts[{part!r}] must be one of {', '.join(EVAL_ORIGINS)}, "
                f"got {eval_parts.get(part)!r}"
            )
    ids: dict[str, list[str]] = {}
    for part in (*PART_NAMES, "labeled"):
        values = _need(record, part, list, "a list of image ids")
        if not all(isinstance(v, str) for v in values):
            raise _Invalid(f"{part!r} must hold image ids (strings)")
        if len(set(values)) != len(values):
            raise _Invalid(f"the {part} part lists some image ids more than once")
        ids[part] = values
    extra = record.get("unlabeled_only", [])  # (absent in files of earlier versions)
    if not isinstance(extra, list) or not all(isinstance(v, str) for v in extra):
        raise _Invalid("'unlabeled_only' must be a list of image ids")
    if len(set(extra)) != len(extra):
        raise _Invalid("the unlabeled_only part lists some image ids more than once")
    ids["unlabeled_only"] = extra
    sets = {part: set(values) for part, values in ids.items()}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test"),
                          ("unlabeled_only", "train"), ("unlabeled_only", "val"),
                          ("unlabeled_only", "test")):
        both = sets[first] & sets[second]
        if both:
            raise _Invalid(
                f"the {first} and {second} parts overlap ({len(both)} image(s), e.g. "
                f"{sorted(both)[0]!r})"
            )
    outside = sets["labeled"] - sets["train"]
    if outside:
        raise _Invalid(
            f"the labeled set is not a subset of the train part ({len(outside)} image(s) "
            f"outside it, e.g. {sorted(outside)[0]!r})"
        )
    if kind == "count" and len(ids["labeled"]) != spec:
        raise _Invalid(f"labeled count {spec} but {len(ids['labeled'])} labeled ids")
    if kind == "fraction":
        expected = labeled_count(float(spec), len(ids["train"]))
        if len(ids["labeled"]) != expected:
            raise _Invalid(
                f"labeled fraction {spec} of the {len(ids['train'])} train images is "
                f"{expected} images, but the labeled part lists {len(ids['labeled'])}")
    sizes = _need(record, "sizes", dict, "an object")
    for part, values in ids.items():
        if sizes.get(part, 0 if part == "unlabeled_only" else None) != len(values):
            raise _Invalid(
                f"sizes[{part!r}] is {sizes.get(part)!r} but the {part} part has "
                f"{len(values)} ids"
            )
    counts = _need(record, "class_counts", dict, "an object")
    for part, per_class in counts.items():
        if not isinstance(per_class, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in per_class.values()
        ):
            raise _Invalid(f"class_counts[{part!r}] must map class names to counts")
    group_counts = _need(record, "group_counts", dict, "an object")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in group_counts.values()):
        raise _Invalid("group_counts must map parts to counts")
    return Split.from_dict(record)


def _read_text(path: Path) -> str:
    """A split file's text; ``PACK#NAME`` is the split file ``NAME`` a data pack carries."""
    pack, _, member = str(path).rpartition("#")
    if pack and not path.exists() and is_pack(pack):
        try:
            return read_pack_split(pack, member).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"cannot read split file {path}: {exc}") from None
    return path.read_text(encoding="utf-8")


def load_split(path: str | os.PathLike) -> Split:
    """Read and validate a split file written by :func:`save_split` (or one a data pack
    carries: ``PACK#NAME``)."""
    path = Path(path)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise UserError(f"split file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read split file {path}: {exc}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"split file {path} is not valid JSON: {exc}") from None
    try:
        return _validate_record(record)
    except _Invalid as exc:
        raise UserError(f"split file {path}: {exc}") from None


def check_split(split: Split, dataset: ImageDataset) -> None:
    """Raise UserError unless ``split`` was made for exactly this version of ``dataset``."""
    known = set(dataset.ids)
    unknown = sorted({i for part in PART_NAMES for i in getattr(split, part)} - known)
    unknown += sorted(set(split.labeled) - known - set(unknown))
    unknown += sorted(set(split.unlabeled_only) - known - set(unknown))
    current = dataset.fingerprint()
    if split.fingerprint != current:
        extra = f"; {len(unknown)} of its image ids are not in the data set" if unknown else ""
        raise UserError(
            f"the split (data set {split.dataset!r}, fingerprint {split.fingerprint}) was made "
            f"for another version of the data set: {dataset.name!r} now has fingerprint "
            f"{current} (its image ids or labels differ{extra}); make a new split"
        )
    if unknown:
        raise UserError(
            f"the split names {len(unknown)} image id(s) that are not in data set "
            f"{dataset.name!r}, e.g. {', '.join(map(repr, unknown[:5]))}"
        )
    extra = set(dataset.ids[r] for r in dataset.unlabeled_only_rows())
    if set(split.unlabeled_only) != extra:
        raise UserError(
            f"the split's {len(split.unlabeled_only)} unlabeled-only images are not the "
            f"{len(extra)} images of {dataset.name!r} without a label; make a new split")
    rows = {part: dataset.rows(getattr(split, part)) for part in (*PART_NAMES, "labeled")}
    labeled_parts = [p for p, idx in rows.items() if len(dataset.labeled_rows(idx)) < len(idx)]
    if labeled_parts:
        raise UserError(
            f"the split's {', '.join(labeled_parts)} part(s) hold images without a label in "
            f"{dataset.name!r} (they may only be unlabeled training images); make a new split")
    for part, idx in rows.items():
        declared = split.class_counts.get(part)
        if declared is not None and declared != dataset.class_counts(idx):
            raise UserError(
                f"the split's class counts of its {part} part ({declared}) are not those of "
                f"its ids in {dataset.name!r} ({dataset.class_counts(idx)}); make a new split")
    in_train = set(dataset.class_names) - set(missing_classes(dataset, rows["train"]))
    uncovered = [c for c in missing_classes(dataset, rows["labeled"]) if c in in_train]
    if uncovered:
        raise UserError(
            f"the split's labeled set ({len(split.labeled)} images) has no image of "
            f"class(es) {', '.join(uncovered)}, which the train part holds; make a new split")
