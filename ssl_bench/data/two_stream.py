"""Two-stream batches: a fixed number of labeled and unlabeled images per step.

Each stream walks through its own reshuffled pool, pass after pass, so every labeled
image is seen once before any is seen twice. The sampler hands out indices only; the
state is a small dict, saved in checkpoints so a resumed run draws the same batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _Stream:
    def __init__(self, pool: np.ndarray, rng: np.random.Generator) -> None:
        self.pool = np.asarray(pool, dtype=np.int64)
        self.rng = rng
        self.order = self.rng.permutation(self.pool)
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        out = []
        while count > 0:
            if self.position >= len(self.order):
                self.order = self.rng.permutation(self.pool)
                self.position = 0
            chunk = self.order[self.position : self.position + count]
            self.position += len(chunk)
            count -= len(chunk)
            out.append(chunk)
        return np.concatenate(out) if out else self.pool[:0]


class TwoStreamSampler:
    """Yields index arrays: ``labeled_per_batch`` labeled first, then unlabeled."""

    def __init__(
        self,
        labeled: np.ndarray,
        unlabeled: np.ndarray,
        labeled_per_batch: int,
        unlabeled_per_batch: int,
        seed: int,
    ) -> None:
        if len(labeled) == 0:
            raise ValueError("the labeled pool is empty")
        if unlabeled_per_batch > 0 and len(unlabeled) == 0:
            raise ValueError("unlabeled images requested but the unlabeled pool is empty")
        self.labeled_per_batch = labeled_per_batch
        self.unlabeled_per_batch = unlabeled_per_batch
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
        self.labeled = _Stream(labeled, self.rng)
        self.unlabeled = _Stream(unlabeled, self.rng)

    def next(self) -> np.ndarray:
        parts = [self.labeled.take(self.labeled_per_batch)]
        if self.unlabeled_per_batch:
            parts.append(self.unlabeled.take(self.unlabeled_per_batch))
        return np.concatenate(parts)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "labeled": (self.labeled.order.copy(), self.labeled.position),
            "unlabeled": (self.unlabeled.order.copy(), self.unlabeled.position),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.labeled.order, self.labeled.position = state["labeled"]
        self.unlabeled.order, self.unlabeled.position = state["unlabeled"]
