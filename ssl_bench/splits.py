"""One split generator for every data set: train/val/test parts plus a labeled subset.

Parts
    ``make_split`` cuts the images into train/val/test by ``ratios`` (default 0.7/0.1/0.2).
    Evaluation parts the data set defines itself (``dataset.predefined``, e.g. an official
    test set) are used as they are; the other images form the *pool*, and the parts that
    are missing are carved from it with the ratios rescaled (an official test part leaves
    train:val = 0.7:0.1, i.e. 7/8 and 1/8 of the pool). ``Split.eval_parts`` records which
    part is ``"official"``, ``"carved"`` or ``"none"`` (ratio 0). The test part is carved
    first, then the validation part from what is left; the rest is the training part.

Stratification
    Each carve works on *units*: single images, or whole groups (patients, lesions) when
    ``grouped`` is on and the data set has ``groups`` -- then every group lies in exactly
    one part.

    * Single-label: each unit gets one class (an image its label; a group its most
      frequent label, ties going to the rarer class). Every class is a stratum whose image
      quota is its share of the part (largest-remainder rounding, so the quotas add up to
      the part's size); in each stratum the units are shuffled and the shortest prefix
      whose image count is closest to the quota goes to the part. Image counts per class
      therefore follow the ratios even when groups hold different numbers of images.
    * Multi-label: iterative stratification (Sechidis et al. 2011) from the maintained
      ``iterative-stratification`` package (``MultilabelStratifiedShuffleSplit``) on the
      unit table: image labels, or a group's OR of its images' labels. For groups, binary
      columns "holds at least 2, 4, 8, ... images" and "holds at least 2, 4, 8, ... images
      positive for class k" are stratified as well, so big and small groups spread evenly
      and image counts per class, not only group counts, follow the ratios.
    * Classes with fewer than two units in the pool cannot be stratified: single-label
      ones are pooled into one unstratified stratum, multi-label ones simply land in one
      part; either way a warning names them.

Labeled subsets
    are *nested* for a seed: the training part is put in one seeded order whose first
    images cover every class present in training (rarest first for multi-label) and whose
    every prefix is near-stratified (classes interleave in proportion; multi-label images
    are stratified by their rarest positive class); the labeled set is a prefix of it, so
    the 5% set lies inside the 10% set inside the 20% set. Train/val/test never depend on
    the labeled fraction.

Split files
    ``save_split`` writes a self-describing JSON file (format version, data set name and
    fingerprint, seed, ratios, grouping, labeled spec, evaluation parts, sizes, class and
    group counts, and the ids of every part); ``load_split`` validates one and
    ``check_split`` checks it against a data set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_json
from .datasets.base import ImageDataset
from .errors import UserError
from .labeled import labeled_tag, parse_labeled  # noqa: F401  (re-exported)

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.1, 0.2)
#: Version of the split file layout written by :func:`save_split`.
FORMAT_VERSION = 1
PART_NAMES: tuple[str, str, str] = ("train", "val", "test")
EVAL_PARTS: tuple[str, str] = ("val", "test")
#: Origins of an evaluation part in ``Split.eval_parts``.
EVAL_ORIGINS: tuple[str, str, str] = ("official", "carved", "none")


def _default_eval_parts() -> dict[str, str]:
    return {"val": "carved", "test": "carved"}


@dataclass
class Split:
    """Image ids of each part, with everything needed to check and reproduce them."""

    dataset: str
    fingerprint: str
    seed: int
    ratios: tuple[float, float, float]
    labeled_spec: float | int
    train: list[str]
    val: list[str]
    test: list[str]
    labeled: list[str]
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Whether groups (patients/lesions) were kept whole, i.e. ``grouped`` was asked for
    #: *and* the data set has groups.
    grouped: bool = False
    #: ``{"val": "official" | "carved" | "none", "test": ...}``.
    eval_parts: dict[str, str] = field(default_factory=_default_eval_parts)
    #: Distinct groups per part (train, val, test, labeled); empty when not grouped.
    group_counts: dict[str, int] = field(default_factory=dict)

    @property
    def unlabeled(self) -> list[str]:
        chosen = set(self.labeled)
        return [i for i in self.train if i not in chosen]

    @property
    def labeled_kind(self) -> str:
        return "fraction" if isinstance(self.labeled_spec, float) else "count"

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "labeled": len(self.labeled),
            "unlabeled": len(self.train) - len(self.labeled),
        }

    @property
    def digest(self) -> str:
        """A short hash of the ids of every part: equal digests, identical splits."""
        ids = json.dumps([self.train, self.val, self.test, self.labeled])
        return hashlib.sha256(ids.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The split file's content (ids last, so the header reads first)."""
        return {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "seed": self.seed,
            "ratios": list(self.ratios),
            "grouped": self.grouped,
            "labeled_spec": self.labeled_spec,
            "labeled_kind": self.labeled_kind,
            "eval_parts": dict(self.eval_parts),
            "sizes": self.sizes(),
            "class_counts": {part: dict(c) for part, c in self.class_counts.items()},
            "group_counts": dict(self.group_counts),
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "labeled": list(self.labeled),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Split:
        """Inverse of :meth:`to_dict`; keys added in later versions get their defaults.

        Structure is not validated here: files come in through :func:`load_split`.
        """
        spec = record["labeled_spec"]
        kind = record.get("labeled_kind")
        if kind == "fraction" or (kind is None and isinstance(spec, float)):
            spec = float(spec)
        else:
            spec = int(spec)
        return cls(
            dataset=record["dataset"],
            fingerprint=record["fingerprint"],
            seed=int(record["seed"]),
            ratios=tuple(float(r) for r in record["ratios"]),  # type: ignore[arg-type]
            labeled_spec=spec,
            train=list(record["train"]),
            val=list(record["val"]),
            test=list(record["test"]),
            labeled=list(record["labeled"]),
            class_counts={p: dict(c) for p, c in record.get("class_counts", {}).items()},
            grouped=bool(record.get("grouped", False)),
            eval_parts=dict(record.get("eval_parts", _default_eval_parts())),
            group_counts=dict(record.get("group_counts", {})),
        )


# ---------------------------------------------------------------------------------------
# checks


def _check_ratios(ratios: Any) -> tuple[float, float, float]:
    """Three finite non-negative numbers summing to 1 with train > 0; returned as floats."""
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise UserError(
            f"split ratios must be three numbers (train, val, test): {ratios}"
        ) from None
    if (
        len(values) != 3
        or not all(math.isfinite(r) for r in values)
        or any(r < 0 for r in values)
        or values[0] <= 0
    ):
        raise UserError(f"split ratios must be three non-negative numbers, train > 0: {ratios}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise UserError(f"split ratios must sum to 1, got {ratios} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def _check_labeled(spec: Any) -> float | int:
    if isinstance(spec, bool) or not isinstance(spec, (int, float, np.integer, np.floating)):
        raise UserError(f"--labeled must be a fraction in (0, 1] or a count, got {spec!r}")
    if isinstance(spec, (float, np.floating)):
        if not (math.isfinite(spec) and 0 < spec <= 1):
            raise UserError(f"--labeled fraction must lie in (0, 1], got {spec:g}")
        return float(spec)
    if spec < 1:
        raise UserError(f"--labeled count must be at least 1, got {spec}")
    return int(spec)


def _labeled_count(spec: float | int, num_train: int) -> int:
    if isinstance(spec, float):
        return max(1, int(round(spec * num_train)))
    if spec > num_train:
        raise UserError(
            f"--labeled {spec} asks for more labeled images than the training part holds "
            f"({num_train})"
        )
    return int(spec)


def _missing_classes(dataset: ImageDataset, indices: np.ndarray) -> list[str]:
    counts = dataset.class_counts(indices)
    return [name for name, count in counts.items() if count == 0]


# ---------------------------------------------------------------------------------------
# units: images or groups


def _group_codes(dataset: ImageDataset) -> np.ndarray | None:
    """An int code per image for its group; images without a group are their own group."""
    if dataset.groups is None:
        return None
    codes: dict[tuple[str, str], int] = {}
    out = np.empty(len(dataset), dtype=np.int64)
    for row, (image_id, group) in enumerate(zip(dataset.ids, dataset.groups, strict=True)):
        missing = group is None or (isinstance(group, float) and math.isnan(group))
        key = ("image", image_id) if missing or str(group) == "" else ("group", str(group))
        out[row] = codes.setdefault(key, len(codes))
    return out


def _binary_labels(dataset: ImageDataset, rows: np.ndarray) -> np.ndarray:
    return np.asarray(dataset.labels[rows]) > 0.5


def _unit_single_labels(dataset: ImageDataset, rows: np.ndarray, unit_of: np.ndarray,
                        n_units: int) -> np.ndarray:
    """A unit's most frequent class; ties go to the class that is rarer in ``rows``."""
    k = dataset.num_classes
    labels = np.asarray(dataset.labels[rows], dtype=np.int64)
    counts = np.zeros((n_units, k))
    np.add.at(counts, (unit_of, labels), 1.0)
    frequency = np.bincount(labels, minlength=k)
    rarity = np.empty(k)
    rarity[np.argsort(frequency, kind="stable")] = np.arange(k)[::-1]  # rarest: k - 1
    return np.argmax(counts + 0.5 * rarity / k, axis=1)  # bonus < 1 only breaks ties


def _largest_remainder(quotas: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integers close to ``quotas`` that add up to ``total`` (ties broken at random)."""
    base = np.floor(quotas)
    extra = int(total - base.sum())
    if extra > 0:
        order = np.lexsort((rng.random(len(quotas)), -(quotas - base)))
        base[order[:extra]] += 1
    return base


def _carve_single(strata: np.ndarray, sizes: np.ndarray, fraction: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Units (with ``sizes`` images) for a part of ``fraction`` of the images, per stratum."""
    names, inverse = np.unique(strata, return_inverse=True)
    images = np.bincount(inverse, weights=sizes, minlength=len(names))
    quotas = _largest_remainder(fraction * images, int(round(fraction * sizes.sum())), rng)
    chosen = np.zeros(len(strata), dtype=bool)
    for stratum in range(len(names)):
        members = rng.permutation(np.flatnonzero(inverse == stratum))
        reached = np.concatenate([[0], np.cumsum(sizes[members])])
        take = int(np.argmin(np.abs(reached - quotas[stratum])))
        chosen[members[:take]] = True
    return chosen


def _size_columns(sizes: np.ndarray) -> np.ndarray:
    """Indicator columns "at least 2, 4, 8, ... images" that split the units."""
    columns = []
    threshold = 2
    while threshold <= sizes.max():
        column = sizes >= threshold
        if 0 < column.sum() < len(sizes):
            columns.append(column)
        threshold *= 2
    return np.stack(columns, axis=1) if columns else np.zeros((len(sizes), 0), dtype=bool)


def _carve_multi(table: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Iterative stratification of the unit table; True for units in the part."""
    try:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
    except ImportError:
        raise UserError(
            "multi-label splits need the iterative-stratification package: "
            "pip install iterative-stratification"
        ) from None

    table = np.asarray(table, dtype=bool)
    if table.shape[1] < 2:  # the library wants a multilabel-indicator table
        table = np.concatenate([table, ~table[:, :1]], axis=1)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    _, part = next(splitter.split(np.zeros((len(table), 1)), table))
    chosen = np.zeros(len(table), dtype=bool)
    chosen[part] = True
    return chosen


def _carve(dataset: ImageDataset, pool: np.ndarray, fraction: float, part: str,
           codes: np.ndarray | None, seed_state: int,
           rare: dict[str, set[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` rows into (rest, part) with ``fraction`` of the images in the part."""
    if codes is None:
        unit_of = np.arange(len(pool))
    else:
        _, unit_of = np.unique(codes[pool], return_inverse=True)
    n_units = int(unit_of.max()) + 1 if len(pool) else 0
    what = "groups" if codes is not None else "images"
    if n_units < 2:
        raise UserError(
            f"{dataset.name}: cannot carve the {part} part from {n_units} {what}; "
            "the data set is too small for these split ratios"
        )
    sizes = np.bincount(unit_of, minlength=n_units)
    if dataset.kind == "single":
        strata = _unit_single_labels(dataset, pool, unit_of, n_units)
        units_per_class = np.bincount(strata, minlength=dataset.num_classes)
        few = np.flatnonzero(units_per_class == 1)
        if len(few):
            strata = np.where(np.isin(strata, few), -1, strata)  # one unstratified stratum
        rng = np.random.default_rng(seed_state)
        chosen = _carve_single(strata, sizes.astype(float), fraction, rng)
    else:
        positives = np.zeros((n_units, dataset.num_classes), dtype=np.int64)
        np.add.at(positives, unit_of, _binary_labels(dataset, pool))
        table = positives > 0  # a group's labels: the OR of its images' labels
        units_per_class = table.sum(axis=0)
        few = np.flatnonzero(units_per_class == 1)
        if codes is not None:
            # "at least 2, 4, ... images" and "at least 2, 4, ... positive images of
            # class k": image counts, not only group counts, follow the ratios
            extra = [_size_columns(positives[:, k]) for k in range(dataset.num_classes)]
            table = np.concatenate([table, _size_columns(sizes), *extra], axis=1)
        try:
            chosen = _carve_multi(table, fraction, seed_state)
        except ValueError as exc:  # e.g. too few units for the requested sizes
            raise UserError(
                f"{dataset.name}: cannot carve the {part} part ({fraction:.3g} of "
                f"{n_units} {what}): {exc}"
            ) from None
    for klass in few:
        rare.setdefault(dataset.class_names[klass], set()).add(part)
    in_part = chosen[unit_of]
    return pool[~in_part], pool[in_part]


# ---------------------------------------------------------------------------------------
# train/val/test


def _rows_of(dataset: ImageDataset, ids: list[str], what: str) -> np.ndarray:
    position = {image_id: row for row, image_id in enumerate(dataset.ids)}
    unknown = [i for i in ids if i not in position]
    if unknown:
        raise UserError(
            f"{dataset.name}: {what} names {len(unknown)} image id(s) that are not in the "
            f"data set, e.g. {', '.join(map(repr, unknown[:5]))}"
        )
    rows = np.array([position[i] for i in ids], dtype=np.int64)
    if len(np.unique(rows)) != len(rows):
        raise UserError(f"{dataset.name}: {what} lists some image ids more than once")
    return rows


def _partition(
    dataset: ImageDataset, ratios: tuple[float, float, float], seed: int,
    codes: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Sorted rows of train/val/test and the origin of each evaluation part."""
    official: dict[str, np.ndarray] = {}
    for part in PART_NAMES:
        if part in dataset.predefined:
            official[part] = _rows_of(
                dataset, list(dataset.predefined[part]), f"the official {part} part"
            )
    taken = np.zeros(len(dataset), dtype=bool)
    for part, rows in official.items():
        if taken[rows].any():
            raise UserError(f"{dataset.name}: the official parts overlap (at the {part} part)")
        taken[rows] = True
    if "train" in official:
        pool = official["train"]
        left_out = int((~taken).sum())
        if left_out:
            warnings.warn(
                f"{dataset.name}: {left_out} image(s) are in no official part and are not used",
                stacklevel=3,
            )
    else:
        pool = np.flatnonzero(~taken)
    if codes is not None and official:
        for part, rows in official.items():
            if part == "train":
                continue
            shared = np.intersect1d(codes[rows], codes[pool])
            if len(shared):
                warnings.warn(
                    f"{dataset.name}: {len(shared)} group(s) have images both in the official "
                    f"{part} part and among the images left for the other parts",
                    stacklevel=3,
                )

    ratio = dict(zip(PART_NAMES, ratios, strict=True))
    eval_parts = {
        part: "official" if part in official else "carved" if ratio[part] > 0 else "none"
        for part in EVAL_PARTS
    }
    carved = [part for part in ("test", "val") if eval_parts[part] == "carved"]
    remaining = ratio["train"] + sum(ratio[part] for part in carved)
    parts = dict(official)
    rare: dict[str, set[str]] = {}
    for step, part in enumerate(carved):
        state = int(np.random.SeedSequence([seed, 1, step]).generate_state(1)[0])
        pool, parts[part] = _carve(
            dataset, pool, ratio[part] / remaining, part, codes, state, rare
        )
        remaining -= ratio[part]
    parts["train"] = pool
    for part in EVAL_PARTS:
        parts.setdefault(part, pool[:0])
    if rare:
        detail = "; ".join(f"{name} ({', '.join(sorted(p))})" for name, p in sorted(rare.items()))
        units = "groups" if codes is not None else "images"
        warnings.warn(
            f"{dataset.name}: class(es) with fewer than two {units} could not be stratified "
            f"when carving these parts, so they were split at random: {detail}",
            stacklevel=3,
        )
    if len(parts["train"]) == 0:
        raise UserError(f"{dataset.name}: the training part is empty")
    return {part: np.sort(parts[part]) for part in PART_NAMES}, eval_parts


# ---------------------------------------------------------------------------------------
# labeled subsets


def _rank_within(strata: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions share its stratum."""
    order = np.argsort(strata, kind="stable")
    ordered = strata[order]
    rank = np.empty(len(strata))
    rank[order] = np.arange(len(strata)) - np.searchsorted(ordered, ordered, side="left")
    return rank


def nested_labeled_order(dataset: ImageDataset, train: np.ndarray, seed: int) -> np.ndarray:
    """Order ``train`` so every prefix is a near-stratified labeled set (see module doc).

    The head covers every class present in ``train`` (one image per class for
    single-label; a greedy cover, rarest class first, for multi-label); then images of
    each stratum come at evenly spaced, jittered positions (image ``r`` of a stratum of
    ``n`` at ``(r + u) / n``), so classes interleave in proportion. Multi-label strata are
    an image's rarest positive class (or "no positive").
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    shuffled = rng.permutation(np.asarray(train, dtype=np.int64))
    if dataset.kind == "single":
        strata = np.asarray(dataset.labels[shuffled], dtype=np.int64)
        rank = _rank_within(strata)
        head_mask = rank == 0
    else:
        labels = _binary_labels(dataset, shuffled)
        frequency = labels.sum(axis=0)
        by_rarity = np.argsort(frequency, kind="stable")  # rarest first
        position = np.empty(dataset.num_classes, dtype=np.int64)
        position[by_rarity] = np.arange(dataset.num_classes)
        strata = np.where(labels, position[None, :], dataset.num_classes).min(axis=1)
        rank = _rank_within(strata)
        head_mask = np.zeros(len(shuffled), dtype=bool)
        covered = np.zeros(dataset.num_classes, dtype=bool)
        for klass in by_rarity:
            if covered[klass] or frequency[klass] == 0:
                continue
            first = int(np.flatnonzero(labels[:, klass])[0])
            head_mask[first] = True
            covered |= labels[first]
    counts = np.bincount(strata)
    key = (rank + rng.random(len(shuffled))) / np.maximum(counts[strata], 1)
    head = shuffled[head_mask][np.argsort(key[head_mask], kind="stable")]
    tail = shuffled[~head_mask][np.argsort(key[~head_mask], kind="stable")]
    return np.concatenate([head, tail])


# ---------------------------------------------------------------------------------------
# the generator


def make_split(
    dataset: ImageDataset,
    seed: int = 0,
    labeled: float | int = 0.2,
    ratios: tuple[float, float, float] = DEFAULT_RATIOS,
    grouped: bool = True,
) -> Split:
    """Split ``dataset`` into train/val/test and choose the nested labeled subset.

    ``labeled`` is a fraction in (0, 1] of the training part or a count of images.
    ``grouped`` keeps each of ``dataset.groups`` in one part (ignored without groups);
    ``grouped=False`` is the ungrouped random split of the SRC-MT paper.
    """
    ratios = _check_ratios(ratios)
    spec = _check_labeled(labeled)
    seed = int(seed)
    codes = _group_codes(dataset) if grouped else None
    parts, eval_parts = _partition(dataset, ratios, seed, codes)
    train = parts["train"]
    count = _labeled_count(spec, len(train))
    order = nested_labeled_order(dataset, train, seed)
    chosen = np.sort(order[:count])

    absent_in_train = _missing_classes(dataset, train)
    if absent_in_train:
        warnings.warn(
            f"{dataset.name}: classes {', '.join(absent_in_train)} have no image in the "
            "training part, so no labeled example either",
            stacklevel=2,
        )
    missing = [c for c in _missing_classes(dataset, chosen) if c not in absent_in_train]
    if missing:
        needed = len(_labeled_head(dataset, train, seed))
        raise UserError(
            f"the labeled set ({count} images, --labeled {labeled_tag(spec)}) misses "
            f"class(es) {', '.join(missing)}; label more images (at least one per class: "
            f"{needed} or more)"
        )
    ids = np.asarray(dataset.ids)
    rows = {**parts, "labeled": chosen}
    return Split(
        dataset=dataset.name,
        fingerprint=dataset.fingerprint(),
        seed=seed,
        ratios=ratios,
        labeled_spec=spec,
        train=ids[parts["train"]].tolist(),
        val=ids[parts["val"]].tolist(),
        test=ids[parts["test"]].tolist(),
        labeled=ids[chosen].tolist(),
        class_counts={part: dataset.class_counts(idx) for part, idx in rows.items()},
        grouped=codes is not None,
        eval_parts=eval_parts,
        group_counts=(
            {} if codes is None
            else {part: int(len(np.unique(codes[idx]))) for part, idx in rows.items()}
        ),
    )


def _labeled_head(dataset: ImageDataset, train: np.ndarray, seed: int) -> np.ndarray:
    """The shortest prefix of the nested order that covers every class in ``train``."""
    order = nested_labeled_order(dataset, train, seed)
    if dataset.kind == "single":
        present = len(np.unique(dataset.labels[train]))
        return order[:present]
    labels = _binary_labels(dataset, order)
    needed = labels.any(axis=0)
    covered = np.logical_or.accumulate(labels, axis=0)
    done = np.flatnonzero((covered | ~needed).all(axis=1))
    return order[: int(done[0]) + 1] if len(done) else order


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
        _check_ratios(ratios)
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
    sets = {part: set(values) for part, values in ids.items()}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
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
        expected = _labeled_count(float(spec), len(ids["train"]))
        if len(ids["labeled"]) != expected:
            raise _Invalid(
                f"labeled fraction {spec} of the {len(ids['train'])} train images is "
                f"{expected} images, but the labeled part lists {len(ids['labeled'])}")
    sizes = _need(record, "sizes", dict, "an object")
    for part, values in ids.items():
        if sizes.get(part) != len(values):
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


def load_split(path: str | os.PathLike) -> Split:
    """Read and validate a split file written by :func:`save_split`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
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
    rows = {part: dataset.rows(getattr(split, part)) for part in (*PART_NAMES, "labeled")}
    for part, idx in rows.items():
        declared = split.class_counts.get(part)
        if declared is not None and declared != dataset.class_counts(idx):
            raise UserError(
                f"the split's class counts of its {part} part ({declared}) are not those of "
                f"its ids in {dataset.name!r} ({dataset.class_counts(idx)}); make a new split")
    in_train = set(dataset.class_names) - set(_missing_classes(dataset, rows["train"]))
    uncovered = [c for c in _missing_classes(dataset, rows["labeled"]) if c in in_train]
    if uncovered:
        raise UserError(
            f"the split's labeled set ({len(split.labeled)} images) has no image of "
            f"class(es) {', '.join(uncovered)}, which the train part holds; make a new split")
