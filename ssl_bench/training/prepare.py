"""Turn a :class:`RunConfig` into everything a run needs, before any file is written.

``prepare`` resolves the method and data set, builds (or loads and checks) the split,
loads the images once, fixes the normalisation (the pretrained weights' statistics, or
the training images') and the class weights, and computes the schedule's lengths. Every
problem is a :class:`UserError` raised here, so a bad run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_bench.config.budget import batch_split
from ssl_bench.config.budget import total_steps as budget_steps
from ssl_bench.config.run_config import RunConfig
from ssl_bench.core.errors import UserError
from ssl_bench.data.cache import BadImage, bad_image_error, file_content, load_images, with_content
from ssl_bench.data.datasets._tables import skip_bad_rows
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.images import ArrayImages, DecodingImages, DeviceImages, Images
from ssl_bench.data.packs import is_pack, read_pack_cached
from ssl_bench.data.splits import Split, check_split, load_split, make_split
from ssl_bench.data.tasks import Task, class_weights
from ssl_bench.method_kit.method import Method
from ssl_bench.models.weights import ensure_obtainable, pretrained_data_config
from ssl_bench.plugins.registry import (
    create_dataset,
    create_method,
    dataset_option_specs,
    dataset_registry,
    get_method_class,
)

#: Normalisation statistics come from at most this many (evenly spaced) training images.
STATS_IMAGES = 4096


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise UserError("--device cuda was asked for but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise UserError("--device mps was asked for but MPS is not available")
    return torch.device(name)


@dataclass
class PreparedRun:
    """Everything a run needs, validated, with no file written yet."""

    config: RunConfig
    dataset: ImageDataset
    split: Split
    method: Method
    task: Task
    device: torch.device
    in_chans: int
    images: Images  # uint8 [N, H, W, C] batches, rows of dataset.ids
    labels: torch.Tensor  # [N] long or [N, K] float
    bad_images: list[BadImage]
    cache: dict[str, Any]
    parts: dict[str, np.ndarray]  # labeled / unlabeled / val / test -> image rows
    mean: torch.Tensor
    std: torch.Tensor
    normalisation: dict[str, Any]  # where mean/std come from, recorded in config.json
    total_steps: int
    steps_per_epoch: int
    eval_every: int
    #: CSV rows left out by --skip-bad-rows: ``{"file", "row", "reason"}`` records.
    bad_rows: list[dict[str, Any]] = field(default_factory=list)


def _train_stats(images: Images,
                 train_rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std of (evenly spaced, at most STATS_IMAGES) training images."""
    rows = np.sort(train_rows)
    if len(rows) > STATS_IMAGES:
        rows = rows[np.linspace(0, len(rows) - 1, STATS_IMAGES).astype(np.int64)]
    total = total_sq = None
    count = 0
    for start in range(0, len(rows), 512):
        chunk = images.take(rows[start : start + 512]).double().div_(255.0)
        flat = chunk.reshape(-1, chunk.shape[-1])
        part, part_sq = flat.sum(0), flat.pow(2).sum(0)
        total = part if total is None else total + part
        total_sq = part_sq if total_sq is None else total_sq + part_sq
        count += flat.shape[0]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-3)
    return mean.float(), std.float()


def load_dataset(config: RunConfig) -> ImageDataset:
    """The configured data set, its options checked and recorded in ``config``.

    With ``config.skip_bad_rows`` bad CSV rows are left out silently; use
    :func:`load_dataset_with_bad_rows` to learn which.
    """
    return load_dataset_with_bad_rows(config)[0]


def load_dataset_with_bad_rows(config: RunConfig) -> tuple[ImageDataset, list[dict[str, Any]]]:
    """The configured data set and the CSV rows ``--skip-bad-rows`` left out of it.

    Without ``config.skip_bad_rows`` a bad row is an error (and the list is empty); with
    it, the rows are ``{"file", "row", "reason"}`` records, sorted by file and row.
    """
    from ssl_bench.plugins.options import coerce_options

    specs = dataset_option_specs(config.dataset)
    config.dataset_options = coerce_options(specs, config.dataset_options,
                                            f"data set {config.dataset!r}")
    root = config.data_root or os.environ.get("SSL_BENCH_DATA")
    if is_pack(root):
        return packed_dataset(root, config), []

    def build() -> ImageDataset:
        return create_dataset(config.dataset, root=Path(root).expanduser() if root else None,
                              **config.dataset_options)

    if not config.skip_bad_rows:
        return build(), []
    return skip_bad_rows(build)


def packed_dataset(path: str | os.PathLike, config: RunConfig) -> ImageDataset:
    """The data set a data pack holds, if it is the one ``config`` names with the same
    options (``--data-root`` may name a pack made by ``ssl-bench pack``)."""
    dataset, options = read_pack_cached(path)
    wanted = dataset_registry.resolve(config.dataset)
    if dataset.name != wanted:
        raise UserError(f"--data-root {path} is a pack of data set {dataset.name!r}, not "
                        f"{wanted!r} (--dataset {config.dataset})")
    if options != config.dataset_options:
        raise UserError(f"--data-root {path} was packed with the data set options {options}; "
                        f"this run asks for {config.dataset_options}: pack it again with them")
    return dataset


def apply_memory_share(config: RunConfig, device: torch.device) -> None:
    """Limit this process to ``config.memory_share`` of the GPU's memory (several runs of
    one sweep on one GPU); nothing off CUDA or without a share."""
    if config.memory_share and device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(config.memory_share, device)


def input_channels(config: RunConfig, dataset: ImageDataset) -> int:
    """Channels the backbone takes: 3 for pretrained weights, else the data set's own."""
    return 3 if config.pretrained or config.weights is not None else dataset.channels


def prepare(config: RunConfig, split: Split | None = None, quiet: bool = False) -> PreparedRun:
    """Resolve names, build the split and load images; raise UserError on any problem.

    ``config`` is not changed: the prepared run holds a resolved copy (canonical names,
    options with their defaults, the labeled amount a split file declares).
    """
    config = dataclasses.replace(config, method_options=dict(config.method_options),
                                 dataset_options=dict(config.dataset_options))
    method_cls = get_method_class(config.method)
    method = create_method(config.method, **config.method_options)
    config.method = method_cls.registry_name
    config.method_options = method.option_values
    dataset, bad_rows = load_dataset_with_bad_rows(config)
    method_cls.check_task_kind(dataset.kind, dataset.name)
    device = resolve_device(config.device)
    pretrained = config.pretrained or config.weights is not None
    if config.pretrained and config.weights is None:
        ensure_obtainable(config.backbone)  # before minutes of image decoding
    in_chans = input_channels(config, dataset)
    dataset, images, bad, cache = _load_pixels(config, dataset, in_chans, quiet)
    apply_memory_share(config, device)
    if config.images_on_device:
        if not isinstance(images, ArrayImages):
            raise UserError("--images-on-device true needs the image cache (--image-cache "
                            "true): images decoded at every step are on the host")
        images = DeviceImages(images.array, device)
        cache["on_device"] = str(device)
    usable = dataset
    if bad:
        bad_ids = {b.id for b in bad}
        usable = dataset.subset(np.array([i for i, image_id in enumerate(dataset.ids)
                                          if image_id not in bad_ids], dtype=np.int64))
    grouped = config.split_mode == "grouped"
    if split is None and config.split_file:
        split = load_split(config.split_file)
        config.labeled = split.labeled_spec
    by_labels = usable.without_content()  # a split depends on ids and labels only
    if split is None:
        split = make_split(by_labels, config.seed, config.labeled, config.split_ratios,
                           grouped=grouped)
    else:
        check_split(split, by_labels)
    if not split.val:
        raise UserError("the split has no validation images: checkpoints are chosen on them")
    if not split.test:
        where = f"split file {config.split_file}" if config.split_file else (
            f"--split-ratios {','.join(f'{r:g}' for r in config.split_ratios)}")
        raise UserError(f"the split has no test images ({where}): a run must have a test "
                        "set to report")
    labels = torch.from_numpy(np.array(dataset.labels))  # a writable copy
    labels = labels.long() if dataset.kind == "single" else labels.float()
    parts = {
        "labeled": dataset.rows(split.labeled),
        "unlabeled": dataset.rows(split.unlabeled),
        "val": dataset.rows(split.val),
        "test": dataset.rows(split.test),
    }
    train_rows = np.concatenate([parts["labeled"], parts["unlabeled"]])
    if pretrained:  # the statistics the weights were trained with (ImageNet, [-1, 1], ...)
        data_config = pretrained_data_config(config.backbone, in_chans, config.weights)
        mean, std = torch.tensor(data_config["mean"]), torch.tensor(data_config["std"])
        normalisation = {"from": f"pretrained weights ({data_config['source']})",
                         "input_range": list(data_config["input_range"])}
    else:
        mean, std = _train_stats(images, train_rows)
        normalisation = {"from": "training images (at most 4,096, evenly spaced)"}
    task = _weighted_task(config, dataset, parts["labeled"])
    if config.epoch_length == "labeled":  # the official TwoStreamBatchSampler's __len__
        steps_per_epoch = max(1, len(parts["labeled"]) // config.labeled_batch_size)
    else:
        steps_per_epoch = max(1, math.ceil(len(train_rows) / config.batch_size))
    labeled_per_step, _ = batch_split(config, method.uses_unlabeled, len(parts["unlabeled"]))
    total_steps = budget_steps(config, steps_per_epoch, len(parts["labeled"]), labeled_per_step)
    if config.eval_every:
        eval_every = config.eval_every
    elif config.epochs is not None:
        eval_every = steps_per_epoch
    else:
        eval_every = max(1, total_steps // 10)
    return PreparedRun(
        config=config, dataset=dataset, split=split, method=method, task=task, device=device,
        in_chans=in_chans, images=images, labels=labels, bad_images=bad, cache=cache,
        parts=parts, mean=mean, std=std, normalisation=normalisation,
        total_steps=total_steps, steps_per_epoch=steps_per_epoch, eval_every=min(eval_every,
        total_steps), bad_rows=bad_rows,
    )


def _load_pixels(config: RunConfig, dataset: ImageDataset, in_chans: int, quiet: bool,
                 ) -> tuple[ImageDataset, ArrayImages | DecodingImages, list[BadImage],
                            dict[str, Any]]:
    """The images of a run (cache, or decoding every step), their bad ones, how they are
    held, and ``dataset`` with its files' content read (so its fingerprint covers it).

    Decoding every step reads every file once too: missing files, FIFOs and devices are
    reported (or skipped with ``--skip-bad-images``) before training, not in its middle.
    """
    workers = config.workers or None
    if dataset.files is not None and not config.image_cache:
        content = file_content(dataset, workers)
        bad = content.bad_images(dataset)
        if bad and not config.skip_bad_images:
            raise bad_image_error(dataset, bad)
        images: ArrayImages | DecodingImages = DecodingImages(
            dataset.files, config.image_size, in_chans, workers=config.workers or 2)
        return (with_content(dataset, content), images, bad,
                {"mode": "decode every step", "files_read_seconds": round(content.seconds, 2)})
    cached = load_images(dataset, config.image_size, in_chans,
                         Path(config.cache_dir) if config.cache_dir else None,
                         skip_bad=config.skip_bad_images, workers=workers, quiet=quiet)
    cache: dict[str, Any] = {}
    if "pack" in dataset.info:
        cache = {"mode": "data pack", **dataset.info["pack"]}
    if cached.path is not None and cached.content is not None:
        dataset = with_content(dataset, cached.content)
        cache = {"mode": "decoded-image cache", "path": str(cached.path),
                 "built_now": cached.built, "build_seconds": round(cached.seconds, 2),
                 "files_read_seconds": round(cached.content.seconds, 2)}
    return dataset, ArrayImages(cached.array), cached.bad, cache


def _weighted_task(config: RunConfig, dataset: ImageDataset, labeled_rows: np.ndarray) -> Task:
    """The data set's task with class weights counted on the *labeled training* images.

    (The official SRC-MT code counts all 10,015 HAM10000 images, test images included.)
    """
    task = dataset.task()
    schemes = {"--class-weights": config.class_weights,
               "--consistency-class-weights": config.consistency_class_weights}
    for flag, scheme in schemes.items():
        if scheme != "none" and task.kind != "single":
            raise UserError(f"{flag} {scheme} applies to single-label data sets only; "
                            f"{dataset.name} is multi-label (use none)")
    labels = dataset.labels[labeled_rows]
    return Task(task.kind, task.num_classes,
                class_weights(labels, task.num_classes, config.class_weights),
                class_weights(labels, task.num_classes, config.consistency_class_weights))
