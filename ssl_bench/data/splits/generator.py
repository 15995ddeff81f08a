"""The one split generator: train/val/test parts carved from the pool, and the labeled
subset a prefix of the nested order."""

from __future__ import annotations

import warnings

import numpy as np

from ssl_bench.core.errors import UserError
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.labeled import labeled_tag
from ssl_bench.data.splits.carving import carve, group_codes
from ssl_bench.data.splits.nested import labeled_head, nested_labeled_order
from ssl_bench.data.splits.record import (
    DEFAULT_RATIOS,
    EVAL_PARTS,
    PART_NAMES,
    Split,
    check_labeled,
    check_ratios,
    labeled_count,
    missing_classes,
)

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
        if len(dataset.labeled_rows(rows)) < len(rows):
            raise UserError(f"{dataset.name}: the official {part} part holds images without a "
                            "label")
        if taken[rows].any():
            raise UserError(f"{dataset.name}: the official parts overlap (at the {part} part)")
        taken[rows] = True
    if "train" in official:
        pool = official["train"]
        left_out = len(dataset.labeled_rows(np.flatnonzero(~taken)))
        if left_out:
            warnings.warn(
                f"{dataset.name}: {left_out} image(s) are in no official part and are not used",
                stacklevel=3,
            )
    else:  # images nobody labeled are never carved into a part (see make_split)
        pool = dataset.labeled_rows(np.flatnonzero(~taken))
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
        pool, parts[part] = carve(
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


#: A validation or test part with fewer images than this gets a warning: its metrics (and
#: for validation, the checkpoint chosen on them) are too noisy to compare methods.
SMALL_PART = 20


def _warn_small_evaluation_parts(dataset: ImageDataset, parts: dict[str, np.ndarray]) -> None:
    """Warn about a val/test part below :data:`SMALL_PART` images or missing a class
    (whose per-class AUC it then cannot measure)."""
    for part in EVAL_PARTS:
        rows = parts[part]
        if len(rows) == 0:
            continue
        if len(rows) < SMALL_PART:
            warnings.warn(f"{dataset.name}: the {part} part holds only {len(rows)} images "
                          f"(fewer than {SMALL_PART}); its metrics are noisy", stacklevel=3)
        absent = missing_classes(dataset, rows)
        if absent:
            kind = "image" if dataset.kind == "single" else "positive image"
            warnings.warn(f"{dataset.name}: the {part} part has no {kind} of class(es) "
                          f"{', '.join(absent)}; their AUC cannot be measured on it, and the "
                          "mean AUC leaves them out", stacklevel=3)


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
    Images nobody labeled (``dataset.unlabeled_only``) stay out of every part: they are
    unlabeled training images only (``Split.unlabeled_only``), so ``labeled`` counts
    annotated images and the val/test parts are the same with or without them.
    ``grouped`` keeps each of ``dataset.groups`` in one part (ignored without groups);
    ``grouped=False`` is the ungrouped random split of the SRC-MT paper.
    """
    ratios = check_ratios(ratios)
    spec = check_labeled(labeled)
    seed = int(seed)
    codes = group_codes(dataset) if grouped else None
    parts, eval_parts = _partition(dataset, ratios, seed, codes)
    train = parts["train"]
    count = labeled_count(spec, len(train))
    order = nested_labeled_order(dataset, train, seed)
    chosen = np.sort(order[:count])

    _warn_small_evaluation_parts(dataset, parts)
    absent_in_train = missing_classes(dataset, train)
    if absent_in_train:
        warnings.warn(
            f"{dataset.name}: classes {', '.join(absent_in_train)} have no image in the "
            "training part, so no labeled example either",
            stacklevel=2,
        )
    missing = [c for c in missing_classes(dataset, chosen) if c not in absent_in_train]
    if missing:
        needed = len(labeled_head(dataset, train, seed))
        raise UserError(
            f"the labeled set ({count} images, --labeled {labeled_tag(spec)}) misses "
            f"class(es) {', '.join(missing)}; label more images (at least one per class: "
            f"{needed} or more)"
        )
    ids = np.asarray(dataset.ids)
    rows = {**parts, "labeled": chosen}
    extra = dataset.unlabeled_only_rows()
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
        card=dict(dataset.card),
        group_counts=(
            {} if codes is None
            else {part: int(len(np.unique(codes[idx]))) for part, idx in rows.items()}
        ),
        unlabeled_only=ids[extra].tolist(),
    )
