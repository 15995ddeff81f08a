"""Calibration of predicted probabilities: expected calibration error, Brier score and
the reliability bins a diagram is drawn from.

Clinicians act on probabilities, so a run records how far they are from the observed
frequencies, next to how well they rank (AUC). Definitions (tested against
``sklearn.calibration.calibration_curve`` and ``sklearn.metrics.brier_score_loss``):

* **Binning.** :data:`BINS` equal-width bins on [0, 1], assigned exactly as
  ``calibration_curve(..., strategy="uniform")`` does: bin ``b`` holds ``(b/15, (b+1)/15]``
  and the first also holds 0. Empty bins do not count.
* **Single-label ECE** (*top-label*, Guo et al. 2017): each image's confidence is its
  highest probability and it is correct when that class is its label;
  ``ECE = sum_b n_b / N * |accuracy_b - confidence_b|``.
* **Multi-label ECE**: per finding, the binary ECE of its probability against its 0/1
  label (``sum_b n_b / N * |positive fraction_b - mean probability_b|``); ``ece`` is the
  mean over findings, ``ece_per_class`` keeps each.
* **Brier score.** Single-label: the original multi-class score,
  ``mean_i sum_k (p_ik - y_ik)^2`` in [0, 2] -- for two classes too, twice the binary
  score (``brier_score_loss(..., scale_by_half=False)``). Multi-label: per finding the
  binary score ``mean_i (p_ik - y_ik)^2`` in [0, 1]; ``brier`` is the mean over findings.
* **Reliability bins** (``reliability``): per bin the count, the mean probability and
  the observed frequency (accuracy of the top label; for multi-label, the positive
  fraction with every finding's probabilities pooled), None for an empty bin.

Lower is better for both scores (:data:`LOWER_IS_BETTER`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Equal-width bins of the ECE and the reliability diagrams (Guo et al. 2017 use 15).
BINS = 15
#: Metrics where a lower value is better (every other recorded metric: higher).
LOWER_IS_BETTER: frozenset[str] = frozenset({"ece", "brier"})
BINNING = (f"{BINS} equal-width bins on [0, 1], (lo, hi] with 0 in the first, as "
           "sklearn.calibration.calibration_curve(strategy='uniform')")


def bin_index(probabilities: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The bin of each probability, as ``calibration_curve`` assigns it."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], np.clip(probabilities, 0.0, 1.0))


def binned(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = BINS,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: the count, the sum of probabilities and the sum of outcomes (0/1)."""
    index = bin_index(probabilities, bins)
    return (np.bincount(index, minlength=bins).astype(np.float64),
            np.bincount(index, weights=probabilities, minlength=bins),
            np.bincount(index, weights=outcomes.astype(np.float64), minlength=bins))


def expected_calibration_error(probabilities: np.ndarray, outcomes: np.ndarray,
                               bins: int = BINS) -> float:
    """``sum_b n_b / N * |mean outcome_b - mean probability_b|`` over non-empty bins."""
    count, probability_sum, outcome_sum = binned(probabilities, outcomes, bins)
    return float(np.abs(outcome_sum - probability_sum).sum() / count.sum())


def reliability(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = BINS,
                ) -> dict[str, Any]:
    """The bins of a reliability diagram: count, mean probability, observed frequency."""
    count, probability_sum, outcome_sum = binned(probabilities, outcomes, bins)

    def mean(total: np.ndarray) -> list[float | None]:
        return [float(t / c) if c else None for t, c in zip(total, count, strict=True)]

    return {"bins": bins, "count": [int(c) for c in count],
            "confidence": mean(probability_sum), "observed": mean(outcome_sum)}


def single_label_calibration(probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Top-label ECE, multi-class Brier score and reliability bins of softmax ``probs``
    (``N x K``) against class indices ``targets``."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    onehot = np.eye(probs.shape[1])[targets]
    return {"ece": expected_calibration_error(confidence, correct),
            "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
            "reliability": reliability(confidence, correct)}


def multi_label_calibration(probs: np.ndarray, targets: np.ndarray,
                            names: list[str]) -> dict[str, Any]:
    """Per-finding binary ECE and Brier score (and their means) of sigmoid ``probs``
    against 0/1 ``targets`` (both ``N x K``), and reliability bins of all pairs pooled."""
    ece = {name: expected_calibration_error(probs[:, j], targets[:, j])
           for j, name in enumerate(names)}
    brier = {name: float(((probs[:, j] - targets[:, j]) ** 2).mean())
             for j, name in enumerate(names)}
    return {"ece": float(np.mean(list(ece.values()))), "ece_per_class": ece,
            "brier": float(np.mean(list(brier.values()))), "brier_per_class": brier,
            "reliability": reliability(probs.reshape(-1), targets.reshape(-1))}
