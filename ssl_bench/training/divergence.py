"""Divergence detection: a run that blew up stops as *failed*, never as a result.

A diverged run can have a huge but finite loss (``--lr 1e6``: 3e12 at every evaluation)
or be dominated by its unsupervised terms (``--consistency-weight 1e30``) and still write
test metrics that look like any other run's. :class:`DivergenceMonitor` watches the
signals the engine already has, at the moments it already synchronises (loss read-back
every few steps, evaluation), and raises :class:`TrainingDiverged` naming the likely
cause:

* a loss term that is NaN or infinite;
* the supervised loss far above its value at the first step (``LOSS_FACTOR`` x);
* the weighted unsupervised terms far above the supervised loss (``UNSUPERVISED_FACTOR``
  x its first value): the loss *weight*, not the learning rate, is then to blame;
* non-finite parameters or gradients, or a parameter norm far above its initial value
  (``PARAMETER_FACTOR`` x);
* non-finite predicted probabilities, or every validation/test image given the same
  class with a saturated (float32-rounded-to-one) probability.

The thresholds are orders of magnitude away from anything a healthy run reaches (its
supervised loss falls from its first value; a weighted consistency term of a sane
weight stays within a few times the supervised loss).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_bench.core.errors import UserError

#: Supervised loss above this many times its first value (or 1, if larger) is divergence.
LOSS_FACTOR = 100.0
#: Weighted unsupervised terms above this many times the first supervised loss (or 1).
UNSUPERVISED_FACTOR = 1e4
#: Parameter norm above this many times its initial value.
PARAMETER_FACTOR = 100.0
#: A probability this close to 1 is saturated (float32 cannot tell it from 1).
SATURATED = 1.0 - 1e-7

LR = "lr"
WEIGHT = "loss weight"


class TrainingDiverged(UserError):
    """Training diverged; ``cause`` is ``"lr"`` or ``"loss weight"``, ``step`` where."""

    def __init__(self, message: str, step: int, cause: str) -> None:
        super().__init__(message)
        self.step = step
        self.cause = cause


def _number(value: float) -> str:
    return f"{value:.3g}"


class DivergenceMonitor:
    """Checks losses, parameters and predictions; raises :class:`TrainingDiverged`.

    ``lr`` and ``consistency_weight`` only word the message (the flag to change).
    """

    def __init__(self, lr: float, consistency_weight: float) -> None:
        self.lr = lr
        self.consistency_weight = consistency_weight
        self.first_supervised: float | None = None
        self.first_parameter_norm: float | None = None

    # -- state (kept in checkpoints so a resumed run judges against the same start) --
    def state_dict(self) -> dict[str, Any]:
        return {"first_supervised": self.first_supervised,
                "first_parameter_norm": self.first_parameter_norm}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state:
            self.first_supervised = state.get("first_supervised")
            self.first_parameter_norm = state.get("first_parameter_norm")

    # -- causes -------------------------------------------------------------------
    def _lr_advice(self) -> str:
        return (f"the learning rate is likely too high (--lr {self.lr:g}); "
                "try a lower --lr")

    def _weight_advice(self) -> str:
        return ("the unsupervised loss weight is likely too high (--consistency-weight "
                f"{self.consistency_weight:g}); try a lower --consistency-weight")

    def _fail(self, step: int, what: str, cause: str) -> TrainingDiverged:
        advice = self._lr_advice() if cause == LR else self._weight_advice()
        return TrainingDiverged(f"training diverged at step {step}: {what}; {advice}",
                                step, cause)

    # -- checks -------------------------------------------------------------------
    def start(self, model: nn.Module) -> None:
        """Record the initial parameter norm (a fresh run, before its first step)."""
        if self.first_parameter_norm is None:
            self.first_parameter_norm = parameter_norm(model)

    def check_losses(self, step: int, means: dict[str, float]) -> None:
        """Loss means since the last read-back (the first call sets the baseline)."""
        bad = sorted(name for name, value in means.items() if not math.isfinite(value))
        supervised = means.get("supervised", means.get("total", 0.0))
        if bad:
            terms = ", ".join(f"{name}={means[name]}" for name in bad)
            only_unsupervised = math.isfinite(supervised) and "supervised" in means
            raise self._fail(step, f"the loss is not finite ({terms})",
                             WEIGHT if only_unsupervised else LR)
        if self.first_supervised is None:
            self.first_supervised = supervised
        base = max(abs(self.first_supervised), 1.0)
        if abs(supervised) > LOSS_FACTOR * base:
            raise self._fail(
                step, f"the supervised loss reached {_number(supervised)}, "
                f"{_number(abs(supervised) / base)} x its first value "
                f"({_number(self.first_supervised)})", LR)
        if "supervised" in means and "total" in means:
            unsupervised = abs(means["total"] - supervised)
            if unsupervised > UNSUPERVISED_FACTOR * base:
                raise self._fail(
                    step, f"the weighted unsupervised terms reached {_number(unsupervised)}, "
                    f"{_number(unsupervised / base)} x the first supervised loss "
                    f"({_number(self.first_supervised)})", WEIGHT)

    def check_parameters(self, step: int, model: nn.Module, gradients: bool = True) -> None:
        """Non-finite or exploding parameters (and non-finite gradients) of ``model``."""
        norm = parameter_norm(model)
        if not math.isfinite(norm):
            raise self._fail(step, "the student's parameters are not finite", LR)
        if self.first_parameter_norm and norm > PARAMETER_FACTOR * self.first_parameter_norm:
            raise self._fail(
                step, f"the student's parameter norm reached {_number(norm)}, "
                f"{_number(norm / self.first_parameter_norm)} x its initial value", LR)
        if gradients:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if grads and not bool(torch.stack(
                    [torch.isfinite(g).all() for g in grads]).all()):
                raise self._fail(step, "the student's gradients are not finite", LR)

    def check_predictions(self, step: int, model: str, part: str,
                          probabilities: np.ndarray, kind: str) -> None:
        """Non-finite probabilities, or one saturated class for every image."""
        if probabilities.size == 0:
            return
        if not np.isfinite(probabilities).all():
            raise self._fail(step, f"the {model}'s {part} predictions are not finite", LR)
        if kind == "single" and len(probabilities) > 1:
            top = probabilities.max(axis=1)
            same_class = len(np.unique(probabilities.argmax(axis=1))) == 1
            if same_class and bool((top >= SATURATED).all()):
                raise self._fail(step, f"the {model} gives every {part} image the same class "
                                       "with probability 1 (collapsed, saturated output)", LR)
        elif kind == "multi" and len(probabilities) > 1:
            saturated = (probabilities >= SATURATED) | (probabilities <= 1.0 - SATURATED)
            if bool(saturated.all()) and bool((probabilities == probabilities[0]).all()):
                raise self._fail(step, f"the {model} gives every {part} image the same "
                                       "saturated 0/1 outputs (collapsed)", LR)


@torch.no_grad()
def parameter_norm(model: nn.Module) -> float:
    """The L2 norm of all parameters (one number; NaN/inf if any parameter is)."""
    norms = [p.detach().float().norm() for p in model.parameters()]
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))
