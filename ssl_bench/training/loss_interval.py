"""The training losses between two evaluations.

Each step's loss terms are summed on the device; every few steps the sums are read back
(one synchronisation, averaged over DDP ranks) for the progress bar and the divergence
check; at the next evaluation their mean over the interval's steps goes into the history
row. A checkpoint taken between two evaluations (Ctrl-C, SIGTERM) holds both parts, so a
resumed run adds the same numbers in the same order as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import torch

from ssl_bench.core import distributed


class LossInterval:
    """Loss sums since the last evaluation: read back (``sums``, ``count`` steps) and
    still on the device (``pending``, ``pending_count`` steps)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_count = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """One step's (detached) loss terms."""
        for name, value in losses.items():
            self.pending[name] = self.pending.get(name, 0) + value
        self.count += 1
        self.pending_count += 1

    def read_back(self) -> dict[str, float]:
        """Move the pending sums off the device; each term's mean over those steps."""
        pending = distributed.average_over_ranks(self.pending)
        means = {name: float(value) / self.pending_count for name, value in pending.items()}
        for name, value in pending.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.pending, self.pending_count = {}, 0
        return means

    def means(self) -> dict[str, float]:
        """Each term's mean over the interval's steps read back so far."""
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count, "pending": dict(self.pending),
                "pending_count": self.pending_count}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict` (none: a checkpoint taken at an evaluation, where
        a new interval starts)."""
        state = state or {}
        self.sums = dict(state.get("sums", {}))
        self.count = state.get("count", 0)
        self.pending = dict(state.get("pending", {}))
        self.pending_count = state.get("pending_count", 0)
