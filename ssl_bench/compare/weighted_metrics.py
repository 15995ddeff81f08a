"""The recorded test metrics, recomputed for many bootstrap resamples at once.

A bootstrap resample of ``N`` test images is a row of multiplicities (how often each
image was drawn); every metric here takes a ``[R, N]`` weight matrix and returns ``R``
values, so thousands of resamples cost a few matrix products instead of thousands of
scikit-learn calls. With all weights 1 each equals :func:`~ssl_bench.training.metrics.
compute_metrics` (same definitions: classes without a defined value leave the macro
mean, top-label ECE, multi-class Brier, ...; tested against it, and against
scikit-learn on explicitly repeated samples).

* AUC: the Mann-Whitney statistic with weights (ties count one half), per class.
* Accuracy, balanced accuracy, sensitivity, specificity, F1: from a weighted
  confusion matrix of the argmax predictions.
* ECE and Brier: weighted bin sums and weighted means of the per-image scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ssl_bench.training.calibration import BINS, bin_index
from ssl_bench.training.metrics import metric_names

Metric = Callable[[np.ndarray], np.ndarray]  # [R, N] weights -> [R] values


def multiplicities(indices: np.ndarray, n: int) -> np.ndarray:
    """``[R, M]`` drawn image indices -> ``[R, n]`` counts of each image."""
    indices = np.atleast_2d(indices)
    rows = indices.shape[0]
    flat = (np.arange(rows)[:, None] * n + indices).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def weighted_auc(scores: np.ndarray, labels: np.ndarray) -> Metric:
    """Binary ROC AUC of ``scores`` against 0/1 ``labels``, per weight row (NaN where a
    row has no positive or no negative weight): each positive counts the weight of the
    negatives scored below it, plus half of those tied with it."""
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels != 1)
    negatives = negatives[np.argsort(scores[negatives], kind="stable")]
    ordered = scores[negatives]
    below = np.searchsorted(ordered, scores[positives], side="left")  # strictly lower
    upto = np.searchsorted(ordered, scores[positives], side="right")  # lower or tied

    def auc(weights: np.ndarray) -> np.ndarray:
        cumulative = np.zeros((weights.shape[0], len(negatives) + 1))
        np.cumsum(weights[:, negatives], axis=1, out=cumulative[:, 1:])
        counted = 0.5 * (cumulative[:, below] + cumulative[:, upto])
        wins = (weights[:, positives] * counted).sum(axis=1)
        pairs = weights[:, positives].sum(axis=1) * cumulative[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)

    return auc


def _macro(values: np.ndarray) -> np.ndarray:
    """Mean over classes (axis 1) of the defined (non-NaN) values; NaN if none is."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=1)
    total = np.where(defined, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def _ece(probability: np.ndarray, outcome: np.ndarray, weights: np.ndarray) -> np.ndarray:
    bins = np.eye(BINS)[bin_index(probability)]  # [N, BINS]
    count = weights @ bins
    gap = weights @ (bins * outcome[:, None]) - weights @ (bins * probability[:, None])
    return np.abs(gap).sum(axis=1) / count.sum(axis=1)


def single_label_metrics(probs: np.ndarray, targets: np.ndarray,
                         classes: list[str]) -> dict[str, Metric]:
    """Every scalar single-label metric, and ``auc_<class>``, as weight-row functions."""
    n, k = probs.shape
    onehot = np.eye(k)[targets]
    predicted = probs.argmax(axis=1)
    cells = np.eye(k * k)[targets * k + predicted]  # [N, K*K]
    correct = (predicted == targets).astype(np.float64)
    brier = ((probs - onehot) ** 2).sum(axis=1)

    def confusion(weights: np.ndarray) -> np.ndarray:
        return (weights @ cells).reshape(-1, k, k)

    def sensitivity(weights: np.ndarray) -> np.ndarray:
        matrix = confusion(weights)
        return _macro(_ratio(np.diagonal(matrix, axis1=1, axis2=2), matrix.sum(axis=2)))

    def specificity(weights: np.ndarray) -> np.ndarray:
        matrix = confusion(weights)
        total = matrix.sum(axis=(1, 2))[:, None]
        actual, shown = matrix.sum(axis=2), matrix.sum(axis=1)
        hits = np.diagonal(matrix, axis1=1, axis2=2)
        return _macro(_ratio(total - actual - shown + hits, total - actual))

    def f1(weights: np.ndarray) -> np.ndarray:
        matrix = confusion(weights)
        hits = np.diagonal(matrix, axis1=1, axis2=2)
        present = matrix.sum(axis=2) + matrix.sum(axis=1)
        return _macro(np.where(present > 0, 2 * hits / np.where(present > 0, present, 1),
                               np.nan))

    aucs = [weighted_auc(probs[:, j], onehot[:, j]) for j in range(k)]

    def per_class_auc(weights: np.ndarray) -> np.ndarray:
        return np.stack([auc(weights) for auc in aucs], axis=1)

    out: dict[str, Metric] = {
        "auc": lambda w: _macro(per_class_auc(w)),
        "accuracy": lambda w: (w @ correct) / w.sum(axis=1),
        "balanced_accuracy": sensitivity,
        "sensitivity_macro": sensitivity,
        "specificity_macro": specificity,
        "f1_macro": f1,
        "ece": lambda w: _ece(probs.max(axis=1), correct, w),
        "brier": lambda w: (w @ brier) / w.sum(axis=1),
    }
    out.update({f"auc_{name}": aucs[j] for j, name in enumerate(classes)})
    assert set(metric_names("single")) <= set(out)
    return out


def multi_label_metrics(probs: np.ndarray, targets: np.ndarray,
                        classes: list[str]) -> dict[str, Metric]:
    """Every scalar multi-label metric, and ``auc_<class>``, as weight-row functions."""
    k = probs.shape[1]
    targets = targets.astype(np.float64)
    squared = (probs - targets) ** 2

    def per_class(score: Callable[[int, np.ndarray], np.ndarray]) -> Metric:
        return lambda w: np.stack([score(j, w) for j in range(k)], axis=1)

    aucs = [weighted_auc(probs[:, j], targets[:, j]) for j in range(k)]
    auc = per_class(lambda j, w: aucs[j](w))
    ece = per_class(lambda j, w: _ece(probs[:, j], targets[:, j], w))
    out: dict[str, Metric] = {
        "auc": lambda w: _macro(auc(w)),
        "ece": lambda w: ece(w).mean(axis=1),
        "brier": lambda w: ((w @ squared) / w.sum(axis=1)[:, None]).mean(axis=1),
    }
    out.update({f"auc_{name}": aucs[j] for j, name in enumerate(classes)})
    assert set(metric_names("multi")) <= set(out)
    return out


def weighted_metric(metric: str, probs: np.ndarray, targets: np.ndarray, kind: str,
                    classes: list[str]) -> Metric | None:
    """The weight-row function of ``metric`` (None for a metric it does not know)."""
    table = (single_label_metrics if kind == "single" else multi_label_metrics)(
        np.asarray(probs, dtype=np.float64), np.asarray(targets).astype(np.int64), classes)
    return table.get(metric)
