"""What the engine tells a method about the run, and what it records of a method's logs.

:func:`method_info` builds the :class:`~ssl_bench.method_kit.method.MethodInfo` a method's ``setup``
receives. :class:`StepLogs` accumulates a method's per-step logs (device tensors, no
synchronisation per step) and the accuracy of its pseudo-labels against the hidden
labels of the unlabeled rows -- measured here, for the history only: the method never
sees those labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ssl_bench.method_kit.method import MethodInfo, StepOutput

if TYPE_CHECKING:
    from ssl_bench.training.prepare import PreparedRun


def method_info(prepared: PreparedRun) -> MethodInfo:
    """Task, pool sizes, labeled class counts and schedule of a prepared run."""
    labeled = prepared.parts["labeled"]
    targets = prepared.labels[torch.from_numpy(labeled)]
    num_classes = prepared.task.num_classes
    if prepared.dataset.kind == "single":
        counts = torch.bincount(targets.long(), minlength=num_classes)
    else:
        counts = targets.sum(dim=0).long()
    return MethodInfo(
        kind=prepared.dataset.kind, num_classes=num_classes, num_labeled=len(labeled),
        num_unlabeled=len(prepared.parts["unlabeled"]),
        labeled_class_counts=tuple(int(c) for c in counts.tolist()),
        total_steps=prepared.total_steps, steps_per_epoch=prepared.steps_per_epoch,
        device=prepared.device,
    )


class StepLogs:
    """Sums of a method's logs since the last flush (one history row)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.correct: torch.Tensor | float = 0.0
        self.counted: torch.Tensor | float = 0.0

    def add(self, output: StepOutput, labels: torch.Tensor, unlabeled_rows: np.ndarray,
            scorable: torch.Tensor | None = None) -> None:
        """Accumulate one step's logs; score its pseudo-labels on the hidden labels (of
        the rows ``scorable`` marks, when given: images nobody labeled have none)."""
        for name, value in output.logs.items():
            value = value.detach().float()
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1
        if output.pseudo_labels is None or len(unlabeled_rows) == 0:
            return
        predicted, mask = (t.detach() for t in output.pseudo_labels)
        index = torch.from_numpy(unlabeled_rows).to(labels.device)
        hidden = labels[index]
        if self.kind == "single":
            right = predicted.long() == hidden.long()
        else:
            right = predicted.float().round() == hidden.float()
        mask = mask.bool()
        if scorable is not None:
            known = scorable[index]
            mask = mask & known.view(-1, *([1] * (mask.dim() - 1)))
        self.correct = self.correct + (right & mask).sum()
        self.counted = self.counted + mask.sum()

    def state_dict(self) -> dict[str, Any]:
        """The sums so far (a checkpoint between two evaluations holds them)."""
        return {"sums": dict(self.sums), "steps": self.steps, "correct": self.correct,
                "counted": self.counted}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        state = state or {"sums": {}, "steps": 0, "correct": 0.0, "counted": 0.0}
        self.sums, self.steps = dict(state["sums"]), state["steps"]
        self.correct, self.counted = state["correct"], state["counted"]

    def flush(self) -> dict[str, float | None]:
        """Means since the last flush (``log_<name>``, ``log_pseudo_label_accuracy``)."""
        out: dict[str, float | None] = {f"log_{name}": float(total) / max(self.steps, 1)
                                        for name, total in self.sums.items()}
        if isinstance(self.counted, torch.Tensor):
            counted = float(self.counted)
            out["log_pseudo_label_accuracy"] = (float(self.correct) / counted
                                                if counted else None)
        self.sums, self.steps, self.correct, self.counted = {}, 0, 0.0, 0.0
        return out
