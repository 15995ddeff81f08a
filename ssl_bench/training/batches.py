"""Training batches: two-stream rows -> pixels on the device -> the method's named views.

:class:`BatchMaker` owns the index sampler (labeled rows first, then unlabeled), the
image pipeline (uint8 -> float, normalisation), the view maker and the generator the
augmentations draw from, and turns each step's rows into a
:class:`~ssl_bench.method_kit.method.Batch` carrying every view and the rows' positions
in their pools.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch

from ssl_bench.config.budget import batch_split
from ssl_bench.core import distributed
from ssl_bench.data.perturb import ImagePipeline, Perturbation
from ssl_bench.data.two_stream import TwoStreamSampler
from ssl_bench.method_kit.method import Batch, Method
from ssl_bench.training.prepare import PreparedRun
from ssl_bench.training.views import ViewMaker

#: Seed offset between ranks' augmentation generators (a prime: no two ranks collide).
RANK_SEED_STRIDE = 1_000_003

Timer = Callable[[str], AbstractContextManager[Any]]


def batch_composition(prepared: PreparedRun, method: Method) -> tuple[int, int]:
    """(labeled, unlabeled) rows per step (see :func:`ssl_bench.config.budget.batch_split`)."""
    return batch_split(prepared.config, method.uses_unlabeled,
                       len(prepared.parts["unlabeled"]))


class BatchMaker:
    """Makes the training batches of one run (see module docstring)."""

    def __init__(self, prepared: PreparedRun, method: Method, device: torch.device) -> None:
        config = prepared.config
        labeled, unlabeled = prepared.parts["labeled"], prepared.parts["unlabeled"]
        num_labeled, num_unlabeled = batch_composition(prepared, method)
        # Every rank draws the same global batch and keeps its own shard of each stream.
        self.world = distributed.current()
        distributed.check_batch(num_labeled, num_unlabeled, self.world)
        self.sampler = TwoStreamSampler(labeled, unlabeled, num_labeled, num_unlabeled,
                                        seed=config.seed)
        self.global_labeled = num_labeled
        self.shards = (distributed.shard(num_labeled, self.world),
                       distributed.shard(num_unlabeled, self.world))
        self.num_labeled, num_unlabeled = (num_labeled // self.world.size,
                                           num_unlabeled // self.world.size)
        hflip = config.hflip
        if hflip is None:
            hflip = bool(prepared.dataset.recommended.get("hflip", True))
        self.pipeline = ImagePipeline(
            prepared.mean, prepared.std,
            Perturbation(config.rotation, config.translate, hflip, config.noise_std),
            device, channels_last=config.channels_last,
        )
        self.view_maker = ViewMaker(method.view_specs(), self.pipeline, config.method,
                                    num_unlabeled > 0)
        # dataset row -> position in its pool (the indices a Batch carries)
        self.pool_position = np.full(len(prepared.labels), -1, dtype=np.int64)
        for pool in (labeled, unlabeled):
            self.pool_position[pool] = np.arange(len(pool))
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed + 7919 + RANK_SEED_STRIDE * self.world.rank)
        self.images = prepared.images
        self.pin = device.type == "cuda"
        self.labels = prepared.labels.to(device)
        self.device = device
        #: Rows of the last batch's unlabeled part (their hidden labels score pseudo-labels).
        self.unlabeled_rows = np.zeros(0, dtype=np.int64)
        #: Which rows have a hidden label to score against (None: all; images nobody
        #: labeled have none).
        extra = prepared.dataset.unlabeled_only
        self.scorable = None if extra is None else torch.from_numpy(~extra).to(device)

    def local_rows(self, rows: np.ndarray) -> np.ndarray:
        """This rank's shard of a global batch's labeled and unlabeled rows (all of them
        for a single process)."""
        if not self.world.distributed:
            return rows
        labeled, unlabeled = rows[: self.global_labeled], rows[self.global_labeled:]
        return np.concatenate([labeled[self.shards[0]], unlabeled[self.shards[1]]])

    def next(self, timer: Timer) -> Batch:
        """Sample rows, fetch their pixels (pinned, on the way to the device), make views."""
        with timer("data"):
            rows = self.local_rows(self.sampler.next())
            images = self.images.take(rows)
            if self.pin and images.device.type == "cpu":  # (not with --images-on-device)
                images = images.pin_memory()
            targets = self.labels[torch.from_numpy(rows[: self.num_labeled]).to(self.device)]
            positions = torch.from_numpy(self.pool_position[rows]).to(self.device)
        with timer("perturb"):
            views = self.view_maker(images, self.num_labeled, self.generator)
        self.unlabeled_rows = rows[self.num_labeled:]
        return Batch(views, targets, self.num_labeled, positions[: self.num_labeled],
                     positions[self.num_labeled:])
