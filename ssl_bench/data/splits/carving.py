"""Stratified carving of one part from a pool of images or whole groups (units)."""

from __future__ import annotations

import math

import numpy as np

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset

# ---------------------------------------------------------------------------------------
# units: images or groups


def group_codes(dataset: ImageDataset) -> np.ndarray | None:
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


def binary_labels(dataset: ImageDataset, rows: np.ndarray) -> np.ndarray:
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


def carve(dataset: ImageDataset, pool: np.ndarray, fraction: float, part: str,
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
        np.add.at(positives, unit_of, binary_labels(dataset, pool))
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
